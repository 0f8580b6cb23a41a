"""Reliability across machines: kill a worker and the chief of a loopback chief + 2 workers
study mid-trial, restart them, and kill a worker for good (its trial goes to the other)."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, free_port, heartbeat_pid, read_status

from tfplaybook.files import trial_dir as td
from tfplaybook.study import tracking


def _checkpointed_trial_of(study, pid, deadline):
    """Waits until process `pid` runs a trial that has a checkpoint; returns (dir, step)."""
    while time.time() < deadline:
        for directory in tracking.trial_dirs(study):
            status = read_status(directory)
            latest = os.path.join(directory, "checkpoints", "latest", "checkpoint")
            if (
                status.get("status") == td.RUNNING
                and heartbeat_pid(directory) == pid
                and os.path.exists(latest)
                and status.get("step", 0) >= 50
            ):
                return directory, status["step"]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} ran no checkpointed trial in time")


def test_killed_worker_and_chief_restart_and_a_dead_worker_is_taken_over(tmp_path):
    study = tmp_path / "study"
    experiment = tmp_path / "exp.py"
    # The default (120 s) would make this test wait: a dead worker's trial is reassigned after
    # 12 s without a heartbeat here.
    experiment.write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('m', {REPO!r} + '/experiments/"
        "digits_mlp.py')\n"
        "m = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(m)\n\n\n"
        "def get_config():\n    config = m.get_config()\n"
        "    config['study']['stale_trial_seconds'] = 12\n    return config\n"
    )
    common = [
        sys.executable,
        "-m",
        "tfplaybook.run",
        "--mode=tune",
        f"--workdir={study}",
        f"--experiment={experiment}",
        "--override=study.max_trials=5",
        "--override=max_train_steps=400",
        "--override=eval_every_steps=50",
        "--override=checkpoint_every_steps=50",
        "--steps_per_loop=10",
        f"--tuner_chief_port={free_port()}",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(role, name):
        extra = ["--tuner_role=chief"] if role == "chief" else ["--tuner_role=worker"]
        extra += [] if role == "chief" else [f"--tuner_id={name}"]
        err = open(logs / f"{name}-{time.time()}.err", "w")
        return subprocess.Popen(
            common + extra, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err
        )

    procs = []
    try:
        chief = start("chief", "chief")
        w1, w2 = start("worker", "w1"), start("worker", "w2")
        procs += [chief, w1, w2]
        deadline = time.time() + 480  # A hang guard only: generous for a loaded machine.
        # 1. Kill worker w1 mid-trial, restart it with the same id: it continues that trial.
        w1_trial, w1_step = _checkpointed_trial_of(study, w1.pid, deadline)
        w1.send_signal(signal.SIGKILL)
        w1.wait()
        w1 = start("worker", "w1")
        procs.append(w1)
        # 2. Kill the chief while trials run, restart it: it reloads oracle.json.
        while not any(
            read_status(d).get("status") in td.FINISHED for d in tracking.trial_dirs(study)
        ):
            assert time.time() < deadline, "no trial finished"
            time.sleep(0.1)
        chief.send_signal(signal.SIGKILL)
        chief.wait()
        chief = start("chief", "chief")
        procs.append(chief)
        # 3. Kill worker w2 mid-trial for good: w1 must take its trial over.
        w2_trial, w2_step = _checkpointed_trial_of(study, w2.pid, deadline)
        w2.send_signal(signal.SIGKILL)
        w2.wait()
        assert w1.wait(timeout=240) == 0
        assert chief.wait(timeout=60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    trials = tracking.trial_dirs(study)
    statuses = {d: td.read_status(d) for d in trials}
    assert len(trials) == 5 and all(s["status"] in td.FINISHED for s in statuses.values())
    values = [json.dumps(td.read_json(os.path.join(d, td.HPARAMS))["values"]) for d in trials]
    assert len(set(values)) == 5  # No configuration ran twice.
    for directory, step in ((w1_trial, w1_step), (w2_trial, w2_step)):
        status = statuses[directory]
        assert status["resumed_from"] is not None and status["resumed_from"] >= step, status
        steps, _ = td.series(td.read_measurements(directory), "train", "loss")
        assert steps == list(range(1, status["step"] + 1))
    chief_logs = "".join(p.read_text() for p in logs.glob("chief-*.err"))
    assert f"trial {os.path.basename(w2_trial)[6:]} of tuner 'w2'" in chief_logs
    assert "reassigning it to tuner 'w1'" in chief_logs
