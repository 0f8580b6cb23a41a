"""The next round's design (checklist 23-27): what a finished study's checks say to change.

Pure Python and NumPy: reads the study's files (study.json's config, the trials) and its checks,
and proposes the changes the playbook's loop calls for, each with the finding behind it:

* widen a nuisance range whose best trial sits at its edge (checklist 42-43), towards that edge,
  by WIDEN_FRACTION of the range's width in the sampler's coordinate (log for log scales);
* narrow a nuisance range whose good trials (the best quarter, at least 3) fall in a small part
  of it (at most SMALL_REGION of the width) that few trials sampled (at most SPARSE_TRIALS): the
  next round's trials land densely in the good region, padded by its own width on each side;
* fix a nuisance hyperparameter the study shows to be insensitive at its best value: the best
  objective in each third of its range (each value, for choices) differs by at most
  INSENSITIVE_FRACTION of the spread of all feasible objectives (at least 9 feasible trials);
* raise `study.max_trials` (x2) when the bootstrapped best-of-k has not reached its plateau
  (analysis.budget), raise `max_train_steps` (x2) when the best steps sit at the end of training
  or the best trials still improve there, halve it when they nearly all sit in the first 10% or
  the best trials saturate long before the end.

These thresholds are tfplaybook's choices (the playbook gives none). The round's goal, its
scientific hyperparameters, is never changed: a scientific range at its edge, and every warning
that needs a person (overfitting, instability, clipping...), is listed as a note with the
override or change that would follow it. A change that would make the config invalid (a rate
outside [0, 1), a negative size) is shrunk, then dropped with a note. No finding: nothing to change.

`advise(study_dir)` returns the Advice; `write_next_experiment` writes it as an experiment file
(`next_experiment.py` in the study directory, loadable with `get_config()`, re-exporting the
study's own `build_model` / `make_dataset`); the report shows the same advice.
"""

import copy
import dataclasses
import datetime
import math
import os
import pprint
import re

import numpy as np

from tfplaybook.analysis import budget, checks, study_data
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td

NEXT_EXPERIMENT = "next_experiment.py"
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


@dataclasses.dataclass
class Advice:
    study_dir: str
    name: str
    experiment: str  # The study's experiment file ("" when it came from the Python API).
    base_config: dict  # The config the study ran.
    config: dict  # The next round's config.
    changes: list
    notes: list  # Findings left to a person, one sentence each.
    scientific: list  # The round's goal: unchanged.

    @property
    def summary(self):
        if not self.changes:
            return "nothing to change: no finding of this study calls for a change of its design"
        return f"{len(self.changes)} change(s) for the next round"


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


def _next_name(name):
    match = re.fullmatch(r"(.*)_round(\d+)", name)
    return f"{match.group(1)}_round{int(match.group(2)) + 1}" if match else f"{name}_round2"


def advise(study_dir, thresholds=None, task=None, study=None, results=None, bootstrap=None):
    """The next round's Advice for the finished study in `study_dir`.

    Args:
      study_dir: a study directory (study.json and its trials).
      thresholds: overrides for the checks' thresholds (analysis.checks).
      task: the study's Task; default: one that knows which functions the study's experiment
        defined (study.json), so the user's code is never imported here.
      study, results, bootstrap: the loaded study, its check results and its
        `budget.best_of_k`, when the caller has them.

    Raises:
      ConfigError: when the directory holds no study this can advise on.
    """
    path = os.path.join(study_dir, "study.json")
    try:
        description = td.read_json(path)
    except (OSError, td.DamagedFileError) as e:
        raise ConfigError(f"--workdir={study_dir!r} holds no readable study.json ({e})") from None
    base = description.get("config")
    if not isinstance(base, dict) or "study" not in base:
        raise ConfigError(f"{path} records no config to start the next round from")
    study = study or study_data.load_study(study_dir)
    if not study.ranked():
        raise ConfigError(f"{study_dir!r} has no feasible trial with an objective to learn from")
    experiment = description.get("experiment") or ""
    if task is None:
        from tfplaybook.training import task as task_lib

        task = task_lib.declared(description.get("task_functions", ()))
    results = {r.id: r for r in (results or checks.run_checks(study, thresholds))}
    config = copy.deepcopy(base)
    changes, notes = [], []
    touched = _boundary_changes(study, results, config, task, changes, notes)
    _narrow_changes(study, config, task, touched, changes)
    _insensitive_changes(study, config, touched, changes)
    _budget_change(study, config, changes, bootstrap or budget.best_of_k(study))
    _steps_change(results, config, task, changes, notes)
    _notes(results, notes)
    if changes:
        name = _next_name(base["study"].get("name") or os.path.basename(study_dir))
        config["study"]["name"] = name
        changes.append(
            Change(
                "round",
                f"a new round gets a new name: {name}",
                f"config['study']['name'] = {name!r}",
            )
        )
    return Advice(
        study_dir=os.path.abspath(study_dir),
        name=study.name,
        experiment=os.path.abspath(experiment) if experiment else "",
        base_config=base,
        config=config,
        changes=changes,
        notes=notes,
        scientific=[e["name"] for e in base["study"]["search_space"] if e["role"] == "scientific"],
    )


def _wrap(text, prefix, width=99, then=None):
    """`text` wrapped at `width`: the first line after `prefix`, the others after `then`."""
    then = prefix if then is None else then
    lines, line, fresh = [], prefix, True
    for word in text.split():
        if len(line) + len(word) > width and not fresh:
            lines.append(line.rstrip())
            line, fresh = then, True
        line += word + " "
        fresh = False
    lines.append(line.rstrip())
    return "\n".join(lines)


def render(advice, today=None):
    """The next round as the text of an experiment file."""
    today = today or datetime.date.today().isoformat()
    goal = ", ".join(advice.scientific) or "none"
    workdir = advice.study_dir.rstrip("/") + "_next"
    head = [
        f'"""Next round of study {advice.name!r}, written by `--mode=advise` on {today}.',
        "",
        f"From {advice.study_dir}. {advice.summary[0].upper() + advice.summary[1:]}; each one",
        "names the finding that caused it. The round's goal, its scientific hyperparameters",
        f"({goal}), is unchanged: changing it is a person's choice.",
        "",
        "Run it in a new work directory (a study refuses a changed config):",
        "    python -m tfplaybook.run "
        f"--experiment={os.path.join(advice.study_dir, NEXT_EXPERIMENT)} \\",
        f"        --workdir={workdir}",
    ]
    if advice.notes:
        head += ["", "Findings left to you:"]
        head += [_wrap(note, "  - ", then="    ") for note in advice.notes]
    head.append('"""')
    body = ["", "import copy", ""]
    if advice.experiment:
        body += [
            "import importlib.util",
            "",
            "# The study's own experiment: its build_model / make_dataset (if any) run this round",
            "# too.",
            f"BASE_EXPERIMENT = {advice.experiment!r}",
            "_spec = importlib.util.spec_from_file_location('_base_experiment', BASE_EXPERIMENT)",
            "_base = importlib.util.module_from_spec(_spec)",
            "_spec.loader.exec_module(_base)",
            "build_model = getattr(_base, 'build_model', None)",
            "make_dataset = getattr(_base, 'make_dataset', None)",
            "",
        ]
    body += [
        "# The config the study ran (its study.json), as it was.",
        "STUDY_CONFIG = " + pprint.pformat(advice.base_config, sort_dicts=False, width=90),
        "",
        "",
        "def _entry(config, dim_id):",
        "    (entry,) = [e for e in config['study']['search_space'] if _id(e) == dim_id]",
        "    return entry",
        "",
        "",
        "def _id(entry):",
        "    if entry.get('parent') is None:",
        "        return entry['name']",
        "    return entry.get('id') or f\"{entry['parent_value']}/{entry['name']}\"",
        "",
        "",
        "def _remove(config, dim_id):",
        "    config['study']['search_space'].remove(_entry(config, dim_id))",
        "",
        "",
        "def _set(config, dotted, value):",
        "    *parents, last = dotted.split('.')",
        "    node = config",
        "    for part in parents:",
        "        node = node[part]",
        "    node[last] = value",
        "",
        "",
        "def get_config():",
        "    config = copy.deepcopy(STUDY_CONFIG)",
    ]
    if not advice.changes:
        body.append(
            "    # Nothing to change: no finding of the study calls for a change of its design."
        )
    for number, change in enumerate(advice.changes, 1):
        body.append(_wrap(f"{number}. [{change.check}] {change.reason}.", "    # "))
        body.append(f"    {change.statement}")
    body.append("    return config")
    return "\n".join(head + body) + "\n"


def write_next_experiment(advice, path=None):
    """Writes the next round's experiment file (atomically); returns its path."""
    path = path or os.path.join(advice.study_dir, NEXT_EXPERIMENT)
    td.atomic_write_text(path, render(advice))
    return path
