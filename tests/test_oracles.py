"""The oracles under stock keras-tuner machinery: sequences, resume after a kill, feasibility."""

import math

import keras_tuner
import pytest

from tfplaybook.config import ConfigError
from tfplaybook.search import oracles
from tfplaybook.search.halton import make_sampler
from tfplaybook.search.space import parse

SPACE = parse(
    [
        {
            "name": "optimizer.name",
            "role": "scientific",
            "scale": "categorical",
            "values": ["sgd", "adam"],
        },
        {
            "name": "optimizer.learning_rate",
            "parent": "optimizer.name",
            "parent_value": "sgd",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-3,
            "max": 10.0,
        },
        {
            "name": "optimizer.learning_rate",
            "parent": "optimizer.name",
            "parent_value": "adam",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-5,
            "max": 1.0,
        },
        {
            "name": "model.width",
            "role": "nuisance",
            "scale": "log",
            "type": "int",
            "min": 8,
            "max": 64,
        },
    ]
)
CONFIG = {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "model": {"width": 16}}


class Killed(BaseException):
    """Stands for SIGKILL: BaseTuner only catches Exception, so this ends the search mid-trial."""


class CheapTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """A stock BaseTuner whose trial is a closed-form function of the applied config."""

    def __init__(self, *args, kill_at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_at = kill_at
        self.ran = []

    def run_trial(self, trial, **kwargs):
        if self.kill_at is not None and len(self.oracle.trials) == self.kill_at + 1:
            raise Killed()
        values = trial.hyperparameters.values
        self.ran.append(dict(values))
        config = SPACE.apply(CONFIG, values)
        lr = config["optimizer"]["learning_rate"]
        if lr > 1.0:  # "diverged": an infeasible trial
            return {"loss": 10.0, "infeasible": 1.0}
        best = 1e-1 if config["optimizer"]["name"] == "sgd" else 1e-3
        return {"loss": math.log10(lr / best) ** 2 + 0.01 * config["model"]["width"] / 64}


def _search(oracle, directory, kill_at=None):
    tuner = CheapTuner(
        oracle=oracle, directory=str(directory), project_name="study", kill_at=kill_at
    )
    try:
        tuner.search(verbose=0)
    except Killed:
        pass
    return tuner


def _trial_values(tuner):
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    return [t.hyperparameters.values for t in trials]


def test_hyperparameters_are_registered_with_conditions():
    hp = oracles.keras_hyperparameters(SPACE)
    assert sorted(p.name for p in hp.space) == sorted(SPACE.ids)
    hp.values = {"optimizer.name": "adam"}
    assert hp.is_active("adam/optimizer.learning_rate")
    assert not hp.is_active("sgd/optimizer.learning_rate")


def test_quasi_random_oracle_gives_the_sequence_in_order(tmp_path):
    oracle = oracles.QuasiRandomOracle(SPACE, ("loss", "min"), max_trials=4, seed=0)
    tuner = _search(oracle, tmp_path)
    sampler = make_sampler("halton", len(SPACE), seed=0)
    expected = [SPACE.from_unit(sampler.point(i)) for i in range(4)]
    assert _trial_values(tuner) == expected
    assert all(t.status == "COMPLETED" for t in oracle.trials.values())


def test_seed_zero_is_a_seed_and_seeds_differ():
    # keras-tuner's Oracle(seed=0) would pick a random seed: ours keeps 0.
    def first(seed):
        oracle = oracles.QuasiRandomOracle(SPACE, "loss", max_trials=3, seed=seed)
        return oracle.populate_space("0")["values"]

    assert first(0) == first(0)
    assert first(0) != first(1)


@pytest.mark.parametrize("sampler", ["halton", "halton_compat"])
def test_quasi_random_resume_after_kill_continues_without_repeats(tmp_path, sampler):
    def make():
        return oracles.QuasiRandomOracle(
            SPACE, {"metric": "loss", "goal": "min"}, max_trials=6, seed=5, sampler=sampler
        )

    first = _search(make(), tmp_path, kill_at=3)
    assert len(first.ran) == 3
    resumed = _search(make(), tmp_path)  # a new oracle instance reloads the directory
    values = _trial_values(resumed)
    expected = [SPACE.from_unit(make_sampler(sampler, len(SPACE), 5, 6).point(i)) for i in range(6)]
    assert values == expected  # the killed trial 3 is retried with its values, then 4 and 5
    assert resumed.ran == expected[3:]


def test_resume_refuses_a_changed_space_or_seed(tmp_path):
    _search(oracles.QuasiRandomOracle(SPACE, "loss", max_trials=2, seed=1), tmp_path)
    narrower = parse(SPACE.to_spec()[:1])
    with pytest.raises(ConfigError, match="search space differs"):
        _search(oracles.QuasiRandomOracle(narrower, "loss", max_trials=2, seed=1), tmp_path)
    with pytest.raises(ConfigError, match="started with seed=1"):
        _search(oracles.QuasiRandomOracle(SPACE, "loss", max_trials=2, seed=2), tmp_path)


def test_bayesian_oracle_models_infeasible_trials_and_resumes(tmp_path):
    def make():
        return oracles.BayesianOracle(
            SPACE, keras_tuner.Objective("loss", "min"), max_trials=9, seed=3, num_initial_points=4
        )

    first = _search(make(), tmp_path, kill_at=6)
    assert first.oracle.last_acquisition is not None  # the GP proposed trials 4 and 5
    resumed = _search(make(), tmp_path)
    values = _trial_values(resumed)
    assert len(values) == 9 and resumed.ran[0] == values[6]
    assert len({tuple(sorted(v.items())) for v in values}) == 9  # never the same configuration
    oracle = resumed.oracle
    assert oracle._suggester.theta is not None
    infeasible = [t for t in oracle.trials.values() if oracle._objective_of(t) is None]
    diverging = [v for v in values if SPACE.apply(CONFIG, v)["optimizer"]["learning_rate"] > 1]
    assert len(infeasible) == len(diverging)


@pytest.mark.filterwarnings("ignore:All-NaN")  # keras-tuner's own best-value of a NaN metric
def test_bayesian_oracle_counts_failed_and_nan_trials_as_infeasible(tmp_path):
    oracle = oracles.BayesianOracle(
        SPACE, ("loss", "min"), max_trials=5, seed=0, max_consecutive_failed_trials=10
    )
    oracle._set_project_dir(str(tmp_path), "study")
    oracle.verbose = 0
    outcomes = []
    for report in ({"loss": 1.0}, "FAILED", {"loss": float("nan")}, {"loss": 2.0, "infeasible": 1}):
        trial = oracle.create_trial("tuner0")
        if report == "FAILED":
            trial.status = "FAILED"
        else:
            oracle.update_trial(trial.trial_id, report)
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        outcomes.append(oracle._objective_of(oracle.trials[trial.trial_id]))
    assert outcomes == [1.0, None, None, None]


def test_bayesian_oracle_warm_starts_from_an_earlier_study(tmp_path):
    sampler = make_sampler("halton", len(SPACE), seed=9)
    earlier = [SPACE.from_unit(sampler.point(i)) for i in range(6)]
    warm = [(v, None if i == 0 else float(i)) for i, v in enumerate(earlier)]
    oracle = oracles.BayesianOracle(
        SPACE, ("loss", "min"), max_trials=2, seed=0, num_initial_points=4, warm_start=warm
    )
    tuner = _search(oracle, tmp_path)
    assert oracle.last_acquisition is not None  # no quasi-random start was needed
    assert not any(v in earlier for v in _trial_values(tuner))
    with pytest.raises(ConfigError, match=r"warm_start\[0\].*not one of"):
        oracles.BayesianOracle(SPACE, "loss", 2, 0, warm_start=[({"optimizer.name": "nadam"}, 1)])


def test_oracle_arguments_are_checked():
    with pytest.raises(ConfigError, match="non-negative integer"):
        oracles.QuasiRandomOracle(SPACE, "loss", 2, seed=None)
    with pytest.raises(ConfigError, match="varies nothing"):
        oracles.QuasiRandomOracle(parse([]), "loss", 2, seed=0)
    with pytest.raises(ValueError, match="needs the number of trials"):
        oracles.QuasiRandomOracle(SPACE, "loss", None, seed=0, sampler="halton_compat")
    with pytest.raises(ConfigError, match="goal 'min' or 'max'"):
        oracles.make_objective({"metric": "accuracy", "goal": "up"})
    assert oracles.make_objective(("acc", "max")).direction == "max"
    assert oracles.make_objective({"metric": "accuracy", "goal": "max"}).name == "accuracy"
