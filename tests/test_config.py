"""Experiments, strict dotted overrides and validation (pure Python)."""

import os
import sys

import pytest

from tfplaybook import config as config_lib

pytestmark = pytest.mark.pure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ["digits_cnn", "digits_mlp", "cifar10_resnet", "synthetic_resnet"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_load_with_the_agreed_names(name):
    config = config_lib.load_experiment(os.path.join(REPO, "experiments", f"{name}.py"))
    for key in ("batch_size", "max_train_steps", "eval_every_steps", "seed"):
        assert isinstance(config[key], int)
    for section in ("data", "model", "optimizer", "schedule", "study"):
        assert isinstance(config[section], dict)
    assert "batch_norm" in config["model"]
    assert {"max_trials", "search_space", "oracle"} <= set(config["study"])
    config_lib.validate(config)


def test_overrides_change_nested_fields_and_keep_types(experiment_config):
    config = experiment_config(
        "digits_cnn",
        "optimizer.learning_rate=0.5",
        "batch_size=32",
        "data.cache=false",
        "model.name=mlp",
    )
    assert config["optimizer"]["learning_rate"] == 0.5
    assert config["batch_size"] == 32 and isinstance(config["batch_size"], int)
    assert config["data"]["cache"] is False
    assert config["model"]["name"] == "mlp"


def test_override_does_not_mutate_the_input(experiment_config):
    base = experiment_config("digits_cnn")
    config_lib.apply_overrides(base, ["batch_size=16"])
    assert base["batch_size"] == 64


def test_unknown_key_fails_and_lists_valid_keys(experiment_config):
    with pytest.raises(config_lib.ConfigError) as e:
        experiment_config("digits_cnn", "optimizer.lr=0.1")
    message = str(e.value)
    assert "'optimizer.lr'" in message and "optimizer.learning_rate" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("batch_size", "not KEY=VALUE"),
        ("batch_size=big", "expected a number"),
        ("data.cache=3", "expected true or false"),
        ("data=1", "is a section"),
        ("=3", "not in the config"),
    ],
)
def test_malformed_overrides_are_rejected(experiment_config, override, fragment):
    with pytest.raises(config_lib.ConfigError, match=fragment):
        experiment_config("digits_cnn", override)


@pytest.mark.parametrize(
    "override", ["batch_size=0", "max_train_steps=-1", "eval_every_steps=100000"]
)
def test_validate_rejects_impossible_budgets(experiment_config, override):
    with pytest.raises(config_lib.ConfigError):
        config_lib.validate(experiment_config("digits_cnn", override))


def test_missing_and_broken_experiment_files(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="does not exist.*digits_cnn"):
        config_lib.load_experiment(str(tmp_path / "nope.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    with pytest.raises(config_lib.ConfigError, match="failed to import"):
        config_lib.load_experiment(str(broken))
    raising = tmp_path / "raising.py"
    raising.write_text("def get_config():\n    return {}['missing']\n")
    with pytest.raises(config_lib.ConfigError, match="raised KeyError"):
        config_lib.load_experiment(str(raising))
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(config_lib.ConfigError, match="no get_config"):
        config_lib.load_experiment(str(empty))


def test_pure_modules_do_not_import_tensorflow():
    import subprocess

    code = (
        "import sys; import tfplaybook.config, tfplaybook.training.schedules, "
        "tfplaybook.training.selection, tfplaybook.files.trial_dir, tfplaybook.flags; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr
