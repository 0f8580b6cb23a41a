"""Helpers the checks share: verdicts, rounding, curve access and shapes, best-trial selection.

Underscored names are private to the `checks` package (its topic modules use them); the
verdicts OK, WARNING and NA are re-exported by the package.
"""

import numpy as np

from tfplaybook.files import trial_dir as td

OK, WARNING, NA = "ok", "warning", "n/a"


def _r(x, digits=4):
    return None if x is None else float(f"{x:.{digits}g}")


# Curve shapes. `better` arrays are oriented so that larger is better.


def _span(values):
    return float(values.max() - values.min()) if len(values) > 1 else 0.0


def _tail_start(steps, max_train_steps, fraction, min_points):
    """Index where the last `fraction` of the step budget begins, keeping >= `min_points` points."""
    budget = max_train_steps or int(steps[-1])
    index = int(np.searchsorted(steps, budget * (1.0 - fraction), side="left"))
    return max(0, min(index, len(steps) - min_points))


def _smooth(values, window):
    """Trailing moving average; the first points average what exists so far."""
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    upper = np.arange(1, len(values) + 1)
    counts = np.minimum(upper, max(1, int(window)))
    return (cumulative[upper] - cumulative[upper - counts]) / counts


def _curve(trial, split, metric, sign=1.0):
    steps, values = trial.curve(split, metric)
    keep = np.isfinite(values)
    return steps[keep], sign * values[keep]


def _validation(study, trial):
    return _curve(trial, td.VALIDATION, study.metric, study.sign())


def _top_completed(study, th):
    return [t for t in study.ranked() if t.completed][: th["curve_checks_top_k"]]


def _on_best_trials(study, th, measure, what):
    """Runs `measure(trial) -> dict with "flagged", or None` on the best completed trials."""
    results = [m for m in (measure(t) for t in _top_completed(study, th)) if m]
    if not results:
        return NA, "No completed feasible trial with enough measurements.", {}
    flagged = [r["trial"] for r in results if r["flagged"]]
    if flagged:
        return WARNING, f"{what}: trial(s) {', '.join(flagged)}.", {"trials": results}
    return OK, f"None of the best {len(results)} trial(s): {what.lower()}.", {"trials": results}
