"""Batch norm across two logical CPU replicas: sync, per-replica and ghost, and stats syncing."""

import numpy as np
import pytest
import tensorflow as tf


def _split_cpu(num_replicas):
    """Splits the CPU into logical devices unless TensorFlow already initialised them."""
    try:
        from tfplaybook.training.strategy import split_cpu
    except ImportError:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas
            )
        except RuntimeError:  # "cannot be modified after being initialized": keep the split.
            pass
    else:
        try:
            split_cpu(num_replicas)
        except ValueError:  # ConfigError: initialised with fewer devices; the tests skip.
            pass
    return len(tf.config.list_logical_devices("CPU"))


# Must run before any TensorFlow op, hence at import time (pytest imports test modules first).
_NUM_CPUS = _split_cpu(2)

import keras  # noqa: E402  (after the CPU split above)

from tfplaybook.training import batchnorm  # noqa: E402
from tfplaybook.training import bn_check  # noqa: E402

pytestmark = pytest.mark.skipif(_NUM_CPUS < 2, reason="needs 2 logical CPU devices")

EPS = 1e-3


@pytest.fixture(scope="module")
def strategy():
    # The process-wide strategy: a second MirroredStrategy over the same devices would reuse
    # collective keys of the training tests.
    from tfplaybook.training.strategy import get_strategy

    return get_strategy("mirrored", "local", 2)


def _distribute(strategy, parts):
    """A per-replica value whose replica r holds parts[r]."""
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group])
    )


def _local(strategy, value):
    return [t.numpy() for t in strategy.experimental_local_results(value)]


def _forward(strategy, layer, parts):
    """One training-mode call of `layer` on each replica's part; returns the outputs per replica."""
    run = tf.function(lambda x: strategy.run(lambda t: layer(t, training=True), args=(x,)))
    return _local(strategy, run(_distribute(strategy, parts)))


def _ghost_by_hand(x, v, gamma=1.0, beta=0.0):
    """Numpy ghost batch norm (channels last): outputs, group-averaged mean and variance."""
    groups = x.reshape((-1, v) + x.shape[1:])
    axes = tuple(i for i in range(1, groups.ndim - 1))
    mean = groups.mean(axis=axes, keepdims=True)
    var = groups.var(axis=axes, keepdims=True)
    out = (groups - mean) / np.sqrt(var + EPS) * gamma + beta
    return out.reshape(x.shape), mean.mean(axis=0).ravel(), var.mean(axis=0).ravel()


def test_make_batch_norm_modes_and_errors():
    sync = batchnorm.make_batch_norm("sync")
    per_replica = batchnorm.make_batch_norm("per_replica")
    ghost = batchnorm.make_batch_norm("ghost", virtual_batch_size=16)
    assert isinstance(sync, keras.layers.BatchNormalization) and sync.synchronized
    assert isinstance(per_replica, keras.layers.BatchNormalization)
    assert not per_replica.synchronized
    assert isinstance(ghost, batchnorm.GhostBatchNormalization) and ghost.virtual_batch_size == 16
    assert [batchnorm.batch_norm_mode(x) for x in (sync, per_replica, ghost)] == [
        "sync",
        "per_replica",
        "ghost",
    ]
    with pytest.raises(ValueError, match=r"'layer'.*sync, per_replica, ghost"):
        batchnorm.make_batch_norm("layer")
    for bad in (0, 2.5, True, "64"):
        with pytest.raises(ValueError, match=f"must be a positive integer, got {bad!r}"):
            batchnorm.make_batch_norm("ghost", virtual_batch_size=bad)


def test_sync_batch_norm_equals_single_device_on_global_batch(strategy):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 3, 3, 4)) * [1, 2, 3, 4] + [0, 5, -5, 10]).astype("float32")
    x[4:] += 3.0  # The replicas' halves differ, so per-replica statistics would not match.
    with strategy.scope():
        bn = batchnorm.make_batch_norm("sync", momentum=0.5)
        bn.build(x.shape)
    out = np.concatenate(_forward(strategy, bn, [x[:4], x[4:]]))

    single = keras.layers.BatchNormalization(momentum=0.5)
    expected = single(x, training=True).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)
    for name in ("moving_mean", "moving_variance"):
        for copy in _local(strategy, getattr(bn, name).value):
            np.testing.assert_allclose(copy, getattr(single, name).numpy(), rtol=1e-5)
    # Guard: normalising each half on its own gives visibly different outputs.
    half = keras.layers.BatchNormalization()(x[:4], training=True).numpy()
    assert np.max(np.abs(half - expected[:4])) > 0.5


def test_ghost_statistics_equal_each_virtual_batch_by_hand(strategy):
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(8, 2, 2, 3)).astype("float32") * s + s for s in (1.0, 3.0)]
    with strategy.scope():
        bn = batchnorm.make_batch_norm(
            "ghost",
            virtual_batch_size=4,
            momentum=0.75,
            gamma_initializer=keras.initializers.Constant(2.0),
            beta_initializer=keras.initializers.Constant(0.5),
        )
        bn.build(parts[0].shape)
    outputs = _forward(strategy, bn, parts)
    moving_means = _local(strategy, bn.moving_mean.value)
    moving_vars = _local(strategy, bn.moving_variance.value)
    for r, x in enumerate(parts):
        expected, mean, var = _ghost_by_hand(x, 4, gamma=2.0, beta=0.5)
        np.testing.assert_allclose(outputs[r], expected, atol=1e-4)
        np.testing.assert_allclose(moving_means[r], 0.25 * mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(moving_vars[r], 0.75 + 0.25 * var, rtol=1e-5)
    # Inference uses the moving statistics (of each replica's copy).
    infer = tf.function(lambda x: strategy.run(lambda t: bn(t, training=False), args=(x,)))
    inferred = _local(strategy, infer(_distribute(strategy, parts)))
    for r, x in enumerate(parts):
        expected = (x - moving_means[r]) / np.sqrt(moving_vars[r] + EPS) * 2.0 + 0.5
        np.testing.assert_allclose(inferred[r], expected, atol=1e-4)


def test_ghost_uses_exactly_virtual_batch_when_replica_batch_is_much_larger(strategy):
    # Checklist 94: 8 virtual batches of 4 per replica, each from its own distribution.
    rng = np.random.default_rng(2)
    v, groups = 4, 8
    offsets = np.repeat(np.arange(groups) * 10.0, v)[:, None]
    scales = np.repeat(np.arange(1, groups + 1), v)[:, None]
    parts = [
        (rng.normal(size=(v * groups, 5)) * scales + offsets + r).astype("float32") for r in (0, 1)
    ]
    with strategy.scope():
        bn = batchnorm.make_batch_norm("ghost", virtual_batch_size=v)
        bn.build((None, 5))
    outputs = _forward(strategy, bn, parts)
    for r, x in enumerate(parts):
        grouped = outputs[r].reshape(groups, v, 5)
        # Normalised within each group of v: a whole-batch normalisation would leave offsets.
        np.testing.assert_allclose(grouped.mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(grouped.var(axis=1), 1.0, atol=0.02)
        np.testing.assert_allclose(outputs[r], _ghost_by_hand(x, v)[0], atol=1e-4)


def test_ghost_rejects_replica_batch_not_a_multiple(strategy):
    with strategy.scope():
        bn = batchnorm.make_batch_norm("ghost", virtual_batch_size=4, name="gbn")
        bn.build((None, 3))
    parts = [np.zeros((6, 3), "float32")] * 2
    message = r"'gbn': per-replica batch 6 is not a multiple of virtual_batch_size=4.*4, 8, 12"
    with pytest.raises(ValueError, match=message):
        _forward(strategy, bn, parts)
    with pytest.raises(ValueError, match=r"virtual_batch_size in \[1, 2, 3, 6\]"):
        bn(np.zeros((6, 3), "float32"), training=True)
    dynamic = tf.function(
        lambda x: bn(x, training=True), input_signature=[tf.TensorSpec([None, 3], tf.float32)]
    )
    with pytest.raises(ValueError, match="static per-replica batch size"):
        dynamic.get_concrete_function()


def test_ghost_under_xla_matches_eager():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(16, 3, 3, 2)).astype("float32") * 2.0 + 1.0)
    bn = batchnorm.GhostBatchNormalization(virtual_batch_size=4, momentum=0.5)
    bn.build(x.shape)
    weights = tf.constant(rng.normal(size=(16, 3, 3, 2)).astype("float32"))

    def step(x):
        with tf.GradientTape() as tape:
            y = bn(x, training=True)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, bn.trainable_variables)

    y_xla, grads_xla = tf.function(step, jit_compile=True)(x)
    mean_after_xla = bn.moving_mean.numpy()
    y_eager, grads_eager = step(x)
    expected, mean, _ = _ghost_by_hand(x.numpy(), 4)
    np.testing.assert_allclose(y_xla.numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(mean_after_xla, 0.5 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_eager.numpy(), y_xla.numpy(), atol=1e-5)
    for g_xla, g_eager in zip(grads_xla, grads_eager):
        np.testing.assert_allclose(g_xla.numpy(), g_eager.numpy(), rtol=1e-4, atol=1e-4)


def test_ghost_config_and_saved_model_round_trip(tmp_path):
    layer = batchnorm.make_batch_norm("ghost", virtual_batch_size=8, momentum=0.9, name="gbn")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, batchnorm.GhostBatchNormalization)
    assert clone.get_config() == layer.get_config()

    inputs = keras.Input((3,))
    model = keras.Model(inputs, batchnorm.make_batch_norm("ghost", virtual_batch_size=2)(inputs))
    model.layers[-1].moving_mean.assign([1.0, -2.0, 3.0])
    x = np.arange(12, dtype="float32").reshape(4, 3)
    path = str(tmp_path / "ghost.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_allclose(loaded.layers[-1].moving_mean.numpy(), [1.0, -2.0, 3.0])


def _tiny_model(mode):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6)(inputs)
    h = batchnorm.make_batch_norm(mode, virtual_batch_size=4, momentum=0.8, name="bn")(h)
    h = keras.layers.Activation("relu")(h)
    return keras.Model(inputs, keras.layers.Dense(1)(h))


@pytest.mark.parametrize("mode", batchnorm.BATCH_NORM_MODES)
def test_moving_statistics_identical_and_averaged_after_sync(strategy, mode, tmp_path):
    rng = np.random.default_rng(4)
    replica_batch, global_batch = 8, 16
    with strategy.scope():
        model = _tiny_model(mode)
        optimizer = keras.optimizers.SGD(learning_rate=0.05)
        optimizer.build(model.trainable_variables)
    bn = model.get_layer("bn")
    initial_kernel = model.trainable_variables[0].numpy()

    @tf.function
    def train_step(x, y):
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=-1)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return strategy.run(step_fn, args=(x, y))

    for _ in range(3):
        # Different data per replica (replica 1 shifted and wider): per-replica stats differ.
        xs = [
            rng.normal(size=(replica_batch, 4)).astype("float32") * (1 + 2 * r) + 3 * r
            for r in (0, 1)
        ]
        ys = [x.sum(axis=1, keepdims=True) for x in xs]
        train_step(_distribute(strategy, xs), _distribute(strategy, ys))

    kernels = _local(strategy, model.trainable_variables[0].value)
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert np.max(np.abs(kernels[0] - initial_kernel)) > 1e-4  # The optimizer really stepped.

    statistics = (bn.moving_mean, bn.moving_variance)
    before = [_local(strategy, v.value) for v in statistics]
    expected = [np.mean(copies, axis=0) for copies in before]
    if mode == "sync":
        for copies in before:
            np.testing.assert_array_equal(copies[0], copies[1])
    else:
        for copies, mean in zip(before, expected):
            assert np.max(np.abs(copies[0] - copies[1])) > 0.1  # Diverged without syncing.
            assert np.max(np.abs(copies[0] - mean)) > 0.05  # Replica 0's copy is not the mean.

    synced = batchnorm.sync_moving_statistics(model, strategy)
    assert synced == (0 if mode == "sync" else 2)
    for variable, mean in zip(statistics, expected):
        copies = _local(strategy, variable.value)
        np.testing.assert_array_equal(copies[0], copies[1])
        np.testing.assert_allclose(copies[0], mean, rtol=1e-6, atol=1e-7)
    # What a checkpoint saves (checklist 94: not replica 0's copy).
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    reader = tf.train.load_checkpoint(path)
    saved = [reader.get_tensor(k) for k, _ in tf.train.list_variables(path) if "moving_mean" in k]
    assert len(saved) == 1
    np.testing.assert_allclose(saved[0], expected[0], rtol=1e-6, atol=1e-7)


def test_sync_moving_statistics_without_distribution_is_a_no_op():
    model = _tiny_model("per_replica")
    assert batchnorm.sync_moving_statistics(model, tf.distribute.get_strategy()) == 0


def test_bn_report_shows_per_replica_statistics_and_changes_nothing(strategy):
    rng = np.random.default_rng(5)
    with strategy.scope():
        inputs = keras.Input((3,))
        h = batchnorm.make_batch_norm("per_replica", name="bn_in")(inputs)
        h = keras.layers.Dense(4)(h)
        h = batchnorm.make_batch_norm("ghost", virtual_batch_size=4, name="bn_ghost")(h)
        h = keras.layers.Dropout(0.5)(h)
        h = batchnorm.make_batch_norm("sync", name="bn_sync")(keras.layers.Dense(2)(h))
        model = keras.Model(inputs, h)
    parts = [(rng.normal(size=(8, 3)) * (1 + r) + 5 * r).astype("float32") for r in (0, 1)]
    batch = (_distribute(strategy, parts), _distribute(strategy, [np.zeros((8, 1), "float32")] * 2))
    _forward(strategy, model, parts)  # Moving statistics now differ across replicas.
    state = [_local(strategy, v.value) for v in model.non_trainable_variables]

    report = bn_check.bn_report(model, strategy, batch)

    for variable, copies in zip(model.non_trainable_variables, state):  # Seeds too.
        for now, then in zip(_local(strategy, variable.value), copies):
            np.testing.assert_array_equal(now, then)
    assert report["num_replicas"] == 2 and report["replica_batch_size"] == 8
    assert not report["moving_statistics_in_sync"]
    layers = {e["name"]: e for e in report["layers"]}
    assert [layers[n]["statistics_examples"] for n in ("bn_in", "bn_ghost", "bn_sync")] == [
        8,
        4,
        16,
    ]
    bn_in = layers["bn_in"]
    for r, x in enumerate(parts):
        np.testing.assert_allclose(bn_in["batch_mean"][r], x.mean(axis=0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(bn_in["batch_variance"][r], x.var(axis=0), rtol=1e-5)
        np.testing.assert_allclose(
            bn_in["moving_mean"][r], _local(strategy, model.get_layer("bn_in").moving_mean.value)[r]
        )
    assert bn_in["batch_mean_spread"] > 3.0 and bn_in["moving_mean_spread"] > 0.03
    assert layers["bn_sync"]["batch_mean_spread"] < 1e-6
    assert layers["bn_sync"]["moving_mean_spread"] == 0.0

    lines = bn_check.format_bn_report(report)
    assert len(lines) == 1 + 5 * 3 and "identical across replicas: no" in lines[0]
    assert any("bn_ghost [ghost]: statistics over 4 examples" in line for line in lines)

    batchnorm.sync_moving_statistics(model, strategy)
    assert bn_check.bn_report(model, strategy, batch)["moving_statistics_in_sync"]
