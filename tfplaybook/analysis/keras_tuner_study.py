"""Loads a stock keras-tuner project directory into the analysis' `Study` (files only, no TF).

`study_data.load_study(project_dir)` comes here when the directory holds no tfplaybook trial and no
study.json but keras-tuner trial files, so `report.write_report(project_dir)` works on the
`directory/project_name` folder of any keras-tuner search. Layout read (keras-tuner 1.4.8)::

    PROJECT/oracle.json         the oracle state: "hyperparameters" (the space, as
                                HyperParameters.get_config()), and with tfplaybook's oracles a
                                "tfplaybook" section: oracle, seed, num_samples (max_trials),
                                objective {"name", "direction"}, roles {name: role}
    PROJECT/trial_*/trial.json  "trial_id", "hyperparameters" {"values"}, "status" (RUNNING,
                                COMPLETED, INVALID, FAILED, STOPPED), "score", "best_step",
                                "message", "metrics" {"metrics": {name: {"direction",
                                "observations": [{"value": [v, ...], "step": s}]}}}

Mapping onto the Study:

- dimensions: the space through `keras_space.from_hyperparameters` (ids are the hyperparameter
  names), with the roles stored by tfplaybook's oracles; without them every hyperparameter is
  nuisance (Fixed ones fixed) and the report has no scientific one to isolate.
- objective: the stored one, else the metric whose best value is every completed trial's score
  (val_ metrics first). A `val_X` objective is the validation metric X; the trial's objective is
  keras-tuner's score (its best value over the recorded steps) at best_step.
- series: metric `val_X` is the validation series X, any other metric the train series of its
  name (a metric named "infeasible" marks the trial instead). Steps are keras-tuner's steps:
  for `keras_tuner.Tuner` with `model.fit`, the 0-based epoch, and that Tuner records only the
  best epoch's metrics, so each curve is a single point. The study's warnings say so, and the
  report prints them in its summary.
- status: COMPLETED is completed (failed when its score is not finite or it reported
  infeasible=1), INVALID and FAILED are failed (reason: the last line of keras-tuner's message),
  RUNNING and IDLE running, STOPPED completed when it has a score.
"""

import glob
import math
import os

import numpy as np

from tfplaybook.analysis import study_data
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td
from tfplaybook.search import keras_space

ORACLE = "oracle.json"
TRIAL = "trial.json"
INFEASIBLE_METRIC = "infeasible"  # As tfplaybook.search.oracles (which imports keras-tuner).
_VALIDATION_PREFIX = "val_"


def trial_files(project_dir):
    """The trial_*/trial.json files of a keras-tuner project directory, sorted."""
    return sorted(glob.glob(os.path.join(glob.escape(project_dir), "trial_*", TRIAL)))


def is_project(project_dir):
    """Whether `project_dir` looks like a keras-tuner project (trial.json files)."""
    return bool(trial_files(project_dir))


def _mean(value):
    values = value if isinstance(value, list) else [value]
    numbers = [float(v) for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else math.nan


def _observations(metric):
    """(steps, values) of one keras-tuner MetricHistory config, in step order."""
    pairs = sorted((o.get("step", 0), _mean(o.get("value"))) for o in metric["observations"])
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _split(name):
    if name.startswith(_VALIDATION_PREFIX):
        return td.VALIDATION, name[len(_VALIDATION_PREFIX) :]
    return td.TRAIN, name


def _infer_objective(trials, warnings):
    """(name, direction) of the metric whose best value is the score of every completed trial."""
    candidates = None
    for state in trials:
        if state.get("status") != "COMPLETED" or state.get("score") is None:
            continue
        metrics = state.get("metrics", {}).get("metrics", {})
        matching = set()
        for name, metric in metrics.items():
            values = [v for v in _observations(metric)[1] if math.isfinite(v)]
            if not values:
                continue
            best = max(values) if metric.get("direction") == "max" else min(values)
            if math.isclose(best, state["score"], rel_tol=1e-9, abs_tol=1e-12):
                matching.add((name, metric.get("direction") or "min"))
        candidates = matching if candidates is None else candidates & matching
    if not candidates:
        warnings.append(
            "oracle.json does not name the objective and no metric matches the trials' scores: "
            "the objective is keras-tuner's score, to minimise"
        )
        return "score", "min"
    ranked = sorted(candidates, key=lambda c: (not c[0].startswith(_VALIDATION_PREFIX), c[0]))
    return ranked[0]


def _status(state, score):
    """(tfplaybook status, reason) of one keras-tuner trial state."""
    status = state.get("status")
    message = (state.get("message") or "").strip()
    reason = message.splitlines()[-1][:200] if message else ""
    metrics = state.get("metrics", {}).get("metrics", {})
    if status == "COMPLETED" or (status == "STOPPED" and score is not None):
        infeasible = metrics.get(INFEASIBLE_METRIC)
        if infeasible and (_observations(infeasible)[1] or [0.0])[-1] >= 0.5:
            return td.FAILED, f"reported {INFEASIBLE_METRIC}=1"
        if score is None or not math.isfinite(score):
            return td.FAILED, "the objective is not finite"
        return td.COMPLETED, ""
    if status in ("INVALID", "FAILED", "STOPPED"):
        return td.FAILED, reason or f"keras-tuner status {status}"
    return td.RUNNING, ""


def _trial(path, state, dims):
    score = state.get("score")
    score = None if score is None else float(score)
    status, reason = _status(state, score)
    series = {}
    for name, metric in state.get("metrics", {}).get("metrics", {}).items():
        if name == INFEASIBLE_METRIC:
            continue
        steps, values = _observations(metric)
        series[_split(name)] = (np.array(steps, dtype=int), np.array(values, dtype=float))
    values = dict(state.get("hyperparameters", {}).get("values", {}))
    feasible_score = score is not None and math.isfinite(score) and status != td.FAILED
    best_step = state.get("best_step")
    return study_data.Trial(
        id=str(state.get("trial_id", os.path.basename(os.path.dirname(path)))),
        path=os.path.dirname(path),
        status=status,
        reason=reason,
        config={},
        values=values,
        roles={d.id: d.role for d in dims if d.id in values},
        scales={d.id: d.scale for d in dims if d.id in values},
        series=series,
        objective=score if feasible_score else None,
        best_step=None if best_step is None or not feasible_score else int(best_step),
    )


def _dimensions(hyperparameters, roles, warnings):
    """The study's Dimensions from oracle.json's hyperparameters and the stored roles."""
    try:
        space = keras_space.from_hyperparameters(hyperparameters, roles, "ignore")
    except ConfigError as e:
        warnings.append(f"search space not understood ({e}): ranges unknown")
        entries = keras_space.hyperparameter_entries(hyperparameters)
        names = [e["config"]["name"] for e in entries]
        return [study_data.Dimension(n, n, roles.get(n, "nuisance"), "linear") for n in names]
    dims = []
    for dim in space.dimensions:
        dims.append(
            study_data.Dimension(
                id=dim.id,
                name=dim.name,
                role=dim.role,
                scale=dim.scale,
                min=dim.min,
                max=dim.max,
                values=None if dim.values is None else list(dim.values),
                parent=dim.parent,
                parent_value=dim.parent_value,
                is_int=dim.is_int,
            )
        )
    for name in space.fixed:
        dims.append(study_data.Dimension(name, name, "fixed", "fixed"))
    return dims


def load_project(project_dir):
    """Reads a keras-tuner project directory into a `study_data.Study`.

    Raises:
      FileNotFoundError: when `project_dir` has no trial_*/trial.json.
    """
    files = trial_files(project_dir)
    if not files:
        raise FileNotFoundError(f"{project_dir!r} holds no keras-tuner trial_*/{TRIAL}")
    warnings = []
    oracle_path = os.path.join(project_dir, ORACLE)
    oracle = {}
    try:
        oracle = td.read_json(oracle_path) if os.path.exists(oracle_path) else {}
    except td.DamagedFileError as e:
        warnings.append(f"{ORACLE} skipped: {e}")
    states = []
    for path in files:
        try:
            states.append((path, td.read_json(path)))
        except (td.DamagedFileError, OSError) as e:
            warnings.append(f"trial {os.path.basename(os.path.dirname(path))} skipped: {e}")
    ours = oracle.get("tfplaybook") or {}
    if ours.get("objective"):
        name, direction = ours["objective"]["name"], ours["objective"]["direction"]
    else:
        name, direction = _infer_objective([s for _, s in states], warnings)
    split, metric = _split(name)
    if split != td.VALIDATION:
        warnings.append(
            f"the objective {name!r} is not a validation metric (no {_VALIDATION_PREFIX} prefix): "
            "the report's validation curves and overfitting checks have nothing to read"
        )
    roles = dict(ours.get("roles") or {})
    hyperparameters = oracle.get("hyperparameters") or (states[0][1].get("hyperparameters", {}))
    known = {e["config"]["name"] for e in keras_space.hyperparameter_entries(hyperparameters)}
    roles = {k: v for k, v in roles.items() if k in known}
    if not roles:
        warnings.append(
            "no roles stored (tfplaybook's oracles store them: scientific=[...]): every "
            "hyperparameter is treated as nuisance"
        )
    dims = _dimensions(hyperparameters, roles, warnings)
    trials = [_trial(path, state, dims) for path, state in states]
    curves = [len(s[0]) for t in trials for s in t.series.values()]
    steps_note = (
        "keras-tuner project: steps are keras-tuner's steps, for keras_tuner.Tuner the 0-based "
        "epoch, not training steps"
    )
    if curves and max(curves) <= 1:
        steps_note += (
            "; every trial recorded one point per metric (keras_tuner.Tuner keeps the best "
            "epoch only), so the training curves show single points and the curve-shape checks "
            "have too few evaluations"
        )
    warnings.insert(0, steps_note)
    return study_data.Study(
        path=project_dir,
        name=os.path.basename(os.path.normpath(project_dir)),
        experiment="keras-tuner project",
        metric=metric,
        goal=direction if direction in study_data.GOALS else "min",
        max_trials=ours.get("num_samples"),
        oracle=ours.get("oracle") or "keras-tuner oracle (its type is not stored)",
        dimensions=dims,
        trials=trials,
        warnings=warnings,
    )
