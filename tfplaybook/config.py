"""Experiments as plain Python files, strict dotted overrides, and step conversion.

Pure Python: no TensorFlow import. An experiment file defines `get_config() -> dict` and may
define `build_model` and `make_dataset` (tfplaybook.training.task). Every mode agrees on these
names: top-level `batch_size`, `max_train_steps`, `eval_every_steps`, `seed`, `loss`, `metrics`,
`objective`, and the sections `data`, `model`, `optimizer`, `schedule` and `study`. Only
`batch_size` and `max_train_steps` are required: tfplaybook.training.task fills in the rest.
"""

import ast
import copy
import importlib.util
import json
import os


class ConfigError(ValueError):
    """Bad user input about an experiment or override; reported in one line, exit status 2."""


REQUIRED_KEYS = ("batch_size", "max_train_steps")
# The config keys a resumed study or trial may change; any other difference is refused.
SAFE_CHANGES = ("study.max_trials", "study.stale_trial_seconds", "study.name")


def import_experiment(path):
    """Imports an experiment file as a module (it runs with the user's permissions).

    Experiment files are Python: only load files you trust (the README says so too).

    Raises:
      ConfigError: when the file does not exist, does not import, or has no `get_config`.
    """
    if not path or not os.path.isfile(path):
        known = list_experiments()
        raise ConfigError(
            f"experiment file {path!r} does not exist; shipped experiments: {', '.join(known)}"
        )
    name = "tfplaybook_experiment_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # A broken experiment file is user input, not our crash.
        raise ConfigError(
            f"experiment file {path!r} failed to import: {type(e).__name__}: {e}"
        ) from None
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"experiment file {path!r} defines no get_config() function")
    return module


def experiment_config(module, path):
    """A deep copy of the experiment module's `get_config()` (not yet completed with defaults)."""
    try:
        config = module.get_config()
    except Exception as e:  # The experiment's own code failed: user input, reported in a line.
        raise ConfigError(f"get_config() in {path!r} raised {type(e).__name__}: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"get_config() in {path!r} returned {type(config).__name__}, expected a dict"
        )
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"experiment {path!r} lacks required keys: {', '.join(missing)}")
    return copy.deepcopy(config)


def load_experiment(path):
    """The experiment file's config with every default filled in (tfplaybook.training.task)."""
    from tfplaybook.training import task

    return task.load(path)[0]


def experiments_dir():
    """The shipped `experiments/` directory (next to the package in a source checkout)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")


def default_experiment():
    return os.path.join(experiments_dir(), "digits_cnn.py")


def list_experiments():
    directory = experiments_dir()
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join("experiments", f)
        for f in os.listdir(directory)
        if f.endswith(".py") and not f.startswith("_")
    )


def flat_keys(config, prefix=""):
    """All dotted leaf keys of a nested dict, in sorted order."""
    keys = []
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            keys.extend(flat_keys(value, dotted + "."))
        else:
            keys.append(dotted)
    return sorted(keys)


def get_path(config, dotted):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def differing_keys(a, b):
    """The dotted keys whose values differ between two configs (present in either), sorted."""

    def get(config, key):
        try:
            return get_path(config, key)
        except KeyError:
            return None

    keys = sorted(set(flat_keys(a)) | set(flat_keys(b)))
    return [k for k in keys if get(a, k) != get(b, k)]


def parse_value(text):
    """Parses an override value: JSON or a Python literal, else the raw string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError):
            continue
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def _coerce(key, old, new):
    """Checks an override value against the type of the value it replaces."""
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        raise ConfigError(f"override {key}={new!r}: expected true or false")
    if isinstance(old, int) and isinstance(new, float) and new.is_integer():
        return int(new)
    if (
        isinstance(old, (int, float))
        and isinstance(new, (int, float))
        and not isinstance(new, bool)
    ):
        return type(old)(new) if isinstance(old, float) else new
    if isinstance(old, dict) and not isinstance(new, dict):
        raise ConfigError(f"override {key}={new!r}: {key} is a section, give a JSON object")
    if isinstance(old, (list, tuple)) and not isinstance(new, (list, tuple)):
        raise ConfigError(f"override {key}={new!r}: expected a list")
    if isinstance(old, str) and not isinstance(new, str):
        return str(new)
    if isinstance(old, (int, float)) and isinstance(new, str):
        raise ConfigError(f"override {key}={new!r}: expected a number")
    return new


def apply_overrides(config, overrides):
    """Returns a copy of `config` with `KEY=VALUE` overrides applied (dotted keys, strict).

    Raises:
      ConfigError: on a malformed override, an unknown key (listing the valid ones) or a value of
        the wrong type.
    """
    config = copy.deepcopy(config)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (for example batch_size=256)")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        node = config
        for part in parts[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                node = None
                break
            node = node[part]
        if not key or node is None or parts[-1] not in node:
            raise ConfigError(
                f"override key {key!r} is not in the config; valid keys: "
                f"{', '.join(flat_keys(config))}"
            )
        node[parts[-1]] = _coerce(key, node[parts[-1]], parse_value(text))
    return config


def validate(config):
    """Checks the numbers and names every mode relies on; raises ConfigError naming the bad one."""
    for key in ("batch_size", "max_train_steps", "eval_every_steps"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key}={value!r} must be a positive integer")
    if config["eval_every_steps"] > config["max_train_steps"]:
        raise ConfigError(
            f"eval_every_steps={config['eval_every_steps']} exceeds "
            f"max_train_steps={config['max_train_steps']}: no evaluation would run"
        )
    from tfplaybook.training import metrics

    if not isinstance(config["metrics"], (list, tuple)):
        raise ConfigError(f"metrics={config['metrics']!r} must be a list of metric identifiers")
    names = metrics.metric_names(config)
    if "loss" in names or len(set(names)) != len(names):
        raise ConfigError(f"metrics={names!r} must be distinct and must not include 'loss'")
    objective = config["objective"]
    allowed = ["loss"] + names
    if not isinstance(objective, dict) or objective.get("metric") not in allowed:
        metric = objective.get("metric") if isinstance(objective, dict) else objective
        raise ConfigError(f"objective.metric={metric!r} is not one of {', '.join(allowed)}")
    if objective.get("goal") not in ("min", "max"):
        raise ConfigError(f"objective.goal={objective.get('goal')!r} is not one of max, min")
    return config
