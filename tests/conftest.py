"""Shared test setup.

Tiers: modules marked `pure` never import TensorFlow or Keras and start no training
(`python -m pytest -m "pure and not matplotlib"` runs the fastest tier, `-m pure` adds the report
and plot tests, which are also marked `matplotlib`). When pure tests run apart (`-m` selects
`pure`), a pure test that leaves TensorFlow or Keras imported fails. TensorFlow tests run on two
logical CPU devices, which must be configured before TensorFlow initialises: the session fixture
below does it whenever a collected test module imported TensorFlow.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The slowest files, slowest first (per-file totals of a full run on the 2-core CI machine,
# 2026-12-07; test_reliability.py's single 150 s test starts early too). Run with `-n 3
# --dist loadfile --no-loadscope-reorder`, files go to the workers in this order, so the long
# ones start first and the workers end together; xdist's own reordering sorts files by their
# number of tests, which put the longest two-test file last.
SLOWEST_FIRST = [
    "test_modes.py",
    "test_reliability.py",
    "test_state_recovery.py",
    "test_user_tasks.py",
    "test_procedure_modes.py",
    "test_tuner.py",
    "test_gcs_study.py",
    "test_procedures_critical_batch.py",
    "test_bad_input.py",
    "test_gcs_tfds.py",
    "test_cli.py",
    "test_long_work.py",
    "test_train.py",
    "test_reliability_chief.py",
    "test_trace_reuse.py",
    "test_keras_tuner_bridge.py",
    "test_validation.py",
    "test_data.py",
    "test_idle_worker.py",
    "test_best_export.py",
    "test_experiments.py",
    "test_multiworker.py",
    "test_advise.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # Stable: others keep order.


@pytest.fixture(scope="session", autouse=True)
def _two_cpu_replicas():
    if "tensorflow" in sys.modules:
        from tfplaybook.training import strategy

        strategy.split_cpu(2)


def _selects_pure(config):
    return "pure" in (config.getoption("markexpr") or "")


def pytest_ignore_collect(collection_path, config):
    """With `-m pure...`, modules not marked pure are not even imported (some import TensorFlow)."""
    name = collection_path.name
    if _selects_pure(config) and name.startswith("test_") and name.endswith(".py"):
        text = collection_path.read_text()
        without_plots = "not matplotlib" in config.getoption("markexpr")
        if "pytest.mark.pure" not in text or (without_plots and "pytest.mark.matplotlib" in text):
            return True
    return None


@pytest.fixture(autouse=True)
def _pure_stays_pure(request):
    """A `pure` test run apart from the TensorFlow tests must not import TensorFlow or Keras."""
    yield
    if _selects_pure(request.config) and request.node.get_closest_marker("pure") is not None:
        loaded = [m for m in ("tensorflow", "keras") if m in sys.modules]
        assert not loaded, f"a pure test imported {' and '.join(loaded)}"


@pytest.fixture
def experiment_config():
    """Loads a shipped experiment by name with KEY=VALUE overrides applied."""
    from tfplaybook import config as config_lib

    def load(name="digits_cnn", *overrides):
        path = os.path.join(REPO, "experiments", f"{name}.py")
        return config_lib.apply_overrides(config_lib.load_experiment(path), overrides)

    return load


def run_cli(*args, env=None, timeout=300, cwd=None):
    """Runs `python -m tfplaybook.run ARGS` and returns the CompletedProcess."""
    import subprocess

    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tfplaybook.run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )


def without_tensorflow(directory):
    """An env for run_cli in which importing tensorflow, keras or keras_tuner raises: a run that
    must refuse its input before TensorFlow loads fails loudly under it if it imports them."""
    for name in ("tensorflow", "keras", "keras_tuner"):
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        with open(os.path.join(directory, name, "__init__.py"), "w") as f:
            f.write(f"raise ImportError('{name} imported before the input was checked')\n")
    return {"PYTHONPATH": f"{directory}:{REPO}"}


def snapshot(root):
    """{relative path: sha256 or 'dir'} of everything under `root`: a tree compared before and
    after a run that must change nothing."""
    import hashlib

    tree = {}
    for base, dirs, files in os.walk(root):
        for d in dirs:
            tree[os.path.relpath(os.path.join(base, d), root)] = "dir"
        for f in files:
            path = os.path.join(base, f)
            with open(path, "rb") as fh:
                tree[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return tree


def free_port():
    """A free TCP port on loopback (for a keras-tuner chief)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heartbeat_pid(directory):
    """The process id in a trial's heartbeat file, or None while it is missing or being written."""
    try:
        with open(os.path.join(directory, "heartbeat")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_status(directory):
    """A trial's status.json, or {} while it is missing or being written."""
    from tfplaybook.files import trial_dir as td

    try:
        return td.read_status(directory) or {}
    except (td.DamagedFileError, OSError):
        return {}
