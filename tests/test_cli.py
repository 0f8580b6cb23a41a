"""The command line: help, a smoke run, bad input (one line, exit 2, nothing written, before
TensorFlow loads), resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import REPO, run_cli, without_tensorflow

from tfplaybook.files import trial_dir as td


def test_helpfull_documents_every_flag_in_a_sentence():
    out = run_cli("--helpfull", timeout=60)  # absl exits 1 after printing help.
    assert "--experiment" in out.stdout, out.stderr[-1000:]
    from absl import flags as absl_flags

    from tfplaybook import flags as our_flags

    holders = [v for v in vars(our_flags).values() if isinstance(v, absl_flags.FlagHolder)]
    assert len(holders) >= 14
    for holder in holders:
        assert f"--{holder.name}:" in out.stdout or f"--[no]{holder.name}:" in out.stdout
        help_text = absl_flags.FLAGS[holder.name].help
        assert len(help_text.split()) >= 5 and "." in help_text, holder.name


def test_train_smoke_run_writes_the_trial_directory(tmp_path):
    workdir = tmp_path / "run"
    out = run_cli(
        "--mode=train",
        "--experiment=experiments/digits_mlp.py",
        f"--workdir={workdir}",
        "--override=max_train_steps=100",
        "--override=eval_every_steps=50",
        "--steps_per_loop=25",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step 100/100" in out.stdout and "completed: best validation accuracy" in out.stdout
    status = td.read_status(workdir)
    assert status["status"] == "completed" and status["best_value"] > 0.8
    assert td.read_config(workdir)["max_train_steps"] == 100
    assert os.listdir(workdir / "checkpoints" / "best")


BAD = [
    (["--experiment=experiments/nope.py"], "nope.py"),
    (["--dataset=imagenet"], "'imagenet'"),
    (["--dataset=tfds:no_such_dataset_xyz"], "no_such_dataset_xyz"),
    (["--dataset=tfds:mnist", "--data_dir={tmp}/empty"], "not prepared"),
    (["--override=model.name=transformerx"], "transformerx"),
    (["--override=optimizer.name=lion"], "lion"),
    (["--override=schedule.name=step"], "'step'"),
    (["--strategy=gpu"], "gpu"),
    (["--precision=fp8"], "fp8"),
    (["--num_cpu_replicas=0"], "num_cpu_replicas"),
    (["--override=batch_size=63", "--num_cpu_replicas=2"], "batch_size=63"),
    (["--override=nokey=1"], "nokey"),
    (["--override=batch_size"], "'batch_size'"),
    (["--override=batch_size=many"], "many"),
    (["--override=max_train_steps=0"], "max_train_steps=0"),
    (["--mode=dance"], "dance"),
    (["stray"], "stray"),
]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    # Refused before TensorFlow loads: a TensorFlow, Keras and keras-tuner that raise on import.
    env = without_tensorflow(str(tmp_path / "poison"))

    def attempt(case):
        index, (args, fragment) = case
        workdir = tmp_path / f"w{index}"
        args = [a.format(tmp=tmp_path) for a in args]
        out = run_cli("--mode=train", f"--workdir={workdir}", *args, env=env, timeout=120)
        return args, fragment, workdir, out

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, enumerate(BAD)))
    for args, fragment, workdir, out in results:
        errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
        assert out.returncode == 2, (args, out.stderr[-1500:])
        assert len(errors) == 1 and fragment in errors[0], (args, out.stderr[-1500:])
        assert "Traceback" not in out.stderr, args
        assert not workdir.exists(), args


def _wait_for_step(workdir, step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "training ended before it could be killed"
        try:
            status = td.read_status(workdir)
        except (td.DamagedFileError, OSError):
            status = None
        if status and status.get("step", 0) >= step:
            return status["step"]
        time.sleep(0.05)
    raise AssertionError("training did not reach the kill point")


def test_resume_after_sigkill_continues_from_the_latest_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "tfplaybook.run",
        "--mode=train",
        f"--workdir={workdir}",
        "--override=max_train_steps=600",
        "--override=eval_every_steps=100",
        "--override=checkpoint_every_steps=100",
        "--steps_per_loop=10",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        killed_at = _wait_for_step(workdir, 300, proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert td.read_status(workdir)["status"] == "running"
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    status = td.read_status(workdir)
    assert status["status"] == "completed" and status["resumed_from"] >= killed_at
    rows = td.read_measurements(workdir)
    steps, _ = td.series(rows, "train", "loss")
    assert steps == list(range(1, 601))  # Continuous: every step exactly once.
    eval_steps, _ = td.series(rows, "validation", "accuracy")
    assert eval_steps == list(range(100, 601, 100))
    assert status["best_value"] > 0.9
