"""Editing the next round's config: search-space entries and their ranges.

Entries are found by their dimension id (`entry_id`); a range is moved in the sampler's
coordinate (log for log scales), where [0, 1] is the current range and values beyond it extend
it. `_try_range` sets a new range and shrinks the change until the config is valid.
Underscored names are private to the `advise` package.
"""

import math

from tfplaybook.analysis import study_data
from tfplaybook.config import ConfigError


def entry_id(entry):
    """A search-space entry's dimension id (tfplaybook.search.space)."""
    if entry.get("parent") is None:
        return entry["name"]
    return entry.get("id") or f"{entry['parent_value']}/{entry['name']}"


def _entry(config, dim_id):
    for entry in config["study"]["search_space"]:
        if entry_id(entry) == dim_id:
            return entry
    raise KeyError(dim_id)


def _set(config, dotted, value):
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _remove(config, dim_id):
    config["study"]["search_space"] = [
        e for e in config["study"]["search_space"] if entry_id(e) != dim_id
    ]


# Ranges in the sampler's coordinate, extended beyond [0, 1].


def _value_at(entry, u):
    low, high, scale = entry["min"], entry["max"], entry["scale"]
    if scale == "log":
        return low * math.exp(u * math.log(high / low))
    if scale == "reverse_log":
        return (low + high) - math.exp(math.log(high) - u * (math.log(high) - math.log(low)))
    return low + u * (high - low)


def _new_bounds(entry, u_low, u_high):
    """(min, max) of the range whose ends sit at u_low and u_high of `entry`'s coordinate."""
    low, high = _value_at(entry, u_low), _value_at(entry, u_high)
    if entry["scale"] == "linear" and entry["min"] >= 0 > low:
        low = 0.0  # A non-negative range stays non-negative.
    if entry.get("type") == "int":
        low, high = int(math.floor(low)), int(math.ceil(high))
        if entry["scale"] == "log":
            low = max(low, 1)
    else:
        low, high = float(f"{low:.4g}"), float(f"{high:.4g}")
    return low, high


def _valid(config, task):
    from tfplaybook import validation

    try:
        validation.check_config(config, task, study=True)
    except ConfigError as e:
        return str(e)
    return None


def _describe(entry, low, high):
    old_low, old_high = entry["min"], entry["max"]
    if entry["scale"] == "log":
        factor = (high / low) / (old_high / old_low)
        scale = f"width x{factor:.3g} on its log scale"
        return f"[{old_low:g}, {old_high:g}] -> [{low:g}, {high:g}] ({scale})"
    return f"[{old_low:g}, {old_high:g}] -> [{low:g}, {high:g}]"


def _try_range(config, task, dim_id, u_low, u_high, shrink_towards):
    """Sets the entry's range; shrinks the change (up to 4 halvings) until the config is valid.

    Returns (description, None) when a valid change was made, (None, why) otherwise.
    """
    entry = _entry(config, dim_id)
    original = (entry["min"], entry["max"])
    problem = None
    for _ in range(5):
        low, high = _new_bounds(entry, u_low, u_high)
        if (low, high) == original or not low < high:
            break
        entry["min"], entry["max"] = low, high
        problem = _valid(config, task)
        if problem is None:
            probe = dict(entry, min=original[0], max=original[1])
            return _describe(probe, low, high), None
        entry["min"], entry["max"] = original
        u_low, u_high = (u_low + shrink_towards[0]) / 2, (u_high + shrink_towards[1]) / 2
    return None, problem or "it is already at the end of its allowed values"


def _range_entries(config):
    return {
        entry_id(e): e
        for e in config["study"]["search_space"]
        if e.get("scale") in study_data.RANGE_SCALES
    }
