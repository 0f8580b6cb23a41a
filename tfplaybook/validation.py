"""One validation pass over a run's config, in pure Python, before anything is written.

`check_config` checks what every mode reads: the numbers (positive sizes, rates in their ranges),
every registry name (model, dataset, optimizer, schedule, batch-norm mode, oracle, design), the
shipped builders' own keys, unknown top-level, optimizer and schedule keys (a typo there would
otherwise be silently ignored; model and data sections may hold a previous builder's or dataset's
keys after a change of name, and a user's own), and, for a study, the search
space's corners: every config a study can produce is checked the same way, so a trial never
fails on a value its study allowed. `check_runtime` checks the flags' execution settings and, when
the replica count is known without TensorFlow (`--strategy=cpu` or `one_device`), that it
divides the batch. Nothing here imports TensorFlow: a bad config answers before it loads.
"""

import math
import numbers

from tfplaybook import choices
from tfplaybook.config import ConfigError
from tfplaybook.training import datasets, metrics, models, schedules
from tfplaybook.training import task as task_lib

# Top-level keys a config may hold (besides those of BASE_DEFAULTS).
TOP_LEVEL = ("batch_size", "max_train_steps", "eval_every_steps", "metrics", "objective", "study")


def _number(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} must be a finite number")
    return value


def _in_range(key, value, low, high, high_open=True, low_open=False):
    _number(key, value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(f"{key}={value!r} must be in {lo}{low:g}, {high:g}{hi}")


def _positive_int(key, value, zero=False):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < (0 if zero else 1)
    ):
        raise ConfigError(
            f"{key}={value!r} must be a {'non-negative' if zero else 'positive'} integer"
        )


def _non_negative(key, value):
    _number(key, value)
    if value < 0:
        raise ConfigError(f"{key}={value!r} must be >= 0")


def _one_of(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, allowed))}")


def _known_keys(where, section, allowed):
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key {where}{unknown[0]} in the config; known {where or 'top-level '}keys: "
            f"{', '.join(sorted(allowed))}"
        )


def _check_optimizer(opt):
    _one_of("optimizer.name", opt["name"], choices.OPTIMIZERS)
    _in_range("optimizer.learning_rate", opt["learning_rate"], 0, math.inf, low_open=True)
    for key in ("momentum", "rho", "beta1", "beta2"):
        _in_range(f"optimizer.{key}", opt[key], 0, 1)
    _in_range("optimizer.epsilon", opt["epsilon"], 0, math.inf, low_open=True)
    _non_negative("optimizer.weight_decay", opt["weight_decay"])
    _non_negative("optimizer.clip_norm", opt["clip_norm"])
    _known_keys("optimizer.", opt, task_lib.BASE_DEFAULTS["optimizer"])


def _check_registry_model(config):
    model = config["model"]
    name = model["name"]
    models.get_builder(name)
    for key in ("width", "depth", "dense_width", "virtual_batch_size"):
        if key in model:
            _positive_int(f"model.{key}", model[key])
    if "dropout" in model:
        _in_range("model.dropout", model["dropout"], 0, 1)
    if "bn_momentum" in model:
        _in_range("model.bn_momentum", model["bn_momentum"], 0, 1)
    if "normalization" in model:
        _one_of("model.normalization", model["normalization"], models.NORMALIZATIONS)
    if "batch_norm" in model:
        _one_of("model.batch_norm", model["batch_norm"], choices.BATCH_NORM_MODES)
    if "norm_placement" in model:
        _one_of("model.norm_placement", model["norm_placement"], choices.NORM_PLACEMENTS)
    if name == "resnet" and (model["depth"] - 2) % 6:
        raise ConfigError(f"model.depth={model['depth']} for resnet must be 6n+2, e.g. 20, 32, 56")
    if "activation" in model and not isinstance(model["activation"], str):
        raise ConfigError(f"model.activation={model['activation']!r} must be a Keras name")


def _check_data(config, task):
    data = config["data"]
    _positive_int("data.eval_batch_size", data["eval_batch_size"], zero=True)
    if data["eval_batch_size"] and data["eval_batch_size"] < config["batch_size"]:
        raise ConfigError(
            f"data.eval_batch_size={data['eval_batch_size']} is below batch_size="
            f"{config['batch_size']}; use at least the training batch (checklist 83), or 0"
        )
    _positive_int("data.shuffle_buffer", data["shuffle_buffer"])
    _non_negative("data.slow_map_ms", data["slow_map_ms"])
    for key in ("cache", "augment", "deterministic"):
        if not isinstance(data[key], bool):
            raise ConfigError(f"data.{key}={data[key]!r} must be true or false")
    if task.make_dataset is None:
        datasets.get_dataset(data.get("dataset"))


def check_config(config, task=None, study=True):
    """Raises ConfigError for the first bad value of `config` (see the module docstring).

    Args:
      config: a completed config (tfplaybook.training.task.complete_config).
      task: the Task (None: registries only).
      study: also check the study section and every corner of its search space.
    """
    from tfplaybook import config as config_lib

    task = task or task_lib.Task()
    config_lib.validate(config)
    _known_keys("", config, set(task_lib.BASE_DEFAULTS) | set(TOP_LEVEL))
    _positive_int("seed", config["seed"], zero=True)
    if config["data_seed"] is not None:
        _positive_int("data_seed", config["data_seed"], zero=True)
    _positive_int("checkpoint_every_steps", config["checkpoint_every_steps"], zero=True)
    _positive_int("keep_best_checkpoints", config["keep_best_checkpoints"])
    _non_negative("divergence_loss_factor", config["divergence_loss_factor"])
    if not isinstance(config["from_logits"], bool):
        raise ConfigError(f"from_logits={config['from_logits']!r} must be true or false")
    if not isinstance(config["loss"], (str, dict)):
        raise ConfigError(f"loss={config['loss']!r} must be a Keras loss identifier")
    _in_range("label_smoothing", config["label_smoothing"], 0, 1)
    _in_range("ema_decay", config["ema_decay"], 0, 1)
    if config["label_smoothing"] and not metrics.smoothable(config["loss"]):
        raise ConfigError(
            f"label_smoothing={config['label_smoothing']!r} needs a cross-entropy loss; "
            f"loss={config['loss']!r} has no labels to smooth"
        )
    _check_optimizer(config["optimizer"])
    try:
        schedules.validate(config["schedule"], config["max_train_steps"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _known_keys("schedule.", config["schedule"], task_lib.BASE_DEFAULTS["schedule"])
    if task.build_model is None:
        _check_registry_model(config)
    _check_data(config, task)
    if study and "study" in config:
        check_study(config, task)
    return config


def check_study(config, task=None):
    """The study section, and every corner of its search space as a trial config."""
    from tfplaybook.search import designs
    from tfplaybook.search import space as space_lib

    study = config["study"]
    if not isinstance(study, dict):
        raise ConfigError(f"study={study!r} must be a section (a dict)")
    _positive_int("study.max_trials", study.get("max_trials"))
    if study.get("seed") is not None:
        _positive_int("study.seed", study["seed"], zero=True)
    _one_of("study.oracle", study.get("oracle", "quasi_random"), choices.ORACLES)
    _one_of("study.design", study.get("design", "joint"), designs.DESIGNS)
    space = space_lib.SearchSpace.from_config(config)
    for label, values in corners(space):
        trial = space.apply(config, values)
        try:
            check_config(trial, task, study=False)
        except ConfigError as e:
            raise ConfigError(f"the search space allows a bad trial ({label}): {e}") from None


def corners(space):
    """(label, values) of each dimension's extreme values with the others at their lowest, then
    the all-lowest and all-highest points: where a range can leave what a builder accepts."""
    for i, dim_id in enumerate(space.ids):
        for end, u in (("highest", 1.0), ("lowest", 0.0)):
            point = [0.0] * len(space)
            point[i] = u
            yield f"{dim_id} at its {end}", space.from_unit(point)
    yield "every hyperparameter at its lowest", space.from_unit([0.0] * len(space))
    yield "every hyperparameter at its highest", space.from_unit([1.0] * len(space))


def check_runtime(strategy, tpu, num_cpu_replicas, precision, steps_per_loop, batch_size=None):
    """The flags' execution settings; the replica count divides `batch_size` when known here."""
    from tfplaybook.training import strategy as strategy_lib

    _one_of("--strategy", strategy, choices.STRATEGIES)
    _one_of("--precision", precision, choices.PRECISIONS)
    _positive_int("--steps_per_loop", steps_per_loop)
    _positive_int("--num_cpu_replicas", num_cpu_replicas)
    explicit_tpu = bool(tpu) and tpu != "local"
    if strategy == "tpu" and not explicit_tpu and not strategy_lib.local_tpu_present():
        raise ConfigError(
            "--strategy=tpu: no local TPU device on this host and no --tpu address given; "
            "use --strategy=auto, mirrored or cpu"
        )
    if strategy == "one_device" and num_cpu_replicas > 1:
        raise ConfigError("--strategy=one_device runs one replica; drop --num_cpu_replicas")
    replicas = {"cpu": num_cpu_replicas, "one_device": 1}.get(strategy)
    tpu_host = explicit_tpu or strategy == "tpu" or strategy_lib.local_tpu_present()
    if strategy in ("auto", "mirrored") and num_cpu_replicas > 1 and not tpu_host:
        replicas = num_cpu_replicas  # Without GPUs the CPU's replicas; with GPUs refused later.
    if replicas and batch_size and batch_size % replicas:
        raise ConfigError(
            f"batch_size={batch_size} is not divisible by the {replicas} replicas; use a "
            f"multiple of {replicas} such as {replicas * max(1, batch_size // replicas)}"
        )


def check_tfds(config, task=None, download=False, name_only=False):
    """Raises ConfigError for a `tfds:NAME` dataset that names no TFDS dataset, or (unless
    `name_only`) that is not prepared in a local data_dir and will not be downloaded.

    Needs TensorFlow Datasets only, not TensorFlow: run before anything loads. A task with its
    own make_dataset reads `data.dataset` itself, so its value is not checked here. A gs://
    data_dir is read through TensorFlow's file system, so only the name is checked for it.
    """
    dataset = config["data"].get("dataset") or ""
    if not dataset.startswith(datasets.TFDS_PREFIX) or (task is not None and task.make_dataset):
        return
    import tensorflow_datasets as tfds

    name = dataset[len(datasets.TFDS_PREFIX) :].split("/")[0].split(":")[0]
    try:
        tfds.builder_cls(name)
    except Exception:  # TFDS raises its own DatasetNotFoundError (a private class).
        raise ConfigError(f"dataset {dataset!r}: TFDS has no dataset named {name!r}") from None
    data_dir = config["data"].get("data_dir") or datasets.default_data_dir()
    if name_only or download or data_dir.startswith("gs://") or name == datasets.EMBEDDED_DIGITS:
        return
    datasets.prepared_builder(config)  # Raises unless prepared there.
