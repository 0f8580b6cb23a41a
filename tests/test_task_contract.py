"""The task boundary in pure Python: defaults as data, registries, loss/metric names, validation."""

import os

import pytest
from conftest import REPO

import tfplaybook
from tfplaybook import config as config_lib
from tfplaybook.training import datasets, metrics, models
from tfplaybook.training import task as task_lib

pytestmark = pytest.mark.pure

DIGITS_CNN = os.path.join(REPO, "experiments", "digits_cnn.py")


def test_every_builder_default_is_in_the_config_and_overridable():
    config = config_lib.load_experiment(DIGITS_CNN)
    for key in models.get_builder("cnn").defaults:
        assert key in config["model"], key
    # bn_momentum is read by the builder but not written in the experiment file.
    changed = task_lib.apply_overrides(config, ["model.bn_momentum=0.9"])
    assert changed["model"]["bn_momentum"] == 0.9
    for key in ("loss", "metrics", "from_logits", "objective", "keep_best_checkpoints"):
        assert key in config


def test_a_new_model_name_brings_its_defaults_for_later_overrides():
    config = config_lib.load_experiment(DIGITS_CNN)
    changed = task_lib.apply_overrides(
        config, ["model.name=resnet", "model.norm_placement=post", "model.depth=8"]
    )
    assert changed["model"]["norm_placement"] == "post"
    assert changed["model"]["zero_init_residual"] is False  # resnet's own default


def test_a_minimal_config_is_completed_with_derived_defaults():
    minimal = {"batch_size": 8, "max_train_steps": 100, "loss": "mse", "metrics": ["mae"]}
    task = task_lib.Task(build_model=lambda c, s: None, make_dataset=lambda s, c: None)
    config = config_lib.validate(task_lib.complete_config(minimal, task))
    assert config["eval_every_steps"] == 10
    assert config["objective"] == {"metric": "mae", "goal": "min"}
    assert config["optimizer"]["name"] == "adam" and config["schedule"]["name"] == "constant"
    classification = task_lib.complete_config({"batch_size": 8, "max_train_steps": 5}, task)
    assert classification["metrics"] == ["accuracy"]
    assert classification["objective"] == {"metric": "accuracy", "goal": "max"}


def test_a_config_without_model_or_dataset_says_what_to_give():
    with pytest.raises(config_lib.ConfigError, match="build_model"):
        task_lib.complete_config({"batch_size": 8, "max_train_steps": 5, "data": {"dataset": "x"}})
    task = task_lib.Task(build_model=lambda c, s: None)
    with pytest.raises(config_lib.ConfigError, match="make_dataset"):
        task_lib.complete_config({"batch_size": 8, "max_train_steps": 5}, task)


@pytest.mark.parametrize(
    "objective, message",
    [
        ({"metric": "accuracy", "goal": "min"}, "objective.metric='accuracy'"),
        ({"metric": "mae", "goal": "up"}, "objective.goal='up'"),
    ],
)
def test_the_objective_must_be_a_recorded_metric_with_a_goal(objective, message):
    task = task_lib.Task(build_model=lambda c, s: None, make_dataset=lambda s, c: None)
    config = task_lib.complete_config(
        {"batch_size": 8, "max_train_steps": 5, "loss": "mse", "metrics": ["mae"]}, task
    )
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate(dict(config, objective=objective))


def test_metric_names_and_goals():
    assert metrics.metric_name("acc") == "accuracy"
    assert metrics.metric_name({"class_name": "AUC", "config": {"name": "roc"}}) == "roc"
    assert metrics.default_goal("auc") == "max" and metrics.default_goal("mae") == "min"
    assert metrics.default_goal("sparse_categorical_accuracy") == "max"
    with pytest.raises(config_lib.ConfigError, match="metric 3"):
        metrics.metric_name(3)


def test_registries_take_user_entries_and_name_the_known_ones():
    def build(config, data_spec):
        return None

    tfplaybook.register_model("test_linear", build, defaults={"units": 3})
    assert models.get_builder("test_linear").build is build
    config = task_lib.complete_config(
        {
            "batch_size": 8,
            "max_train_steps": 5,
            "model": {"name": "test_linear"},
            "data": {"dataset": "digits"},
        }
    )
    assert config["model"]["units"] == 3 and config["data"]["train_split"] == "train"
    with pytest.raises(config_lib.ConfigError, match="test_linear"):
        models.get_builder("nope")
    with pytest.raises(config_lib.ConfigError, match="tfds:NAME"):
        datasets.get_dataset("nope")
    with pytest.raises(ValueError):
        tfplaybook.register_model("app:x", build)


def test_an_experiment_file_contributes_its_functions(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "def get_config():\n"
        "    return {'batch_size': 4, 'max_train_steps': 10, 'model': {'units': 2}}\n"
        "def build_model(config, data_spec):\n    return 'model'\n"
        "def make_dataset(split, config):\n    return 'data'\n"
    )
    config, task = task_lib.load(str(path))
    assert task.model_builder(config)(config, None) == "model"
    assert task.dataset(config)[0]("train", config) == "data"
    assert config["model"] == {"units": 2}  # No registry defaults mixed into a user model.
    path.write_text("build_model = 3\ndef get_config():\n    return {}\n")
    with pytest.raises(config_lib.ConfigError, match="build_model in .* is not a function"):
        task_lib.load(str(path))
    path.write_text("def get_config():\n    return {'batch_size': 4}\n")
    with pytest.raises(config_lib.ConfigError, match="lacks required keys: max_train_steps"):
        task_lib.load(str(path))


def test_importing_the_package_and_completing_configs_needs_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, tfplaybook\n"
        "from tfplaybook import config\n"
        f"config.load_experiment({DIGITS_CNN!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
