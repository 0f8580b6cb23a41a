"""Gradient clipping too aggressive (checklist 117, 119): the share of updates clipped."""

import numpy as np

from tfplaybook.analysis.checks.common import NA, OK, WARNING, _curve, _r
from tfplaybook.files import trial_dir as td


def clipped_fraction(trial):
    """Fraction of steps whose unclipped gradient norm exceeded clip_norm, or None."""
    if trial.clip_norm <= 0:
        return None
    _, norms = _curve(trial, td.TRAIN, "grad_norm")
    if len(norms):
        return float(np.mean(norms > trial.clip_norm))
    _, per_loop = _curve(trial, td.TRAIN, "clipped_fraction")
    return float(np.mean(per_loop)) if len(per_loop) else None


def _clipping(study, th):
    results = []
    for trial in (t for t in study.trials if t.feasible):
        fraction = clipped_fraction(trial)
        if fraction is None:
            continue
        _, norms = _curve(trial, td.TRAIN, "grad_norm")
        p90 = _r(np.percentile(norms, 90)) if len(norms) else None
        results.append(
            {
                "trial": trial.id,
                "clip_norm": trial.clip_norm,
                "grad_norm_p90": p90,
                "clipped_fraction": _r(fraction),
                "flagged": fraction > th["clipped_fraction_max"],
            }
        )
    if not results:
        return NA, "No feasible trial clipped gradients (clip_norm 0) or logged clipping.", {}
    bad = [r["trial"] for r in results if r["flagged"]]
    if bad:
        return (
            WARNING,
            f"More than half of the steps clipped in {', '.join(bad)}.",
            {"trials": results},
        )
    worst = max(results, key=lambda r: r["clipped_fraction"])
    finding = f"At most {worst['clipped_fraction']:.0%} of steps clipped (trial {worst['trial']})."
    return OK, finding, {"trials": results}
