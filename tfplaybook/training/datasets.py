"""Dataset registry: the shipped datasets as ordinary `make_dataset` entries, and a getter.

Every entry follows the task contract (docs/tasks.md): `make(split, config, input_context=None)`
returns a `tf.data.Dataset` of *unbatched* `(features, label)` or `(features, label, weight)`
examples for `split` "train" or "eval", already preprocessed (the shipped image datasets scale
their uint8 pixels to [0, 1] themselves). `tfplaybook.training.data` does the rest for any entry and
for a user's own `make_dataset`: per-host sharding, caching, shuffling with per-host seeds, batching
with static shapes, weight-0 padding for exact evaluation, prefetch.

An entry may also have `describe(config, download) -> dict` with what it knows without reading the
data (`num_classes`, `num_train_examples`, `num_eval_examples`); it prepares what must be prepared
and raises ConfigError for a dataset the trials could not read. Entries' defaults are merged into
the config's `data` section before overrides.

Imports no TensorFlow at import time, so names and defaults can be checked before it loads.
"""

import copy
import dataclasses
import difflib
import inspect
import json
import os

from tfplaybook.config import ConfigError

TFDS_PREFIX = "tfds:"
EMBEDDED_DIGITS = "tfplaybook_digits"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A registered dataset: its maker, its `data` section defaults and an optional describe."""

    make: object
    defaults: dict
    describe: object = None


def accepts_input_context(make):
    """True when `make` takes an `input_context` argument (and so shards itself)."""
    try:
        parameters = inspect.signature(make).parameters
    except (TypeError, ValueError):
        return False
    return "input_context" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def default_data_dir():
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets"
    )


# --------------------------------------------------------------------------------- TFDS


def _tfds_name(config):
    dataset = config["data"]["dataset"]
    return EMBEDDED_DIGITS if dataset == "digits" else dataset[len(TFDS_PREFIX) :]


def _tfds_builder(config, download=False):
    """The prepared TFDS builder of `data.dataset` (the embedded digits prepare themselves).

    TFDS logs an absl warning while it looks for a prepared copy that is not there yet
    ("Variant folder ... has no dataset_info.json", at the embedded digits' first preparation):
    on bad input it would come before the one error line, so absl logs only errors meanwhile.
    A problem with the dataset still raises.
    """
    from absl import logging

    previous = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        return _prepared_tfds_builder(config, download)
    finally:
        logging.set_verbosity(previous)


def prepared_builder(config):
    """The TFDS builder of a `tfds:` dataset already prepared in its data_dir; ConfigError if it
    is not (nothing is downloaded)."""
    return _tfds_builder(config, download=False)


def _prepared_tfds_builder(config, download):
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    name = _tfds_name(config)
    data_dir = config["data"]["data_dir"] or default_data_dir()
    if name == EMBEDDED_DIGITS:
        from tfplaybook.training import (  # noqa: F401  (defining the class registers it)
            digits_builder,
        )
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except Exception as e:  # TFDS raises several types for unknown names.
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name, known, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"TFDS dataset {name!r} does not exist ({type(e).__name__}){hint} "
            f"Allowed: {', '.join(dataset_names())}"
        ) from None
    try:
        prepared = builder.is_prepared()
    except Exception as e:  # e.g. a gs:// data_dir in a bucket that does not exist (HTTP 404).
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(
            f"TFDS data_dir {data_dir} cannot be read ({reason}); check the path, the bucket's "
            "name and the credentials"
        ) from None
    if not prepared:
        if name == EMBEDDED_DIGITS or download:
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


def _split_name(config, split):
    return config["data"]["train_split" if split == "train" else "eval_split"]


def _describe_tfds(config, download=False):
    builder = _tfds_builder(config, download)
    info = builder.info
    for key in ("train_split", "eval_split"):
        if config["data"][key] not in info.splits:
            raise ConfigError(
                f"data.{key}={config['data'][key]!r} is not a split of {info.name}; "
                f"splits: {', '.join(sorted(info.splits.keys()))}"
            )
    if not info.supervised_keys:
        raise ConfigError(
            f"TFDS dataset {info.name!r} has no supervised keys (features, label); write a "
            "make_dataset of your own for it (docs/tasks.md)"
        )
    label = info.features[info.supervised_keys[1]]
    return {
        "num_classes": getattr(label, "num_classes", None),
        "num_train_examples": info.splits[config["data"]["train_split"]].num_examples,
        "num_eval_examples": info.splits[config["data"]["eval_split"]].num_examples,
    }


# One study's trials read the same splits: as_dataset costs about 0.5 s a call on the digits, so
# each (data config, seed, split, pipeline) is built once per process. Iterating a dataset object
# again gives what a fresh one gives: the file order does not reshuffle between iterations (the
# example-level shuffle comes later, in a new object per trial).
_TFDS_READS = {}
_MAX_READS = 16


def _make_tfds(split, config, input_context=None):
    """A TFDS dataset's (features, label) pairs; uint8 images are scaled to [0, 1]."""
    pipelines = input_context.num_input_pipelines if input_context else 1
    index = input_context.input_pipeline_id if input_context else 0
    key = (json.dumps(config["data"], sort_keys=True), config["seed"], split, pipelines, index)
    if key not in _TFDS_READS:
        if len(_TFDS_READS) >= _MAX_READS:
            _TFDS_READS.clear()
        _TFDS_READS[key] = _read_tfds(split, config, input_context)
    return _TFDS_READS[key]


def _read_tfds(split, config, input_context):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = _tfds_builder(config)
    name = _split_name(config, split)
    pipelines = input_context.num_input_pipelines if input_context else 1
    index = input_context.input_pipeline_id if input_context else 0
    num_files = len(builder.info.splits[name].file_instructions)
    by_file = split == "train" and pipelines > 1 and num_files >= pipelines
    read_config = tfds.ReadConfig(
        input_context=input_context if by_file else None,
        shuffle_seed=config["seed"] + 7919 * index,
        shuffle_reshuffle_each_iteration=False,
        try_autocache=False,
    )
    ds = builder.as_dataset(
        split=name, as_supervised=True, shuffle_files=split == "train", read_config=read_config
    )
    if not by_file and pipelines > 1:  # Few files (the digits have one): shard by example.
        ds = ds.shard(pipelines, index)

    def preprocess(features, label):
        if features.dtype == tf.uint8:
            features = tf.cast(features, tf.float32) / 255.0
        return features, tf.cast(label, tf.int32) if label.dtype.is_integer else label

    return ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)


# --------------------------------------------------------------------------------- synthetic

_SYNTHETIC_CACHE = {}


def _synthetic_arrays(config):
    """Learnable synthetic images: a class-dependent mean plus noise, generated once per config."""
    import numpy as np

    data = config["data"]
    key = (
        tuple(data["image_shape"]),
        data["num_classes"],
        data["num_train_examples"],
        data["num_eval_examples"],
        config["seed"],
    )
    if key not in _SYNTHETIC_CACHE:
        shape, num_classes = tuple(data["image_shape"]), int(data["num_classes"])
        rng = np.random.RandomState(config["seed"])
        means = rng.uniform(0, 255, size=(num_classes,) + shape)

        def make(n):
            labels = rng.randint(0, num_classes, size=n)
            images = np.clip(means[labels] + rng.normal(0, 40, size=(n,) + shape), 0, 255)
            return (images.astype(np.uint8) / np.float32(255.0)).astype(np.float32), labels.astype(
                np.int32
            )

        _SYNTHETIC_CACHE[key] = {
            "train": make(int(data["num_train_examples"])),
            "eval": make(int(data["num_eval_examples"])),
        }
    return _SYNTHETIC_CACHE[key]


def _make_synthetic(split, config):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(_synthetic_arrays(config)[split])


def _describe_synthetic(config, download=False):
    del download
    data = config["data"]
    if len(data["image_shape"]) != 3 or min(data["image_shape"]) < 1:
        raise ConfigError(
            f"data.image_shape={data['image_shape']!r} must be [height, width, depth]"
        )
    for key in ("num_classes", "num_train_examples", "num_eval_examples"):
        if not isinstance(data[key], int) or data[key] < 1:
            raise ConfigError(f"data.{key}={data[key]!r} must be a positive integer")
    return {key: data[key] for key in ("num_classes", "num_train_examples", "num_eval_examples")}


_TFDS_DEFAULTS = {"data_dir": "", "train_split": "train", "eval_split": "test"}
_DATASETS = {
    "digits": Dataset(_make_tfds, _TFDS_DEFAULTS, _describe_tfds),
    "synthetic": Dataset(
        _make_synthetic,
        {
            "image_shape": [32, 32, 3],
            "num_classes": 10,
            "num_train_examples": 2048,
            "num_eval_examples": 512,
        },
        _describe_synthetic,
    ),
}
_TFDS = Dataset(_make_tfds, _TFDS_DEFAULTS, _describe_tfds)
# The config sections the shipped makers and describes read. A user's own make_dataset may read
# any of the config (the model section too), so its data is keyed on everything that may steer it.
_READS = {_make_tfds: ("data", "seed"), _make_synthetic: ("data", "seed")}


def config_keys(make):
    """The top-level config keys `make` reads, when tfplaybook knows them (shipped makers), else
    None."""
    return _READS.get(make)


def register_dataset(name, make, defaults=None, describe=None):
    """Adds a dataset to the registry: `data.dataset=NAME` then reads it with `make`.

    Args:
      name: the registry name (not starting with "tfds:").
      make: `make(split, config[, input_context]) -> tf.data.Dataset` of unbatched examples.
      defaults: the `data` section keys `make` reads, with their defaults.
      describe: optional `describe(config, download) -> dict` (see the module docstring).
    """
    if not isinstance(name, str) or not name or name.startswith(TFDS_PREFIX):
        raise ValueError(f"dataset name {name!r} must be a non-empty string not starting 'tfds:'")
    if not callable(make):
        raise ValueError(f"register_dataset({name!r}): make must be callable")
    _DATASETS[name] = Dataset(make, copy.deepcopy(dict(defaults or {})), describe)


def dataset_names():
    return sorted(_DATASETS) + [f"{TFDS_PREFIX}NAME"]


def get_dataset(name):
    """The Dataset registered as `name` (or `tfds:NAME` for any prepared TFDS dataset).

    Raises:
      ConfigError: on an unknown name, listing the known ones.
    """
    if isinstance(name, str) and name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
        return _TFDS
    if name not in _DATASETS:
        raise ConfigError(f"data.dataset={name!r} is not one of {', '.join(dataset_names())}")
    return _DATASETS[name]
