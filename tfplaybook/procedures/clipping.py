"""Gradient clipping advice from a finished run's unclipped gradient norms (checklist 115-119).

Training logs the unclipped L2 norm of the full gradient every step (split "train", metric
"grad_norm", checklist 106/116). From those norms: the initial threshold is their 90th percentile
(117), the fraction of steps it would clip follows, and for the clip_norm the run was configured
with (optimizer.clip_norm, 0 = no clipping) the fraction of steps actually clipped. Clipping more
than half of the steps is in effect a learning-rate cut: lower the learning rate instead (119).
"""

import numpy as np

from tfplaybook.files import trial_dir
from tfplaybook.procedures import INFO, OK, WARN, check, playbook, result, threshold

METRIC = "grad_norm"
PERCENTILE = 90.0  # Checklist 117.
MAX_CLIPPED_FRACTION = 0.5  # Checklist 119: "> 50% of updates clipped" is extremely aggressive.


def clipped_fraction(grad_norms, clip_norm):
    """Fraction of steps whose unclipped norm exceeds `clip_norm` (||g|| > lambda, item 115)."""
    norms = np.asarray(grad_norms, dtype=float)
    return float(np.mean(norms > clip_norm)) if norms.size else 0.0


def analyze(grad_norms, clip_norm=0.0, percentile=PERCENTILE, max_clipped=MAX_CLIPPED_FRACTION):
    """Recommends a clipping threshold and checks the configured one (checklist 115-119).

    Args:
      grad_norms: the unclipped gradient norm of every step.
      clip_norm: the run's optimizer.clip_norm; 0 means the run did not clip.
      percentile: the percentile of the norms proposed as threshold (NumPy's linear
        interpolation between order statistics).
      max_clipped: fraction of clipped steps above which to lower the learning rate instead.

    Returns:
      The common result dict; "overrides" proposes optimizer.clip_norm when the run did not clip.

    Raises:
      ValueError: when no finite norm was recorded, clip_norm < 0, or percentile is outside
        (0, 100].
    """
    norms = np.asarray(grad_norms, dtype=float)
    finite = norms[np.isfinite(norms)]
    if finite.size == 0:
        raise ValueError(
            f"no finite gradient norm among {norms.size} recorded: was '{METRIC}' logged?"
        )
    if clip_norm < 0 or not 0 < percentile <= 100:
        raise ValueError(
            f"clip_norm={clip_norm!r} must be >= 0 and percentile={percentile!r} in (0, 100]"
        )
    proposed = float(np.percentile(finite, percentile))
    numbers = {
        "num_steps": int(norms.size),
        "num_non_finite": int(norms.size - finite.size),
        "median_grad_norm": float(np.median(finite)),
        "max_grad_norm": float(finite.max()),
        "proposed_clip_norm": proposed,
        "proposed_clipped_fraction": clipped_fraction(finite, proposed),
        "clip_norm": float(clip_norm),
        # Non-finite norms count as clipped: a clipping optimizer would have had to act on them.
        "clipped_fraction": (
            clipped_fraction(np.nan_to_num(norms, nan=np.inf), clip_norm) if clip_norm > 0 else 0.0
        ),
    }
    thresholds = {
        "percentile": threshold(percentile, playbook("L1970-1974, 90th percentile")),
        "max_clipped_fraction": threshold(max_clipped, playbook("L1977-1985, 50%")),
    }
    checklist = [
        check(
            117,
            INFO,
            f"{percentile:g}th percentile of {finite.size} norms: {proposed:.4g} (median "
            f"{numbers['median_grad_norm']:.4g}); it would clip "
            f"{numbers['proposed_clipped_fraction']:.0%} of steps.",
        )
    ]
    if numbers["num_non_finite"]:
        checklist.append(
            check(106, WARN, f"{numbers['num_non_finite']} steps had a non-finite gradient norm.")
        )
    overrides = []
    if clip_norm == 0:
        overrides = [f"optimizer.clip_norm={proposed:.4g}"]
        text = (
            f"If training is unstable, clip the global gradient norm at {proposed:.4g} (the "
            f"{percentile:g}th percentile of this run's unclipped norms): {', '.join(overrides)}. "
            "If instability remains, clip harder (a smaller threshold), but watch that no more "
            f"than {max_clipped:.0%} of steps get clipped."
        )
    else:
        fraction = numbers["clipped_fraction"]
        if fraction > max_clipped:
            text = (
                f"clip_norm={clip_norm:g} clipped {fraction:.0%} of steps, more than "
                f"{max_clipped:.0%}: clipping this hard is in effect a learning-rate cut. Lower "
                "the learning rate instead (and drop or raise the threshold, e.g. to "
                f"{proposed:.4g})."
            )
            checklist.append(
                check(119, WARN, f"{fraction:.0%} of updates clipped (> {max_clipped:.0%}).")
            )
        else:
            text = (
                f"clip_norm={clip_norm:g} clipped {fraction:.0%} of steps: acceptable. If "
                "instability remains, clip harder; the 90th percentile here is "
                f"{proposed:.4g}."
            )
            checklist.append(
                check(119, OK, f"{fraction:.0%} of updates clipped (<= {max_clipped:.0%}).")
            )
    checklist.append(
        check(118, INFO, "If instability remains after clipping, clip harder (smaller threshold).")
    )
    return result("clipping", text, numbers, checklist, thresholds, overrides=overrides)


def read_grad_norms(directory):
    """(steps, unclipped gradient norms, configured clip_norm) from a trial directory."""
    config = trial_dir.read_config(directory)
    steps, norms = trial_dir.series(trial_dir.read_measurements(directory), trial_dir.TRAIN, METRIC)
    return steps, norms, float(config["optimizer"].get("clip_norm", 0.0))


def analyze_trial(directory, **kwargs):
    """`analyze` on a finished run's trial directory."""
    _, norms, clip_norm = read_grad_norms(directory)
    return analyze(norms, clip_norm, **kwargs)


def plot(steps, grad_norms, res):
    """Gradient norm vs step and its histogram, with the thresholds (P12, checklist 116)."""
    from matplotlib.figure import Figure

    norms = np.asarray(grad_norms, dtype=float)
    n = res["numbers"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    step_ax, hist_ax = fig.subplots(1, 2)
    step_ax.plot(steps, norms, lw=0.8)
    positive = norms[np.isfinite(norms) & (norms > 0)]
    if positive.size:  # Log-spaced bins need positive norms.
        hist_ax.hist(positive, bins=np.geomspace(positive.min(), positive.max() * 1.001, 40))
    lines = [(n["proposed_clip_norm"], "green", "90th percentile")]
    if n["clip_norm"] > 0:
        lines.append((n["clip_norm"], "red", f"clip_norm ({n['clipped_fraction']:.0%} clipped)"))
    for value, color, label in lines:
        step_ax.axhline(value, color=color, ls="--", label=label)
        hist_ax.axvline(value, color=color, ls="--", label=label)
    step_ax.set_yscale("log")
    step_ax.set_xlabel("step")
    step_ax.set_ylabel("unclipped gradient norm")
    step_ax.legend(fontsize="small")
    hist_ax.set_xscale("log")
    hist_ax.set_xlabel("unclipped gradient norm")
    hist_ax.set_ylabel("steps")
    hist_ax.set_title(f"{n['num_steps']} steps")
    return fig
