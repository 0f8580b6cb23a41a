"""Critical batch size, the rule: from per-trial records to the critical batch size.

`analyze` applies the rules stated in tfplaybook.procedures.critical_batch: the target (given or
`default_target`), each trial's first step reaching it (`first_step_reaching`), each batch size's
fastest trial, and the largest batch size still near perfect scaling (`critical_batch_size`). The
verdicts and the recommendation it returns are worded in `verdicts`.
"""

import math

import numpy as np

from tfplaybook.files import trial_dir
from tfplaybook.procedures import ours, result, threshold
from tfplaybook.procedures.critical_batch import verdicts
from tfplaybook.procedures.critical_batch.study import PROCEDURE
from tfplaybook.training import selection

# Checklist 12: "near-perfect scaling" has no number in the playbook; 1.25 lets measured steps
# exceed perfect scaling by 25% (evaluation granularity and trial noise) and still count.
DEFAULT_SCALING_TOLERANCE = 1.25
# The derived target: 95% of the best value every batch size reached (for a maximised positive
# objective; 105% for a minimised one), so that every batch size reaches it before its last step.
DEFAULT_TARGET_FRACTION = 0.95
GOALS = ("max", "min")
COLUMNS = (
    "batch_size",
    "trials",
    "trials_reached",
    "best_learning_rate",
    "steps_to_target",
    "perfect_scaling_steps",
    "ratio_to_perfect",
    "near_perfect",
    "best_value",
)


def _check_goal(goal):
    if goal not in GOALS:
        raise ValueError(f"goal={goal!r} is not one of {', '.join(GOALS)}")


def first_step_reaching(steps, values, target, goal="max"):
    """The first step whose value reaches `target` (>= for goal max, <= for min), or None.

    NaN compares False, so a diverged evaluation never reaches the target.
    """
    _check_goal(goal)
    values = np.asarray(values, dtype=float)
    hits = np.flatnonzero(values >= target if goal == "max" else values <= target)
    return int(steps[hits[0]]) if hits.size else None


def _usable(record):
    return record["status"] == trial_dir.COMPLETED


def _best(values, goal):
    best = selection.best_of(enumerate(values), goal)
    return None if best is None else best[1]


def best_values(records, goal="max"):
    """{batch size: the best validation value any of its completed trials reached}."""
    _check_goal(goal)
    out = {}
    for r in records:
        if not _usable(r):
            continue
        value = _best(r["values"], goal)
        if value is None:
            continue
        size = r["batch_size"]
        out[size] = value if size not in out else _best([out[size], value], goal)
    return out


def default_target(records, goal="max", fraction=DEFAULT_TARGET_FRACTION):
    """(target, common best): the derived target of the module docstring, or (None, None).

    The common best is the best value every batch size reached (the worst of the per-batch-size
    bests, over completed trials); the target loosens it by (1 - fraction) of its magnitude:
    common - (1 - fraction) * |common| for goal max, common + (1 - fraction) * |common| for min.
    """
    _check_goal(goal)
    if not 0 < fraction <= 1:
        raise ValueError(f"target_fraction={fraction!r} must be in (0, 1]")
    bests = best_values(records, goal)
    if not bests:
        return None, None
    common = min(bests.values()) if goal == "max" else max(bests.values())
    slack = (1.0 - fraction) * abs(common)
    return (common - slack if goal == "max" else common + slack), common


def _check_records(records):
    seen = set()
    for r in records:
        size, lr = r.get("batch_size"), r.get("learning_rate")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(
                f"batch_size={size!r} of trial {r.get('trial')!r} must be a positive int"
            )
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"learning_rate={lr!r} of trial {r.get('trial')!r} must be positive")
        if r.get("status") not in trial_dir.STATUSES:
            raise ValueError(
                f"status={r.get('status')!r} of trial {r.get('trial')!r} is not one of "
                f"{trial_dir.STATUSES}"
            )
        if len(r.get("steps", ())) != len(r.get("values", ())):
            raise ValueError(f"trial {r.get('trial')!r}: steps and values differ in length")
        key = (size, r.get("trial"))
        if key in seen:
            raise ValueError(f"trial {r.get('trial')!r} appears twice at batch_size={size}")
        seen.add(key)


def _rows(records, target, goal):
    rows = []
    for size in sorted({r["batch_size"] for r in records}):
        trials = [r for r in records if r["batch_size"] == size]
        reached = []
        for r in trials:
            step = (
                first_step_reaching(r["steps"], r["values"], target, goal) if _usable(r) else None
            )
            if step is not None:
                reached.append((step, float(r["learning_rate"]), r))
        fastest = min(reached, key=lambda t: (t[0], t[1])) if reached else None
        usable_lrs = sorted(float(r["learning_rate"]) for r in trials if _usable(r))
        rows.append(
            {
                "batch_size": size,
                "trials": len(trials),
                "trials_completed": len(usable_lrs),
                "trials_reached": len(reached),
                "best_learning_rate": fastest[1] if fastest else None,
                "best_trial": fastest[2].get("trial") if fastest else None,
                "steps_to_target": fastest[0] if fastest else None,
                "first_eval_step": (
                    int(fastest[2]["steps"][0]) if fastest and fastest[2]["steps"] else None
                ),
                "lr_edge": _edge(fastest[1], usable_lrs) if fastest else None,
                "best_value": _best([v for r in trials if _usable(r) for v in r["values"]], goal),
                "perfect_scaling_steps": None,
                "ratio_to_perfect": None,
                "near_perfect": None,
            }
        )
    return rows


def _edge(lr, lrs):
    # With three or more trials, a fastest rate at the extreme of those sampled is a hint that the
    # best one lies outside the range (checklist 42).
    if len(lrs) < 3:
        return None
    return "low" if lr == lrs[0] else "high" if lr == lrs[-1] else None


def critical_batch_size(rows, tolerance=DEFAULT_SCALING_TOLERANCE):
    """(reference batch size b0, critical batch size, first batch size beyond it or None).

    Fills each row's perfect_scaling_steps = steps(b0) * b0 / b, ratio_to_perfect and near_perfect
    (ratio <= tolerance), for b >= b0, the smallest batch size that reached the target. The
    critical batch size is the largest b whose row and every row between b0 and b are near
    perfect; a row that never reached the target breaks the chain too. (None, None, None) when no
    batch size reached the target.
    """
    if not tolerance >= 1:
        raise ValueError(f"scaling_tolerance={tolerance!r} must be >= 1")
    rows = sorted(rows, key=lambda r: r["batch_size"])
    reference = next((r for r in rows if r["steps_to_target"] is not None), None)
    if reference is None:
        return None, None, None
    b0, s0 = reference["batch_size"], reference["steps_to_target"]
    critical, breaks = b0, None
    for row in rows:
        if row["batch_size"] < b0:
            continue
        row["perfect_scaling_steps"] = s0 * b0 / row["batch_size"]
        steps = row["steps_to_target"]
        if steps is not None:
            row["ratio_to_perfect"] = steps / row["perfect_scaling_steps"]
            row["near_perfect"] = bool(row["ratio_to_perfect"] <= tolerance)
        else:
            row["near_perfect"] = False
        if breaks is None:
            if row["near_perfect"]:
                critical = row["batch_size"]
            else:
                breaks = row["batch_size"]
    return b0, critical, breaks


def rule_text(tolerance):
    """The critical-batch-size rule in one sentence, as summary.json states it."""
    return (
        f"critical batch size = the largest b such that every measured batch size b' from the "
        f"smallest one reaching the target (b0) up to b has steps(b') <= {tolerance:g} * "
        "steps(b0) * b0 / b'"
    )


def analyze(
    records,
    *,
    metric="accuracy",
    goal="max",
    target_value=None,
    target_fraction=DEFAULT_TARGET_FRACTION,
    scaling_tolerance=DEFAULT_SCALING_TOLERANCE,
    planned_batch_sizes=None,
    max_train_steps=None,
):
    """The critical batch size from per-trial records (the module docstring gives the rules).

    Args:
      records: one dict per trial (see the module docstring).
      metric, goal: the validation objective and whether larger ("max") or smaller is better.
      target_value: the value to reach; None derives it (`default_target`).
      target_fraction: the fraction of the derived target (ignored with a target_value).
      scaling_tolerance: how far above perfect scaling steps may be and still count as near.
      planned_batch_sizes: the batch sizes meant to be measured (those without records are
        listed as not measured).
      max_train_steps: every trial's step budget, for the messages.

    Returns:
      The common result dict (see tfplaybook.procedures) with a "table" row per batch size.
    """
    _check_goal(goal)
    if not 0 < target_fraction <= 1:
        raise ValueError(f"target_fraction={target_fraction!r} must be in (0, 1]")
    if not scaling_tolerance >= 1:
        raise ValueError(f"scaling_tolerance={scaling_tolerance!r} must be >= 1")
    if target_value is not None and not math.isfinite(target_value):
        raise ValueError(f"target_value={target_value!r} must be a finite number")
    if not records:
        raise ValueError("records is empty: no trial was measured")
    _check_records(records)
    if target_value is not None:
        target, common, derived = float(target_value), None, False
    else:
        target, common = default_target(records, goal, target_fraction)
        derived = True
    if target is None:  # Every trial diverged or failed: nothing reached anything.
        rows = _rows(records, math.inf if goal == "max" else -math.inf, goal)
        b0 = critical = breaks = None
    else:
        rows = _rows(records, target, goal)
        b0, critical, breaks = critical_batch_size(rows, scaling_tolerance)
    sizes = [r["batch_size"] for r in rows]
    planned = sorted(planned_batch_sizes) if planned_batch_sizes else sizes
    numbers = {
        "metric": metric,
        "goal": goal,
        "target_value": target,
        "target_rule": "given (--target_value)" if not derived else _target_rule(target_fraction),
        "common_best_value": common,
        "batch_sizes": sizes,
        "best_learning_rates": [r["best_learning_rate"] for r in rows],
        "steps_to_target": [r["steps_to_target"] for r in rows],
        "perfect_scaling_steps": [r["perfect_scaling_steps"] for r in rows],
        "ratio_to_perfect": [r["ratio_to_perfect"] for r in rows],
        "reference_batch_size": b0,
        "critical_batch_size": critical,
        "scaling_breaks_at": breaks,
        "largest_batch_size_measured": sizes[-1] if sizes else None,
        "not_reached_batch_sizes": [r["batch_size"] for r in rows if r["steps_to_target"] is None],
        "not_measured_batch_sizes": [b for b in planned if b not in sizes],
        "rule": rule_text(scaling_tolerance),
        "max_train_steps": max_train_steps,
    }
    thresholds = {
        "scaling_tolerance": threshold(
            scaling_tolerance, ours("steps may exceed perfect scaling by this factor (item 12)")
        ),
    }
    if derived:
        thresholds["target_fraction"] = threshold(
            target_fraction,
            ours("the target is this fraction of the best value every batch size reached"),
        )
    checklist = verdicts.checklist(rows, numbers, scaling_tolerance)
    return result(
        PROCEDURE,
        verdicts.recommendation(rows, numbers, scaling_tolerance),
        numbers,
        checklist,
        thresholds,
        table=rows,
        columns=COLUMNS,
    )


def _target_rule(fraction):
    return (
        f"derived: the best validation value every batch size reached (the worst per-batch-size "
        f"best), loosened by {1 - fraction:.3g} of its magnitude"
    )
