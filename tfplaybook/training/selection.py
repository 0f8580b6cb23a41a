"""Retrospective checkpoint selection as pure functions (checklist 43, 91).

A trial is scored by its best evaluation over training, not its last, and the N best checkpoints
are kept. No TensorFlow here: the Keras callback in `tfplaybook.training.checkpoints` and the
analysis both call these.
"""

import math

GOALS = ("max", "min")


def is_better(value, than, goal):
    """True when `value` beats `than` for `goal`; NaN never beats anything."""
    if value is None or not math.isfinite(value):
        return False
    if than is None or not math.isfinite(than):
        return True
    return value > than if goal == "max" else value < than


def best_of(points, goal):
    """The (step, value) pair with the best value; the earliest step wins ties. None if empty."""
    best = None
    for step, value in sorted(points):
        if best is None or is_better(value, best[1], goal):
            if value is not None and math.isfinite(value):
                best = (step, value)
    return best


def update_kept(kept, step, value, keep, goal):
    """Decides whether checkpoint (`step`, `value`) joins the `keep` best.

    Args:
      kept: list of {"step", "value"} dicts, best first.
      step, value: the new evaluation.
      keep: how many checkpoints to keep (N >= 1).
      goal: "max" or "min".

    Returns:
      (new_kept, evicted_steps, save_this): the new list (best first), the steps whose files should
      be deleted, and whether to save the new checkpoint.
    """
    if value is None or not math.isfinite(value):
        return list(kept), [], False
    candidates = [k for k in kept if k["step"] != step] + [{"step": step, "value": value}]
    # Best first; among equal values the earlier step ranks higher (it was reached sooner).
    sign = -1.0 if goal == "max" else 1.0
    candidates.sort(key=lambda k: (sign * k["value"], k["step"]))
    new_kept = candidates[:keep]
    kept_steps = {k["step"] for k in new_kept}
    evicted = [k["step"] for k in kept if k["step"] not in kept_steps]
    return new_kept, evicted, step in kept_steps
