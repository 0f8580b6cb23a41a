"""The procedure modes of the command line, end to end on the smallest experiment (TF tier).

Each test runs `python -m tfplaybook.run --mode=...` as a subprocess (the modes own their
strategy and flags) and checks the recommendation against the files the mode wrote.
"""

import json
import os

import numpy as np
from conftest import run_cli

from tfplaybook.files import trial_dir as td
from tfplaybook.procedures import output

MLP = "--experiment=experiments/digits_mlp.py"
FAST = ("--quiet", "--steps_per_loop=10")


def _summary(directory):
    with open(os.path.join(directory, output.SUMMARY)) as f:
        return json.load(f)


def _ok(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_batch_sweep_recommends_a_swept_batch_size(tmp_path):
    workdir = tmp_path / "bs"
    out = _ok(
        run_cli(
            "--mode=batch_sweep",
            MLP,
            f"--workdir={workdir}",
            "--sweep_start_batch_size=16",
            "--sweep_max_batch_size=64",
            "--sweep_steps=5",
            "--sweep_repeats=2",
            *FAST,
        )
    )
    res = _summary(workdir)
    assert res["procedure"] == "batch_sweep"
    assert res["numbers"]["recommended_batch_size"] in (16, 32, 64)
    assert f"batch_size={res['numbers']['recommended_batch_size']}" in out
    assert os.path.exists(workdir / output.PLOT)
    rows = json.loads((workdir / output.MEASUREMENTS_JSON).read_text())
    # Both pipelines, every batch size, two timed windows each.
    assert {(r["data"], r["batch_size"]) for r in rows} == {
        (d, b) for d in ("real", "synthetic") for b in (16, 32, 64)
    }


def test_lr_sweep_names_a_step_and_clip_advice_reads_its_grad_norms(tmp_path):
    workdir = tmp_path / "lr"
    out = _ok(
        run_cli(
            "--mode=lr_sweep",
            MLP,
            f"--workdir={workdir}",
            "--override=max_train_steps=60",
            "--override=eval_every_steps=60",
            "--learning_rates=0.003,0.01",
            "--fit_error=0.05",
            *FAST,
        )
    )
    res = _summary(workdir)
    step = res["numbers"]["recommended_max_train_steps"]
    assert step is not None and 0 < step <= 60
    assert f"max_train_steps={step}" in out
    for lr in ("0.003", "0.01"):  # Constant LR, no regularisation (checklist 71c).
        config = td.read_config(workdir / f"lr_{lr}")
        assert config["schedule"]["name"] == "constant"
        assert config["optimizer"]["learning_rate"] == float(lr)

    trial = workdir / "lr_0.01"
    advice = tmp_path / "clip"
    _ok(run_cli("--mode=clip_advice", f"--from={trial}", f"--workdir={advice}", "--quiet"))
    _, norms = td.series(td.read_measurements(trial), td.TRAIN, "grad_norm")
    assert len(norms) == 60
    res = _summary(advice)
    assert res["numbers"]["proposed_clip_norm"] == np.percentile(norms, 90)
    assert os.path.exists(advice / output.PLOT)


def test_probe_runs_2x_and_10x_and_gives_a_verdict_for_each(tmp_path):
    workdir = tmp_path / "probe"
    _ok(
        run_cli(
            "--mode=probe",
            MLP,
            f"--workdir={workdir}",
            "--probe_steps=30",
            "--best_learning_rate=0.01",
            *FAST,
        )
    )
    res = _summary(workdir)
    assert set(res["numbers"]["runs"]) == {"2.0", "10.0"}
    for name, lr in (("probe_2x", 0.02), ("probe_10x", 0.1)):
        config = td.read_config(workdir / name)
        assert config["optimizer"]["learning_rate"] == lr
        rows = td.read_measurements(workdir / name)
        # Checklist 107: evaluated every step.
        assert len(td.series(rows, td.VALIDATION, "loss")[0]) == 30


def test_warmup_sweep_at_a_given_unstable_rate_writes_its_runs(tmp_path):
    workdir = tmp_path / "warmup"
    out = _ok(
        run_cli(
            "--mode=warmup_sweep",
            MLP,
            f"--workdir={workdir}",
            "--override=max_train_steps=20",
            "--override=eval_every_steps=20",
            "--unstable_learning_rate=0.5",
            *FAST,
        )
    )
    res = _summary(workdir)
    assert res["procedure"] == "warmup_sweep"
    config = td.read_config(workdir / "warmup_10")
    assert config["optimizer"]["learning_rate"] == 5.0  # 10x the unstable rate (checklist 110).
    assert config["schedule"]["warmup_steps"] == 10
    assert res["recommendation"] in out


def test_round_1_tunes_short_and_round_2_trains_the_best_for_the_full_budget(tmp_path):
    study = tmp_path / "r1"
    _ok(
        run_cli(
            "--mode=tune",
            "--round=1",
            MLP,
            f"--workdir={study}",
            "--override=max_train_steps=100",
            "--override=study.max_trials=2",
            *FAST,
        )
    )
    trials = sorted(p for p in study.iterdir() if (p / td.STATUS).exists())
    assert [td.read_config(t)["max_train_steps"] for t in trials] == [10, 10]
    best = max(trials, key=lambda t: td.read_status(t)["best_value"])
    final = tmp_path / "r2"
    _ok(
        run_cli(
            "--mode=train",
            "--round=2",
            f"--from={study}",
            MLP,
            f"--workdir={final}",
            "--override=max_train_steps=100",
            *FAST,
        )
    )
    config = td.read_config(final)
    assert config["max_train_steps"] == 100
    lr = td.read_config(best)["optimizer"]["learning_rate"]
    assert config["optimizer"]["learning_rate"] == lr

    # A procedure adds its section to the study's report.
    _ok(
        run_cli(
            "--mode=clip_advice",
            f"--from={final}",
            f"--workdir={study / 'clip'}",
            f"--report_study={study}",
            "--quiet",
        )
    )
    assert "procedure-clipping" in (study / "report.html").read_text()


def test_bad_procedure_values_are_one_line_exit_2_and_write_nothing(tmp_path):
    workdir = tmp_path / "bad"
    for args in (
        ("--mode=lr_sweep", "--learning_rates=abc"),
        ("--mode=batch_sweep", "--sweep_start_batch_size=64", "--sweep_max_batch_size=8"),
        ("--mode=probe", "--probe_multiplier=3"),
        ("--mode=train", "--round=2"),
        ("--mode=clip_advice", f"--from={tmp_path}"),
    ):
        result = run_cli(*args, MLP, f"--workdir={workdir}", timeout=60)
        assert result.returncode == 2, (args, result.stderr[-500:])
        assert result.stderr.strip().splitlines()[-1].startswith("error: "), args
        assert not workdir.exists(), args
