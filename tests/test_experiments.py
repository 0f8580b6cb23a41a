"""Every shipped experiment is executed: it builds, and trains where its data exists here."""

import os

import numpy as np
import pytest
from conftest import REPO

from tfplaybook import config as config_lib
from tfplaybook.training import models
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train


def build(config, shape=(32, 32, 3), classes=10):
    """The registry model of `config`, built as a trial builds it (a DataSpec of images)."""
    import tensorflow as tf

    from tfplaybook.training import data as data_lib

    element = (tf.TensorSpec(shape), tf.TensorSpec((), tf.int32), tf.TensorSpec(()))
    spec = data_lib.DataSpec("images", None, element, None, 1, classes)
    return models.get_builder(config["model"]["name"]).build(config, spec)


def load(name, *overrides):
    path = os.path.join(REPO, "experiments", f"{name}.py")
    config, task = task_lib.load(path)
    return task_lib.apply_overrides(config, overrides, task)


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp", "synthetic_resnet"])
def test_experiment_trains_a_few_steps_and_beats_chance(name, tmp_path):
    config = load(name, "max_train_steps=40", "eval_every_steps=40", "checkpoint_every_steps=40")
    status = train.train(
        config, str(tmp_path), train.Runtime(strategy="cpu", verbose=False, steps_per_loop=20)
    )
    assert status["status"] == "completed"
    assert status["best_value"] > 0.3  # Ten classes: chance is 0.1.


@pytest.mark.parametrize("batch_norm", ["sync", "per_replica", "ghost"])
def test_cifar10_resnet_builds_with_each_batch_norm_setting(batch_norm):
    config = load("cifar10_resnet", f"model.batch_norm={batch_norm}")
    model = build(config)
    assert model.name == "resnet20"
    out = model(np.zeros((64, 32, 32, 3), np.float32), training=True)
    assert out.shape == (64, 10)


def test_cifar10_resnet_without_prepared_data_fails_clearly(tmp_path):
    config = load("cifar10_resnet", f"data.data_dir={tmp_path}")
    with pytest.raises(config_lib.ConfigError, match="cifar10' is not prepared"):
        train.Trainer(config, str(tmp_path / "w"), train.Runtime(strategy="cpu", verbose=False))


def test_keras_applications_model_by_name():
    config = load("synthetic_resnet", "model.name=app:MobileNetV2", "model.dropout=0.1")
    model = build(config)
    assert model.name == "MobileNetV2" and model.count_params() > 1e6
    assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)
    with pytest.raises(config_lib.ConfigError, match="not a keras.applications model"):
        build(dict(config, model=dict(config["model"], name="app:NoSuchNet")))


def test_every_shipped_experiment_loads_and_validates():
    for path in config_lib.list_experiments():
        config, _ = task_lib.load(os.path.join(REPO, path))
        config_lib.validate(config)
        assert config["study"]["search_space"], path
