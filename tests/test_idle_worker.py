"""A worker killed while idle between trials: the chief still ends the study by itself.

keras-tuner's chief exits once no trial is ongoing and every tuner that ever asked for a trial has
been told to stop; a worker killed while it held no trial is never told, and the chief waited for
ever. The chief now forgets a tuner that holds no trial and has not asked for one for
study.stale_trial_seconds (tfplaybook.study.resilience). Loopback chief + two workers, real
processes.

The moment is made certain, not raced: worker w1 is paused (SIGSTOP) inside the last trial, so
worker w2, started then, can only be told to wait (every trial is assigned); it says so on its
stdout, and is killed (SIGKILL) right after. Timeouts below are a safety net only.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from conftest import REPO, free_port, heartbeat_pid, read_status

from tfplaybook.files import trial_dir as td
from tfplaybook.study import tracking

STALE_SECONDS = 6


def _lines(stream):
    """A queue receiving the stream's lines (None at its end), read by a thread."""
    lines = queue.Queue()

    def read():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_worker_killed_while_idle_does_not_keep_the_chief_from_ending(tmp_path):
    study = tmp_path / "study"
    common = [
        sys.executable,
        "-m",
        "tfplaybook.run",
        "--mode=tune",
        f"--workdir={study}",
        "--experiment=experiments/digits_mlp.py",
        "--override=study.max_trials=2",
        f"--override=study.stale_trial_seconds={STALE_SECONDS}",
        "--override=max_train_steps=40",
        "--override=eval_every_steps=20",
        "--override=checkpoint_every_steps=20",
        "--steps_per_loop=10",
        f"--tuner_chief_port={free_port()}",
    ]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name, stdout=subprocess.DEVNULL):
        role = ["--tuner_role=chief"] if name == "chief" else ["--tuner_role=worker"]
        role += [] if name == "chief" else [f"--tuner_id={name}"]
        err = open(logs / f"{name}.err", "w")
        quiet = ["--quiet"] if stdout is subprocess.DEVNULL else []
        return subprocess.Popen(
            common + role + quiet, cwd=REPO, env=env, stdout=stdout, stderr=err, text=True
        )

    procs = []
    try:
        chief = start("chief")
        w1 = start("w1")
        procs += [chief, w1]
        # 1. w1 runs trial 0, then trial 1, the last: pause it inside trial 1.
        deadline = time.time() + 240
        last = None
        while last is None:
            assert time.time() < deadline and w1.poll() is None, "w1 never reached trial 1"
            for directory in tracking.trial_dirs(study):
                if (
                    directory.endswith("trial_1")
                    and heartbeat_pid(directory) == w1.pid
                    and read_status(directory).get("status") == td.RUNNING
                ):
                    last = directory
            time.sleep(0.05)
        w1.send_signal(signal.SIGSTOP)
        assert read_status(last)["status"] == td.RUNNING, "trial 1 ended before w1 was paused"
        # 2. w2 asks for a trial while trial 1 runs: it is told to wait, says so; kill it then.
        w2 = start("w2", stdout=subprocess.PIPE)
        procs.append(w2)
        lines, waiting = _lines(w2.stdout), ""
        while "every trial is assigned" not in waiting:
            waiting = lines.get(timeout=240)
            assert waiting is not None, "w2 ended without being idle"
        assert waiting.startswith("tuner w2: "), waiting
        w2.send_signal(signal.SIGKILL)
        assert w2.wait(timeout=60) == -signal.SIGKILL
        # 3. w1 finishes the study; the chief must end by itself.
        w1.send_signal(signal.SIGCONT)
        assert w1.wait(timeout=240) == 0
        assert chief.wait(timeout=STALE_SECONDS + 120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    trials = tracking.trial_dirs(study)
    assert [os.path.basename(d) for d in trials] == ["trial_0", "trial_1"]
    assert all(td.read_status(d)["status"] in td.FINISHED for d in trials)
    values = {json.dumps(td.read_json(os.path.join(d, td.HPARAMS))["values"]) for d in trials}
    assert len(values) == 2
    oracle = json.loads((study / "oracle.json").read_text())
    assert oracle["ongoing_trials"] == {} and sorted(oracle["end_order"]) == ["0", "1"]
    chief_log = (logs / "chief.err").read_text()
    assert "tuner 'w2' holds no trial and has not asked for one" in chief_log, chief_log[-2000:]


# ----------------------------------------------------------------------------- in process


def _chief_oracle(monkeypatch, project, max_trials, stale_seconds=60):
    """The CLI's study oracle for digits_mlp, as a chief's (by keras-tuner's environment)."""
    from tfplaybook import api
    from tfplaybook.search import space as space_lib
    from tfplaybook.study import tuner

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    config, _, _ = api.make_config(
        experiment=os.path.join(REPO, "experiments", "digits_mlp.py"),
        overrides=[f"study.max_trials={max_trials}", f"study.stale_trial_seconds={stale_seconds}"],
    )
    oracle = tuner.make_oracle(config, space_lib.SearchSpace.from_config(config))
    oracle._set_project_dir(os.path.dirname(project), os.path.basename(project))
    return oracle


def _end(oracle, trial):
    oracle.update_trial(trial.trial_id, {"accuracy": 0.5, "infeasible": 0.0})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_the_chief_forgets_an_idle_silent_tuner_only(monkeypatch, tmp_path):
    from keras_tuner.src.distribute import oracle_chief

    from tfplaybook import internals

    with internals.installed():  # As in a study: the chief's exit check is replaced.
        _forgets_an_idle_silent_tuner_only(oracle_chief, monkeypatch, tmp_path)
    assert not getattr(oracle_chief.exit_chief, "forgets_silent_tuners", False)  # Restored.


def _forgets_an_idle_silent_tuner_only(oracle_chief, monkeypatch, tmp_path):
    oracle = _chief_oracle(monkeypatch, tmp_path / "s", max_trials=2)
    first, second = oracle.create_trial("w1"), oracle.create_trial("w2")
    _end(oracle, second)
    assert oracle.create_trial("w2").status == "IDLE"  # Trial 0 may still need taking over.
    oracle.forget_silent_tuners()
    assert oracle.tuner_ids == {"w1", "w2"}  # w2 asked just now.
    oracle.stale_trial_seconds = 0.0  # Now every silence is long enough.
    assert not oracle_chief.exit_chief(oracle)  # The patched check: it forgets w2...
    assert oracle.tuner_ids == {"w1"}  # ...but never a tuner that holds a trial.
    _end(oracle, first)
    saved = json.loads((tmp_path / "s" / "oracle.json").read_text())
    assert saved["ongoing_trials"] == {} and saved["end_order"] == ["1", "0"]
    assert oracle.create_trial("w1").status == "STOPPED"
    assert oracle_chief.exit_chief(oracle)


def test_a_restarted_chief_with_a_lost_oracle_json_hands_no_running_trial_twice(
    monkeypatch, tmp_path
):
    oracle = _chief_oracle(monkeypatch, tmp_path / "s", max_trials=3)
    _end(oracle, oracle.create_trial("w1"))
    running = oracle.create_trial("w1")
    (tmp_path / "s" / "oracle.json").write_text("")
    chief = _chief_oracle(monkeypatch, tmp_path / "s", max_trials=3)
    chief.reload()
    assert {t: trial.trial_id for t, trial in chief.ongoing_trials.items()} == {
        f"unknown-{running.trial_id}": running.trial_id
    }
    assert chief.create_trial("w2").trial_id == "2"  # A new trial, not w1's running one.
    assert chief.create_trial("w3").status == "IDLE"
