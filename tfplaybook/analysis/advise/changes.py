"""The changes the next round makes, each with the finding behind it (see the package docstring).

Widen a nuisance range at its edge, narrow one to a sparsely sampled good region, fix an
insensitive nuisance hyperparameter, raise the trial budget, raise or lower max_train_steps, and
list every other warning as a note for a person. Each function appends `Change`s (and notes) and
edits the config in place. The thresholds below are tfplaybook's choices.
"""

import copy
import dataclasses
import math

import numpy as np

from tfplaybook.analysis import checks
from tfplaybook.analysis.advise.ranges import (
    _entry,
    _range_entries,
    _remove,
    _set,
    _try_range,
    _valid,
)

WIDEN_FRACTION = 0.5
SMALL_REGION = 0.25
SPARSE_TRIALS = 4
GOOD_SHARE = 0.25
MIN_TRIALS_NARROW = 8
INSENSITIVE_FRACTION = 0.1
MIN_TRIALS_INSENSITIVE = 9
STEPS_FACTOR = 2
TRIALS_FACTOR = 2
# Warnings the advisor does not act on: what a person would change to follow them.
_NOTE_OVERRIDES = {
    "overfitting_best": "e.g. --override=label_smoothing=0.1 or a larger model.dropout",
    "overfitting_all": "e.g. --override=label_smoothing=0.1 or tune weight decay",
    "late_variance": "e.g. --override=ema_decay=0.999: the averaged weights are evaluated too",
}


@dataclasses.dataclass
class Change:
    """One change of the next round's config: a Python statement and the finding behind it."""

    check: str  # The check or analysis that caused it.
    reason: str  # One sentence with the numbers.
    statement: str  # Applied to `config` in next_experiment.py's get_config().


def _boundary_changes(study, results, config, task, changes, notes):
    positions = results["search_space_boundary"].numbers.get("positions", [])
    fraction = results["search_space_boundary"].thresholds["boundary_fraction"]
    ranges = _range_entries(config)
    widened = set()
    for position in positions:
        dim_id, unit = position["dimension"], position["scaled_position"]
        side = "low" if unit <= fraction else "high" if unit >= 1 - fraction else None
        if side is None or dim_id in widened or dim_id not in ranges:
            continue
        entry = ranges[dim_id]
        where = (
            f"the best trial ({position['trial']}) sits at the {side} end of {dim_id} "
            f"(scaled position {unit:.2f}, value {position['value']:.4g})"
        )
        if entry["role"] == "scientific":
            notes.append(
                f"{where}: it is a scientific hyperparameter, so its range is the round's "
                "question; widen it yourself if the question allows"
            )
            continue
        u_low, u_high = (-WIDEN_FRACTION, 1.0) if side == "low" else (0.0, 1.0 + WIDEN_FRACTION)
        described, problem = _try_range(config, task, dim_id, u_low, u_high, (0.0, 1.0))
        if described is None:
            notes.append(f"{where}, but it cannot be widened: {problem}")
            continue
        entry = _entry(config, dim_id)
        widened.add(dim_id)
        changes.append(
            Change(
                "search_space_boundary",
                f"{where}: widen it {'down' if side == 'low' else 'up'}ward by "
                f"{WIDEN_FRACTION:.0%} of its width, {described}",
                f"_entry(config, {dim_id!r}).update(min={entry['min']!r}, max={entry['max']!r})",
            )
        )
    return widened


def _unit_positions(study, dim):
    ranked = study.ranked()
    units = [dim.to_unit(t.values.get(dim.id)) for t in ranked]
    return ranked, units


def _narrow_changes(study, config, task, skip, changes):
    ranked = study.ranked()
    if len(ranked) < MIN_TRIALS_NARROW:
        return
    good_count = max(3, int(math.ceil(GOOD_SHARE * len(ranked))))
    for dim_id, entry in _range_entries(config).items():
        if entry["role"] != "nuisance" or dim_id in skip:
            continue
        dim = study.dimension(dim_id) if dim_id in {d.id for d in study.dimensions} else None
        if dim is None:
            continue
        _, units = _unit_positions(study, dim)
        good = [u for u in units[:good_count] if u is not None]
        if len(good) < 3:
            continue
        a, b = min(good), max(good)
        inside = sum(1 for u in units if u is not None and a <= u <= b)
        if b - a > SMALL_REGION or inside > SPARSE_TRIALS:
            continue
        pad = max(b - a, 0.05)
        u_low, u_high = max(0.0, a - pad), min(1.0, b + pad)
        if u_high - u_low >= 0.9:
            continue
        described, _ = _try_range(config, task, dim_id, u_low, u_high, (0.0, 1.0))
        if described is None:
            continue
        entry = _entry(config, dim_id)
        changes.append(
            Change(
                "good_region",
                f"the best {len(good)} trials put {dim_id} in {b - a:.0%} of its range "
                f"(scaled {a:.2f}-{b:.2f}), which only {inside} trials sampled: narrow it to "
                f"that region padded by its width on each side, {described}",
                f"_entry(config, {dim_id!r}).update(min={entry['min']!r}, max={entry['max']!r})",
            )
        )
        skip.add(dim_id)


def _groups(study, dim, feasible):
    """The feasible trials grouped by thirds of the range (by value, for choices)."""
    groups = {}
    for trial in feasible:
        value = trial.values.get(dim.id)
        if value is None:
            continue
        unit = dim.to_unit(value)
        key = repr(value) if unit is None else min(2, int(max(unit, 0.0) * 3))
        groups.setdefault(key, []).append(trial.objective)
    return groups


def _insensitive_changes(study, config, skip, changes):
    feasible = study.ranked()
    if len(feasible) < MIN_TRIALS_INSENSITIVE:
        return
    objectives = np.array([t.objective for t in feasible])
    spread = float(objectives.max() - objectives.min())
    if spread <= 0:
        return
    sign = study.sign()
    best = feasible[0]
    varied = [d for d in study.varied_dimensions() if d.role == "nuisance" and d.id not in skip]
    remaining = len([e for e in config["study"]["search_space"] if e["role"] != "fixed"])
    for dim in varied:
        if dim.parent is not None or remaining <= 1:
            continue
        groups = _groups(study, dim, feasible)
        if len(groups) < 2 or min(len(g) for g in groups.values()) < 2:
            continue
        bests = [sign * max(sign * np.array(g)) for g in groups.values()]
        gap = max(bests) - min(bests)
        if gap > INSENSITIVE_FRACTION * spread:
            continue
        value = best.values[dim.id]
        changes.append(
            Change(
                "insensitive",
                f"{dim.id} looks insensitive: the best {study.metric} in each "
                f"{'value' if dim.to_unit(value) is None else 'third of its range'} differs by "
                f"{gap:.3g}, at most {INSENSITIVE_FRACTION:.0%} of the trials' spread "
                f"({spread:.3g}): fix it at the best trial's value {value!r}",
                f"_remove(config, {dim.id!r}); _set(config, {dim.name!r}, {value!r})",
            )
        )
        _remove(config, dim.id)
        _set(config, dim.name, value)
        remaining -= 1
        skip.add(dim.id)


def _budget_change(study, config, changes, result):
    if result is None or result["plateau"] is not False:
        return
    new = int(config["study"]["max_trials"]) * TRIALS_FACTOR
    changes.append(
        Change(
            "how_many_trials",
            f"the best-of-study is unstable: from {math.ceil(result['n'] / 2)} to {result['n']} "
            f"trials the bootstrapped median best {study.metric} still moves by "
            f"{result['gain']:.3g} (more than 2% of the trials' spread, "
            f"{result['threshold']:.3g}). "
            f"Raise study.max_trials {config['study']['max_trials']} -> {new}",
            f"config['study']['max_trials'] = {new}",
        )
    )
    config["study"]["max_trials"] = new


def _steps_change(results, config, task, changes, notes):
    position, improving = results["best_step_position"], results["still_improving"]
    saturated = results["saturated_early"]
    steps = int(config["max_train_steps"])
    late = position.verdict == checks.WARNING and "last" in position.finding
    early = position.verdict == checks.WARNING and "first" in position.finding
    if late or improving.verdict == checks.WARNING:
        cause = position if late else improving
        new, direction = steps * STEPS_FACTOR, "raise"
    elif early or saturated.verdict == checks.WARNING:
        cause = position if early else saturated
        new, direction = max(1, steps // STEPS_FACTOR), "lower"
    else:
        return
    trial = copy.deepcopy(config)
    trial["max_train_steps"] = new
    problem = _valid(trial, task)
    if problem is not None:
        notes.append(f"{cause.finding} max_train_steps cannot be changed to {new}: {problem}")
        return
    changes.append(
        Change(
            cause.id,
            f"{cause.finding} {direction.capitalize()} max_train_steps {steps} -> {new}",
            f"config['max_train_steps'] = {new}",
        )
    )
    config["max_train_steps"] = new


def _notes(results, notes):
    acted = {
        "search_space_boundary",
        "best_step_position",
        "still_improving",
        "saturated_early",
        "adam_budget",
    }
    for result in results.values():
        if result.verdict != checks.WARNING or result.id in acted:
            continue
        follow = _NOTE_OVERRIDES.get(result.id)
        notes.append(
            f"{result.title}: {result.finding} {result.advice}" + (f" ({follow})" if follow else "")
        )
