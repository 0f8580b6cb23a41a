"""gs:// work directories end to end, against a GCS API on loopback (gcp-storage-emulator).

Every run is a separate process with its own staging directory (TFPLAYBOOK_STAGING_DIR), as on
separate VMs: what one process wrote is visible to another only through the bucket.
"""

import json
import os
import signal
import subprocess
import sys
import time

import gcs_emulator
import pytest
from conftest import REPO, free_port

from tfplaybook.files import gcs as gcs_lib
from tfplaybook.files import storage

BUCKET = "tfplaybook-study"
MLP = f"--experiment={os.path.join(REPO, 'experiments', 'digits_mlp.py')}"
SHORT = [
    "--override=max_train_steps=40",
    "--override=eval_every_steps=20",
    "--override=checkpoint_every_steps=20",
    "--steps_per_loop=10",
]


@pytest.fixture(scope="module")
def gcs():
    """The running emulator (tests/gcs_emulator.py)."""
    yield from gcs_emulator.serving(BUCKET)


def _env(tmp_path, host):
    return dict(
        os.environ,
        PYTHONPATH=REPO,
        TF_CPP_MIN_LOG_LEVEL="2",
        TFPLAYBOOK_STAGING_DIR=str(tmp_path / f"staging-{host}"),
    )


def _cli(tmp_path, host, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "tfplaybook.run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(tmp_path, host),
        cwd=str(tmp_path),  # The study index goes to ./runs of the host.
    )


def _objects(url):
    """{relative path: MD5} of everything under `url`."""
    bucket, prefix = url[len("gs://") :].split("/", 1)
    client = gcs_lib.client()
    return {
        blob.name[len(prefix) + 1 :]: blob.md5_hash
        for blob in client.list_blobs(bucket, prefix=prefix + "/")
    }


def _status(url, trial):
    return json.loads(storage.read_text(f"{url}/{trial}/status.json"))


def _trials(objects):
    return sorted({k.split("/")[0] for k in objects if k.endswith("/status.json")})


def test_a_study_in_a_bucket_is_analysed_by_a_second_process(gcs, tmp_path):
    url = f"gs://{BUCKET}/study-a"
    run = _cli(
        tmp_path, "vm1", "--mode=tune", MLP, f"--workdir={url}", "--override=study.max_trials=2",
        *SHORT, "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    objects = _objects(url)
    assert _trials(objects) == ["trial_0", "trial_1"]
    for trial in ("trial_0", "trial_1"):
        assert _status(url, trial)["status"] == "completed"
        assert f"{trial}/measurements.jsonl" in objects
        assert any(k.startswith(f"{trial}/checkpoints/latest/") for k in objects)
        assert any(k.startswith(f"{trial}/checkpoints/best/") for k in objects)
        assert any(k.startswith(f"{trial}/tensorboard/") for k in objects)
    for name in ("study.json", "oracle.json", "report.html", "trials.csv", "checks.json"):
        assert name in objects, name
    assert any(k.endswith("export/saved_model/saved_model.pb") for k in objects)
    # The index stays on the host's disk and names the bucket.
    rows = subprocess.run(
        [sys.executable, "-m", "tfplaybook.run", "--mode=list", "--runs_root=runs"],
        capture_output=True, text=True, env=_env(tmp_path, "vm1"), cwd=str(tmp_path),
    )  # fmt: skip
    assert url in rows.stdout and "completed" in rows.stdout
    # Another machine: analysis from the bucket alone (no checkpoints fetched, no TensorFlow).
    storage.remove(f"{url}/report.html")
    code = (
        "import sys, runpy; sys.argv = ['tfplaybook.run', '--mode=analyze', "
        f"'--workdir={url}']\n"
        "try:\n    runpy.run_module('tfplaybook.run', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'tensorflow' not in sys.modules, 'analysis imported TensorFlow'\n"
    )
    analysed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env=_env(tmp_path, "vm2"), cwd=str(tmp_path), timeout=300,
    )  # fmt: skip
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    assert f"report: {url}/report.html" in analysed.stdout
    assert "report.html" in _objects(url)
    staged = tmp_path / "staging-vm2" / "gs" / BUCKET / "study-a" / "trial_0"
    assert not (staged / "checkpoints").exists()  # Analysis fetched what a report reads only.


def test_a_killed_study_resumes_from_the_bucket_on_a_fresh_machine(gcs, tmp_path):
    url = f"gs://{BUCKET}/study-b"
    args = ["--mode=tune", MLP, f"--workdir={url}", "--override=study.max_trials=3", *SHORT]
    first = subprocess.Popen(
        [sys.executable, "-m", "tfplaybook.run", *args, "--quiet"],
        env=_env(tmp_path, "vm1"), cwd=str(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Kill the study once the bucket shows trial 1 running, so trial 0 has ended (a
        # condition, not a duration).
        for _ in range(6000):
            if first.poll() is not None:
                break
            try:
                if _status(url, "trial_1")["status"] == "running":
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        assert first.poll() is None, f"the study ended before it could be killed: {first.stderr}"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    before = _objects(url)
    finished = sorted(t for t in _trials(before) if _status(url, t)["status"] == "completed")
    assert "trial_0" in finished
    kept = {k: v for k, v in before.items() if k.startswith("trial_0/")}
    # A new machine (an empty staging directory) with the same command.
    again = _cli(tmp_path, "vm2", *args, "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    after = _objects(url)
    assert _trials(after) == ["trial_0", "trial_1", "trial_2"]
    assert all(_status(url, t)["status"] == "completed" for t in _trials(after))
    assert {k: after[k] for k in kept} == kept  # The finished trial is byte-identical.


def test_a_chief_and_two_workers_share_a_study_through_the_bucket(gcs, tmp_path):
    url = f"gs://{BUCKET}/study-c"
    port = free_port()
    common = [
        "--mode=tune", MLP, f"--workdir={url}", "--override=study.max_trials=3", *SHORT,
        "--quiet", "--tuner_chief_address=127.0.0.1", f"--tuner_chief_port={port}",
    ]  # fmt: skip
    chief = subprocess.Popen(
        [sys.executable, "-m", "tfplaybook.run", *common, "--tuner_role=chief"],
        env=_env(tmp_path, "chief"), cwd=str(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            [
                sys.executable, "-m", "tfplaybook.run", *common, "--tuner_role=worker",
                f"--tuner_id=w{i}",
            ],
            env=_env(tmp_path, f"w{i}"), cwd=str(tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in (1, 2)
    ]
    try:
        outs = [w.communicate(timeout=900) for w in workers]
        chief_out = chief.communicate(timeout=300)
    finally:
        for process in [chief, *workers]:
            if process.poll() is None:
                process.kill()
    for process, (_, err) in zip(workers, outs):
        assert process.returncode == 0, err[-3000:]
    assert chief.returncode == 0, chief_out[1][-3000:]
    objects = _objects(url)
    trials = _trials(objects)
    assert trials == ["trial_0", "trial_1", "trial_2"]
    assert all(_status(url, t)["status"] == "completed" for t in trials)
    ran_by = {t: _objects(url).get(f"{t}/heartbeat") is not None for t in trials}
    assert all(ran_by.values())  # Every trial's heartbeat reached the bucket.
    assert "report.html" in objects
    oracle = json.loads(storage.read_text(f"{url}/oracle.json"))
    assert oracle["ongoing_trials"] == {} and sorted(oracle["end_order"]) == ["0", "1", "2"]


@pytest.mark.parametrize(
    "workdir, fragment",
    [("gs://no-such-bucket-xyz/study", "no-such-bucket-xyz"), ("s3://bucket/study", "s3://")],
)
def test_an_unusable_remote_work_directory_is_one_line_exit_2(gcs, tmp_path, workdir, fragment):
    out = _cli(tmp_path, "vm1", "--mode=tune", MLP, f"--workdir={workdir}", *SHORT, "--quiet")
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(errors) == 1, out.stderr[-2000:]
    assert errors[0].startswith("error: ") and fragment in errors[0]
    assert not (tmp_path / "runs").exists()  # No study index either.
