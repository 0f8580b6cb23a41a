"""The task boundary: what a user hands tfplaybook (model, data, loss, metrics) and the defaults.

A task is two functions (docs/tasks.md):

- `build_model(config, data_spec) -> keras.Model`: `config` is the merged trial config,
  `data_spec` a `tfplaybook.training.data.DataSpec` (element spec, example counts, classes when
  known);
- `make_dataset(split, config[, input_context]) -> tf.data.Dataset` of unbatched
  `(features, label)` or `(features, label, weight)` examples, `split` "train" or "eval".

They come from an experiment file (functions named `build_model` / `make_dataset` beside
`get_config()`), from the Python API (callables), or from the registries (`model.name`,
`data.dataset`; tfplaybook.training.models and tfplaybook.training.datasets). The loss and metrics
are config keys (`loss`, `metrics`, `from_logits`; tfplaybook.training.metrics).

`complete_config` merges, in order: the base defaults below, the registered builder's and
dataset's own defaults, and the user's config; derived defaults (evaluation interval, metrics that
fit the loss, the objective) fill what is still missing. Every knob the code reads is then in
config.json and can be overridden.

Pure Python: no TensorFlow import.
"""

import copy
import dataclasses

from tfplaybook import config as config_lib
from tfplaybook.config import ConfigError
from tfplaybook.training import datasets, metrics, models

# Every key the loop, the pipeline and the optimizer read, with its default.
BASE_DEFAULTS = {
    "seed": 0,  # Initialisation and dropout; also the data order unless data_seed is set.
    "data_seed": None,  # The data order's own seed (None: follows seed).
    "checkpoint_every_steps": 0,  # 0: at every evaluation.
    "keep_best_checkpoints": 3,
    "divergence_loss_factor": 20.0,
    "loss": "sparse_categorical_crossentropy",
    "from_logits": True,
    "ema_decay": 0.0,  # > 0: also evaluate and keep an average of the weights (training.ema).
    "label_smoothing": 0.0,  # Training loss only; cross-entropy losses (training.metrics).
    "data": {
        "eval_batch_size": 0,  # 0: the training batch size (checklist 83).
        "shuffle_buffer": 2048,
        "cache": True,
        "deterministic": True,
        "augment": False,
        "slow_map_ms": 0.0,
    },
    "model": {},
    "optimizer": {
        "name": "adam",
        "learning_rate": 1e-3,
        "momentum": 0.9,
        "rho": 0.9,  # RMSProp's second-moment decay (checklist 124).
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-7,
        "weight_decay": 0.0,
        "clip_norm": 0.0,  # 0: no clipping; the unclipped norm is logged either way.
    },
    "schedule": {
        "name": "constant",
        "warmup_steps": 0,
        "decay_start_step": 0,
        "decay_steps": 0,
        "end_factor": 0.0,
    },
}
FUNCTIONS = ("build_model", "make_dataset")


@dataclasses.dataclass
class Task:
    """The functions that build a trial's model and read its data."""

    build_model: object = None  # Callable, or None: the registry's `model.name`.
    make_dataset: object = None  # Callable, or None: the registry's `data.dataset`.
    describe: object = None  # Optional describe(config, download) of a registered dataset.
    source: str = "registry"

    def model_builder(self, config):
        if self.build_model is not None:
            return self.build_model
        return models.get_builder(_model_name(config)).build

    def dataset(self, config):
        """(make, describe) for this config."""
        if self.make_dataset is not None:
            return self.make_dataset, self.describe
        entry = datasets.get_dataset(_dataset_name(config))
        return entry.make, entry.describe


def _not_loaded(*args, **kwargs):
    raise ConfigError("the study's own task function is not loaded here: analysis reads files only")


def declared(functions, source="study.json"):
    """A Task that knows only which of FUNCTIONS a study's experiment defined (study.json).

    For checking a config without importing the user's code (analysis, --mode=advise): the
    functions themselves raise ConfigError if called.
    """
    return Task(**{name: _not_loaded for name in functions if name in FUNCTIONS}, source=source)


def _model_name(config):
    name = (config.get("model") or {}).get("name")
    if not name:
        raise ConfigError(
            "the config names no model: set model.name (one of "
            f"{', '.join(models.model_names())}) or define build_model(config, data_spec) "
            "in the experiment file"
        )
    return name


def _dataset_name(config):
    name = (config.get("data") or {}).get("dataset")
    if not name:
        raise ConfigError(
            "the config names no dataset: set data.dataset (one of "
            f"{', '.join(datasets.dataset_names())}) or define make_dataset(split, config) "
            "in the experiment file"
        )
    return name


def merge(base, override):
    """A deep copy of `base` with `override`'s keys on top (sections merged key by key)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def complete_config(config, task=None):
    """The user's config with every default filled in (see the module docstring).

    Raises:
      ConfigError: on a missing required key or an unknown registry name.
    """
    task = task or Task()
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a dict, not {type(config).__name__}")
    missing = [k for k in config_lib.REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"the config lacks required keys: {', '.join(missing)}")
    defaults = copy.deepcopy(BASE_DEFAULTS)
    if task.build_model is None:
        defaults["model"] = merge(models.get_builder(_model_name(config)).defaults, {})
    if task.make_dataset is None:
        defaults["data"] = merge(
            defaults["data"], datasets.get_dataset(_dataset_name(config)).defaults
        )
    out = merge(defaults, config)
    if isinstance(out.get("study"), dict):
        # The quasi-random sequence's seed; None: `seed`. Another value is another point set of
        # the same space (study variance, checklist 57, 61).
        out["study"].setdefault("seed", None)
    steps = out["max_train_steps"]
    if "eval_every_steps" not in out and isinstance(steps, int) and steps > 0:
        out["eval_every_steps"] = max(1, steps // 10)
    if "metrics" not in out:
        out["metrics"] = ["accuracy"] if _is_crossentropy(out["loss"]) else []
    if "objective" not in out:
        names = [metrics.metric_name(m) for m in out["metrics"]] if _listy(out["metrics"]) else []
        metric = names[0] if names else "loss"
        out["objective"] = {"metric": metric, "goal": metrics.default_goal(metric)}
    return out


def _listy(value):
    return isinstance(value, (list, tuple))


def _is_crossentropy(loss):
    return isinstance(loss, str) and "crossentropy" in loss.replace("_", "").lower()


def apply_overrides(config, overrides, task=None):
    """Applies dotted overrides one at a time, completing defaults after each.

    A changed `model.name` or `data.dataset` brings its own defaults, so the keys of the new
    builder can be overridden in the same command.
    """
    for item in overrides or ():
        config = complete_config(config_lib.apply_overrides(config, [item]), task)
    return config


def load(path):
    """Loads an experiment file: returns (its completed config, its Task)."""
    module = config_lib.import_experiment(path)
    functions = {}
    for name in FUNCTIONS:
        value = getattr(module, name, None)
        if value is not None and not callable(value):
            raise ConfigError(f"{name} in {path!r} is not a function")
        functions[name] = value
    task = Task(source=path, **functions)
    return complete_config(config_lib.experiment_config(module, path), task), task
