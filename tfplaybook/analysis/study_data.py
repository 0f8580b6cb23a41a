"""Loads a study directory into plain data for the post-study checks, plots and report.

Pure Python and NumPy: no TensorFlow, no matplotlib. Analysis reads trial directories only (see
`tfplaybook.files.trial_dir`), so a report can be re-made from a copied study folder. Layout::

    STUDY/study.json      {"name", "experiment", "objective": {"metric", "goal"}, "max_trials",
                           "oracle", "search_space": [dimension specs]}
    STUDY/<trial>/        every direct subdirectory holding a status.json, sorted by name

When study.json is missing, the first trial's config supplies the objective and the search space
(its `study` section), so a folder of trials can still be analysed.
A directory with neither (no status.json trial, no study.json) but keras-tuner trial_*/trial.json
files is a stock keras-tuner project: `keras_tuner_study` reads it.

A trial's objective is its best validation value over training (checklist 43): status.json's
best_value/best_step when present, recomputed from measurements.jsonl otherwise. Diverged and
failed trials are infeasible (checklist 41).
"""

import dataclasses
import math
import os

import numpy as np

from tfplaybook.files import trial_dir as td
from tfplaybook.search import space as space_lib

GOALS = ("max", "min")
RANGE_SCALES = ("linear", "log", "reverse_log")
INFEASIBLE = (td.DIVERGED, td.FAILED)


@dataclasses.dataclass
class Dimension:
    """One hyperparameter of the study as the analysis sees it (range may be unknown)."""

    id: str  # The key in hparams.json "values": `parent_value/name` for conditional ones.
    name: str  # The dotted config key it sets.
    role: str
    scale: str
    min: float = None
    max: float = None
    values: list = None  # Feasible points of discrete/categorical dimensions.
    parent: str = None
    parent_value: object = None
    is_int: bool = False

    @property
    def numeric(self):
        return self.scale not in ("categorical", "fixed")

    def bounds(self):
        """Returns (low, high) of the search range, or None when it is unknown."""
        if self.min is not None and self.max is not None:
            return float(self.min), float(self.max)
        if self.values and self.numeric:
            numbers = [float(v) for v in self.values]
            return min(numbers), max(numbers)
        return None

    def transform(self, x):
        """The plotting coordinate: log for "log"; for "reverse_log", -log(low + high - x)."""
        x = np.asarray(x, dtype=float)
        if self.scale == "log":
            return np.log(x)
        if self.scale == "reverse_log":
            low, high = self.bounds()
            return -np.log(low + high - x)
        return x

    def untransform(self, t):
        """Inverse of `transform`."""
        t = np.asarray(t, dtype=float)
        if self.scale == "log":
            return np.exp(t)
        if self.scale == "reverse_log":
            low, high = self.bounds()
            return low + high - np.exp(-t)
        return t

    def to_unit(self, value):
        """Position of `value` in the range's scaled coordinate (log for log scales), or None.

        The search space's own map (`search.space.Dimension.to_unit`), so the analysis measures
        distances as the sampler placed the points. None for choices (discrete, categorical),
        an unknown range, or a value the scale cannot place.
        """
        if self.scale not in RANGE_SCALES or self.min is None or self.max is None:
            return None
        space_dim = space_lib.Dimension(
            self.name, self.role, self.scale, self.min, self.max, is_int=self.is_int
        )
        try:
            return float(space_dim.to_unit(value))
        except (TypeError, ValueError, ZeroDivisionError):
            return None


@dataclasses.dataclass(eq=False)  # Trials compare by identity.
class Trial:
    """One trial directory, parsed."""

    id: str
    path: str
    status: str
    reason: str
    config: dict
    values: dict  # hparams.json "values": {dimension id: value}.
    roles: dict
    scales: dict
    series: dict  # {(split, metric): (steps ndarray, values ndarray)}, in step order.
    objective: float = None  # Best validation value of the objective metric (checklist 43).
    best_step: int = None

    @property
    def feasible(self):
        return self.status not in INFEASIBLE

    @property
    def completed(self):
        return self.status == td.COMPLETED

    @property
    def max_train_steps(self):
        return self.config.get("max_train_steps")

    @property
    def batch_size(self):
        return self.config.get("batch_size")

    @property
    def clip_norm(self):
        return float(self.config.get("optimizer", {}).get("clip_norm", 0.0) or 0.0)

    @property
    def optimizer_name(self):
        return self.config.get("optimizer", {}).get("name")

    def curve(self, split, metric):
        """Returns (steps, values) arrays; empty arrays when the trial logged no such series."""
        return self.series.get((split, metric), (np.zeros(0, int), np.zeros(0)))

    def final(self, split, metric):
        values = self.curve(split, metric)[1]
        return float(values[-1]) if len(values) else None


@dataclasses.dataclass(eq=False)
class Study:
    """A study directory: its description, search space and trials."""

    path: str
    name: str
    experiment: str
    metric: str
    goal: str
    max_trials: int
    oracle: str
    dimensions: list
    trials: list
    warnings: list  # Trials skipped or files that could not be read, one sentence each.

    def dimension(self, dim_id):
        for dim in self.dimensions:
            if dim.id == dim_id:
                return dim
        raise KeyError(dim_id)

    def sign(self):
        """+1 when larger objective values are better, -1 otherwise."""
        return 1.0 if self.goal == "max" else -1.0

    def ranked(self):
        """Feasible trials with an objective, best first (ties broken by trial id)."""
        scored = [t for t in self.trials if t.feasible and _finite(t.objective)]
        return sorted(scored, key=lambda t: (-self.sign() * t.objective, t.id))

    def best(self, k=1):
        return self.ranked()[:k]

    def varied_dimensions(self):
        """Dimensions that are not fixed and took at least two distinct values across trials."""
        varied = []
        for dim in self.dimensions:
            seen = {repr(t.values[dim.id]) for t in self.trials if t.values.get(dim.id) is not None}
            if dim.role != "fixed" and len(seen) > 1:
                varied.append(dim)
        return varied

    def scientific_dimensions(self):
        return [d for d in self.dimensions if d.role == "scientific"]


def _finite(x):
    return x is not None and math.isfinite(x)


def best_of_series(steps, values, goal):
    """Returns (best value, first step reaching it) over the finite values, or (None, None)."""
    finite = np.isfinite(values)
    if not finite.any():
        return None, None
    chosen = values[finite]
    index = int(np.argmax(chosen) if goal == "max" else np.argmin(chosen))
    return float(chosen[index]), int(steps[finite][index])


def _series(rows):
    keys = {(row["split"], row["metric"]) for row in rows}
    series = {}
    for key in keys:
        steps, values = td.series(rows, *key)
        series[key] = (np.array(steps, dtype=int), np.array(values, dtype=float))
    return series


def load_trial(path, metric, goal):
    """Parses one trial directory; raises DamagedFileError when a state file does not parse."""
    status = td.read_status(path) or {"status": td.RUNNING}
    config = td.read_config(path) if os.path.exists(os.path.join(path, td.CONFIG)) else {}
    hparams_path = os.path.join(path, td.HPARAMS)
    hparams = td.read_json(hparams_path) if os.path.exists(hparams_path) else {}
    series = _series(td.read_measurements(path))
    best_value, best_step = status.get("best_value"), status.get("best_step")
    same_metric = status.get("objective", {}).get("metric", metric) == metric
    if not (_finite(best_value) and best_step is not None and same_metric):
        steps, values = series.get((td.VALIDATION, metric), (np.zeros(0, int), np.zeros(0)))
        best_value, best_step = best_of_series(steps, values, goal)
    return Trial(
        id=os.path.basename(os.path.normpath(path)),
        path=path,
        status=status["status"],
        reason=status.get("reason", ""),
        config=config,
        values=dict(hparams.get("values", {})),
        roles=dict(hparams.get("roles", {})),
        scales=dict(hparams.get("scales", {})),
        series=series,
        objective=float(best_value) if _finite(best_value) else None,
        best_step=None if best_step is None else int(best_step),
    )


def _dimension_from_spec(spec):
    """A study.json search-space entry (as `search.space` documents it) as a Dimension."""
    role = spec.get("role", "nuisance")
    name, parent = spec["name"], spec.get("parent")
    return Dimension(
        id=spec.get("id") or (name if parent is None else f"{spec.get('parent_value')}/{name}"),
        name=name,
        role=role,
        scale=spec.get("scale", "fixed" if role == "fixed" else "linear"),
        min=spec.get("min"),
        max=spec.get("max"),
        values=spec.get("values"),
        parent=parent,
        parent_value=spec.get("parent_value"),
        is_int=spec.get("type") == "int",
    )


def _dimensions(specs, trials):
    """study.json's dimensions, plus any hparams.json key they lack (range unknown)."""
    dimensions = [_dimension_from_spec(s) for s in specs]
    known = {d.id for d in dimensions}
    for trial in trials:
        for key in trial.values:
            if key not in known:
                known.add(key)
                role = next((t.roles[key] for t in trials if key in t.roles), "nuisance")
                scale = next((t.scales[key] for t in trials if key in t.scales), "linear")
                # A conditional id is `parent_value/name` (search.space); the name is the key.
                name = key.split("/", 1)[-1]
                dimensions.append(Dimension(id=key, name=name, role=role, scale=scale))
    return dimensions


def load_study(study_dir):
    """Reads a study directory.

    Args:
      study_dir: the folder holding study.json and one subdirectory per trial.

    Returns:
      A `Study`. Trials whose files are damaged are skipped and named in `Study.warnings`.

    Raises:
      FileNotFoundError: when `study_dir` is not a directory.
      ValueError: when the objective goal is not "max" or "min".
    """
    if not os.path.isdir(study_dir):
        raise FileNotFoundError(f"study directory {study_dir!r} does not exist")
    trial_paths = sorted(
        os.path.join(study_dir, name)
        for name in os.listdir(study_dir)
        if os.path.isfile(os.path.join(study_dir, name, td.STATUS))
    )
    study_json = os.path.join(study_dir, "study.json")
    if not trial_paths and not os.path.exists(study_json):
        from tfplaybook.analysis import keras_tuner_study  # It imports this module.

        if keras_tuner_study.is_project(study_dir):
            return keras_tuner_study.load_project(study_dir)
    description = td.read_json(study_json) if os.path.exists(study_json) else {}
    warnings = []
    if not description and trial_paths:
        # No study.json: fall back on what the first trial ran with.
        try:
            config = td.read_config(trial_paths[0])
        except (OSError, td.DamagedFileError):
            config = {}
        description = dict(config.get("study", {}), objective=config.get("objective", {}))
        warnings.append(
            "study.json is missing: objective and search space come from the "
            f"config of trial {os.path.basename(trial_paths[0])}"
        )
    objective = description.get("objective") or {}
    metric, goal = objective.get("metric", "accuracy"), objective.get("goal", "max")
    if goal not in GOALS:
        raise ValueError(f"objective goal {goal!r} in {study_json} is not one of {GOALS}")
    trials = []
    for path in trial_paths:
        try:
            trials.append(load_trial(path, metric, goal))
        except (td.DamagedFileError, OSError) as e:
            warnings.append(f"trial {os.path.basename(path)} skipped: {e}")
    return Study(
        path=study_dir,
        name=description.get("name", os.path.basename(os.path.normpath(study_dir))),
        experiment=description.get("experiment", ""),
        metric=metric,
        goal=goal,
        max_trials=description.get("max_trials"),
        oracle=description.get("oracle", ""),
        dimensions=_dimensions(description.get("search_space", []), trials),
        trials=trials,
        warnings=warnings,
    )


def value_groups(trials, dim, num_buckets):
    """Groups trials by their value of `dim` for isolation plots (checklist 53-54).

    Categorical and discrete dimensions give one group per value. Continuous ones are cut into
    `num_buckets` equal-width buckets in the scaled coordinate (log for log scales), over the search
    range, or over the observed values when the range is unknown.

    Returns:
      A list of (label, x, trials) in value order; x is the value or the bucket centre (for
      categorical dimensions, the value itself).
    """
    present = [t for t in trials if t.values.get(dim.id) is not None]
    if dim.scale in ("categorical", "discrete", "fixed") or not present:
        groups = {}
        for trial in present:
            groups.setdefault(trial.values[dim.id], []).append(trial)
        order = dim.values if dim.values else sorted(groups, key=lambda v: (str(type(v)), v))
        return [(str(v), v, groups[v]) for v in order if v in groups]
    observed = [float(t.values[dim.id]) for t in present]
    bounds = dim.bounds() or (min(observed), max(observed))
    ranged = Dimension(dim.id, dim.name, dim.role, dim.scale, bounds[0], bounds[1])
    t_low, t_high = ranged.transform(list(bounds))
    edges_t = np.linspace(t_low, t_high, num_buckets + 1)
    groups = [[] for _ in range(num_buckets)]
    for trial, value in zip(present, observed):
        index = int(np.searchsorted(edges_t, ranged.transform(value), side="right")) - 1
        groups[min(max(index, 0), num_buckets - 1)].append(trial)
    edges = ranged.untransform(edges_t)
    result = []
    for i, members in enumerate(groups):
        if members:
            centre = float(ranged.untransform((edges_t[i] + edges_t[i + 1]) / 2))
            result.append((f"{edges[i]:.3g}-{edges[i + 1]:.3g}", centre, members))
    return result
