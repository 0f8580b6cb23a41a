"""Bad input and damaged files.

Bad input (CLI flags, experiment files, search spaces, unusable work directories, unknown
datasets) must end in one `error: ...` line naming the problem, exit status 2, and no file
changed: every case snapshots the directory tree (paths and hashes) before and after. Every case
runs with a TensorFlow, Keras and keras-tuner that raise on import: bad input is refused before
they load. The CLI cases
of tests/test_cli.py's BAD list are not repeated here.

Damaged trial files must give a `warning: ...` line and a recovery that keeps every other trial
byte-identical.
"""

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_cli, snapshot, without_tensorflow

from tfplaybook.files import trial_dir as td

MLP = "--experiment=experiments/digits_mlp.py"
SHORT = [
    "--override=max_train_steps=60",
    "--override=eval_every_steps=30",
    "--override=checkpoint_every_steps=30",
    "--steps_per_loop=10",
    "--quiet",
]


def space(*entries):
    return "--override=study.search_space=" + json.dumps(list(entries))


LR = {"name": "optimizer.learning_rate", "role": "nuisance", "scale": "log"}
CHOICE = {"name": "optimizer.name", "role": "scientific", "scale": "categorical"}

EXPERIMENT_FILES = {
    "syntax.py": "def get_config(:\n",
    "noget.py": "CONFIG = {}\n",
    "notdict.py": "def get_config():\n    return [1, 2]\n",
    "nokeys.py": "def get_config():\n    return {'seed': 0, 'batch_size': 8}\n",
    "importerror.py": "import no_such_module_xyz\n\ndef get_config():\n    return {}\n",
}

# (mode, extra args, fragment the one error line must contain). {tmp} is the test's tmp_path;
# {file} a regular file in it.
CASES = [
    # Flags and overrides (tests/test_cli.py covers the rest).
    ("tune", ["--override=study.max_trials=0"], "max_trials=0"),
    ("tune", ["--override=study.oracle=grid"], "grid"),
    ("train", ["--override=eval_every_steps=1000"], "eval_every_steps=1000"),
    ("train", ["--override=optimizer.learning_rate=fast"], "fast"),
    ("train", ["--override=objective.goal=up"], "up"),
    ("train", ["--experiment=experiments"], "experiments"),
    ("analyze", [], "not a study directory"),
    ("list", ["--runs_root={tmp}/no_runs"], "no study index"),
    ("tune", ["--dataset=tfds:no_such_dataset_abc"], "no_such_dataset_abc"),
    ("tune", ["--dataset=tfds:mnist", "--data_dir={tmp}/empty"], "not prepared"),
    ("lr_sweep", ["--dataset=tfds:mnist", "--data_dir={tmp}/empty"], "not prepared"),
    ("tune", ["--override=batch_size=63", "--num_cpu_replicas=2"], "batch_size=63"),
    # Experiment files.
    ("train", ["--experiment={tmp}/syntax.py"], "failed to import"),
    ("tune", ["--experiment={tmp}/noget.py"], "get_config"),
    ("train", ["--experiment={tmp}/notdict.py"], "returned list"),
    ("train", ["--experiment={tmp}/nokeys.py"], "max_train_steps"),
    ("train", ["--experiment={tmp}/importerror.py"], "no_such_module_xyz"),
    # Search spaces.
    ("tune", [space(dict(LR, min=0.1, max=0.1))], "min < max"),
    ("tune", [space(dict(LR, min=1.0, max=0.1))], "min < max"),
    ("tune", [space(dict(LR, min=0.0, max=0.1))], "must be positive"),
    ("tune", [space(dict(CHOICE, values=[]))], "non-empty list"),
    (
        "tune",
        [
            space(
                dict(CHOICE, values=["adam", "nesterov"]),
                dict(LR, min=1e-3, max=1.0, parent="optimizer.nam", parent_value="adam"),
            )
        ],
        "unknown parent 'optimizer.nam'",
    ),
    ("tune", [space(dict(LR, name="optimizer.lr", min=1e-3, max=1.0))], "'optimizer.lr'"),
    (
        "tune",
        [
            space(
                {
                    "name": "max_train_steps",
                    "role": "nuisance",
                    "scale": "linear",
                    "min": 10,
                    "max": 100,
                    "type": "int",
                }
            )
        ],
        "max_train_steps may not be tuned",
    ),
    (
        "tune",
        [
            space(
                {
                    "name": "batch_size",
                    "role": "scientific",
                    "scale": "discrete",
                    "values": [32, 64],
                }
            )
        ],
        "batch_size is not a hyperparameter",
    ),
    ("tune", [space(dict(LR, role="nuisanse", min=1e-3, max=1.0))], "'nuisanse'"),
    ("tune", [space(dict(LR, scale="exp", min=1e-3, max=1.0))], "'exp'"),
    ("tune", [space(dict(CHOICE, values=["adam", "adam"]))], "repeat"),
    ("tune", ['--override=study.search_space={"name": "x"}'], "expected a list"),
    # Work directories that cannot be written (tests run as root: permission bits do not stop
    # writes, so use a path under a regular file, and /proc).
    ("train", ["--workdir={file}/sub"], "not a directory"),
    ("tune", ["--workdir={file}/sub/study"], "not a directory"),
    ("train", ["--workdir=/proc/tfplaybook_run"], "not writable"),
    ("tune", ["--workdir={file}"], "not a directory"),
    # A damaged study index ({tmp}/badindex holds one).
    ("tune", ["--runs_root={tmp}/badindex"], "badindex/index.sqlite cannot be used"),
    ("list", ["--runs_root={tmp}/badindex"], "badindex/index.sqlite cannot be used"),
    ("tune", ["--runs_root={file}/runs"], "index cannot be created"),
]
# Every mode that writes a work directory refuses one it cannot write.
CASES += [
    (mode, ["--workdir={file}/sub"], "not a directory")
    for mode in ("batch_sweep", "critical_batch", "lr_sweep", "warmup_sweep", "probe")
]
CASES += [
    ("compare", ["--baseline={tmp}", "--candidate={tmp}"], "no completed trial to compare"),
    ("compare", ["--baseline={tmp}/none", "--candidate={tmp}"], "not a study directory"),
    ("clip_advice", ["--from={tmp}"], "not a trial directory"),
    ("clip_advice", ["--workdir={file}/sub", "--from={tmp}"], "not a directory"),
]


def _attempt(tmp_path, index, case, env):
    mode, args, fragment = case
    root = tmp_path / f"case{index}"
    root.mkdir()
    (root / "file").write_text("a regular file\n")
    (root / "badindex").mkdir()
    (root / "badindex" / "index.sqlite").write_bytes(b"not an SQLite database\n" * 64)
    for name, text in EXPERIMENT_FILES.items():
        (root / name).write_text(text)
    args = [a.replace("{tmp}", str(root)).replace("{file}", str(root / "file")) for a in args]
    if not any(a.startswith("--workdir=") for a in args):
        args.append(f"--workdir={root / 'work'}")
    if not any(a.startswith("--experiment=") for a in args) and mode != "train":
        args.append(MLP)
    before = snapshot(root)
    out = run_cli(f"--mode={mode}", *SHORT, *args, env=env, timeout=180)  # The case's flags win.
    return args, fragment, out, before, snapshot(root)


def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path):
    assert len(CASES) >= 30
    env = without_tensorflow(str(tmp_path / "poison"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _attempt(tmp_path, *c, env), enumerate(CASES)))
    failures = []
    for args, fragment, out, before, after in results:
        errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
        if out.returncode != 2 or len(errors) != 1 or fragment not in errors[0]:
            failures.append((args, out.returncode, out.stderr[-800:]))
        elif "Traceback" in out.stderr or after != before:
            failures.append((args, "changed", sorted(set(after) ^ set(before))))
    assert not failures, "\n\n".join(map(str, failures))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 4 MiB tmpfs: a file system too full for a trial (workdir.MIN_FREE_BYTES is 16 MiB)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()[:200]}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("mode", ["train", "tune"])
def test_full_work_directory_is_one_line_exit_2(tiny_tmpfs, mode, tmp_path):
    (tiny_tmpfs / "keep.txt").write_text("existing file\n")
    before = snapshot(tiny_tmpfs)
    env = without_tensorflow(str(tmp_path / "poison"))
    args = (f"--mode={mode}", MLP, f"--workdir={tiny_tmpfs / 'study'}", *SHORT)
    out = run_cli(*args, env=env, timeout=180)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert out.returncode == 2, out.stderr[-1500:]
    assert len(errors) == 1 and "full file system" in errors[0], out.stderr[-1500:]
    assert snapshot(tiny_tmpfs) == before


# ----------------------------------------------------------------------------- damaged files


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    study = tmp_path_factory.mktemp("study") / "s"
    out = run_cli("--mode=tune", MLP, f"--workdir={study}", "--override=study.max_trials=3", *SHORT)
    assert out.returncode == 0, out.stderr[-2000:]
    return study


def _trials(study):
    return sorted(p for p in os.listdir(study) if p.startswith("trial_"))


def _rerun(study):
    return run_cli(
        "--mode=tune", MLP, f"--workdir={study}", "--override=study.max_trials=3", *SHORT
    )


def test_truncated_status_of_a_finished_trial_is_rebuilt_others_untouched(finished_study, tmp_path):
    study = tmp_path / "s"
    shutil.copytree(finished_study, study)
    damaged = study / _trials(study)[1]
    original = td.read_status(damaged)
    text = (damaged / td.STATUS).read_text()
    (damaged / td.STATUS).write_text(text[: len(text) // 2])
    others = {t: snapshot(study / t) for t in _trials(study) if study / t != damaged}
    measurements = (damaged / td.MEASUREMENTS).read_bytes()
    out = _rerun(study)
    assert out.returncode == 0, out.stderr[-2000:]
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert any(str(damaged / td.STATUS) in w and "damaged" in w for w in warnings), out.stderr
    rebuilt = td.read_status(damaged)
    assert rebuilt["status"] == original["status"] and rebuilt.get("rebuilt")
    assert rebuilt["best_value"] == original["best_value"]
    assert rebuilt["best_step"] == original["best_step"]
    assert (damaged / td.MEASUREMENTS).read_bytes() == measurements
    for t, before in others.items():
        assert snapshot(study / t) == before, t
    assert len([t for t in _trials(study)]) == 3


def test_corrupt_best_index_of_a_finished_trial_is_rebuilt_others_untouched(
    finished_study, tmp_path
):
    study = tmp_path / "s"
    shutil.copytree(finished_study, study)
    damaged = study / _trials(study)[0]
    index = damaged / "checkpoints" / "best" / "index.json"
    original = json.loads(index.read_text())
    index.write_text('{"kept": [{"step": 3')
    others = {t: snapshot(study / t) for t in _trials(study) if study / t != damaged}
    out = _rerun(study)
    assert out.returncode == 0, out.stderr[-2000:]
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert any(str(index) in w and "rebuilt" in w for w in warnings), out.stderr
    rebuilt = json.loads(index.read_text())
    assert [k["step"] for k in rebuilt["kept"]] == [k["step"] for k in original["kept"]]
    for t, before in others.items():
        assert snapshot(study / t) == before, t


# In-process: an interrupted run (its last checkpoint, status and measurements as a kill leaves
# them: status "running", measurements up to the last step, two checkpoints) is made from a
# finished run by marking it running again; the killing itself is tested in test_reliability.py.


def _interrupted_run(experiment_config, workdir):
    from tfplaybook.training import trainer as train

    config = experiment_config(
        "digits_mlp", "max_train_steps=90", "eval_every_steps=30", "checkpoint_every_steps=30"
    )
    runtime = train.Runtime(verbose=False, steps_per_loop=10, strategy="cpu")
    assert train.train(config, str(workdir), runtime)["status"] == "completed"
    td.write_status(str(workdir), td.RUNNING, step=90)
    return config, runtime


def _finish(config, workdir, runtime, capsys):
    from tfplaybook.training import trainer as train

    status = train.train(config, str(workdir), runtime)
    lines = capsys.readouterr().err.splitlines()
    warnings = [line for line in lines if line.startswith("warning: ")]
    steps, _ = td.series(td.read_measurements(str(workdir)), "train", "loss")
    assert status["status"] == "completed" and steps == list(range(1, 91))
    return status, warnings


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    experiment_config, tmp_path, capsys
):
    config, runtime = _interrupted_run(experiment_config, tmp_path)
    latest = tmp_path / "checkpoints" / "latest"
    data = [p for p in os.listdir(latest) if p.startswith("ckpt-90.data")]
    assert data and os.path.exists(latest / "ckpt-60.index")
    blob = bytearray((latest / data[0]).read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # One flipped byte: the checksum must catch it.
    (latest / data[0]).write_bytes(bytes(blob))
    capsys.readouterr()
    status, warnings = _finish(config, tmp_path, runtime, capsys)
    assert any("ckpt-90" in w and "unusable" in w for w in warnings), warnings
    assert status["resumed_from"] == 60


def test_missing_checkpoints_restart_the_trial_from_scratch(experiment_config, tmp_path, capsys):
    config, runtime = _interrupted_run(experiment_config, tmp_path)
    shutil.rmtree(tmp_path / "checkpoints" / "latest")
    capsys.readouterr()
    status, warnings = _finish(config, tmp_path, runtime, capsys)
    assert any("no usable checkpoint" in w for w in warnings), warnings
    assert status["resumed_from"] is None


def test_corrupt_best_index_of_an_interrupted_run_is_rebuilt(experiment_config, tmp_path, capsys):
    config, runtime = _interrupted_run(experiment_config, tmp_path)
    index = tmp_path / "checkpoints" / "best" / "index.json"
    original = json.loads(index.read_text())
    index.write_text("{not json")
    (tmp_path / "checkpoints" / "best" / ".tmp-1.weights.h5").write_bytes(b"torn")
    capsys.readouterr()
    _, warnings = _finish(config, tmp_path, runtime, capsys)
    assert any(str(index) in w for w in warnings), warnings
    assert json.loads(index.read_text())["kept"] == original["kept"]
    assert not (tmp_path / "checkpoints" / "best" / ".tmp-1.weights.h5").exists()
