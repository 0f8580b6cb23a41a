"""Post-study checks: every check fires on a study built to trigger it and stays quiet otherwise.

Pure tier: no TensorFlow, no matplotlib. Studies are written by fixtures_analysis through
tfplaybook.files.trial_dir and read back with study_data.load_study, as the report does.
"""

import math
import os
import subprocess
import sys

import fixtures_analysis as fx
import numpy as np
import pytest

from tfplaybook.analysis import checks, study_data
from tfplaybook.files import trial_dir as td

pytestmark = pytest.mark.pure

BETA1_DIM = {
    "name": "optimizer.beta1",
    "role": "nuisance",
    "scale": "reverse_log",
    "min": 0.5,
    "max": 0.99,
}


def _load(path, search_space, trials, **study_kwargs):
    fx.make_study(str(path), search_space, trials, **study_kwargs)
    return study_data.load_study(str(path))


def _lr_trials(lrs_and_accuracies, shape="normal", config=None):
    trials = []
    for lr, accuracy in lrs_and_accuracies:
        trial = {
            "values": {"optimizer.learning_rate": lr},
            "shape": shape,
            "final_accuracy": accuracy or 0.5,
            "config": config or fx.base_config(),
        }
        if accuracy is None:
            trial["status"] = td.DIVERGED
        trials.append(trial)
    return trials


def _width_trials(shapes, config=None, lr=None):
    trials = []
    for i, shape in enumerate(shapes):
        values = {"model.width": fx.WIDTH_DIM["values"][i % 3]}
        if lr:
            values["optimizer.learning_rate"] = lr[i]
        trials.append(
            {
                "values": values,
                "shape": shape,
                "final_accuracy": 0.9 + 0.01 * i,
                "config": config or fx.base_config(),
            }
        )
    return trials


# Builders: (tmp_path) -> Study. One that triggers each check, one that does not.


def batch_changed_not_retuned(tmp):
    config = fx.base_config(batch_size=256, tuned_for_batch_size=64)
    return _load(tmp, [fx.WIDTH_DIM], _width_trials(["normal"] * 3, config))


def batch_changed_retuned(tmp):
    config = fx.base_config(batch_size=256, tuned_for_batch_size=64)
    return _load(
        tmp, [fx.WIDTH_DIM, fx.LR_DIM], _width_trials(["normal"] * 3, config, lr=[0.01, 0.03, 0.1])
    )


def comparison_optimizer_fixed(tmp):
    return _load(tmp, [fx.WIDTH_DIM], _width_trials(["normal"] * 3))


def comparison_optimizer_tuned(tmp):
    return _load(
        tmp, [fx.WIDTH_DIM, fx.LR_DIM], _width_trials(["normal"] * 3, lr=[0.01, 0.03, 0.1])
    )


def many_infeasible(tmp):
    return _load(
        tmp, [fx.LR_DIM], _lr_trials([(0.01, 0.9), (0.02, 0.92), (0.3, None), (0.005, None)])
    )


def few_infeasible(tmp):
    pairs = [
        (0.002, 0.8),
        (0.005, 0.85),
        (0.01, 0.9),
        (0.02, 0.93),
        (0.05, 0.95),
        (0.1, 0.93),
        (0.2, 0.9),
        (0.6, None),
    ]
    return _load(tmp, [fx.LR_DIM], _lr_trials(pairs))


def best_at_boundary(tmp):
    return _load(tmp, [fx.LR_DIM], _lr_trials([(0.01, 0.8), (0.05, 0.85), (0.9, 0.95)]))


def best_inside(tmp):
    return _load(tmp, [fx.LR_DIM], _lr_trials([(0.002, 0.8), (0.03, 0.95), (0.5, 0.85)]))


def best_at_instability_edge(tmp):
    pairs = [(0.001, 0.7), (0.01, 0.85), (0.05, 0.9), (0.2, 0.95), (0.5, None), (0.8, None)]
    return _load(tmp, [fx.LR_DIM], _lr_trials(pairs))


def best_far_from_instability(tmp):
    pairs = [(0.003, 0.95), (0.01, 0.85), (0.05, 0.8), (0.2, 0.75), (0.5, None), (0.8, None)]
    return _load(tmp, [fx.LR_DIM], _lr_trials(pairs))


def best_of_a_value_overfits(tmp):
    # Width 16 is represented by one trial, which overfits; 32 and 64 train normally.
    return _load(tmp, [fx.WIDTH_DIM], _width_trials(["overfit", "normal", "normal"]))


def no_overfitting(tmp):
    return _load(tmp, [fx.WIDTH_DIM], _width_trials(["normal", "normal", "normal"]))


def most_trials_overfit(tmp):
    return _load(tmp, [fx.WIDTH_DIM], _width_trials(["overfit", "overfit", "overfit", "normal"]))


def _shape_study(tmp, shape):
    return _load(tmp, [fx.LR_DIM], _lr_trials([(0.01, 0.9), (0.03, 0.94)], shape=shape))


def noisy_late(tmp):
    return _shape_study(tmp, "noisy")


def normal_curves(tmp):
    return _shape_study(tmp, "normal")


def periodic_curves(tmp):
    return _shape_study(tmp, "periodic")


def still_improving(tmp):
    return _shape_study(tmp, "improving")


def saturated(tmp):
    return _shape_study(tmp, "saturated")


def loss_rises(tmp):
    return _shape_study(tmp, "loss_up")


def best_step_early(tmp):
    return _shape_study(tmp, "early_peak")


def best_step_mid(tmp):
    return _shape_study(tmp, "overfit")


def _adam_study(tmp, max_trials, search_space):
    config = fx.base_config()
    config["optimizer"]["name"] = "adam"
    trials = _lr_trials([(0.001, 0.9), (0.003, 0.93)], config=config)
    if BETA1_DIM in search_space:
        for trial, beta1 in zip(trials, (0.8, 0.95)):
            trial["values"]["optimizer.beta1"] = beta1
    return _load(tmp, search_space, trials, max_trials=max_trials)


def adam_under_tuned(tmp):
    return _adam_study(tmp, 30, [fx.LR_DIM])


def adam_budget_fits(tmp):
    return _adam_study(tmp, 12, [fx.LR_DIM, BETA1_DIM])


def _clip_study(tmp, clip_norm):
    config = fx.base_config()
    config["optimizer"]["clip_norm"] = clip_norm
    return _load(tmp, [fx.LR_DIM], _lr_trials([(0.01, 0.9), (0.03, 0.94)], config=config))


def clipping_most_steps(tmp):
    return _clip_study(tmp, 0.5)  # Gradient norms have median 1.0.


def clipping_at_p90(tmp):
    return _clip_study(tmp, 1.5)


CASES = {
    "batch_size_retuned": (batch_changed_not_retuned, batch_changed_retuned),
    "optimizer_hparams_fixed": (comparison_optimizer_fixed, comparison_optimizer_tuned),
    "infeasible_fraction": (many_infeasible, few_infeasible),
    "search_space_boundary": (best_at_boundary, best_inside),
    "instability_high_lr": (best_at_instability_edge, best_far_from_instability),
    "overfitting_best": (best_of_a_value_overfits, no_overfitting),
    "overfitting_all": (most_trials_overfit, no_overfitting),
    "late_variance": (noisy_late, normal_curves),
    "still_improving": (still_improving, normal_curves),
    "saturated_early": (saturated, normal_curves),
    "training_loss_increasing": (loss_rises, normal_curves),
    "best_step_position": (best_step_early, best_step_mid),
    "periodicity": (periodic_curves, normal_curves),
    "adam_budget": (adam_under_tuned, adam_budget_fits),
    "clipping": (clipping_most_steps, clipping_at_p90),
}


def _result(study, check_id, **kwargs):
    results = {r.id: r for r in checks.run_checks(study, **kwargs)}
    return results[check_id]


def test_every_check_has_a_triggering_and_a_quiet_case(tmp_path):
    ids = [r.id for r in checks.run_checks(normal_curves(tmp_path))]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(CASES)


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_check_triggers(tmp_path, check_id):
    result = _result(CASES[check_id][0](tmp_path), check_id)
    assert result.verdict == checks.WARNING, result
    assert result.numbers and result.advice and result.checklist


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_check_stays_quiet(tmp_path, check_id):
    result = _result(CASES[check_id][1](tmp_path), check_id)
    assert result.verdict == checks.OK, result


def test_results_are_structured_and_cite_the_checklist(tmp_path):
    for result in checks.run_checks(normal_curves(tmp_path)):
        data = result.to_dict()
        assert set(data) == {
            "id",
            "title",
            "checklist",
            "verdict",
            "finding",
            "numbers",
            "advice",
            "thresholds",
        }
        assert data["verdict"] in (checks.OK, checks.WARNING, checks.NA)
        assert all(isinstance(item, int) and 1 <= item <= 127 for item in data["checklist"])
        assert set(data["thresholds"]) <= set(checks.DEFAULT_THRESHOLDS)
        assert data["finding"]


def test_every_threshold_is_documented():
    assert set(checks.THRESHOLD_DOCS) == set(checks.DEFAULT_THRESHOLDS)


def test_missing_data_gives_na_with_a_reason(tmp_path):
    # A study whose trials are all still running: nothing to judge yet.
    fx.make_study(
        str(tmp_path),
        [fx.LR_DIM],
        [{"values": {"optimizer.learning_rate": 0.01}, "status": td.RUNNING}],
    )
    results = {r.id: r for r in checks.run_checks(study_data.load_study(str(tmp_path)))}
    for check_id in (
        "infeasible_fraction",
        "overfitting_all",
        "still_improving",
        "best_step_position",
        "clipping",
        "adam_budget",
        "batch_size_retuned",
    ):
        assert results[check_id].verdict == checks.NA, check_id
        assert results[check_id].finding


def test_thresholds_change_the_verdict(tmp_path):
    study = many_infeasible(tmp_path)  # 2 of 4 infeasible.
    assert _result(study, "infeasible_fraction").verdict == checks.WARNING
    relaxed = _result(study, "infeasible_fraction", thresholds={"infeasible_fraction_max": 0.6})
    assert relaxed.verdict == checks.OK
    assert relaxed.thresholds == {"infeasible_fraction_max": 0.6}


def test_unknown_threshold_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="boundary_fractoin.*known:.*boundary_fraction"):
        checks.run_checks(normal_curves(tmp_path), thresholds={"boundary_fractoin": 0.1})


def test_boundary_reports_side_and_scaled_position(tmp_path):
    result = _result(best_at_boundary(tmp_path), "search_space_boundary")
    assert result.numbers["near"] == ["optimizer.learning_rate (high end, trial trial_002)"]
    expected = math.log(0.9 / 1e-3) / math.log(1.0 / 1e-3)  # Log scale: about 0.985.
    assert result.numbers["positions"][0]["scaled_position"] == pytest.approx(expected, abs=1e-3)


def test_boundary_uses_reverse_log_coordinates(tmp_path):
    # 0.95 is 91% of the way from 0.5 to 0.99 linearly, but only 0.77 in reverse-log coordinates,
    # so it is not near the boundary; 0.985 is (0.985 in reverse-log coordinates).
    trials = [
        {"values": {"optimizer.momentum": m}, "final_accuracy": a}
        for m, a in ((0.6, 0.8), (0.95, 0.95), (0.7, 0.85))
    ]
    study = _load(tmp_path / "inside", [fx.MOMENTUM_DIM], trials)
    assert _result(study, "search_space_boundary").verdict == checks.OK
    trials[1]["values"] = {"optimizer.momentum": 0.985}
    study = _load(tmp_path / "edge", [fx.MOMENTUM_DIM], trials)
    assert _result(study, "search_space_boundary").verdict == checks.WARNING


def test_instability_needs_the_infeasible_trials_at_the_top(tmp_path):
    # Infeasible trials at the lowest learning rates are not an instability region.
    pairs = [(0.001, None), (0.002, None), (0.01, 0.85), (0.05, 0.9), (0.2, 0.95)]
    result = _result(_load(tmp_path, [fx.LR_DIM], _lr_trials(pairs)), "instability_high_lr")
    assert result.verdict == checks.OK
    assert result.numbers["dimensions"][0]["infeasible_at_highest_lrs"] == 0


def test_overfitting_names_the_scientific_value(tmp_path):
    result = _result(best_of_a_value_overfits(tmp_path), "overfitting_best")
    bad = [g["group"] for g in result.numbers["groups"] if g["overfits"]]
    assert bad == ["model.width=16"]


def test_best_step_late_is_flagged(tmp_path):
    result = _result(normal_curves(tmp_path), "best_step_position")
    assert result.verdict == checks.WARNING and "last 25%" in result.finding
    # Only the advice that applies: train longer, not "max_train_steps is far too high".
    assert "train longer" in result.advice and "too high" not in result.advice


def test_best_step_early_gives_only_the_early_advice(tmp_path):
    result = _result(best_step_early(tmp_path), "best_step_position")
    assert result.verdict == checks.WARNING and "first 10%" in result.finding
    assert "too high" in result.advice and "train longer" not in result.advice


def test_adam_budget_recommendations(tmp_path):
    result = _result(adam_under_tuned(tmp_path), "adam_budget")
    assert result.numbers["recommended"] == ["learning_rate", "beta1", "epsilon"]
    assert result.numbers["missing"] == ["beta1", "epsilon"]
    few = _result(_adam_study(tmp_path / "few", 8, [fx.LR_DIM, BETA1_DIM]), "adam_budget")
    assert few.verdict == checks.WARNING and few.numbers["extra"] == ["beta1"]
    nesterov = _result(normal_curves(tmp_path / "sgd"), "adam_budget")
    assert nesterov.verdict == checks.NA and "nesterov" in nesterov.finding


def test_batch_size_rule_with_a_baseline_study(tmp_path):
    baseline = comparison_optimizer_fixed(tmp_path / "baseline")  # batch size 64.
    changed = _load(
        tmp_path / "new",
        [fx.WIDTH_DIM],
        _width_trials(["normal"] * 3, fx.base_config(batch_size=128)),
    )
    result = _result(changed, "batch_size_retuned", baseline_study=baseline)
    assert result.verdict == checks.WARNING
    assert result.numbers["reference_batch_size"] == 64
    assert _result(changed, "batch_size_retuned").verdict == checks.NA


def test_clipping_fraction_matches_the_logged_norms(tmp_path):
    study = clipping_most_steps(tmp_path)
    trial = study.trials[0]
    _, norms = trial.curve(td.TRAIN, "grad_norm")
    assert checks.clipped_fraction(trial) == pytest.approx(np.mean(norms > 0.5))


def test_objective_is_recomputed_when_status_lacks_it(tmp_path):
    fx.write_study_json(str(tmp_path), [fx.LR_DIM])
    path = fx.write_trial(
        str(tmp_path),
        "t",
        {"optimizer.learning_rate": 0.01},
        [fx.LR_DIM],
        shape="overfit",
        record_best=False,
    )
    assert "best_value" not in td.read_status(path)
    trial = study_data.load_study(str(tmp_path)).trials[0]
    steps, values = td.series(td.read_measurements(path), td.VALIDATION, "accuracy")
    assert trial.objective == max(values)  # Best over training, not the final value.
    assert trial.objective > values[-1]
    assert trial.best_step == steps[int(np.argmax(values))]


def test_conditional_dimensions_keep_their_own_ranges(tmp_path):
    # Checklist 33: one learning rate per optimizer branch, each with its own range.
    space = [
        {
            "name": "optimizer.name",
            "role": "scientific",
            "scale": "categorical",
            "values": ["adam", "nesterov"],
        },
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-4,
            "max": 1e-1,
            "parent": "optimizer.name",
            "parent_value": "adam",
        },
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-2,
            "max": 1.0,
            "parent": "optimizer.name",
            "parent_value": "nesterov",
        },
    ]
    trials = [
        {"values": {"optimizer.name": "adam", "adam/optimizer.learning_rate": 1e-3}},
        {"values": {"optimizer.name": "nesterov", "nesterov/optimizer.learning_rate": 0.1}},
    ]
    study = _load(tmp_path, space, trials)
    adam, nesterov = (study.dimension(f"{b}/optimizer.learning_rate") for b in ("adam", "nesterov"))
    assert (adam.bounds(), nesterov.bounds()) == ((1e-4, 1e-1), (1e-2, 1.0))
    assert adam.to_unit(1e-3) == pytest.approx(1 / 3)
    assert study.trials[1].config["optimizer"]["learning_rate"] == 0.1
    assert [d.id for d in study.dimensions] == [
        "optimizer.name",
        "adam/optimizer.learning_rate",
        "nesterov/optimizer.learning_rate",
    ]


def test_value_groups_bucket_continuous_dimensions(tmp_path):
    trials = [
        {"values": {"model.dropout": d}, "final_accuracy": 0.9}
        for d in (0.01, 0.05, 0.26, 0.27, 0.49)
    ]
    study = _load(tmp_path, [fx.DROPOUT_DIM], trials)
    groups = study_data.value_groups(study.trials, study.dimension("model.dropout"), 5)
    assert [len(members) for _, _, members in groups] == [2, 2, 1]
    assert [label for label, _, _ in groups] == ["0-0.1", "0.2-0.3", "0.4-0.5"]


def test_pure_modules_import_neither_tensorflow_nor_matplotlib():
    code = (
        "import sys; import tfplaybook.analysis.checks, tfplaybook.analysis.export, "
        "tfplaybook.analysis.compare; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert out.stdout.strip() == "[]"
