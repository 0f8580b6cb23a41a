"""keras-tuner oracles over a tfplaybook SearchSpace: quasi-random and Bayesian.

Both subclass `keras_tuner.Oracle`, so any keras-tuner tuner (a `BaseTuner` subclass with its own
`run_trial`, or `RandomSearch`'s machinery) can drive them, including distributed tuning::

    space = SearchSpace.from_config(config)                    # tfplaybook.search.space
    oracle = QuasiRandomOracle(space, objective=config["objective"], max_trials=20, seed=0)
    # exploration (checklist 36, 99) ... later, exploitation around the best trials (checklist 62):
    oracle = BayesianOracle(space, ("accuracy", "max"), max_trials=40, seed=1,
                            warm_start=[(trial_values, accuracy_or_None), ...])
    tuner = MyTuner(oracle=oracle, directory=workdir, project_name="study")
    # in MyTuner.run_trial(trial): values = trial.hyperparameters.values
    #     trial_config = space.apply(config, values); hparams = space.hparams(values)

`objective` is a `keras_tuner.Objective`, a metric name, a (name, direction) pair, or the config's
{"metric": ..., "goal": "max"|"min"} dict. The hyperparameters are registered in the oracle's
`keras_tuner.HyperParameters` under their dimension ids (`hp.Float`, `hp.Int`, `hp.Choice`, with
conditional dimensions in a `conditional_scope` of their parent), so stock tuners and reports see
the space. Each trial's values hold the active dimensions only.

Seeds: keras-tuner treats `seed=0` as "pick a random seed"; these oracles keep the given seed as
is (0 included), so every study is reproducible and two seeds give two studies (checklist 57).
Resume: the position in the quasi-random sequence, the seed, the fitted GP hyperparameters and a
fingerprint of the space are saved with the oracle; reloading the project directory continues the
sequence without repeats, and refuses a changed space or seed.

Infeasible trials (checklist 41, 63): status INVALID or FAILED, a NaN or infinite score, or a
metric named "infeasible" with value 1. The quasi-random oracle needs no special handling
(checklist 100); the Bayesian oracle models them and multiplies expected improvement by P(feasible).
"""

import json
import math

import keras_tuner
import numpy as np

from tfplaybook.config import ConfigError
from tfplaybook.search import bayes
from tfplaybook.search.halton import make_sampler

INFEASIBLE_METRIC = "infeasible"
_RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
_STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED
_COMPLETED = keras_tuner.engine.trial.TrialStatus.COMPLETED
_FAILED_STATUSES = (
    keras_tuner.engine.trial.TrialStatus.INVALID,
    keras_tuner.engine.trial.TrialStatus.FAILED,
)


def make_objective(objective):
    """A keras_tuner.Objective from an Objective, a name, (name, direction) or a config dict."""
    if isinstance(objective, keras_tuner.Objective):
        return objective
    if isinstance(objective, dict):
        goal = objective.get("goal")
        if goal not in ("min", "max") or "metric" not in objective:
            raise ConfigError(f"objective={objective!r} needs a metric and goal 'min' or 'max'")
        return keras_tuner.Objective(objective["metric"], goal)
    if isinstance(objective, (tuple, list)) and len(objective) == 2:
        if objective[1] not in ("min", "max"):
            raise ConfigError(f"objective direction {objective[1]!r}; allowed: min, max")
        return keras_tuner.Objective(*objective)
    if isinstance(objective, str):
        return objective  # keras-tuner infers the direction from well-known names.
    raise ConfigError(f"objective={objective!r}: give an Objective, a name or (name, direction)")


def keras_hyperparameters(space):
    """The space as keras_tuner.HyperParameters, named by dimension id."""
    hp = keras_tuner.HyperParameters()
    # Parents first: a conditional scope needs its parent registered.
    for dim in sorted(space.dimensions, key=lambda d: d.parent is not None):
        if dim.parent is None:
            _register(hp, dim)
        else:
            with hp.conditional_scope(dim.parent, [dim.parent_value]):
                _register(hp, dim)
    return hp


def _register(hp, dim):
    if dim.scale == "categorical":
        hp.Choice(dim.id, list(dim.values), ordered=False)
    elif dim.scale == "discrete":
        as_float = any(isinstance(v, float) for v in dim.values)
        hp.Choice(dim.id, [float(v) if as_float else v for v in dim.values], ordered=True)
    elif dim.is_int:
        hp.Int(dim.id, dim.min, dim.max, sampling=dim.scale)
    else:
        hp.Float(dim.id, dim.min, dim.max, sampling=dim.scale)


class _SpaceOracle(keras_tuner.Oracle):
    """Shared plumbing: space, seed, quasi-random sequence position and resume checks."""

    def __init__(self, search_space, objective, max_trials, seed, sampler, **oracle_kwargs):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed={seed!r} must be a non-negative integer")
        if len(search_space) == 0:
            raise ConfigError("the search space varies nothing: add a scientific or nuisance entry")
        super().__init__(
            objective=make_objective(objective),
            max_trials=max_trials,
            hyperparameters=keras_hyperparameters(search_space),
            seed=int(seed) + 1,  # Overwritten below: keras-tuner would randomise seed=0.
            **oracle_kwargs,
        )
        self.seed = self._seed_state = int(seed)
        self.space = search_space
        self.sampler_name = sampler
        self._sampler = make_sampler(sampler, len(search_space), self.seed, max_trials)
        self._next_index = 0

    def _next_quasi_random(self):
        """Values of the next unseen point of the sequence, or None when it is exhausted."""
        for _ in range(self._max_collisions + 1):
            try:
                point = self._sampler.point(self._next_index)
            except IndexError:
                return None
            self._next_index += 1
            values = self.space.from_unit(point)
            # Only a space of few discrete values repeats itself; skip repeats.
            if not self._duplicate(values):
                return values
        return None

    def get_state(self):
        state = super().get_state()
        state["tfplaybook"] = {
            "seed": self.seed,
            "sampler": self.sampler_name,
            "num_samples": self.max_trials,
            "next_index": self._next_index,
            "space": self.space.fingerprint(),
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        ours = state["tfplaybook"]
        if ours["space"] != self.space.fingerprint():
            raise ConfigError(
                "the search space differs from the one this study started with; start a new "
                f"study (another project name). Saved: {ours['space']}"
            )
        if ours["seed"] != self._sampler.seed or ours["sampler"] != self.sampler_name:
            raise ConfigError(
                f"this study started with seed={ours['seed']} sampler={ours['sampler']!r}, not "
                f"seed={self._sampler.seed} sampler={self.sampler_name!r}"
            )
        if self.sampler_name == "halton_compat" and ours["num_samples"] != self.max_trials:
            raise ConfigError(
                f"halton_compat orders its points by the trial count: this study started with "
                f"max_trials={ours['num_samples']}, not {self.max_trials}"
            )
        self._next_index = ours["next_index"]


class QuasiRandomOracle(_SpaceOracle):
    """Quasi-random search (checklist 36, 99): trial i gets point i of a seeded sequence.

    Args:
      search_space: a SearchSpace.
      objective: see the module docstring.
      max_trials: the study's trial budget.
      seed: the study seed; another seed gives another set of points (study variance).
      sampler: "halton" (seeded scrambled Halton, default) or "halton_compat" (the playbook's
        reference generator point for point; needs max_trials).
      **oracle_kwargs: passed to keras_tuner.Oracle (e.g. max_retries_per_trial).
    """

    def __init__(
        self, search_space, objective, max_trials, seed, sampler="halton", **oracle_kwargs
    ):
        super().__init__(search_space, objective, max_trials, seed, sampler, **oracle_kwargs)

    def populate_space(self, trial_id):
        values = self._next_quasi_random()
        if values is None:
            return {"status": _STOPPED, "values": None}
        return {"status": _RUNNING, "values": values}


class BayesianOracle(_SpaceOracle):
    """GP Bayesian optimisation with feasibility modelling (checklist 36, 62, 63).

    The first `num_initial_points` trials (minus warm-start trials) are quasi-random points of the
    seeded Halton sequence; then each trial maximises log EI + log P(feasible) (tfplaybook.search.
    bayes). Suggestions are deterministic given the seed and the finished trials. It optimises
    over scientific hyperparameters too instead of sampling them uniformly: compare scientific
    values with QuasiRandomOracle studies (checklist 37), exploit with this one (checklist 62).

    Args:
      search_space: a SearchSpace.
      objective: see the module docstring.
      max_trials: the study's trial budget.
      seed: the study seed.
      num_initial_points: quasi-random trials before the GP; default len(space), within 4..10.
      warm_start: optional list of (values, objective) pairs from an earlier study over the same
        space (checklist 62); values keyed by dimension id (numbers outside the ranges are kept,
        extrapolated), objective in the objective's own direction or None for an infeasible trial.
        It is saved with the oracle: a resumed study uses the warm start it started with.
      **oracle_kwargs: passed to keras_tuner.Oracle.
    """

    def __init__(
        self,
        search_space,
        objective,
        max_trials,
        seed,
        num_initial_points=None,
        warm_start=None,
        **oracle_kwargs,
    ):
        super().__init__(search_space, objective, max_trials, seed, "halton", **oracle_kwargs)
        # One quasi-random point per dimension, 4 to 10: enough for a first GP, and every point
        # spent here is an adaptive one less (on bench_bayesian's lr_like, 6 initial points gave
        # a mean of 4.5 divergent trials of 30, 4 gave 3.5, at lower regret).
        default_initial = min(max(len(search_space), 4), 10)
        self.num_initial_points = num_initial_points or default_initial
        self.warm_start = []
        for index, pair in enumerate(warm_start or ()):
            values, value = pair
            try:
                self.space.to_unit(values)
            except ValueError as e:
                raise ConfigError(f"warm_start[{index}]: {e}") from None
            finite = value is not None and math.isfinite(value)
            # Stored in the oracle's JSON state: plain Python numbers only.
            plain = json.loads(json.dumps(dict(values), default=lambda v: v.item()))
            self.warm_start.append([plain, float(value) if finite else None])
        self._suggester = bayes.Suggester(search_space)
        self.last_acquisition = None

    def _to_minimize(self, score):
        return -score if self.objective.direction == "max" else score

    def _observations(self):
        """(units, objectives to minimise or None, pending units) from warm start and trials."""
        units, objectives, pending = [], [], []
        for values, score in self.warm_start:
            units.append(self.space.to_unit(values))
            objectives.append(None if score is None else self._to_minimize(score))
        for trial in self.trials.values():
            point = self.space.to_unit(trial.hyperparameters.values)
            if trial.status == _RUNNING:
                pending.append(point)
            elif trial.status in _FAILED_STATUSES or trial.status == _COMPLETED:
                units.append(point)
                objectives.append(self._objective_of(trial))
        return units, objectives, pending

    def _objective_of(self, trial):
        if trial.status != _COMPLETED:
            return None
        if trial.metrics.exists(INFEASIBLE_METRIC):
            if trial.metrics.get_last_value(INFEASIBLE_METRIC) >= 0.5:
                return None
        if trial.score is None or not math.isfinite(trial.score):
            return None
        return self._to_minimize(trial.score)

    def populate_space(self, trial_id):
        units, objectives, pending = self._observations()
        num_feasible = sum(v is not None for v in objectives)
        started = len(self.trials) + len(self.warm_start)
        values = None
        if started >= self.num_initial_points and num_feasible >= 2:
            rng = np.random.default_rng([self.seed, len(self.trials)])
            point, info = self._suggester.suggest(units, objectives, pending, rng)
            self.last_acquisition = info["acquisition"]
            if point is not None:
                values = self.space.from_unit(point)
                if self._duplicate(values):
                    values = None
        if values is None:
            # Too few observations for a GP yet, or nothing new found: quasi-random point.
            values = self._next_quasi_random()
        if values is None:
            return {"status": _STOPPED, "values": None}
        return {"status": _RUNNING, "values": values}

    def get_state(self):
        state = super().get_state()
        state["tfplaybook"].update(
            num_initial_points=self.num_initial_points,
            warm_start=self.warm_start,
            theta=_as_list(self._suggester.theta),
            feasibility_theta=_as_list(self._suggester.feasibility_theta),
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        ours = state["tfplaybook"]
        self.num_initial_points = ours["num_initial_points"]
        self.warm_start = ours["warm_start"]
        for name in ("theta", "feasibility_theta"):
            if ours.get(name) is not None:
                setattr(self._suggester, name, np.array(ours[name]))


def _as_list(array):
    return None if array is None else array.tolist()
