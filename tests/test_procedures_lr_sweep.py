"""Constant-LR sweep rule for max_train_steps (pure Python, no training)."""

import copy
import math

import pytest

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir
from tfplaybook.procedures import WARN, lr_sweep

pytestmark = pytest.mark.pure

STEPS = list(range(0, 1001, 50))


def error_series(fit_step):
    """Training error 0.5 until `fit_step`, 0 from then on (None: never fits, nan: diverged)."""
    if fit_step == "nan":
        return STEPS, [0.5] * 5 + [math.nan] * (len(STEPS) - 5)
    return STEPS, [0.0 if fit_step is not None and s >= fit_step else 0.5 for s in STEPS]


def sweep(fit_steps):
    return {lr: error_series(step) for lr, step in fit_steps.items()}


GRID = {0.01: None, 0.03: 800, 0.1: 400, 0.3: 300, 1.0: "nan"}


def test_fastest_learning_rate_sets_max_train_steps():
    res = lr_sweep.analyze(sweep(GRID))
    n = res["numbers"]
    assert n["recommended_max_train_steps"] == 300
    assert n["fastest_learning_rate"] == 0.3
    assert n["edge"] is None
    assert n["fitted_learning_rates"] == [0.03, 0.1, 0.3]
    assert n["diverged_learning_rates"] == [1.0]
    assert res["overrides"] == ["max_train_steps=300"]
    assert not [c for c in res["checklist"] if c["verdict"] == WARN]


def test_warns_when_fastest_learning_rate_is_the_largest_in_the_grid():
    res = lr_sweep.analyze(sweep({0.01: None, 0.03: 800, 0.1: 400, 0.3: 300}))
    assert res["numbers"]["edge"] == "high"
    assert "larger learning rates" in res["recommendation"]
    assert any("edge" in c["message"] for c in res["checklist"] if c["verdict"] == WARN)


def test_warns_when_fastest_learning_rate_is_the_smallest_in_the_grid():
    res = lr_sweep.analyze(sweep({0.3: 300, 1.0: 600, 3.0: "nan"}))
    assert res["numbers"]["edge"] == "low"
    assert "smaller learning rates" in res["recommendation"]


def test_no_learning_rate_fits():
    res = lr_sweep.analyze(sweep({0.01: None, 0.1: None, 1.0: "nan"}))
    assert res["numbers"]["recommended_max_train_steps"] is None
    assert res["overrides"] == []
    assert "No learning rate" in res["recommendation"]
    assert res["checklist"][0]["verdict"] == WARN


def test_ties_go_to_the_smaller_learning_rate():
    res = lr_sweep.analyze(sweep({0.01: None, 0.1: 300, 0.3: 300, 1.0: None}))
    assert res["numbers"]["fastest_learning_rate"] == 0.1


def test_accuracy_allows_float32_rounding_but_not_a_miss():
    steps = [0, 100, 200]
    assert lr_sweep.first_fit_step(steps, [0.5, 0.99999994, 1.0], "accuracy") == 100
    assert lr_sweep.first_fit_step(steps, [0.5, 0.999, 0.9995], "accuracy") is None


def test_loss_threshold_is_configurable():
    steps = [0, 100, 200, 300]
    losses = [2.3, 0.1, 0.005, 0.0004]
    assert lr_sweep.first_fit_step(steps, losses, "loss") == 200
    assert lr_sweep.first_fit_step(steps, losses, "loss", fit_threshold=1e-3) == 300
    res = lr_sweep.analyze({0.1: (steps, losses), 0.3: (steps, [2.3] * 4)}, "loss", 1e-3)
    assert res["numbers"]["recommended_max_train_steps"] == 300
    assert "choice" in res["thresholds"]["perfect_fit_threshold"]["source"]


def test_rejects_unknown_metric():
    with pytest.raises(ValueError, match="metric='top5'"):
        lr_sweep.analyze(sweep(GRID), metric="top5")


def test_lr_sweep_config_turns_off_schedule_and_regularisation():
    base = config_lib.load_experiment(config_lib.default_experiment())
    base["model"]["dropout"] = 0.3
    base["optimizer"]["weight_decay"] = 1e-4
    base["data"]["augment"] = True
    base["schedule"]["warmup_steps"] = 50
    before = copy.deepcopy(base)
    configs = lr_sweep.lr_sweep_config(base, [0.3, 0.01, 0.1], max_train_steps=40)
    assert base == before
    assert [c["optimizer"]["learning_rate"] for c in configs] == [0.01, 0.1, 0.3]
    for c in configs:
        assert c["schedule"]["name"] == "constant"
        assert c["schedule"]["warmup_steps"] == 0
        assert c["model"]["dropout"] == 0.0
        assert c["optimizer"]["weight_decay"] == 0.0
        assert c["data"]["augment"] is False
        assert c["max_train_steps"] == 40
        config_lib.validate(c)  # eval_every_steps was lowered to fit the 40 steps.
    with pytest.raises(ValueError, match="distinct positive"):
        lr_sweep.lr_sweep_config(base, [0.1, 0.1])


def test_series_from_trials_reads_training_accuracy_as_error(tmp_path):
    base = config_lib.load_experiment(config_lib.default_experiment())
    dirs = []
    for c, fit_step in zip(lr_sweep.lr_sweep_config(base, [0.1, 0.3]), [400, 200]):
        d = tmp_path / f"lr_{c['optimizer']['learning_rate']}"
        d.mkdir()
        trial_dir.write_config(str(d), c)
        rows = [(s, "train", "accuracy", 1.0 if s >= fit_step else 0.9) for s in STEPS]
        rows += [(s, "validation", "accuracy", 1.0) for s in STEPS]  # Must be ignored.
        rows += [(s, "train", "loss", 1.0 / (s + 1)) for s in STEPS]
        trial_dir.append_measurements(str(d), rows)
        dirs.append(str(d))
    series = lr_sweep.series_from_trials(dirs)
    assert sorted(series) == [0.1, 0.3]
    assert series[0.1][1][0] == pytest.approx(0.1)
    res = lr_sweep.analyze(series)
    assert res["numbers"]["recommended_max_train_steps"] == 200
    with pytest.raises(ValueError, match="optimizer.learning_rate=0.1 appears twice"):
        lr_sweep.series_from_trials(dirs + dirs[:1])
    by_warmup = lr_sweep.series_from_trials(dirs[:1], "loss", key="schedule.warmup_steps")
    assert list(by_warmup) == [0]
    assert by_warmup[0] == (STEPS, [1.0 / (s + 1) for s in STEPS])


def test_a_run_whose_own_record_says_diverged_is_diverged_with_a_finite_series():
    # The loss-factor rule stops a finite, exploding loss: the training error stays finite.
    finite = ([10], [0.9])
    assert lr_sweep.divergence_step(*finite) is None
    assert lr_sweep.divergence_step(*finite, diverged_at=2) == 2
    assert lr_sweep.divergence_step([0, 50, 100], [0.5, math.nan, math.nan]) == 50
    res = lr_sweep.analyze(
        {0.01: error_series(400), 0.1: error_series(300), 30.0: finite}, diverged={30.0: 2}
    )
    n = res["numbers"]
    assert n["diverged_learning_rates"] == [30.0]
    row = res["table"][-1]
    assert row["diverged"] is True and row["diverged_step"] == 2
    assert [r["diverged"] for r in res["table"][:2]] == [False, False]
    # A recorded divergence with an unknown step still counts.
    unknown = lr_sweep.analyze({0.1: error_series(300), 30.0: finite}, diverged={30.0: None})
    assert unknown["numbers"]["diverged_learning_rates"] == [30.0]


def test_a_run_that_fit_then_diverged_is_never_the_recommendation():
    fit_then_nan = (
        STEPS,
        [0.0 if s >= 100 and s < 500 else 0.5 for s in STEPS[:10]] + [math.nan] * (len(STEPS) - 10),
    )
    res = lr_sweep.analyze({0.1: error_series(400), 0.3: fit_then_nan})
    n = res["numbers"]
    assert n["fastest_learning_rate"] == 0.1 and n["recommended_max_train_steps"] == 400
    assert n["diverged_learning_rates"] == [0.3] and n["fitted_learning_rates"] == [0.1]
    assert res["table"][1]["first_fit_step"] == 100  # Shown, but not used.
    # The same when only its status.json says so (its series is finite).
    recorded = lr_sweep.analyze(
        {0.1: error_series(400), 0.3: error_series(100)}, diverged={0.3: 450}
    )
    assert recorded["numbers"]["fastest_learning_rate"] == 0.1


def test_diverged_from_trials_reads_each_runs_status(tmp_path):
    base = config_lib.load_experiment(config_lib.default_experiment())
    dirs = []
    for c, status in zip(lr_sweep.lr_sweep_config(base, [0.1, 30.0]), ["completed", "diverged"]):
        d = tmp_path / f"lr_{c['optimizer']['learning_rate']}"
        d.mkdir()
        trial_dir.write_config(str(d), c)
        trial_dir.write_status(str(d), status, "training loss ... at step 2", step=2)
        dirs.append(str(d))
    assert lr_sweep.diverged_from_trials(dirs) == {30.0: 2}
