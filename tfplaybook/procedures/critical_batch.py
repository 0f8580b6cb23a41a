"""Critical batch size: steps to a target validation value per batch size (Shallue et al. 2018).

Checklist 12 (and 14, 16). Beyond the throughput sweep (batch_sweep), the playbook says that up
to a *critical batch size* doubling the batch halves the number of steps needed to reach a given
result, and that beyond it the saving shrinks. Training measures it: at each batch size of a
doubling range (`batch_sizes`), a small quasi-random study re-tunes the learning rate
(`study_config`, log scale, the range optionally scaled with the batch size by `lr_range`), every
trial with the same step budget (checklist 14). The driver reads each trial into one record:

    {"batch_size": 64, "trial": "trial_1", "learning_rate": 0.0031,
     "status": "completed" | "diverged" | "failed" | "running",
     "steps": [5, 10, ...], "values": [0.61, 0.78, ...]}   validation objective per evaluation

`analyze` turns the records into the rules' verdict:

- the target: `target_value` when given, else derived (`default_target`): the best validation
  value that *every* batch size reached (the worst of the per-batch-size bests), loosened by
  (1 - target_fraction) of its magnitude, so that every batch size reaches it before its budget
  ends rather than at its very last evaluation;
- a trial's steps to target: the first evaluation step at which its validation objective reaches
  the target (`first_step_reaching`); only completed trials count: a diverged or failed trial
  never gives a step, even if it reached the target before diverging;
- a batch size's steps to target: the minimum over its trials; its best learning rate: that
  trial's (ties go to the smaller, more stable learning rate);
- perfect scaling: steps halve when the batch doubles, from the smallest batch size b0 that
  reached the target: perfect(b) = steps(b0) * b0 / b;
- the critical batch size: the largest batch size b up to which every measured batch size stays
  within the tolerance: steps(b) <= scaling_tolerance * perfect(b) (`critical_batch_size`); the
  first batch size beyond it (slower, or never reaching the target) is where scaling breaks.
"""

import copy
import math

import numpy as np

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir
from tfplaybook.procedures import INFO, OK, WARN, batch_sweep, check, ours, result, threshold
from tfplaybook.training import selection

PROCEDURE = "critical_batch"
LEARNING_RATE = "optimizer.learning_rate"
# How the learning-rate range moves with the batch size, relative to the config's batch size.
LR_SCALINGS = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}
DEFAULT_LR_SCALING = "sqrt"
# The range when the experiment's study does not search the learning rate: 0.1x to 10x its value.
DEFAULT_LR_SPAN = 10.0
DEFAULT_TRIALS = 8
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


def batch_sizes(start, cap):
    """Batch sizes start, 2*start, ... up to `cap` (the batch sweep's doubling range)."""
    return batch_sweep.batch_sizes(start, cap)


def study_dir_name(batch_size):
    """The name of a batch size's study directory under the workdir, e.g. batch_0032."""
    return f"batch_{int(batch_size):04d}"


def base_lr_range(config):
    """(min, max) of the learning rate: the config study's optimizer.learning_rate range when it
    has a plain one, else DEFAULT_LR_SPAN below and above the config's learning rate."""
    for entry in (config.get("study") or {}).get("search_space") or ():
        if (
            entry.get("name") == LEARNING_RATE
            and entry.get("scale") in ("log", "linear")
            and "min" in entry
            and "max" in entry
            and "parent" not in entry
        ):
            return float(entry["min"]), float(entry["max"])
    lr = float(config["optimizer"]["learning_rate"])
    return lr / DEFAULT_LR_SPAN, lr * DEFAULT_LR_SPAN


def lr_range(base, batch_size, reference_batch_size, scaling=DEFAULT_LR_SCALING):
    """The learning-rate range of one batch size: `base` times (batch / reference) ** power,
    where the power is 0 (none), 1/2 (sqrt) or 1 (linear).

    Raises:
      ValueError: on an unknown scaling, or a range that is not 0 < min < max.
    """
    if scaling not in LR_SCALINGS:
        raise ValueError(f"lr scaling {scaling!r} is not one of {', '.join(LR_SCALINGS)}")
    low, high = (float(v) for v in base)
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"learning-rate range {low:g},{high:g} must satisfy 0 < min < max")
    factor = (batch_size / reference_batch_size) ** LR_SCALINGS[scaling]
    return float(f"{low * factor:.6g}"), float(f"{high * factor:.6g}")


def study_config(config, batch_size, learning_rates, trials):
    """The config of one batch size's study: a quasi-random search over the learning rate alone
    (log scale) at `batch_size`, `trials` trials, every other hyperparameter as the config has it.

    The study seed is the config's for every batch size, so every study samples the same
    quasi-random points of its (possibly scaled) range.
    """
    low, high = learning_rates
    c = copy.deepcopy(config)
    c["batch_size"] = int(batch_size)
    study = dict(c.get("study") or {})
    name = study.get("name") or PROCEDURE
    study.update(
        {
            "name": f"{name}_{study_dir_name(batch_size)}",
            "max_trials": int(trials),
            "oracle": "quasi_random",
            "design": "joint",
            "search_space": [
                {"name": LEARNING_RATE, "role": "nuisance", "scale": "log", "min": low, "max": high}
            ],
        }
    )
    c["study"] = study
    return c


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


def _objective_text(metric, goal, target):
    return f"validation {metric} {'>=' if goal == 'max' else '<='} {target:.4g}"


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
    checklist = _checklist(rows, numbers, scaling_tolerance)
    return result(
        PROCEDURE,
        _recommendation(rows, numbers, scaling_tolerance),
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


def _checklist(rows, n, tolerance):
    items = []
    critical, breaks = n["critical_batch_size"], n["scaling_breaks_at"]
    reached = [r for r in rows if r["steps_to_target"] is not None]
    if critical is None:
        items.append(check(12, WARN, "No batch size reached the target: nothing to compare."))
    elif len(reached) < 2:
        items.append(
            check(12, WARN, "Only one batch size reached the target: no doubling was measured.")
        )
    elif breaks is None:
        items.append(
            check(
                12,
                OK,
                f"Steps to target stayed within {tolerance:g}x of perfect scaling up to the "
                f"largest batch size measured, {critical}: the critical batch size is at least "
                "that; measure larger ones to find where it stops.",
            )
        )
    else:
        row = next(r for r in rows if r["batch_size"] == breaks)
        how = (
            "no completed trial reached the target"
            if row["steps_to_target"] is None
            else f"the steps were {row['ratio_to_perfect']:.2f}x perfect scaling"
        )
        items.append(
            check(
                12,
                INFO,
                f"Near-perfect scaling up to batch size {critical}; at {breaks} {how}: "
                "beyond the critical batch size, doubling the batch no longer halves the steps.",
            )
        )
    if n["not_reached_batch_sizes"] and critical is not None:
        items.append(
            check(
                12,
                WARN,
                f"No completed trial reached the target at batch sizes "
                f"{n['not_reached_batch_sizes']}: more trials, another learning-rate range or a "
                "larger max_train_steps may change that.",
            )
        )
    first = [
        r["batch_size"]
        for r in reached
        if r["first_eval_step"] is not None and r["steps_to_target"] <= r["first_eval_step"]
    ]
    if first:
        items.append(
            check(
                12,
                WARN,
                f"At batch sizes {first} the target was reached at the first evaluation: the "
                "step is only an upper bound; evaluate more often (eval_every_steps).",
            )
        )
    edges = [f"{r['batch_size']} ({r['lr_edge']})" for r in rows if r["lr_edge"]]
    if edges:
        items.append(
            check(
                42,
                WARN,
                f"The fastest learning rate is the lowest or highest one sampled at batch sizes "
                f"{', '.join(edges)}: the best may lie outside the range; widen it "
                "(--critical_lr_range, --critical_lr_scaling).",
            )
        )
    items.append(
        check(
            14,
            INFO,
            "Every batch size ran the same step budget (max_train_steps), as the playbook asks "
            "when comparing batch sizes.",
        )
    )
    items.append(
        check(
            16,
            INFO,
            "Only the learning rate was re-tuned per batch size; momentum, regularisation and the "
            "schedule stayed as configured. Re-tune them too before adopting a new batch size.",
        )
    )
    return items


def _recommendation(rows, n, tolerance):
    if n["target_value"] is None:
        return "Every trial diverged or failed: no batch size has a validation value to compare."
    target = _objective_text(n["metric"], n["goal"], n["target_value"])
    if n["critical_batch_size"] is None:
        return (
            f"No completed trial reached {target} within max_train_steps="
            f"{n['max_train_steps']}: lower --target_value, raise max_train_steps or the trials."
        )
    critical, b0, breaks = (
        n["critical_batch_size"],
        n["reference_batch_size"],
        n["scaling_breaks_at"],
    )
    row = next(r for r in rows if r["batch_size"] == critical)
    at = f"{row['steps_to_target']} steps, learning rate {row['best_learning_rate']:.4g}"
    if critical > b0:
        parts = [
            f"Critical batch size: {critical}. Steps to reach {target} stay within {tolerance:g}x "
            f"of perfect scaling from batch size {b0} ({_steps_at(rows, b0)} steps) up to "
            f"{critical} ({at})."
        ]
    else:
        parts = [f"Critical batch size: {critical}, the smallest that reached {target} ({at})."]
    if breaks is not None:
        broken = next(r for r in rows if r["batch_size"] == breaks)
        how = (
            "no completed trial reached the target"
            if broken["steps_to_target"] is None
            else f"{broken['steps_to_target']} steps are {broken['ratio_to_perfect']:.2f}x the "
            f"{broken['perfect_scaling_steps']:.4g} of perfect scaling"
        )
        parts.append(
            f"At {breaks}, {how}: beyond {critical}, doubling the batch no longer halves the "
            "steps, so more examples per step buy less training time."
        )
    elif critical == b0:
        parts.append("No larger batch size was measured: there is no doubling to compare.")
    else:
        parts.append(
            "Scaling did not break within the batch sizes measured: the critical batch size may "
            "be larger; measure larger batch sizes."
        )
    parts.append(
        "Combine with --mode=batch_sweep: a larger batch size pays only while both the steps "
        "(this) and the time per step (throughput) scale; re-tune every hyperparameter for it."
    )
    return " ".join(parts)


def _steps_at(rows, batch_size):
    return next(r["steps_to_target"] for r in rows if r["batch_size"] == batch_size)


def records_from_study(study_dir, batch_size, metric):
    """One record per trial directory of a batch size's study (validation `metric` series)."""
    from tfplaybook.study import tracking  # Pure Python: reads the study's trial directories.

    records = []
    for directory in tracking.trial_dirs(study_dir):
        try:
            status = trial_dir.read_status(directory) or {}
            config = trial_dir.read_config(directory)
        except (trial_dir.DamagedFileError, OSError):
            continue
        steps, values = trial_dir.series(
            trial_dir.read_measurements(directory), trial_dir.VALIDATION, metric
        )
        records.append(
            {
                "batch_size": int(batch_size),
                "trial": directory.rstrip("/").split("/")[-1],
                "learning_rate": float(config_lib.get_path(config, LEARNING_RATE)),
                "status": status.get("status", trial_dir.RUNNING),
                "steps": steps,
                "values": values,
            }
        )
    return records


def measurement_rows(records):
    """Long-format rows (one per trial evaluation) of the records, for measurements.csv."""
    rows = []
    for r in sorted(records, key=lambda r: (r["batch_size"], r["trial"])):
        for step, value in zip(r["steps"], r["values"]):
            rows.append(
                {
                    "batch_size": r["batch_size"],
                    "trial": r["trial"],
                    "learning_rate": float(r["learning_rate"]),
                    "status": r["status"],
                    "step": int(step),
                    "value": float(value),
                }
            )
    return rows


def records_from_measurements(rows):
    """The records back from `measurement_rows` (trials without an evaluation are lost)."""
    out = {}
    for row in rows:
        key = (int(row["batch_size"]), row["trial"])
        r = out.setdefault(
            key,
            {
                "batch_size": key[0],
                "trial": row["trial"],
                "learning_rate": float(row["learning_rate"]),
                "status": row["status"],
                "steps": [],
                "values": [],
            },
        )
        r["steps"].append(int(row["step"]))
        r["values"].append(float(row["value"]))
    return list(out.values())


def plot(res):
    """Steps to target vs batch size on log-log axes, with the perfect-scaling line (item 12)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    n = res["numbers"]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    rows = [r for r in res["table"] if r["steps_to_target"] is not None]
    if rows:
        ax.plot(
            [r["batch_size"] for r in rows],
            [r["steps_to_target"] for r in rows],
            "o-",
            label="measured (fastest learning rate)",
        )
        for r in rows:
            ax.annotate(
                f"lr {r['best_learning_rate']:.2g}",
                (r["batch_size"], r["steps_to_target"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="x-small",
            )
    ideal = [r for r in res["table"] if r["perfect_scaling_steps"] is not None]
    if ideal:
        sizes = [r["batch_size"] for r in ideal]
        perfect = [r["perfect_scaling_steps"] for r in ideal]
        ax.plot(sizes, perfect, ":", color="gray", label="perfect scaling")
        tol = res["thresholds"]["scaling_tolerance"]["value"]
        ax.plot(
            sizes,
            [tol * p for p in perfect],
            "--",
            color="gray",
            alpha=0.5,
            label=f"{tol:g}x perfect scaling (tolerance)",
        )
    missed = [r["batch_size"] for r in res["table"] if r["steps_to_target"] is None]
    if missed and n["max_train_steps"]:
        ax.plot(missed, [n["max_train_steps"]] * len(missed), "rx", label="target not reached")
    if n["critical_batch_size"] is not None:
        ax.axvline(
            n["critical_batch_size"],
            color="green",
            alpha=0.5,
            label=f"critical batch size {n['critical_batch_size']}",
        )
    ax.set_xscale("log", base=2)
    sizes = [r["batch_size"] for r in res["table"]]
    if sizes:
        ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize="x-small")
    ax.set_xlabel("batch size")
    target = n["target_value"]
    ylabel = "steps to target"
    if target is not None:
        ylabel += f" ({_objective_text(n['metric'], n['goal'], target)})"
    ax.set_ylabel(ylabel, fontsize="small")
    ax.set_title("Steps to target vs batch size")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
