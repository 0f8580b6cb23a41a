"""Long work says what it will do and how long it will take, and stops when its time is up."""

import json
import os

from conftest import REPO

from tfplaybook.procedures import batch_drivers, lr_drivers
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train

DIABETES = os.path.join(REPO, "experiments", "diabetes_regression.py")
# A bound far below the time of one run: it has always passed when the first run ends.
INSTANT = 1e-9


def test_a_time_bounded_lr_sweep_stops_after_its_first_run_and_says_so(tmp_path, capsys):
    config, task = task_lib.load(DIABETES)
    config = task_lib.apply_overrides(config, ["max_train_steps=60", "eval_every_steps=30"], task)
    runtime = train.Runtime(strategy="cpu", verbose=True)
    res = lr_drivers.run_lr_sweep(
        config, task, str(tmp_path), runtime, "0.001,0.01,0.1", max_minutes=INSTANT
    )
    assert res["cut_short"] is True
    assert res["recommendation"].startswith("Cut short by --max_minutes=1e-09 after 1 of 3")
    assert [row["learning_rate"] for row in res["table"]] == [0.001]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cut_short"] is True and "Cut short" in summary["recommendation"]
    assert not (tmp_path / "lr_0.01").exists()
    out = capsys.readouterr().out
    assert "plan: 3 runs of 60 steps at batch 32" in out
    assert "progress: 1/3 runs" in out
    # Regression task: no accuracy is recorded, so the fit is read from the training loss.
    assert summary["numbers"]["metric"] == "loss"


def test_an_unbounded_lr_sweep_is_not_cut_short(tmp_path):
    config, task = task_lib.load(DIABETES)
    config = task_lib.apply_overrides(config, ["max_train_steps=30", "eval_every_steps=30"], task)
    runtime = train.Runtime(strategy="cpu", verbose=False)
    res = lr_drivers.run_lr_sweep(config, task, str(tmp_path), runtime, "0.001,0.01")
    assert res["cut_short"] is False and len(res["table"]) == 2


def test_a_study_prints_its_plan_and_estimates_then_resumes_after_a_time_bound(tmp_path, capsys):
    import tfplaybook

    study = tmp_path / "study"
    kwargs = dict(
        workdir=str(study),
        overrides=["max_train_steps=40", "eval_every_steps=20", "study.max_trials=3"],
        strategy="cpu",
    )
    first = tfplaybook.tune(DIABETES, max_minutes=INSTANT, **kwargs)
    out = capsys.readouterr().out
    assert f"plan: study {study}: 3 trials" in out
    assert "each trial: 40 steps at batch 32" in out
    assert "progress: 1/3 trials" in out and "left" in out
    assert "stopped by --max_minutes" in out
    assert len(first.trials) == 1
    again = tfplaybook.tune(DIABETES, **kwargs)
    out = capsys.readouterr().out
    assert "(1 already finished)" in out and "progress: 3/3 trials" in out
    assert "3 trials, best validation mae" in out
    assert len(again.trials) == 3 and all(t.status == "completed" for t in again.trials)


def test_a_time_bounded_batch_sweep_prints_its_plan_and_stops_after_one_size(tmp_path, capsys):
    config, task = task_lib.load(DIABETES)
    runtime = train.Runtime(strategy="cpu", verbose=True)
    res = batch_drivers.run_batch_sweep(
        config, task, str(tmp_path), runtime, 8, 64, 3, 1, max_minutes=INSTANT
    )
    out = capsys.readouterr().out
    assert f"plan: batch_sweep of 4 batch sizes into {tmp_path}" in out
    assert "batch sizes 8, 16, 32, 64" in out and "bounded to 1e-09 min" in out
    assert "progress: 1/4 batch sizes" in out and "batch 8:" in out
    assert res["cut_short"] is True
    assert res["recommendation"].startswith("Cut short by --max_minutes=1e-09 after 1 of 4")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cut_short"] is True
