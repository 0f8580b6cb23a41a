"""The tf.data input pipeline around any task's `make_dataset` (tfplaybook.training.task,
docs/tasks.md).

`make_dataset(split, config[, input_context])` gives unbatched `(features, label)` or
`(features, label, weight)` examples; everything else happens here, the same for the shipped
datasets (tfplaybook.training.datasets) and a user's own. Training data is sharded per host (by the
function itself when it takes `input_context`, else here by example), cached, shuffled with a seed
that differs per host (checklist 95), batched with `drop_remainder` (static shapes for TPUs) and
prefetched (checklist 80). Evaluation covers the split exactly once: each host's shard is padded
to the same whole number of batches with examples of weight 0, so padding never biases a metric
(checklist 86), and the evaluation batch is at least the training batch (checklist 83). The
evaluation split is always sharded here, never by the function, so that padding stays exact.

The trials of one process share what does not change between them (`shared`): the data spec, the
cached training examples under each trial's own shuffle, and the evaluation passes with their
iterator (tfplaybook.training.trainer), so a study's second trial reads no file its first one read.
"""

import atexit
import collections
import json
import math
import time

import numpy as np
import tensorflow as tf

from tfplaybook.config import ConfigError
from tfplaybook.training import datasets

AUTOTUNE = tf.data.AUTOTUNE
SPLITS = ("train", "eval")


class DataSpec:
    """What the model builder and the loop know about a task's data.

    Attributes:
      name: the dataset's name (`data.dataset`, or the experiment's make_dataset).
      element_spec: (features, label, weight) TensorSpecs of one unbatched example.
      num_train_examples: examples in the training split, or None when not known without a pass.
      num_eval_examples: examples in the evaluation split (exact evaluation needs the count).
      num_classes: classes of an integer label (`data.num_classes`, the dataset's own info, else
        max label + 1 over the training split, counted on first use); None for other labels.
    """

    def __init__(self, name, make, element_spec, num_train, num_eval, num_classes=None):
        self.name = name
        self.make = make
        self.element_spec = element_spec
        self.num_train_examples = num_train
        self.num_eval_examples = num_eval
        self._num_classes = num_classes
        self._config = None

    @property
    def features_spec(self):
        return self.element_spec[0]

    @property
    def label_spec(self):
        return self.element_spec[1]

    @property
    def feature_shape(self):
        """The shape of one example's features (they must be one tensor)."""
        if not isinstance(self.features_spec, tf.TensorSpec):
            raise ConfigError(
                f"the features of {self.name} are {type(self.features_spec).__name__}, not one "
                "tensor: this model needs a single feature tensor; write a build_model of your own"
            )
        return tuple(self.features_spec.shape)

    @property
    def num_classes(self):
        if (
            self._num_classes is None
            and self._config is not None
            and self.label_spec.dtype.is_integer
        ):
            ds = _read(self, self._config, "train")
            top = ds.map(lambda x, y, w: tf.cast(tf.reduce_max(y), tf.int64)).reduce(
                tf.constant(-1, tf.int64), tf.maximum
            )
            self._num_classes = int(top) + 1
        return self._num_classes

    def require_num_classes(self):
        if not self.num_classes:
            raise ConfigError(
                f"the labels of {self.name} are {self.label_spec.dtype.name}, not class ids: set "
                "data.num_classes or write a build_model of your own"
            )
        return self.num_classes


def _call(make, split, config, input_context=None):
    """(dataset, sharded): the function's dataset; sharded when it took `input_context`."""
    sharded = input_context is not None and datasets.accepts_input_context(make)
    ds = make(split, config, input_context=input_context) if sharded else make(split, config)
    if not isinstance(ds, tf.data.Dataset):
        raise ConfigError(
            f"make_dataset({split!r}, config) returned {type(ds).__name__}, expected a "
            "tf.data.Dataset of unbatched (features, label) or (features, label, weight)"
        )
    return ds, sharded


def _with_weight(ds, split):
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ConfigError(
            f"make_dataset({split!r}, config) yields {spec}; expected (features, label) or "
            "(features, label, weight) examples, unbatched"
        )
    if len(spec) == 3:
        return ds.map(lambda x, y, w: (x, y, tf.cast(w, tf.float32)))
    return ds.map(lambda x, y: (x, y, tf.constant(1.0, tf.float32)))


def _read(spec, config, split, input_context=None):
    """One pipeline's unbatched (features, label, weight) examples of `split`."""
    ds, sharded = _call(spec.make, split, config, input_context if split == "train" else None)
    pipelines = input_context.num_input_pipelines if input_context else 1
    if pipelines > 1 and not sharded:
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    return _with_weight(ds, split)


def _count(ds):
    count = int(ds.cardinality())
    if count >= 0:
        return count
    if count == tf.data.INFINITE_CARDINALITY:
        return None
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


# Keys that only steer training, evaluation or the study: trials that differ in them alone read
# the same data, so a study resolves (and counts) its dataset once, not once a trial.
_NOT_DATA = (
    "optimizer",
    "schedule",
    "ema_decay",
    "label_smoothing",
    "checkpoint_every_steps",
    "keep_best_checkpoints",
    "divergence_loss_factor",
    "eval_every_steps",
    "max_train_steps",
    "objective",
    "study",
    "metrics",
)
_SPECS = {}


def get_data_spec(config, task, download=False):
    """Resolves the task's data for `config`; raises ConfigError on data the trials cannot read.

    Memoised per process on the config keys the shipped maker reads (`datasets.config_keys`), or
    for a task's own maker on the config without the keys of `_NOT_DATA`: a study over the
    architecture reads a shipped dataset once, whatever its `model` section says.
    """
    make, describe = task.dataset(config)
    reads = datasets.config_keys(make)
    if reads is None:
        rest = {k: v for k, v in config.items() if k not in _NOT_DATA}
    else:
        rest = {k: config.get(k) for k in reads}
    key = (make, describe, json.dumps(rest, sort_keys=True, default=repr), bool(download))
    if key not in _SPECS:
        if len(_SPECS) >= 16:
            _SPECS.clear()
        _SPECS[key] = _resolve(make, describe, config, download)
    return _SPECS[key]


def _resolve(make, describe, config, download):
    info = describe(config, download) if describe else {}
    name = config["data"].get("dataset") or getattr(make, "__name__", "make_dataset")
    probe = DataSpec(name, make, None, None, None)
    eval_ds = _read(probe, config, "eval")
    num_eval = config["data"].get("num_eval_examples") or info.get("num_eval_examples")
    num_eval = num_eval or _count(eval_ds)
    if not num_eval:
        raise ConfigError(f"the evaluation split of {name} is empty or endless; give a finite one")
    num_train = config["data"].get("num_train_examples") or info.get("num_train_examples")
    if num_train is None:
        cardinality = int(_call(make, "train", config)[0].cardinality())
        num_train = cardinality if cardinality >= 0 else None
    classes = config["data"].get("num_classes") or info.get("num_classes")
    spec = DataSpec(name, make, eval_ds.element_spec, num_train, int(num_eval), classes)
    spec._config = config
    if config["data"]["augment"] and (
        not isinstance(spec.features_spec, tf.TensorSpec) or spec.features_spec.shape.rank != 3
    ):
        raise ConfigError(
            f"data.augment=True crops and flips images, but the features of {name} are "
            f"{spec.features_spec}; set data.augment=false or augment in make_dataset"
        )
    return spec


def _augment(image, label, weight):
    shape = tf.shape(image)
    padded = tf.image.pad_to_bounding_box(image, 4, 4, shape[0] + 8, shape[1] + 8)
    image = tf.image.random_crop(padded, shape)
    return tf.image.random_flip_left_right(image), label, weight


def _slow_map(milliseconds):
    """A deliberately costly map (a Python sleep) to demonstrate an input-bound pipeline."""

    def sleep(x):
        time.sleep(milliseconds / 1000.0)
        return x

    def fn(features, label, weight):
        slowed = tf.numpy_function(sleep, [weight], weight.dtype, stateful=True)
        return features, label, tf.ensure_shape(slowed, weight.shape)

    return fn


def _options(data_config):
    options = tf.data.Options()
    options.deterministic = bool(data_config["deterministic"])
    # Autotuned on the held-tensor path too. Off, the real pipeline cost 2.6-3.3% more CPU a step
    # than one batch held in memory (digits_cnn, two runs); on, 0.1-6% over four runs: within
    # the noise, not a clear gain either way (BUILD_NOTES, 2026-12-07).
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def _batch(ds, batch):
    """Static batch shapes; examples of unknown shape (e.g. token sequences) are zero-padded."""
    known = all(s.shape.is_fully_defined() for s in tf.nest.flatten(ds.element_spec))
    if known:
        return ds.batch(batch, drop_remainder=True)
    return ds.padded_batch(batch, drop_remainder=True)


def _per_pipeline_batch(global_batch_size, input_context):
    if input_context:
        return input_context.get_per_replica_batch_size(global_batch_size)
    return global_batch_size


def train_dataset(spec, config, global_batch_size, seed, input_context=None):
    """The repeated, shuffled, batched training dataset for one input pipeline.

    Args:
      spec: the DataSpec.
      config: the trial config (its `data` section sets caching, shuffling and augmentation).
      global_batch_size: the batch over all replicas.
      seed: the shuffle seed for this host (differs per host, checklist 95).
      input_context: a tf.distribute.InputContext, or None for a single pipeline.
    """
    data_config = config["data"]
    batch = _per_pipeline_batch(global_batch_size, input_context)
    if _fits_as_tensors(spec, data_config, input_context):
        tensors = shared(
            ("train tensors", spec, _pipeline(input_context)),
            lambda: _as_tensors(_read(spec, config, "train", input_context)),
        )
        ds = _permuted_batches(tensors, batch, seed, data_config["shuffle_buffer"] > 1)
        return ds.prefetch(AUTOTUNE).with_options(_options(data_config))
    if data_config["cache"]:
        # The cached examples are shared by every trial on this data (the spec is memoised on the
        # data config): a later trial's shuffle buffer fills from memory, not from the files.
        ds = shared(
            ("train", spec, _pipeline(input_context)),
            lambda: _read(spec, config, "train", input_context).cache(),
        )
    else:
        ds = _read(spec, config, "train", input_context)
    ds = ds.shuffle(data_config["shuffle_buffer"], seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat()
    if data_config["augment"]:
        ds = ds.map(_augment, num_parallel_calls=AUTOTUNE)
    if data_config["slow_map_ms"] > 0:
        ds = ds.map(_slow_map(data_config["slow_map_ms"]))
    ds = _batch(ds, batch)
    return ds.prefetch(AUTOTUNE).with_options(_options(data_config))


# A pipeline's training split is held as tensors up to this size (bytes); larger ones stream.
MAX_TENSOR_BYTES = 1 << 30


def _fits_as_tensors(spec, data_config, input_context):
    """Whether the training split can be held as stacked tensors: cached, no per-example map
    (augmentation, the slow map), a known example count, numeric or bool tensors of fully known
    shape, and at most MAX_TENSOR_BYTES for this pipeline's shard."""
    if not data_config["cache"] or data_config["augment"] or data_config["slow_map_ms"] > 0:
        return False
    if not spec.num_train_examples:
        return False
    pipelines = input_context.num_input_pipelines if input_context else 1
    per_example = 0
    for s in tf.nest.flatten(spec.element_spec):
        if not s.shape.is_fully_defined() or not (s.dtype.is_numeric or s.dtype == tf.bool):
            return False
        per_example += s.shape.num_elements() * s.dtype.size
    return per_example * math.ceil(spec.num_train_examples / pipelines) <= MAX_TENSOR_BYTES


def _as_tensors(ds):
    """Every example of `ds` stacked along a first axis, in host memory (read in chunks, so the
    examples are never a Python list)."""
    with tf.device("/cpu:0"):
        chunks = list(ds.batch(4096).as_numpy_iterator())
        if not chunks:
            raise ConfigError("the training split of this pipeline is empty; give examples")
        parts = [tf.nest.flatten(c) for c in chunks]
        stacked = [tf.constant(np.concatenate(column)) for column in zip(*parts)]
        return tf.nest.pack_sequence_as(ds.element_spec, stacked)


def _permuted_batches(tensors, batch, seed, shuffle):
    """Endless batches of `tensors`: each epoch a stateless permutation of the examples keyed on
    (seed, epoch), so every host and every epoch has its own order and a resumed iterator
    recomputes it; without `shuffle`, the examples in order. One gather per batch; the batches
    run across epoch boundaries, and the last incomplete one is never emitted (drop_remainder)."""
    count = tf.shape(tf.nest.flatten(tensors)[0], out_type=tf.int64)[0]
    key = tf.constant([int(seed) % (1 << 62), 0], tf.int64)

    def order(epoch):
        indices = tf.range(count)
        if not shuffle:
            return indices
        return tf.random.experimental.stateless_shuffle(indices, seed=key + [0, 1] * epoch)

    # Each element is one epoch's order; rebatch cuts them into batches across epoch boundaries.
    indices = tf.data.Dataset.counter().map(order).rebatch(batch, drop_remainder=True)
    return indices.map(lambda i: tf.nest.map_structure(lambda t: tf.gather(t, i), tensors))


def eval_batch_size(data_config, train_batch_size, replicas):
    """The global evaluation batch: configured, else the training batch (checklist 83)."""
    size = int(data_config["eval_batch_size"] or train_batch_size)
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


def eval_dataset(spec, config, global_eval_batch, steps, input_context=None, repeat=False):
    """One pass over the evaluation split as (features, label, weight), padded with weight 0.

    Every pipeline yields exactly `steps` batches per local replica, so all replicas and hosts run
    the same number of steps and each real example is counted once. With `repeat`, the pass is
    repeated forever: one iterator then serves evaluation after evaluation, each reading exactly
    one pass.
    """
    pipelines = input_context.num_input_pipelines if input_context else 1
    batch = _per_pipeline_batch(global_eval_batch, input_context)
    local_replicas = global_eval_batch // pipelines // batch
    total = steps * batch * local_replicas
    ds = _read(spec, config, "eval", input_context)
    # Padding repeats the split's first example with weight 0: a real input, so no model meets
    # a degenerate one (an all-zero token sequence is fully masked, and its average is NaN).
    pad = _read(spec, config, "eval").take(1).map(lambda x, y, w: (x, y, tf.constant(0.0)))
    pad = pad.repeat()
    ds = ds.concatenate(pad).take(total)
    ds = _batch(ds, batch)
    # Cached as batches: a later pass copies whole batches, not one example at a time.
    ds = ds.cache() if config["data"]["cache"] else ds
    ds = ds.repeat() if repeat else ds
    return ds.prefetch(AUTOTUNE).with_options(_options(config["data"]))


# ------------------------------------------------------------ shared by the trials of a process

_SHARED = collections.OrderedDict()
# Per data spec: its held training tensors, its training pipeline and its evaluation passes; a
# user's study over the architecture with its own make_dataset has one spec per model config.
MAX_SHARED = 6


def shared(key, build):
    """`build()`, memoised per process on `key` (the least recently used of MAX_SHARED go).

    Keys hold the objects they name (a DataSpec, a strategy), so no other object can take their
    place. A memory-cached dataset keeps its examples for as long as it is shared.
    """
    if key in _SHARED:
        _SHARED.move_to_end(key)
        return _SHARED[key]
    value = _SHARED[key] = build()
    while len(_SHARED) > MAX_SHARED:
        _SHARED.popitem(last=False)
    return value


def forget_shared():
    """Drops every shared dataset (tests; a caller that wants fresh reads; the process's end)."""
    _SHARED.clear()


# Freed before the interpreter tears down: left to its teardown, the evaluation iterators'
# prefetching held the default study's exit for 9 s in one measured run (0.4 s when freed first).
atexit.register(forget_shared)


def _pipeline(input_context):
    if input_context is None:
        return None
    return (
        input_context.input_pipeline_id,
        input_context.num_input_pipelines,
        input_context.num_replicas_in_sync,
    )


def shared_train_pipeline(spec, config, seed, key, build):
    """`build()` (a distributed training dataset), shared by the trials of a process when the
    split is held as tensors: its batches are a stateless function of the seed, so a new
    iterator of the same dataset gives exactly the batches a fresh build would. A streaming
    split's shuffle buffer draws another order for every iterator, so it is built afresh.

    `key` names what else the dataset depends on (the strategy, the batch size, the pipelines).
    """
    if not _fits_as_tensors(spec, config["data"], None):
        return build()
    data = json.dumps(config["data"], sort_keys=True, default=repr)
    return shared(("train pipeline", spec, data, int(seed)) + tuple(key), build)


def in_memory_dataset(spec, config, global_batch_size, input_context=None):
    """The real pipeline's first batch, held in memory and repeated: the input pipeline's upper
    bound for throughput (checklist 8), with the task's own shapes and dtypes."""
    ds = train_dataset(spec, config, global_batch_size, config["seed"], input_context)
    # Its own options, whatever the real pipeline's: the yardstick does not move with them.
    ds = ds.take(1).cache().repeat().prefetch(AUTOTUNE)
    return ds.with_options(_options(config["data"]))
