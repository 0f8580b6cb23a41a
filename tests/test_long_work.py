"""Long work says what it will do and how long it will take, and stops when its time is up."""

import json
import os

from conftest import REPO, run_cli

from tfplaybook import task as task_lib
from tfplaybook import trainer as train
from tfplaybook.procedures import drivers

DIABETES = os.path.join(REPO, "experiments", "diabetes_regression.py")
# A bound far below the time of one run: it has always passed when the first run ends.
INSTANT = 1e-9


def test_a_time_bounded_lr_sweep_stops_after_its_first_run_and_says_so(tmp_path, capsys):
    config, task = task_lib.load(DIABETES)
    config = task_lib.apply_overrides(config, ["max_train_steps=60", "eval_every_steps=30"], task)
    runtime = train.Runtime(strategy="cpu", verbose=True)
    res = drivers.run_lr_sweep(
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
    res = drivers.run_lr_sweep(config, task, str(tmp_path), runtime, "0.001,0.01")
    assert res["cut_short"] is False and len(res["table"]) == 2


def test_a_study_prints_its_plan_and_estimates_then_resumes_after_a_time_bound(tmp_path):
    study = tmp_path / "study"
    args = [
        "--mode=tune",
        f"--experiment={DIABETES}",
        f"--workdir={study}",
        "--strategy=cpu",
        "--override=max_train_steps=40",
        "--override=eval_every_steps=20",
        "--override=study.max_trials=3",
    ]
    out = run_cli(*args, f"--max_minutes={INSTANT}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"plan: study {study}: 3 trials" in out.stdout
    assert "each trial: 40 steps at batch 32" in out.stdout
    assert "progress: 1/3 trials" in out.stdout and "left" in out.stdout
    assert "stopped by --max_minutes" in out.stdout
    assert len([d for d in os.listdir(study) if d.startswith("trial_")]) == 1
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "(1 already finished)" in again.stdout
    assert "progress: 3/3 trials" in again.stdout
    assert "study" in again.stdout and "3 trials, best validation mae" in again.stdout
