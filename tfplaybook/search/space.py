"""Search spaces as data: parse, validate, map to and from the unit cube, apply to a config.

Pure Python (no TensorFlow). A study declares its space in the experiment file as
`config["study"]["search_space"]`, a list of dicts::

    {"name": "optimizer.learning_rate", "role": "nuisance", "scale": "log", "min": 1e-3, "max": 1.0}
    {"name": "optimizer.name", "role": "scientific", "scale": "categorical",
     "values": ["nesterov", "adam"]}
    {"name": "optimizer.beta1", "parent": "optimizer.name", "parent_value": "adam",
     "role": "nuisance", "scale": "reverse_log", "min": 0.8, "max": 0.999}
    {"name": "model.width", "role": "scientific", "scale": "discrete", "values": [16, 32, 64]}
    {"name": "schedule.warmup_steps", "role": "nuisance", "scale": "log", "type": "int",
     "min": 10, "max": 1000}
    {"name": "model.dropout", "role": "fixed", "value": 0.1}

Roles (checklist 28): scientific, nuisance or fixed. Scales: linear, log, reverse_log (dense near
`max`, for values such as Adam's beta), discrete (ordered numbers) and categorical. A conditional
hyperparameter hangs under a categorical parent and is namespaced per branch (checklist 33): its
dimension id is `f"{parent_value}/{name}"`, so `nesterov/optimizer.learning_rate` and
`adam/optimizer.learning_rate` are different dimensions with their own ranges. An optional "id"
names a conditional dimension otherwise (a keras-tuner space keeps its hyperparameter names).

Every dimension (`Dimension`, tfplaybook.search.dimension) maps a coordinate u in [0, 1) to a value,
with the same floating-point expressions as the playbook's reference `halton.py`. A sampled point
is a dict `{dimension id: value}` that holds the active dimensions only; `SearchSpace.apply` writes
it into a config.

`SearchSpace.from_hyperparameters(hp)` and `to_hyperparameters()` convert from and to keras-tuner
(`tfplaybook.search.keras_space`); this module imports neither TensorFlow nor keras-tuner.
"""

import copy
import json
import math

from tfplaybook.config import ConfigError, get_path
from tfplaybook.search.dimension import Dimension, same_choice

ROLES = ("scientific", "nuisance", "fixed")
SCALES = ("linear", "log", "reverse_log", "discrete", "categorical")
TYPES = ("float", "int")
# The value a GP or a sampler gives an inactive conditional dimension: any constant works.
INACTIVE_UNIT = 0.5

_RANGE_KEYS = {"name", "role", "scale", "min", "max", "type", "parent", "parent_value", "id"}
_VALUES_KEYS = {"name", "role", "scale", "values", "parent", "parent_value", "id"}
_FIXED_KEYS = {"name", "role", "value"}


class SearchSpace:
    """An ordered list of dimensions plus the fixed hyperparameters of a study."""

    def __init__(self, dimensions, fixed=None):
        self.dimensions = tuple(dimensions)
        self.fixed = dict(fixed or {})
        self._by_id = {d.id: d for d in self.dimensions}

    @classmethod
    def from_hyperparameters(cls, hp, roles=None, unsupported_conditions="raise"):
        """A space from a `keras_tuner.HyperParameters` (or its config dict); ids are its names.

        Args:
          hp: the hyperparameters, e.g. `tuner.oracle.get_space()`.
          roles: optional {name: "scientific" | "nuisance" | "fixed"}; default nuisance, Fixed
            hyperparameters are fixed.
          unsupported_conditions: "raise" or "ignore"; see `tfplaybook.search.keras_space`.

        Raises:
          ConfigError: for what a SearchSpace cannot express (see `keras_space`).
        """
        from tfplaybook.search import keras_space  # It imports this module.

        return keras_space.from_hyperparameters(hp, roles, unsupported_conditions)

    def to_hyperparameters(self, include_fixed=True):
        """This space as a `keras_tuner.HyperParameters` named by dimension id (imports it)."""
        from tfplaybook.search import keras_space

        return keras_space.to_hyperparameters(self, include_fixed)

    @classmethod
    def from_config(cls, config):
        """Parses `config["study"]["search_space"]`, validated against `config` itself."""
        study = config.get("study") or {}
        if "search_space" not in study:
            raise ConfigError("the config has no study.search_space to tune")
        return parse(study["search_space"], config=config, objective=config.get("objective"))

    def __len__(self):
        return len(self.dimensions)

    @property
    def ids(self):
        return [d.id for d in self.dimensions]

    def dimension(self, dim_id):
        if dim_id not in self._by_id:
            raise KeyError(f"no dimension {dim_id!r}; dimensions: {', '.join(self.ids)}")
        return self._by_id[dim_id]

    def is_active(self, dim, values):
        """Whether `dim` takes part in the point `values` (its parent's branch is chosen)."""
        if dim.parent is None:
            return True
        parent_value = values.get(dim.parent)
        return parent_value is not None and same_choice(parent_value, dim.parent_value)

    def from_unit(self, point):
        """Maps one unit-cube point (one coordinate per dimension) to `{id: value}`, active only."""
        if len(point) != len(self.dimensions):
            raise ValueError(f"point has {len(point)} coordinates, the space {len(self)}")
        values = {d.id: d.from_unit(u) for d, u in zip(self.dimensions, point) if d.parent is None}
        for dim, u in zip(self.dimensions, point):
            if dim.parent is not None and self.is_active(dim, values):
                values[dim.id] = dim.from_unit(u)
        return values

    def to_unit(self, values):
        """Maps `{id: value}` to coordinates; inactive dimensions get INACTIVE_UNIT.

        Raises:
          ValueError: when an active dimension is missing or a value does not fit its dimension.
        """
        point = []
        for dim in self.dimensions:
            if not self.is_active(dim, values):
                point.append(INACTIVE_UNIT)
            elif dim.id not in values:
                raise ValueError(f"point {values!r} lacks the active dimension {dim.id!r}")
            else:
                point.append(dim.to_unit(values[dim.id]))
        return point

    def apply(self, config, values):
        """Returns a copy of `config` with the fixed values and the point `values` written in.

        A conditional dimension is written only when its parent's branch is active, to its plain
        dotted name (`adam/optimizer.learning_rate` sets `optimizer.learning_rate`).

        Raises:
          ConfigError: for an unknown dimension id, a missing active dimension, or a dotted name
            the config does not have.
        """
        unknown = [k for k in values if k not in self._by_id]
        if unknown:
            raise ConfigError(
                f"values name unknown dimensions {unknown}; dimensions: {', '.join(self.ids)}"
            )
        config = copy.deepcopy(config)
        for name, value in self.fixed.items():
            _set_path(config, name, copy.deepcopy(value))
        for dim in self.dimensions:
            if self.is_active(dim, values):
                if dim.id not in values:
                    raise ConfigError(f"no value for the active dimension {dim.id!r}")
                _set_path(config, dim.name, values[dim.id])
        return config

    def describe(self):
        """One dict per hyperparameter (varied then fixed), with id, role and scale, for reports."""
        rows = [dict(d.spec(), id=d.id) for d in self.dimensions]
        rows += [{"id": n, "name": n, "role": "fixed", "value": v} for n, v in self.fixed.items()]
        return rows

    def hparams(self, values):
        """The trial's hparams.json: {"values", "roles", "scales"} keyed by dimension id.

        Fixed hyperparameters are included with role and scale "fixed": each is a caveat on the
        study's conclusions (checklist 28).
        """
        active = {
            d.id: values[d.id]
            for d in self.dimensions
            if d.id in values and self.is_active(d, values)
        }
        roles = {d: self._by_id[d].role for d in active}
        scales = {d: self._by_id[d].scale for d in active}
        for name, value in self.fixed.items():
            active[name], roles[name], scales[name] = value, "fixed", "fixed"
        return {"values": active, "roles": roles, "scales": scales}

    def to_spec(self):
        """The canonical list-of-dicts form; `parse(space.to_spec())` rebuilds the space."""
        fixed = [{"name": n, "role": "fixed", "value": v} for n, v in self.fixed.items()]
        return [d.spec() for d in self.dimensions] + fixed

    def fingerprint(self):
        """A string that changes whenever the space changes (stored to refuse a mixed resume)."""
        return json.dumps(self.to_spec(), sort_keys=True, default=str)


def _set_path(config, dotted, value):
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or parts[-1] not in node:
        raise ConfigError(f"hyperparameter {dotted!r} is not a key of the config")
    node[parts[-1]] = value


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _objective_is_validation(objective):
    # The project's objective is measured on the evaluation split unless it says otherwise.
    return not isinstance(objective, dict) or objective.get("split", "validation") == "validation"


def parse(entries, config=None, objective=None):
    """Parses and validates a search-space list into a SearchSpace.

    Args:
      entries: the list of hyperparameter dicts (see the module docstring).
      config: optional experiment config; every name (and parent) must be one of its dotted keys.
      objective: optional objective dict ({"metric", "goal"[, "split"]}), for the batch-size rule.

    Returns:
      A SearchSpace.

    Raises:
      ConfigError: naming the first bad hyperparameter and what is allowed.
    """
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(f"search_space must be a list of dicts, got {type(entries).__name__}")
    dims, fixed, names = [], {}, {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"search_space[{index}]={entry!r} is not a dict with a 'name'")
        name = entry["name"]
        where = f"search_space[{index}] ({name!r})"
        role = entry.get("role")
        if role not in ROLES:
            raise ConfigError(f"{where}: role={role!r}; allowed: {', '.join(ROLES)}")
        if config is not None:
            try:
                get_path(config, name)
            except KeyError:
                raise ConfigError(f"{where}: the config has no key {name!r}") from None
        if role == "fixed":
            _check_keys(where, entry, _FIXED_KEYS)
            if "value" not in entry:
                raise ConfigError(f"{where}: a fixed hyperparameter needs a 'value'")
            if name in fixed:
                raise ConfigError(f"{where}: {name!r} is declared twice")
            if name in names.values():
                raise ConfigError(f"{where}: {name!r} is both fixed and varied")
            fixed[name] = entry["value"]
            continue
        dim = _parse_dimension(where, entry)
        _check_policy(where, dim, objective)
        # Branches of one name exclude each other; anything else writing the same key clashes.
        clash = [d for d in dims if d.name == name and (d.parent is None or dim.parent is None)]
        if dim.id in names or clash:
            raise ConfigError(f"{where}: {name!r} is declared twice")
        if name in fixed:
            raise ConfigError(f"{where}: {name!r} is both fixed and varied")
        names[dim.id] = name
        dims.append(dim)
    by_id = {d.id: d for d in dims}
    for dim in dims:
        _check_parent(f"hyperparameter {dim.id!r}", dim, by_id)
    return SearchSpace(dims, fixed)


def _check_keys(where, entry, allowed):
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown keys {extra}; allowed: {', '.join(sorted(allowed))}")


def _parse_dimension(where, entry):
    scale = entry.get("scale")
    if scale not in SCALES:
        raise ConfigError(f"{where}: scale={scale!r}; allowed: {', '.join(SCALES)}")
    if ("parent" in entry) != ("parent_value" in entry):
        raise ConfigError(
            f"{where}: a conditional hyperparameter needs both parent and parent_value"
        )
    if "id" in entry and ("parent" not in entry or not isinstance(entry["id"], str)):
        raise ConfigError(f"{where}: 'id' is a string, for conditional hyperparameters only")
    common = dict(
        name=entry["name"],
        role=entry["role"],
        scale=scale,
        parent=entry.get("parent"),
        parent_value=entry.get("parent_value"),
        dim_id=entry.get("id"),
    )
    if scale in ("discrete", "categorical"):
        _check_keys(where, entry, _VALUES_KEYS)
        values = entry.get("values")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{where}: {scale} needs a non-empty list 'values', got {values!r}")
        if scale == "discrete":
            if not all(_is_number(v) for v in values) or any(
                a >= b for a, b in zip(values, values[1:])
            ):
                raise ConfigError(
                    f"{where}: discrete values {list(values)} must be finite numbers in strictly "
                    "increasing order (use categorical for unordered choices)"
                )
        else:
            kinds = {type(v) for v in values}
            if len(kinds) != 1 or not kinds <= {str, int, float, bool}:
                raise ConfigError(
                    f"{where}: categorical values {list(values)} must all be str, all int, all "
                    "float or all bool"
                )
            if len(set(values)) != len(values):
                raise ConfigError(f"{where}: categorical values {list(values)} repeat a value")
        return Dimension(values=values, **common)
    _check_keys(where, entry, _RANGE_KEYS)
    low, high, kind = entry.get("min"), entry.get("max"), entry.get("type", "float")
    if not _is_number(low) or not _is_number(high) or not low < high:
        raise ConfigError(f"{where}: needs finite numbers min < max, got min={low!r} max={high!r}")
    if scale in ("log", "reverse_log") and low <= 0:
        raise ConfigError(
            f"{where}: a {scale} range must be positive, got min={low!r} (use linear for ranges "
            "that touch 0)"
        )
    if kind not in TYPES:
        raise ConfigError(f"{where}: type={kind!r}; allowed: {', '.join(TYPES)}")
    if kind == "int":
        if scale == "reverse_log":
            raise ConfigError(
                f"{where}: type 'int' supports scales linear and log, not reverse_log"
            )
        if float(low) != int(low) or float(high) != int(high):
            raise ConfigError(
                f"{where}: type 'int' needs integer min and max, got {low!r}, {high!r}"
            )
        low, high = int(low), int(high)
    return Dimension(low=low, high=high, is_int=kind == "int", **common)


def _check_policy(where, dim, objective):
    if dim.name == "max_train_steps":
        # Checklist 68.
        raise ConfigError(
            f"{where}: max_train_steps may not be tuned within a study: the playbook uses one step "
            "budget for all trials (retrospective checkpoint selection makes longer training "
            "safe); fix it instead"
        )
    if dim.name == "batch_size" and _objective_is_validation(objective):
        # Checklist 5 and 16.
        raise ConfigError(
            f"{where}: batch_size is not a hyperparameter to tune for validation performance: it "
            "sets training time and resource use, and changing it requires re-tuning most other "
            "hyperparameters; pick the largest efficient batch size and fix it"
        )


def _check_parent(where, dim, by_id):
    if dim.parent is None:
        return
    parent = by_id.get(dim.parent)
    if parent is None:
        known = [i for i, d in by_id.items() if d.scale == "categorical" and d.parent is None]
        raise ConfigError(
            f"{where}: unknown parent {dim.parent!r}; categorical hyperparameters: {known}"
        )
    if parent.scale != "categorical" or parent.parent is not None:
        raise ConfigError(
            f"{where}: parent {dim.parent!r} must be an unconditional categorical hyperparameter"
        )
    if not any(same_choice(v, dim.parent_value) for v in parent.values):
        raise ConfigError(
            f"{where}: parent_value={dim.parent_value!r} is not one of {list(parent.values)}"
        )
