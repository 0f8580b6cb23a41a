"""The best checkpoints' `.weights.h5` files: written without Keras' per-save walk, the same file.

`checkpoints.WeightsWriter` records the layout once with Keras' own saving code and then writes
the groups and the variables' current values with h5py. These tests compare its files with
`model.save_weights`' byte for value and attribute for attribute, and load them back.
"""

import h5py
import keras
import numpy as np
import pytest

from tfplaybook.training import checkpoints, models


class _Spec:
    def __init__(self, shape):
        self.feature_shape = shape

    def require_num_classes(self):
        return 10


def _contents(path):
    """Every group and dataset of an HDF5 file: (name, kind, attributes, values)."""
    out = []

    def visit(name, item):
        values = item[()].tolist() if isinstance(item, h5py.Dataset) else None
        out.append((name, type(item).__name__, dict(item.attrs), values))

    with h5py.File(path, "r") as f:
        out.append(("/", "File", dict(f.attrs), None))
        f.visititems(visit)
    return out


def _registry_model(name, **model):
    config = {"model": dict(models.get_builder(name).defaults, **model)}
    shape = (8, 8, 1) if name != "resnet" else (16, 16, 3)
    return models.get_builder(name).build(config, _Spec(shape))


def _perturb(model, seed):
    rng = np.random.default_rng(seed)
    for v in model.variables:
        v.assign(v.numpy() + rng.normal(size=v.shape).astype(v.dtype))


@pytest.mark.parametrize(
    "name, model",
    [("cnn", {}), ("mlp", {"depth": 3}), ("resnet", {"depth": 8, "width": 1})],
    ids=["cnn", "mlp", "resnet"],
)
def test_the_file_is_keras_own_and_follows_the_weights(name, model, tmp_path):
    net = _registry_model(name, **model)
    writer = checkpoints.WeightsWriter(net)
    for seed in (1, 2):  # The second save reuses the recorded layout with new values.
        _perturb(net, seed)
        writer.write(str(tmp_path / "fast.weights.h5"))
        net.save_weights(str(tmp_path / "keras.weights.h5"))
        assert writer._plan is not None
        assert _contents(tmp_path / "fast.weights.h5") == _contents(tmp_path / "keras.weights.h5")
    fresh = _registry_model(name, **model)
    fresh.load_weights(str(tmp_path / "fast.weights.h5"))
    for a, b in zip(fresh.variables, net.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _Computed(keras.layers.Layer):
    """Saves a value it computes, not a variable: a replay could not know it."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w

    def save_own_variables(self, store):
        store["0"] = self.w
        store["1"] = np.asarray(self.w.numpy() * 2.0)

    def load_own_variables(self, store):
        self.w.assign(store["0"])


def test_a_layer_that_saves_computed_values_is_saved_by_keras(tmp_path):
    inputs = keras.Input((3,))
    net = keras.Model(inputs, _Computed()(inputs))
    writer = checkpoints.WeightsWriter(net)
    writer.write(str(tmp_path / "a.weights.h5"))
    assert writer._plan is None
    net.save_weights(str(tmp_path / "b.weights.h5"))
    assert _contents(tmp_path / "a.weights.h5") == _contents(tmp_path / "b.weights.h5")
