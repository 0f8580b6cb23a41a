"""The tf.data input pipeline: TFDS datasets, the embedded digits default and synthetic images.

Training data is sharded per host through the input context, cached, shuffled with a seed that
differs per host (checklist 95), mapped in parallel, batched with `drop_remainder` (static shapes
for TPUs) and prefetched (checklist 80). Evaluation covers the split exactly once: each host's shard
is padded to the same whole number of batches with examples of weight 0, so padding never biases
a metric (checklist 86), and the evaluation batch is at least the training batch (checklist 83).
"""

import dataclasses
import difflib
import math
import os
import time

import numpy as np
import tensorflow as tf

from tfplaybook.config import ConfigError

AUTOTUNE = tf.data.AUTOTUNE
EMBEDDED = {"digits": "tfplaybook_digits"}
KINDS = ("digits", "synthetic", "tfds:NAME")


@dataclasses.dataclass
class DataSpec:
    """What the model and the loop need to know about a dataset."""

    name: str
    image_shape: tuple
    num_classes: int
    num_train_examples: int
    num_eval_examples: int
    builder: object = None  # A TFDS builder, or None for synthetic data.
    synthetic: dict = None  # Generated arrays for synthetic data.


def default_data_dir():
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets"
    )


def _tfds_builder(name, data_dir, download):
    import tensorflow_datasets as tfds

    if name == EMBEDDED["digits"]:
        from tfplaybook import digits_builder  # noqa: F401  (defining the class registers it)
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except Exception as e:  # TFDS raises several types for unknown names.
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name, known, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"TFDS dataset {name!r} does not exist ({type(e).__name__}){hint} "
            f"Allowed: {', '.join(KINDS)}"
        ) from None
    if not builder.is_prepared():
        if name == EMBEDDED["digits"] or download:
            try:
                builder.download_and_prepare()
            except Exception:
                # Two workers may prepare at once; one wins the rename. Fail only if nobody did.
                builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
                if not builder.is_prepared():
                    raise
        else:
            raise ConfigError(
                f"TFDS dataset {name!r} is not prepared in {data_dir}; prepare it there, point "
                "--data_dir at a prepared copy, or pass --download to fetch it"
            )
    return builder


def get_data_spec(data_config, seed=0, download=False):
    """Resolves `data.dataset` to a DataSpec; raises ConfigError on an unknown or unprepared one."""
    dataset = data_config["dataset"]
    data_dir = data_config.get("data_dir") or default_data_dir()
    if dataset == "synthetic":
        return _synthetic_spec(data_config, seed)
    if dataset in EMBEDDED:
        name = EMBEDDED[dataset]
    elif dataset.startswith("tfds:") and len(dataset) > 5:
        name = dataset[5:]
    else:
        raise ConfigError(f"dataset {dataset!r} is not one of {', '.join(KINDS)}")
    builder = _tfds_builder(name, data_dir, download)
    info = builder.info
    for key in ("train_split", "eval_split"):
        if data_config[key] not in info.splits:
            raise ConfigError(
                f"data.{key}={data_config[key]!r} is not a split of {name}; "
                f"splits: {', '.join(sorted(info.splits.keys()))}"
            )
    image_key, label_key = info.supervised_keys
    return DataSpec(
        name=name,
        image_shape=tuple(info.features[image_key].shape),
        num_classes=info.features[label_key].num_classes,
        num_train_examples=info.splits[data_config["train_split"]].num_examples,
        num_eval_examples=info.splits[data_config["eval_split"]].num_examples,
        builder=builder,
    )


def _synthetic_spec(data_config, seed):
    """Learnable synthetic images: a class-dependent mean plus noise, generated in memory."""
    shape = tuple(data_config.get("image_shape", (32, 32, 3)))
    num_classes = int(data_config.get("num_classes", 10))
    num_train = int(data_config.get("num_train_examples", 2048))
    num_eval = int(data_config.get("num_eval_examples", 512))
    rng = np.random.RandomState(seed)
    means = rng.uniform(0, 255, size=(num_classes,) + shape)

    def make(n):
        labels = rng.randint(0, num_classes, size=n)
        images = np.clip(means[labels] + rng.normal(0, 40, size=(n,) + shape), 0, 255)
        return images.astype(np.uint8), labels.astype(np.int64)

    arrays = {"train": make(num_train), "eval": make(num_eval)}
    return DataSpec("synthetic", shape, num_classes, num_train, num_eval, synthetic=arrays)


def _raw(spec, data_config, which, input_context, shuffle_seed):
    """Unbatched (image, label) examples of one split, sharded for this input pipeline."""
    pipelines = input_context.num_input_pipelines if input_context else 1
    index = input_context.input_pipeline_id if input_context else 0
    if spec.synthetic is not None:
        images, labels = spec.synthetic["train" if which == "train" else "eval"]
        return tf.data.Dataset.from_tensor_slices((images, labels)).shard(pipelines, index)
    import tensorflow_datasets as tfds

    split = data_config["train_split" if which == "train" else "eval_split"]
    num_shards = len(spec.builder.info.splits[split].file_instructions)
    by_file = which == "train" and pipelines > 1 and num_shards >= pipelines
    read_config = tfds.ReadConfig(
        input_context=input_context if by_file else None,
        shuffle_seed=shuffle_seed,
        try_autocache=False,
    )
    ds = spec.builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=which == "train",
        read_config=read_config,
    )
    # Few files (the embedded digits have one): shard by example instead of by file.
    return ds if by_file or pipelines == 1 else ds.shard(pipelines, index)


def _preprocess(image, label):
    return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int32)


def _augment(image, label):
    shape = tf.shape(image)
    padded = tf.image.pad_to_bounding_box(image, 4, 4, shape[0] + 8, shape[1] + 8)
    image = tf.image.random_crop(padded, shape)
    return tf.image.random_flip_left_right(image), label


def _slow_map(milliseconds):
    """A deliberately costly map (a Python sleep) to demonstrate an input-bound pipeline."""

    def sleep(x):
        time.sleep(milliseconds / 1000.0)
        return x

    def fn(image, label):
        slowed = tf.numpy_function(sleep, [image], image.dtype, stateful=True)
        return tf.ensure_shape(slowed, image.shape), label

    return fn


def _options(data_config):
    options = tf.data.Options()
    options.deterministic = bool(data_config.get("deterministic", True))
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def train_dataset(spec, data_config, global_batch_size, seed, input_context=None):
    """The repeated, shuffled, batched training dataset for one input pipeline.

    Args:
      spec: the DataSpec.
      data_config: the config's `data` section.
      global_batch_size: the batch over all replicas.
      seed: the shuffle seed for this host (differs per host, checklist 95).
      input_context: a tf.distribute.InputContext, or None for a single pipeline.
    """
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    ds = _raw(spec, data_config, "train", input_context, seed)
    ds = ds.map(_preprocess, num_parallel_calls=AUTOTUNE)
    if data_config.get("cache", True):
        ds = ds.cache()
    ds = ds.shuffle(
        data_config.get("shuffle_buffer", 2048), seed=seed, reshuffle_each_iteration=True
    )
    ds = ds.repeat()
    if data_config.get("augment", False):
        ds = ds.map(_augment, num_parallel_calls=AUTOTUNE)
    if data_config.get("slow_map_ms", 0) > 0:
        ds = ds.map(_slow_map(data_config["slow_map_ms"]))
    ds = ds.batch(batch, drop_remainder=True)
    return ds.prefetch(AUTOTUNE).with_options(_options(data_config))


def eval_batch_size(data_config, train_batch_size, replicas):
    """The global evaluation batch: configured, else the training batch (checklist 83)."""
    size = int(data_config.get("eval_batch_size") or train_batch_size)
    if size < train_batch_size:
        raise ConfigError(
            f"data.eval_batch_size={size} is below batch_size={train_batch_size}; evaluation "
            "keeps no activations for backprop, so use at least the training batch (checklist 83)"
        )
    return int(math.ceil(size / replicas) * replicas)


def eval_steps(num_examples, global_eval_batch, num_pipelines):
    """Steps so every pipeline's shard fits in the same whole number of global batches."""
    per_pipeline_examples = int(math.ceil(num_examples / num_pipelines))
    per_pipeline_batch = global_eval_batch // num_pipelines
    return max(1, int(math.ceil(per_pipeline_examples / per_pipeline_batch)))


def eval_dataset(spec, data_config, global_eval_batch, steps, input_context=None):
    """One pass over the evaluation split as (image, label, weight), padded with weight 0.

    Every pipeline yields exactly `steps` batches per local replica, so all replicas and hosts run
    the same number of steps and each real example is counted once.
    """
    pipelines = input_context.num_input_pipelines if input_context else 1
    batch = (
        input_context.get_per_replica_batch_size(global_eval_batch)
        if input_context
        else global_eval_batch
    )
    local_replicas = global_eval_batch // pipelines // batch
    total = steps * batch * local_replicas
    ds = _raw(spec, data_config, "eval", input_context, None)
    ds = ds.map(_preprocess, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda x, y: (x, y, tf.constant(1.0, tf.float32)))
    pad = tf.data.Dataset.from_tensors(
        (tf.zeros(spec.image_shape, tf.float32), tf.constant(0, tf.int32), tf.constant(0.0))
    ).repeat()
    ds = ds.concatenate(pad).take(total)
    ds = ds.cache() if data_config.get("cache", True) else ds
    return (
        ds.batch(batch, drop_remainder=True).prefetch(AUTOTUNE).with_options(_options(data_config))
    )


def synthetic_batch_dataset(spec, global_batch_size, input_context=None):
    """One batch held in memory and repeated: the input pipeline's upper bound (checklist 8)."""
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    images = tf.random.stateless_uniform((batch,) + tuple(spec.image_shape), seed=(1, 2))
    labels = tf.random.stateless_uniform(
        (batch,), seed=(3, 4), maxval=spec.num_classes, dtype=tf.int32
    )
    return tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(AUTOTUNE)
