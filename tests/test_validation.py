"""The validation pass: bad configs refused in one line before TensorFlow loads or anything is
written; a study refuses a changed config; the index tells the truth."""

import os
import subprocess
import sys

import pytest
from conftest import REPO, run_cli, snapshot

from tfplaybook import config as config_lib
from tfplaybook import validation
from tfplaybook.training import task as task_lib

DIGITS_CNN = os.path.join(REPO, "experiments", "digits_cnn.py")
DIABETES = os.path.join(REPO, "experiments", "diabetes_regression.py")

BAD_OVERRIDES = [
    ("model.dropout=1.5", "model.dropout=1.5 must be in [0, 1)"),
    ("data_seed=-3", "data_seed=-3"),
    ("data_seed=1.5", "data_seed=1.5"),
    ("label_smoothing=1.2", "label_smoothing=1.2 must be in [0, 1)"),
    ("model.name=nope", "model.name='nope' is not one of cnn, mlp, resnet"),
    ("optimizer.name=lion", "optimizer.name='lion' is not one of sgd"),
    ("schedule.name=step", "schedule.name='step' is not one of constant"),
    ("optimizer.learning_rate=-1", "optimizer.learning_rate=-1.0 must be in (0, inf)"),
    ("optimizer.momentum=1.0", "optimizer.momentum=1.0 must be in [0, 1)"),
    ("model.batch_norm=group", "model.batch_norm='group' is not one of sync"),
    ("model.width=0", "model.width=0 must be a positive integer"),
    ("data.shuffle_buffer=0", "data.shuffle_buffer=0 must be a positive integer"),
    ("data.eval_batch_size=8", "data.eval_batch_size=8 is below batch_size=64"),
    ("keep_best_checkpoints=0", "keep_best_checkpoints=0 must be a positive integer"),
    ("study.oracle=bayes", "study.oracle='bayes' is not one of quasi_random, bayesian"),
    ("study.design=grid", "study.design='grid' is not one of joint, per_value"),
    ("study.max_trials=0", "study.max_trials=0 must be a positive integer"),
    ("objective.metric=f1", "objective.metric='f1' is not one of loss, accuracy"),
    (
        'study.search_space=[{"name": "model.dropout", "role": "nuisance", "scale": "linear", '
        '"min": 0.5, "max": 2.0}]',
        "the search space allows a bad trial (model.dropout at its highest): model.dropout=1.99",
    ),
    (
        'study.search_space=[{"name": "optimizer.momentum", "role": "nuisance", '
        '"scale": "categorical", "values": [0.9, 1.2]}]',
        "(optimizer.momentum at its highest): optimizer.momentum=1.2 must be in [0, 1)",
    ),
]


def load(*overrides, path=DIGITS_CNN):
    config, task = task_lib.load(path)
    return task_lib.apply_overrides(config, overrides, task), task


@pytest.mark.parametrize("override, message", BAD_OVERRIDES, ids=[b[0][:30] for b in BAD_OVERRIDES])
def test_each_bad_value_is_named(override, message):
    with pytest.raises(config_lib.ConfigError) as raised:
        validation.check_config(*load(override))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_every_shipped_experiment_passes():
    for path in config_lib.list_experiments():
        config, task = task_lib.load(os.path.join(REPO, path))
        validation.check_config(config, task)


def test_unknown_keys_of_our_sections_are_refused_with_the_known_ones():
    config, task = load()
    with pytest.raises(config_lib.ConfigError, match="unknown key optimizer.lr in the config"):
        validation.check_config(task_lib.merge(config, {"optimizer": {"lr": 0.1}}), task)
    with pytest.raises(config_lib.ConfigError, match="unknown key eval_every in the config"):
        validation.check_config(dict(config, eval_every=10), task)


@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(strategy="tpu"), "--strategy=tpu: no local TPU device"),
        (dict(strategy="cpu", num_cpu_replicas=3), "batch_size=64 is not divisible by the 3"),
        (dict(strategy="auto", num_cpu_replicas=3), "batch_size=64 is not divisible by the 3"),
        (dict(strategy="mirrored", num_cpu_replicas=3), "batch_size=64 is not divisible by the 3"),
        (dict(strategy="one_device", num_cpu_replicas=2), "one_device runs one replica"),
        (dict(precision="float16"), "--precision='float16' is not one of float32"),
        (dict(steps_per_loop=0), "--steps_per_loop=0 must be a positive integer"),
    ],
)
def test_runtime_flags(flags, message):
    args = dict(strategy="auto", tpu="local", num_cpu_replicas=1, precision="float32")
    args.update(steps_per_loop=50, batch_size=64)
    args.update(flags)
    with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(")):
        validation.check_runtime(**args)


def test_bad_configs_answer_without_importing_tensorflow(tmp_path):
    """main() returns 2 for each bad config with TensorFlow never imported in the process."""
    code = (
        "import sys\n"
        "from tfplaybook import run\n"
        "for override in sys.argv[2:]:\n"
        "    run.parse_flags(['run', '--workdir=' + sys.argv[1], '--override=' + override])\n"
        "    assert run.main(['run']) == 2, override\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    overrides = [o for o, _ in BAD_OVERRIDES]
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "w"), *overrides], check=True, cwd=REPO
    )
    assert not (tmp_path / "w").exists()


SMALL = [
    f"--experiment={DIABETES}",
    "--override=max_train_steps=40",
    "--override=eval_every_steps=20",
    "--override=study.max_trials=2",
    "--strategy=cpu",
    "--quiet",
]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = run_cli("--mode=tune", f"--workdir={root / 'study'}", *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--override=optimizer.beta1=0.8"], "holds a study of a different config (differs at: "),
        (["--override=max_train_steps=60"], "differs at: max_train_steps"),
        (["--override=study.oracle=bayesian"], "differs at: study.oracle"),
        (["--override=study.max_trials=1"], "study.max_trials=1 is below the 2"),
        (["--override=optimizer.learning_rate=-1"], "optimizer.learning_rate=-1.0 must be in"),
        (["--override=model.depth=x"], "expected a number"),
    ],
)
def test_a_finished_study_refuses_changes_and_stays_byte_identical(finished_study, extra, message):
    before = snapshot(finished_study)
    out = run_cli("--mode=tune", f"--workdir={finished_study / 'study'}", *SMALL, *extra)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.startswith(("error", "warning"))]
    assert len(lines) == 1 and message in lines[0], out.stderr[-1500:]
    assert snapshot(finished_study) == before


def test_a_finished_study_reruns_in_seconds_without_training(finished_study):
    before = snapshot(finished_study)
    code = (
        "import sys\n"
        "from tfplaybook import run\n"
        "run.parse_flags(sys.argv[1:])\n"
        "assert run.main(['run']) == 0\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    args = ["run", "--mode=tune", f"--workdir={finished_study / 'study'}", *SMALL]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "already finished, 2 trials" in out.stdout
    assert snapshot(finished_study) == before


def test_raising_max_trials_continues_the_study_and_the_index_follows(finished_study, tmp_path):
    import shutil

    from tfplaybook.study import tracking

    root = tmp_path / "copy"
    shutil.copytree(finished_study, root)
    out = run_cli(
        "--mode=tune", f"--workdir={root / 'study'}", *SMALL, "--override=study.max_trials=3"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(tracking.trial_dirs(str(root / "study"))) == 3
    rows = tracking.StudyIndex(str(root), create=False).rows()
    (row,) = [r for r in rows if r["workdir"] == str(root / "study")]
    assert row["status"] == "completed" and row["trials"] == 3
