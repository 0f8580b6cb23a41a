"""--mode=advise: the next round's experiment file from a finished study's checks.

The rules are tested on synthetic studies (tests/fixtures_analysis.py) where each finding is
made to happen or not; the whole path (a real study trained here, the CLI, the written file
loaded back with get_config()) on a real small study whose learning rates are too low.
"""

import json
import math
import os

import fixtures_analysis as fx
import numpy as np
import pytest
from conftest import run_cli, snapshot

from tfplaybook import validation
from tfplaybook.analysis import advise
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td
from tfplaybook.search import space as space_lib
from tfplaybook.training import task as task_lib


def _with_config(study_dir, search_space, max_trials, **top_level):
    """Adds the config a real study records in study.json (the advisor starts from it)."""
    config = fx.base_config(**top_level)
    config["study"].update(search_space=search_space, max_trials=max_trials, name="fixture")
    path = os.path.join(study_dir, "study.json")
    description = td.read_json(path)
    description["config"] = config
    td.atomic_write_json(path, description)
    return study_dir


def _study(tmp_path, trials, search_space, name="study", **top_level):
    study_dir = fx.make_study(str(tmp_path / name), search_space, trials, max_trials=len(trials))
    return _with_config(study_dir, search_space, len(trials), **top_level)


def _lr_trials(lrs, accuracy, shape="normal", width_values=None):
    return [
        {
            "values": {
                "optimizer.learning_rate": lr,
                "model.width": (width_values or [16, 32, 64])[i % len(width_values or [0, 0, 0])],
            },
            "shape": shape,
            "final_accuracy": accuracy(lr),
        }
        for i, lr in enumerate(lrs)
    ]


SPACE = [fx.LR_DIM, fx.WIDTH_DIM]
EVEN_LRS = [float(10**x) for x in np.linspace(-2.9, -0.1, 12)]


def _peaked(centre):
    return lambda lr: 0.97 - 0.08 * math.log10(lr / centre) ** 2


def _loaded(advice):
    path = advise.write_next_experiment(advice)
    config, task = task_lib.load(path)
    validation.check_config(config, task)
    return path, config


def test_a_quiet_study_gets_no_change_and_a_loadable_copy_of_its_config(tmp_path):
    # Best learning rate in the middle, every curve at its best mid-training, enough trials.
    lrs = [float(10**x) for x in np.linspace(-2.9, -0.1, 20)]
    study_dir = _study(tmp_path, _lr_trials(lrs, _peaked(0.03), shape="plateau"), SPACE)
    advice = advise.advise(study_dir)
    assert advice.changes == [], [c.reason for c in advice.changes]
    assert advice.summary.startswith("nothing to change")
    path, config = _loaded(advice)
    assert "Nothing to change" in open(path).read()
    base = task_lib.complete_config(advice.base_config, task_lib.Task())
    assert config == base


def test_best_trial_at_the_top_of_a_nuisance_range_widens_it_upwards(tmp_path):
    study_dir = _study(tmp_path, _lr_trials(EVEN_LRS, _peaked(5.0)), SPACE)
    advice = advise.advise(study_dir)
    (change,) = [c for c in advice.changes if c.check == "search_space_boundary"]
    assert "high end of optimizer.learning_rate" in change.reason
    _, config = _loaded(advice)
    (lr,) = [e for e in config["study"]["search_space"] if e["name"] == "optimizer.learning_rate"]
    assert lr["min"] == fx.LR_DIM["min"]
    # Half the width of [1e-3, 1] on its log scale: 1.5 decades above 1.
    assert lr["max"] == pytest.approx(10**1.5, rel=1e-3)
    assert config["study"]["name"] == "fixture_round2"


def test_best_trial_at_the_bottom_widens_downwards(tmp_path):
    study_dir = _study(tmp_path, _lr_trials(EVEN_LRS, _peaked(1e-4)), SPACE)
    _, config = _loaded(advise.advise(study_dir))
    (lr,) = [e for e in config["study"]["search_space"] if e["name"] == "optimizer.learning_rate"]
    assert lr["max"] == fx.LR_DIM["max"] and lr["min"] == pytest.approx(10**-4.5, rel=1e-3)


def test_a_scientific_range_at_its_edge_is_a_note_never_a_change(tmp_path):
    space = [fx.DROPOUT_DIM]
    trials = [
        {"values": {"model.dropout": d}, "final_accuracy": 0.9 + 0.1 * d}
        for d in np.linspace(0.02, 0.49, 8)
    ]
    study_dir = _study(tmp_path, trials, space)
    advice = advise.advise(study_dir)
    assert not [c for c in advice.changes if c.check == "search_space_boundary"]
    assert any("model.dropout" in n and "scientific" in n for n in advice.notes)
    assert advice.config["study"]["search_space"] == advice.base_config["study"]["search_space"]


def test_a_widening_that_would_leave_the_allowed_values_is_shrunk_until_valid(tmp_path):
    dropout = dict(fx.DROPOUT_DIM, role="nuisance", min=0.3, max=0.9)
    space = [dropout, fx.WIDTH_DIM]
    trials = [
        {"values": {"model.dropout": d, "model.width": [16, 32, 64][i % 3]}, "final_accuracy": d}
        for i, d in enumerate(np.linspace(0.31, 0.89, 9))
    ]
    advice = advise.advise(_study(tmp_path, trials, space))
    (change,) = [c for c in advice.changes if c.check == "search_space_boundary"]
    (entry,) = [e for e in advice.config["study"]["search_space"] if e["name"] == "model.dropout"]
    assert 0.9 < entry["max"] < 1.0  # 0.9 + 0.3 would be no dropout rate; model.dropout < 1.
    _loaded(advice)


def test_an_insensitive_nuisance_hyperparameter_is_fixed_at_its_best_value(tmp_path):
    space = [fx.LR_DIM, fx.MOMENTUM_DIM, fx.WIDTH_DIM]
    # A balanced design, as a quasi-random one is: each third of the momentum range sees
    # learning rates from the whole range.
    momentum = space_lib.parse([fx.MOMENTUM_DIM]).dimensions[0]
    trials = []
    for i, lr in enumerate([float(10**x) for x in np.linspace(-2.6, -0.4, 12)]):
        m = float(momentum.from_unit((i % 3 + 0.2 + 0.05 * i) / 3))
        trials.append(
            {
                "values": {
                    "optimizer.learning_rate": lr,
                    "optimizer.momentum": m,
                    "model.width": [16, 32, 64][i % 3],
                },
                "final_accuracy": _peaked(0.05)(lr),  # Momentum plays no part.
            }
        )
    advice = advise.advise(_study(tmp_path, trials, space))
    (change,) = [c for c in advice.changes if c.check == "insensitive"]
    assert change.reason.startswith("optimizer.momentum looks insensitive")
    _, config = _loaded(advice)
    assert [e["name"] for e in config["study"]["search_space"]] == [
        "optimizer.learning_rate",
        "model.width",
    ]
    best = max(trials, key=lambda t: t["final_accuracy"])
    assert config["optimizer"]["momentum"] == pytest.approx(best["values"]["optimizer.momentum"])
    # The learning rate matters: it stays searched.
    assert not any("learning_rate looks insensitive" in c.reason for c in advice.changes)


def test_a_small_sparsely_sampled_good_region_is_narrowed(tmp_path):
    lrs = [float(10**x) for x in np.linspace(-2.9, -0.1, 12)]
    sharp = lambda lr: 0.97 - 0.5 * abs(math.log10(lr / 0.03))  # noqa: E731
    advice = advise.advise(_study(tmp_path, _lr_trials(lrs, sharp), SPACE))
    (change,) = [c for c in advice.changes if c.check == "good_region"]
    (lr,) = [
        e for e in advice.config["study"]["search_space"] if e["name"] == "optimizer.learning_rate"
    ]
    assert fx.LR_DIM["min"] < lr["min"] < 0.03 < lr["max"] < fx.LR_DIM["max"]
    _loaded(advice)


def test_an_improving_study_trains_longer_and_an_unsettled_budget_runs_more_trials(tmp_path):
    rng = np.random.RandomState(1)
    trials = _lr_trials(
        EVEN_LRS[2:10], lambda lr: float(0.6 + 0.35 * rng.rand()), shape="improving"
    )
    advice = advise.advise(_study(tmp_path, trials, SPACE))
    checks_seen = {c.check for c in advice.changes}
    assert "still_improving" in checks_seen or "best_step_position" in checks_seen
    assert advice.config["max_train_steps"] == 2 * fx.MAX_TRAIN_STEPS
    assert "how_many_trials" in checks_seen
    assert advice.config["study"]["max_trials"] == 2 * len(trials)
    _loaded(advice)


def test_not_a_study_is_one_line_exit_2_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    out = run_cli("--mode=advise", f"--workdir={tmp_path / 'empty'}")
    assert out.returncode == 2 and out.stderr.strip().startswith("error: ")
    assert len(out.stderr.strip().splitlines()) == 1 and snapshot(tmp_path) == before
    old = fx.make_study(str(tmp_path / "old"), SPACE, _lr_trials(EVEN_LRS[:3], _peaked(0.1)))
    with pytest.raises(ConfigError, match="records no config"):
        advise.advise(old)


def test_a_real_study_whose_learning_rates_are_too_low_gets_a_range_extended_upwards(tmp_path):
    # Accuracy after 20 steps still rises steeply at 3e-3 (0.84, 0.86, 0.88 over its top three
    # 32nds), so the best trial is the one with the largest rate. 32 quasi-random trials put one
    # rate in each 32nd of the log range (base 2, the first dimension), so it sits above 31/32 >
    # 0.95 for any seed. The scientific epsilon barely changes training, so it cannot outrank the
    # rate as a width could.
    space = [
        {"name": "optimizer.learning_rate", "role": "nuisance", "scale": "log",
         "min": 3e-5, "max": 3e-3},
        {"name": "optimizer.epsilon", "role": "scientific", "scale": "discrete",
         "values": [1e-8, 1e-7]},
    ]  # fmt: skip
    study = tmp_path / "study"
    common = ["--experiment=experiments/digits_mlp.py", f"--workdir={study}", "--quiet"]
    out = run_cli(
        "--mode=tune",
        *common,
        f"--override=study.search_space={json.dumps(space)}",
        "--override=study.max_trials=32",
        "--override=max_train_steps=20",
        "--override=eval_every_steps=20",
        "--override=checkpoint_every_steps=20",
        "--steps_per_loop=20",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # The study exported its best trial, and only that one (tfplaybook.training.best_export).
    exported = sorted(p.parent.parent.name for p in study.glob("trial_*/export/export.json"))
    best = max(
        (p for p in study.glob("trial_*") if (p / "status.json").exists()),
        key=lambda p: json.loads((p / "status.json").read_text()).get("best_value", -1),
    )
    assert exported == [best.name]
    before = snapshot(study)
    out = run_cli("--mode=advise", f"--workdir={study}")
    assert out.returncode == 0, out.stderr[-2000:]
    written = study / advise.NEXT_EXPERIMENT
    assert f"next experiment: {written}" in out.stdout
    after = snapshot(study)
    assert set(after) - set(before) == {advise.NEXT_EXPERIMENT}
    assert {k: after[k] for k in before} == before  # Nothing else changed.
    config, task = task_lib.load(str(written))
    validation.check_config(config, task)
    (lr,) = [e for e in config["study"]["search_space"] if e["name"] == "optimizer.learning_rate"]
    assert lr["min"] == 3e-5 and lr["max"] > 3e-3
    epsilon = [e for e in config["study"]["search_space"] if e["name"] == "optimizer.epsilon"]
    assert epsilon == [space[1]]
    assert "search_space_boundary" in written.read_text()


def test_curves_that_saturate_early_halve_the_step_budget(tmp_path):
    trials = _lr_trials(EVEN_LRS, _peaked(0.03), shape="saturated")
    advice = advise.advise(_study(tmp_path, trials, SPACE))
    assert advice.config["max_train_steps"] == fx.MAX_TRAIN_STEPS // 2
    assert any(c.statement == "config['max_train_steps'] = 200" for c in advice.changes)
