"""The input pipeline: per-host sharding and seeds (checklist 95), exact evaluation padding."""

import numpy as np
import pytest
import tensorflow as tf

from tfplaybook import config as config_lib
from tfplaybook.training import data as data_lib
from tfplaybook.training import datasets
from tfplaybook.training import task as task_lib

REGISTRY = task_lib.Task()
DIGITS = task_lib.complete_config(
    {
        "batch_size": 32,
        "max_train_steps": 10,
        "data": {"dataset": "digits"},
        "model": {"name": "cnn"},
    }
)


def digits_spec(**data):
    config = task_lib.merge(DIGITS, {"data": data})
    return data_lib.get_data_spec(config, REGISTRY), config


def host_context(index, hosts=2):
    return tf.distribute.InputContext(
        num_input_pipelines=hosts, input_pipeline_id=index, num_replicas_in_sync=hosts
    )


def labels_and_images(ds, batches):
    out = []
    for images, labels, _ in ds.take(batches):
        out.append((images.numpy().reshape(len(labels), -1), labels.numpy()))
    return out


def test_each_host_reads_its_own_shard_in_its_own_order():
    spec, _ = digits_spec()
    # One pass over each host's shard: 1438 training examples, 719 per host, batch 32 per host.
    per_host = []
    for host in (0, 1):
        ds = data_lib.train_dataset(
            spec, DIGITS, 64, seed=10 + 7919 * host, input_context=host_context(host)
        )
        batches = labels_and_images(ds, 22)
        per_host.append(np.concatenate([b[0] for b in batches]))
    rows = [set(map(bytes, x.astype(np.uint8))) for x in (per_host[0] * 255, per_host[1] * 255)]
    # Disjoint shards: the hosts never see the same example in an epoch (digits has duplicates
    # of identical images only rarely, so allow a handful of coincidences).
    assert len(rows[0] & rows[1]) < 10
    assert not np.array_equal(per_host[0][:32], per_host[1][:32])


def test_shuffle_is_seeded():
    spec, _ = digits_spec()

    def first(seed):
        ds = data_lib.train_dataset(spec, DIGITS, 32, seed=seed)
        return next(iter(ds))[1].numpy()

    assert np.array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))


@pytest.mark.parametrize("hosts", [1, 2, 3])
def test_eval_pads_every_host_to_the_same_steps_and_counts_each_example_once(hosts):
    spec, _ = digits_spec()
    global_batch = 48 * hosts
    steps = data_lib.eval_steps(spec.num_eval_examples, global_batch, hosts)
    total_weight, labels_seen = 0.0, []
    for host in range(hosts):
        ctx = host_context(host, hosts) if hosts > 1 else None
        ds = data_lib.eval_dataset(spec, DIGITS, global_batch, steps, ctx)
        batches = list(ds)
        assert len(batches) == steps  # Same number of steps on every host.
        for images, labels, weights in batches:
            assert images.shape[0] == global_batch // hosts  # Static shapes.
            total_weight += float(tf.reduce_sum(weights))
            labels_seen.extend(labels.numpy()[weights.numpy() > 0].tolist())
    assert total_weight == spec.num_eval_examples
    builder = datasets._tfds_builder(DIGITS)
    reference = [int(y) for _, y in builder.as_dataset(split="test", as_supervised=True)]
    assert sorted(labels_seen) == sorted(reference)


def test_synthetic_data_is_learnable_and_deterministic():
    config = task_lib.complete_config(
        {
            "batch_size": 8,
            "max_train_steps": 10,
            "seed": 1,
            "model": {"name": "cnn"},
            "data": {
                "dataset": "synthetic",
                "image_shape": [8, 8, 3],
                "num_classes": 4,
                "num_train_examples": 64,
                "num_eval_examples": 32,
            },
        }
    )
    spec = data_lib.get_data_spec(config, REGISTRY)
    assert spec.feature_shape == (8, 8, 3) and spec.num_classes == 4
    assert spec.num_train_examples == 64 and spec.num_eval_examples == 32

    def arrays():
        examples = list(datasets.get_dataset("synthetic").make("train", config))
        return np.stack([x.numpy() for x, _ in examples]), np.array([int(y) for _, y in examples])

    (images, labels), (again, _) = arrays(), arrays()
    np.testing.assert_array_equal(images, again)
    means = np.stack([images[labels == c].mean(0) for c in np.unique(labels)])
    assert np.std(means) > 20 / 255  # Class means differ: the labels can be learned.


def test_unknown_split_is_refused_with_the_known_ones():
    with pytest.raises(config_lib.ConfigError, match="splits: test, train"):
        digits_spec(eval_split="validation")


def test_in_memory_batches_are_the_first_real_batch_repeated():
    spec, config = digits_spec()
    ds = data_lib.in_memory_dataset(spec, config, 16)
    first, second = list(ds.take(2))
    real = next(iter(data_lib.train_dataset(spec, config, 16, config["seed"])))
    for a, b, c in zip(first, second, real):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy())


# ------------------------------------------------ the training split held as tensors (numbered)

N_NUMBERED = 50


def _numbered(split, config):
    """Example i has features all equal to i (shape [2, 2, 1]) and label i."""
    n = N_NUMBERED if split == "train" else 10
    i = tf.range(n)
    features = tf.cast(tf.reshape(tf.repeat(i, 4), [n, 2, 2, 1]), tf.float32)
    return tf.data.Dataset.from_tensor_slices((features, i))


def numbered_spec(make=_numbered, **data):
    task = task_lib.Task(make_dataset=make)
    config = task_lib.complete_config(
        {"batch_size": 8, "max_train_steps": 10, "data": data, "model": {"name": "cnn"}}, task
    )
    return data_lib.get_data_spec(config, task), config


def labels_of(ds, batches):
    out = []
    for features, labels, weights in ds.take(batches):
        np.testing.assert_array_equal(features.numpy()[:, 0, 0, 0], labels.numpy())
        assert weights.numpy().tolist() == [1.0] * len(labels)
        out.extend(labels.numpy().tolist())
    return out


def test_held_tensors_give_every_epoch_its_own_permutation():
    spec, config = numbered_spec()
    assert data_lib._fits_as_tensors(spec, config["data"], None)
    # 50 examples, batch 10: five batches an epoch; three epochs.
    seen = labels_of(data_lib.train_dataset(spec, config, 10, seed=5), 15)
    epochs = [seen[k : k + N_NUMBERED] for k in range(0, 3 * N_NUMBERED, N_NUMBERED)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(N_NUMBERED))  # Each example once an epoch.
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(N_NUMBERED))
    again = labels_of(data_lib.train_dataset(spec, config, 10, seed=5), 15)
    assert again == seen  # Seeded.
    assert labels_of(data_lib.train_dataset(spec, config, 10, seed=6), 5) != seen[:50]


def test_held_tensors_batches_run_across_epochs_and_keep_order_without_shuffle():
    spec, config = numbered_spec(shuffle_buffer=1)
    # Batch 8 over 50 examples: batches cross the epoch boundary and never come out short.
    seen = labels_of(data_lib.train_dataset(spec, config, 8, seed=5), 13)
    assert seen == [k % N_NUMBERED for k in range(13 * 8)]


def test_held_tensors_shard_per_host():
    spec, config = numbered_spec()
    per_host = []
    for host in (0, 1):
        ctx = host_context(host)
        assert data_lib._fits_as_tensors(spec, config["data"], ctx)
        ds = data_lib.train_dataset(spec, config, 10, seed=1 + host, input_context=ctx)
        per_host.append(labels_of(ds, 5))  # 25 examples a host, batch 5 a host: one epoch.
    assert set(per_host[0]).isdisjoint(per_host[1])
    assert sorted(per_host[0] + per_host[1]) == list(range(N_NUMBERED))


@pytest.mark.parametrize(
    "data", [{"cache": False}, {"augment": True}, {"slow_map_ms": 1}], ids=lambda d: next(iter(d))
)
def test_streaming_when_the_split_cannot_be_held(data):
    spec, config = numbered_spec(**data)
    assert not data_lib._fits_as_tensors(spec, config["data"], None)
    # The streaming pipeline gives the same examples, each once an epoch.
    if not data.get("augment"):
        assert sorted(labels_of(data_lib.train_dataset(spec, config, 10, seed=5), 5)) == list(
            range(N_NUMBERED)
        )


def _strings(split, config):
    return tf.data.Dataset.from_tensor_slices((tf.constant(["a", "b"] * 5), tf.range(10)))


def _ragged(split, config):
    ds = tf.data.Dataset.range(1, 11).map(lambda n: (tf.ones([n], tf.float32), n))
    return ds


def test_streaming_for_strings_unknown_shapes_and_splits_over_the_cap(monkeypatch):
    for make in (_strings, _ragged):
        spec, config = numbered_spec(make)
        assert not data_lib._fits_as_tensors(spec, config["data"], None)
    spec, config = numbered_spec()
    # 50 examples of 4 float32 features, an int32 label and a float32 weight: 1,200 bytes.
    monkeypatch.setattr(data_lib, "MAX_TENSOR_BYTES", 1200)
    assert data_lib._fits_as_tensors(spec, config["data"], None)
    monkeypatch.setattr(data_lib, "MAX_TENSOR_BYTES", 1199)
    assert not data_lib._fits_as_tensors(spec, config["data"], None)


def test_a_held_training_pipeline_is_shared_and_each_iterator_starts_it_afresh():
    data_lib.forget_shared()
    spec, config = numbered_spec()

    def build(seed=5):
        return lambda: data_lib.train_dataset(spec, config, 10, seed=seed)

    first = data_lib.shared_train_pipeline(spec, config, 5, ("strategy", 10), build())
    iterator = iter(first)
    for _ in range(7):  # An earlier trial's iterator, part of the way into its second epoch.
        next(iterator)
    again = data_lib.shared_train_pipeline(spec, config, 5, ("strategy", 10), build())
    assert again is first
    # A later trial's iterator gives exactly the batches of a fresh build.
    assert labels_of(again, 15) == labels_of(build()(), 15)
    assert data_lib.shared_train_pipeline(spec, config, 6, ("strategy", 10), build(6)) is not first
    assert data_lib.shared_train_pipeline(spec, config, 5, ("strategy", 20), build()) is not first
    # A streaming split's shuffle buffer would draw another order per iterator: never shared.
    spec, config = numbered_spec(cache=False)
    streams = [
        data_lib.shared_train_pipeline(spec, config, 5, ("strategy", 10), build()) for _ in "ab"
    ]
    assert streams[0] is not streams[1]
    data_lib.forget_shared()


def test_a_shipped_dataset_is_read_once_whatever_the_model_and_a_users_own_per_model():
    spec, config = digits_spec()
    wider = task_lib.merge(config, {"model": {"width": 64}, "optimizer": {"learning_rate": 0.5}})
    assert data_lib.get_data_spec(wider, REGISTRY) is spec
    # What the shipped maker does read still gives its own spec.
    assert data_lib.get_data_spec(task_lib.merge(config, {"seed": 3}), REGISTRY) is not spec
    assert digits_spec(shuffle_buffer=7)[0] is not spec
    # A task's own make_dataset may read the model section: one spec per model config.
    own, config = numbered_spec()
    task = task_lib.Task(make_dataset=_numbered)
    assert data_lib.get_data_spec(config, task) is own
    wider = task_lib.merge(config, {"model": {"width": 64}})
    assert data_lib.get_data_spec(wider, task) is not own
