"""Periodic patterns in validation curves (checklist 85), pure NumPy and SciPy.

A validation curve that rises and falls with a fixed period, e.g. once per pass over the data,
can reveal training examples that overlap the validation set or training data that is badly
shuffled (the model sees the same examples in the same order every epoch).

The test, tfplaybook's choice (the playbook names the symptom, not a test), folds the curve at
each candidate period. It drops the first SKIP_FRACTION of the evaluations (where learning moves
fastest); for every period p from 2 evaluations to a third of the rest (three cycles at least),
it removes the trend with a centred moving average over exactly one period (which cancels a
pattern of that period from the trend, so the pattern stays in the residual), groups the residual
by phase (evaluation index mod p), and runs a one-way analysis of variance: F = variance between
the phase means / variance within them. A slow trend barely differs between neighbouring
phases; a periodic pattern makes the phase means differ. The curve is periodic at the period
with the smallest p-value when that p-value, times the number of periods tried (Bonferroni), is
below `max_p_value`. Curves with fewer than MIN_POINTS evaluations after the skip are not
judged: with ten evaluations a period cannot be told from noise.
"""

import numpy as np

SKIP_FRACTION = 0.2
MIN_POINTS = 15


def judgeable(num_evaluations):
    """True when a curve of this many evaluations is long enough to test."""
    return num_evaluations - int(SKIP_FRACTION * num_evaluations) >= MIN_POINTS


def _one_period_average(values, p):
    """Centred moving average over one period (2 x p with half-weight ends for even p)."""
    weights = np.ones(p) / p if p % 2 else np.r_[0.5, np.ones(p - 1), 0.5] / p
    return np.convolve(values, weights, mode="valid")


def phase_test(values, p):
    """(F, p-value) of the phase means of the curve's residual at period p."""
    from scipy import stats

    trend = _one_period_average(values, p)
    half = (len(values) - len(trend)) // 2
    residual = values[half : half + len(trend)] - trend
    phases = np.arange(half, half + len(trend)) % p
    groups = [residual[phases == k] for k in range(p)]
    if min(len(g) for g in groups) < 2:
        return None
    grand = residual.mean()
    between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (p - 1)
    within = sum(((g - g.mean()) ** 2).sum() for g in groups) / (len(residual) - p)
    if within == 0:
        return (np.inf, 0.0) if between > 0 else None
    f = between / within
    return float(f), float(stats.f.sf(f, p - 1, len(residual) - p))


def period(values, max_p_value):
    """(period in evaluations, Bonferroni-adjusted p-value) of a periodic pattern, or None.

    None also when the curve is too short (`judgeable`) or flat to judge, or shows no period.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not judgeable(len(values)):
        return None
    rest = values[int(SKIP_FRACTION * len(values)) :]
    if np.ptp(rest) == 0:
        return None
    candidates = range(2, len(rest) // 3 + 1)
    tests = {p: phase_test(rest, p) for p in candidates}
    tests = {p: t for p, t in tests.items() if t is not None}
    if not tests:
        return None
    best = min(tests, key=lambda p: (tests[p][1], p))
    adjusted = min(1.0, tests[best][1] * len(tests))
    return (best, adjusted) if adjusted < max_p_value else None
