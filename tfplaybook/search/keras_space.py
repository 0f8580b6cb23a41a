"""keras-tuner HyperParameters <-> SearchSpace: the keras-tuner bridge's space mapping.

Pure Python: `from_hyperparameters` reads a `keras_tuner.HyperParameters`, a list of its
hyperparameters, or the `get_config()` dict that oracle.json and trial.json store, without
importing keras-tuner (the analysis uses it on files); `to_hyperparameters` imports keras-tuner.
`SearchSpace.from_hyperparameters` and `SearchSpace.to_hyperparameters` call these. Mapping:

    keras-tuner                               SearchSpace
    Float(min, max, sampling=s)               range, type float, scale s (linear, log, reverse_log)
    Int(min, max) / Int(.., sampling="log")   range, type int, scale linear / log
    Float or Int with a step (not Int's 1)    discrete over keras-tuner's own step grid
    Choice of numbers (ordered, the default)  discrete over the sorted values
    Choice(ordered=False), Choice of str      categorical
    Boolean                                   categorical [False, True]
    Fixed(value)                              fixed
    conditional_scope(parent, [value])        conditional on an unconditional categorical parent;
                                              its dimension id is the hyperparameter's name

Back, discrete becomes an ordered Choice, categorical [False, True] a Boolean, and a dimension is
named by its id. Defaults are not kept: quasi-random search and the GP never use them. Int with
sampling="reverse_log" and no step has no SearchSpace scale and is refused. Conditions a
SearchSpace cannot express (several parent values, nested scopes, a numeric parent) are refused,
or with unsupported_conditions="ignore" the dimension is kept unconditional (the oracles do this:
keras-tuner still decides when the hyperparameter is active).
"""

import math

from tfplaybook.config import ConfigError
from tfplaybook.search import space as space_lib

CLASSES = ("Float", "Int", "Choice", "Boolean", "Fixed")
UNSUPPORTED_CONDITIONS = ("raise", "ignore")


def hyperparameter_entries(hp):
    """The hyperparameters as keras-tuner config entries {"class_name", "config"}, in order."""
    if isinstance(hp, dict):
        return list(hp["space"])
    if hasattr(hp, "get_config") and hasattr(hp, "space"):
        return list(hp.get_config()["space"])
    entries = []
    for item in hp:
        if isinstance(item, dict):
            entries.append(item)
        else:
            entries.append({"class_name": type(item).__name__, "config": item.get_config()})
    return entries


def _conditions(config):
    """[(parent name, parent values)] of one hyperparameter config."""
    out = []
    for condition in config.get("conditions") or ():
        body = condition.get("config", condition)
        out.append((body["name"], list(body["values"])))
    return out


def _step_grid(config, is_int):
    """keras-tuner's own values of a stepped Float or Int (Numerical._get_value_by_index)."""
    low, high, step, sampling = (config[k] for k in ("min_value", "max_value", "step", "sampling"))
    if sampling == "linear":
        count = int((high - low) // step + 1)
        grid = [low + i * step for i in range(count)]
    else:
        count = int(math.log(high / low, step) + 1e-8) + 1
        grid = [low * math.pow(step, i) for i in range(count)]
        if sampling == "reverse_log":
            grid = [high + low - v for v in grid]
    return sorted({int(v) if is_int else float(v) for v in grid})


def _default(kind, config):
    if kind == "Fixed":
        return config["value"]
    if config.get("default") is not None:
        return config["default"]
    if kind == "Boolean":
        return False
    if kind == "Choice":
        return config["values"][0]
    return config["min_value"]


def _dimension(kind, config, role, where):
    """A space Dimension (unconditional) for one non-fixed hyperparameter."""
    name = config["name"]
    if kind == "Boolean":
        return space_lib.Dimension(name, role, "categorical", values=[False, True])
    if kind == "Choice":
        values = list(config["values"])
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not values or len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{where}: Choice values {values} are empty or repeat a value")
        if numeric and config.get("ordered", True):
            return space_lib.Dimension(name, role, "discrete", values=sorted(values))
        return space_lib.Dimension(name, role, "categorical", values=values)
    is_int = kind == "Int"
    low, high, sampling = config["min_value"], config["max_value"], config.get("sampling")
    sampling = (sampling or "linear").lower()
    if not low < high:
        raise ConfigError(f"{where}: min_value={low!r} must be below max_value={high!r} (or Fixed)")
    step = config.get("step")
    if is_int and sampling == "linear" and step in (None, 1):
        step = None  # keras-tuner's default step of a linear Int: every integer.
    if step is not None:
        return space_lib.Dimension(name, role, "discrete", values=_step_grid(config, is_int))
    if is_int and sampling == "reverse_log":
        raise ConfigError(
            f"{where}: Int with sampling='reverse_log' needs a step (a SearchSpace has no integer "
            "reverse_log scale); give a step or use Float"
        )
    return space_lib.Dimension(name, role, sampling, low, high, is_int=is_int)


def from_hyperparameters(hp, roles=None, unsupported_conditions="raise"):
    """A SearchSpace from keras-tuner hyperparameters (see the module docstring for the mapping).

    Args:
      hp: a `keras_tuner.HyperParameters`, a list of its hyperparameters, or its config dict.
      roles: optional {name: "scientific" | "nuisance" | "fixed"}; default nuisance, and Fixed
        hyperparameters are always fixed. A non-Fixed hyperparameter with role "fixed" is fixed
        at its default.
      unsupported_conditions: "raise" (default) or "ignore" (keep the dimension unconditional).

    Returns:
      A SearchSpace whose dimension ids are the hyperparameter names.

    Raises:
      ConfigError: for an unknown class, role or name in `roles`, a name used twice, an empty
        range, Int reverse_log without a step, or (by default) an unsupported condition.
    """
    if unsupported_conditions not in UNSUPPORTED_CONDITIONS:
        raise ConfigError(
            f"unsupported_conditions={unsupported_conditions!r}; allowed: "
            f"{', '.join(UNSUPPORTED_CONDITIONS)}"
        )
    entries = hyperparameter_entries(hp)
    names = [e["config"]["name"] for e in entries]
    roles = dict(roles or {})
    unknown = sorted(set(roles) - set(names))
    if unknown:
        raise ConfigError(f"roles name unknown hyperparameters {unknown}; known: {names}")
    for name, role in roles.items():
        if role not in space_lib.ROLES:
            raise ConfigError(f"roles[{name!r}]={role!r}; allowed: {', '.join(space_lib.ROLES)}")
    dims, fixed = [], {}
    for entry in entries:
        kind, config = entry["class_name"], entry["config"]
        name = config["name"]
        where = f"hyperparameter {name!r} ({kind})"
        if kind not in CLASSES:
            raise ConfigError(f"{where}: unknown class; known: {', '.join(CLASSES)}")
        if name in fixed or any(d.id == name for d in dims):
            raise ConfigError(
                f"{where}: the name is declared twice (under other conditions); give each "
                "branch's hyperparameter its own name"
            )
        role = "fixed" if kind == "Fixed" else roles.get(name, "nuisance")
        if role == "fixed":
            fixed[name] = _default(kind, config)
            continue
        dim = _dimension(kind, config, role, where)
        parent = _parent(name, _conditions(config), dims, where, unsupported_conditions)
        if parent is not None:
            parent_name, parent_value = parent
            prefix = f"{parent_value}/"
            # tfplaybook's own ids are `parent_value/name`: keep them; any other name is the id.
            plain = name[len(prefix) :] if name.startswith(prefix) else name
            dim_id = None if plain != name else name
            dim = space_lib.Dimension(
                plain,
                role,
                dim.scale,
                dim.min,
                dim.max,
                dim.values,
                dim.is_int,
                parent_name,
                parent_value,
                dim_id=dim_id,
            )
        dims.append(dim)
    return space_lib.SearchSpace(dims, fixed)


def _parent(name, conditions, dims, where, unsupported):
    """(parent, value) of a condition a SearchSpace can express, None for none (or ignored)."""
    if not conditions:
        return None
    by_id = {d.id: d for d in dims}
    parent = by_id.get(conditions[0][0])
    supported = (
        len(conditions) == 1
        and len(conditions[0][1]) == 1
        and parent is not None
        and parent.scale == "categorical"
        and parent.parent is None
    )
    if supported:
        return conditions[0][0], conditions[0][1][0]
    if unsupported == "ignore":
        return None
    raise ConfigError(
        f"{where}: condition {conditions} is not one a SearchSpace can express (one scope, one "
        "value, on an unconditional categorical parent); pass unsupported_conditions='ignore' to "
        "keep it unconditional"
    )


def to_hyperparameters(space, include_fixed=True):
    """The space as a keras_tuner.HyperParameters, named by dimension id (imports keras-tuner).

    Args:
      space: a SearchSpace.
      include_fixed: also register the fixed hyperparameters as `hp.Fixed`. The oracles leave
        them out: a trial's values then hold exactly the space's dimensions.
    """
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    # Parents first: a conditional scope needs its parent registered.
    for dim in sorted(space.dimensions, key=lambda d: d.parent is not None):
        if dim.parent is None:
            _register(hp, dim)
        else:
            with hp.conditional_scope(dim.parent, [dim.parent_value]):
                _register(hp, dim)
    if include_fixed:
        for name, value in space.fixed.items():
            if isinstance(value, (list, dict, tuple)) or value is None:
                raise ConfigError(
                    f"fixed {name}={value!r}: keras-tuner's Fixed takes an int, float, str or bool"
                )
            hp.Fixed(name, value)
    return hp


def _register(hp, dim):
    if dim.scale == "categorical":
        if dim.values == (False, True):
            hp.Boolean(dim.id)
        else:
            hp.Choice(dim.id, list(dim.values), ordered=False)
    elif dim.scale == "discrete":
        as_float = any(isinstance(v, float) for v in dim.values)
        hp.Choice(dim.id, [float(v) if as_float else v for v in dim.values], ordered=True)
    elif dim.is_int:
        hp.Int(dim.id, dim.min, dim.max, sampling=dim.scale)
    else:
        hp.Float(dim.id, dim.min, dim.max, sampling=dim.scale)
