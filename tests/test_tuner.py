"""Studies through the CLI: a small study, resume after SIGKILL, and the loopback chief with two
workers."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, free_port, run_cli

from tfplaybook.files import trial_dir as td
from tfplaybook.study import tracking

SMALL = [
    "--experiment=experiments/digits_mlp.py",
    "--override=max_train_steps=60",
    "--override=eval_every_steps=30",
    "--override=checkpoint_every_steps=30",
    "--steps_per_loop=10",
    "--quiet",
]


def finished_trials(study):
    return [d for d in tracking.trial_dirs(study) if td.read_status(d)["status"] in td.FINISHED]


def hparam_values(study):
    return [
        json.dumps(td.read_json(os.path.join(d, td.HPARAMS))["values"], sort_keys=True)
        for d in tracking.trial_dirs(study)
    ]


def test_small_study_writes_trials_report_and_index(tmp_path):
    study = tmp_path / "runs" / "mlp"
    out = run_cli(
        "--mode=tune",
        f"--workdir={study}",
        "--override=study.max_trials=3",
        "--notes=smoke study",
        *SMALL,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("| trial ") == 3
    assert f"plan: study {study}: 3 trials" in out.stdout
    assert len(finished_trials(study)) == 3
    assert len(set(hparam_values(study))) == 3
    for name in ("study.json", "report.html", "report.md", "trials.csv"):
        assert (study / name).exists(), name
    rows = tracking.StudyIndex(str(tmp_path / "runs"), create=False).rows()
    assert len(rows) == 1 and rows[0]["trials"] == 3 and rows[0]["notes"] == "smoke study"
    assert rows[0]["status"] == "completed" and rows[0]["best_value"] > 0.5
    listing = run_cli("--mode=list", f"--runs_root={tmp_path / 'runs'}")
    assert listing.returncode == 0 and "smoke study" in listing.stdout
    # TensorBoard's HParams plugin: the study's config and every trial's values.
    assert "hparams" in plugin_names(study / "tensorboard")
    for trial in tracking.trial_dirs(study):
        assert "hparams" in plugin_names(os.path.join(trial, "tensorboard"))


def plugin_names(directory):
    import tensorflow as tf

    names = set()
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            names.update(v.metadata.plugin_data.plugin_name for v in event.summary.value)
    return names


def test_diverged_trials_are_recorded_infeasible_not_retried(tmp_path):
    study = tmp_path / "hot"
    space = [
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "log",
            "min": 50.0,
            "max": 500.0,
        }
    ]
    out = run_cli(
        "--mode=tune",
        f"--workdir={study}",
        "--override=study.max_trials=2",
        f"--override=study.search_space={json.dumps(space)}",
        *SMALL,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    statuses = [td.read_status(d)["status"] for d in tracking.trial_dirs(study)]
    assert statuses == ["diverged", "diverged"]
    oracle_trials = [
        json.load(open(study / d / "trial.json"))
        for d in os.listdir(study)
        if d.startswith("trial_")
    ]
    assert all(
        t["metrics"]["metrics"]["infeasible"]["observations"][0]["value"] == [1.0]
        for t in oracle_trials
    )


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_killed_study_resumes_without_losing_or_repeating_a_trial(tmp_path):
    study = tmp_path / "study"
    args = [
        sys.executable,
        "-m",
        "tfplaybook.run",
        "--mode=tune",
        f"--workdir={study}",
        "--override=study.max_trials=4",
        *SMALL,
    ]
    args = [a.replace("max_train_steps=60", "max_train_steps=300") for a in args]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 180
    try:
        while time.time() < deadline:
            assert proc.poll() is None, "study ended before it could be killed"
            running = [
                d
                for d in tracking.trial_dirs(study)
                if td.read_status(d)["status"] == "running" and td.read_status(d)["step"]
            ]
            if finished_trials(study) and running:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done_before = {d: digest(os.path.join(d, td.MEASUREMENTS)) for d in finished_trials(study)}
    assert done_before
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = tracking.trial_dirs(study)
    assert len(trials) == 4 and len(finished_trials(study)) == 4
    assert len(set(hparam_values(study))) == 4  # No configuration ran twice.
    for d, before in done_before.items():
        assert digest(os.path.join(d, td.MEASUREMENTS)) == before  # Finished work untouched.
    resumed = [td.read_status(d) for d in trials if td.read_status(d).get("resumed_from")]
    assert resumed, "the interrupted trial should continue from its checkpoint"
    for d in trials:
        steps, _ = td.series(td.read_measurements(d), "train", "loss")
        if td.read_status(d)["status"] == "completed":
            assert steps == list(range(1, 301))


def test_loopback_chief_with_two_workers_finishes_the_study(tmp_path):
    study = tmp_path / "distributed"
    common = [
        "--mode=tune",
        f"--workdir={study}",
        "--override=study.max_trials=4",
        f"--tuner_chief_port={free_port()}",
        *SMALL,
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    run = [sys.executable, "-m", "tfplaybook.run", *common]
    chief = subprocess.Popen(
        run + ["--tuner_role=chief"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    workers = [
        subprocess.Popen(
            run + ["--tuner_role=worker", f"--tuner_id=w{i}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outs = [p.communicate(timeout=300) for p in workers + [chief]]
    for proc, (_, err) in zip(workers + [chief], outs):
        assert proc.returncode == 0, err[-2000:]
    assert len(finished_trials(study)) == 4 and len(set(hparam_values(study))) == 4
    ran = [out.count("| trial ") for out, _ in outs[:2]]
    assert sum(ran) == 4 and all(n >= 1 for n in ran)  # Both workers ran trials.
    assert (study / "report.html").exists()
