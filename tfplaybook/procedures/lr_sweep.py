"""Constant-learning-rate sweep that sets an initial max_train_steps (checklist 71).

The playbook's algorithm for a workload that is not compute-bound: (a) the training set can be
fit perfectly with a constant learning rate; (b) some configuration fits it within N steps;
(c) sweep a grid of constant learning rates for N steps with augmentation and regularisation off
(`lr_sweep_config`); (d) the step at which the fastest learning rate first fits perfectly is the
initial max_train_steps (`analyze`); (e) that learning rate must not sit at the edge of the grid,
or a too-small grid would suggest a falsely large step count.
"""

import copy

import numpy as np

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir
from tfplaybook.procedures import INFO, OK, WARN, check, ours, playbook, result, threshold

# How a "perfect fit" reads for each recorded training metric, and the default threshold.
ERROR = "error"
ACCURACY = "accuracy"
LOSS = "loss"
DEFAULT_FIT_THRESHOLD = {ERROR: 0.0, ACCURACY: 1.0, LOSS: 0.01}
# Accuracy is averaged in float32: 1.0 can arrive as 0.99999994, so compare with this slack.
_FIT_SLACK = 1e-6
# The trial-directory metric each fit metric is read from (error = 1 - accuracy).
MEASUREMENT = {ERROR: "accuracy", ACCURACY: "accuracy", LOSS: "loss"}


def lr_sweep_config(config, learning_rates, max_train_steps=None):
    """One config per learning rate for the sweep (checklist 71c).

    Each config has a constant schedule without warmup, and regularisation and augmentation off:
    model.dropout=0, optimizer.weight_decay=0, data.augment=False (keys a config lacks have
    nothing to turn off and are left out).

    Args:
      config: the experiment config (names as in experiments/digits_cnn.py).
      learning_rates: the grid, e.g. [0.003, 0.01, 0.03, 0.1, 0.3, 1.0].
      max_train_steps: N, the steps within which some configuration fit the training set (71b);
        None keeps the config's value.

    Returns:
      A list of configs, in increasing learning-rate order.

    Raises:
      ValueError: when a learning rate is not positive or appears twice.
    """
    rates = [float(lr) for lr in learning_rates]
    if not rates or any(not lr > 0 for lr in rates) or len(set(rates)) != len(rates):
        raise ValueError(f"learning_rates={learning_rates!r} must be distinct positive numbers")
    configs = []
    for lr in sorted(rates):
        c = copy.deepcopy(config)
        c["optimizer"]["learning_rate"] = lr
        c["schedule"]["name"] = "constant"
        c["schedule"]["warmup_steps"] = 0
        for section, key, off in (
            ("model", "dropout", 0.0),
            ("optimizer", "weight_decay", 0.0),
            ("data", "augment", False),
        ):
            if key in c.get(section, {}):
                c[section][key] = off
        if max_train_steps is not None:
            c["max_train_steps"] = int(max_train_steps)
            c["eval_every_steps"] = min(c["eval_every_steps"], c["max_train_steps"])
        configs.append(c)
    return configs


def _fits(values, metric, fit_threshold):
    if metric == ACCURACY:
        return values >= fit_threshold - _FIT_SLACK
    return values <= fit_threshold + (_FIT_SLACK if metric == ERROR else 0.0)


def first_fit_step(steps, values, metric=ERROR, fit_threshold=None):
    """The first step at which the training metric reaches a perfect fit, or None."""
    if metric not in DEFAULT_FIT_THRESHOLD:
        raise ValueError(f"metric={metric!r} is not one of {sorted(DEFAULT_FIT_THRESHOLD)}")
    if fit_threshold is None:
        fit_threshold = DEFAULT_FIT_THRESHOLD[metric]
    values = np.asarray(values, dtype=float)
    # NaN compares False, so a diverged run never "fits".
    hits = np.flatnonzero(_fits(values, metric, fit_threshold))
    return int(steps[hits[0]]) if hits.size else None


def divergence_step(steps, values, diverged_at=None):
    """The step at which a run diverged, or None: its own record's, else its first non-finite.

    A run that the training loop stopped as diverged (its status.json) may have only finite
    values: the loss-factor rule (checklist 41) stops a finite but exploding loss, and the
    training metric of that loop is finite. A non-finite value of the series counts too.
    """
    if diverged_at is not None:
        return int(diverged_at)
    bad = np.flatnonzero(~np.isfinite(np.asarray(values, dtype=float)))
    return int(steps[bad[0]]) if bad.size else None


def analyze(series_by_lr, metric=ERROR, fit_threshold=None, diverged=None):
    """Recommends max_train_steps from a constant-LR sweep (checklist 71d-e).

    A run that diverged (`divergence_step`) is listed as diverged and is never the
    recommendation, even if it fit before diverging: a constant learning rate that diverges
    within the sweep is not one to train with.

    Args:
      series_by_lr: {learning_rate: (steps, values)} of the training metric per run.
      metric: "error" (fit when <= threshold, default 0), "accuracy" (fit when >= threshold,
        default 1) or "loss" (fit when <= threshold, default 0.01).
      fit_threshold: the perfect-fit threshold; None uses the metric's default.
      diverged: optional {learning_rate: step (None if unknown)} of the runs whose own record
        says they diverged (`diverged_from_trials`).

    Returns:
      The common result dict; numbers["recommended_max_train_steps"] is None when no learning
      rate fit, and "overrides" holds the max_train_steps override when one did.
    """
    if metric not in DEFAULT_FIT_THRESHOLD:
        raise ValueError(f"metric={metric!r} is not one of {sorted(DEFAULT_FIT_THRESHOLD)}")
    if not series_by_lr:
        raise ValueError("series_by_lr is empty: give {learning_rate: (steps, values)}")
    if fit_threshold is None:
        fit_threshold = DEFAULT_FIT_THRESHOLD[metric]
    diverged = diverged or {}
    rows = []
    for lr in sorted(series_by_lr):
        steps, values = series_by_lr[lr]
        values = np.asarray(values, dtype=float)
        step = divergence_step(steps, values, diverged.get(lr))
        rows.append(
            {
                "learning_rate": float(lr),
                "first_fit_step": first_fit_step(steps, values, metric, fit_threshold),
                "final_value": float(values[-1]) if values.size else None,
                "last_step": int(steps[-1]) if len(steps) else None,
                "diverged": lr in diverged or step is not None,
                "diverged_step": step,
            }
        )
    grid = [r["learning_rate"] for r in rows]
    fitted = [r for r in rows if r["first_fit_step"] is not None and not r["diverged"]]
    # Ties (common with coarse evaluation) go to the smaller, more stable learning rate.
    fastest = min(fitted, key=lambda r: (r["first_fit_step"], r["learning_rate"]), default=None)
    edge = None
    if fastest is not None and len(grid) > 1:
        edge = "low" if fastest["learning_rate"] == grid[0] else None
        edge = "high" if fastest["learning_rate"] == grid[-1] else edge
    numbers = {
        "metric": metric,
        "recommended_max_train_steps": fastest["first_fit_step"] if fastest else None,
        "fastest_learning_rate": fastest["learning_rate"] if fastest else None,
        "grid": grid,
        "fitted_learning_rates": [r["learning_rate"] for r in fitted],
        "diverged_learning_rates": [r["learning_rate"] for r in rows if r["diverged"]],
        "sweep_steps": max((r["last_step"] or 0) for r in rows),
        "edge": edge,
    }
    source = (
        playbook("L1228-1253: zero training misclassification")
        if metric != LOSS
        else ours("'very low training loss' (L1234) has no number")
    )
    thresholds = {"perfect_fit_threshold": threshold(fit_threshold, source)}
    checklist = []
    if fastest is None:
        text = (
            f"No learning rate in {grid} fit the training set ({metric} threshold "
            f"{fit_threshold}) within {numbers['sweep_steps']} steps. Run longer, widen the grid, "
            "or check that this training set can be fit perfectly with a constant learning rate "
            "(augmentation and regularisation off); the algorithm needs such a fit."
        )
        checklist.append(check(71, WARN, "No learning rate reached a perfect fit."))
        overrides = []
    else:
        n = fastest["first_fit_step"]
        text = (
            f"Set max_train_steps={n}: the fastest learning rate, {fastest['learning_rate']:g}, "
            f"first fit the training set perfectly at step {n}."
        )
        checklist.append(
            check(71, OK, f"{len(fitted)} of {len(grid)} learning rates fit the training set.")
        )
        overrides = [f"max_train_steps={n}"]
        if len(grid) == 1:
            text += " One learning rate is no sweep: add smaller and larger ones."
            checklist.append(check(71, WARN, "The grid holds a single learning rate."))
        elif edge is not None:
            direction = "larger" if edge == "high" else "smaller"
            text += (
                f" That learning rate is the {'largest' if edge == 'high' else 'smallest'} of the "
                f"grid: extend the grid to {direction} learning rates and sweep again, or this "
                "step count may be far from right."
            )
            checklist.append(
                check(71, WARN, f"The fastest learning rate is at the {edge} edge of the grid.")
            )
        else:
            checklist.append(check(71, OK, "The fastest learning rate is inside the grid."))
    checklist.append(
        check(
            68,
            INFO,
            "Use one max_train_steps for every trial of a study; never tune it within a study.",
        )
    )
    checklist.append(
        check(
            66,
            INFO,
            "The sweep ran without augmentation or regularisation; adding them (or a smaller "
            "batch) usually needs more steps: re-check the budget after such changes.",
        )
    )
    return result("lr_sweep", text, numbers, checklist, thresholds, table=rows, overrides=overrides)


def series_from_trials(trial_dirs, metric=ERROR, measurement=None, key="optimizer.learning_rate"):
    """Reads {key value: (steps, values)} of a training metric from sweep trial dirs.

    Args:
      trial_dirs: directories written by the sweep runs (tfplaybook.files.trial_dir format).
      metric: "error", "accuracy" or "loss"; error is read as 1 - accuracy.
      measurement: the recorded training metric name; None uses MEASUREMENT[metric].
      key: the dotted config key that tells the runs apart, e.g. "schedule.warmup_steps" for
        the warmup sweep.

    Raises:
      ValueError: when two trials have the same value of `key`.
    """
    if metric not in MEASUREMENT:
        raise ValueError(f"metric={metric!r} is not one of {sorted(MEASUREMENT)}")
    measurement = measurement or MEASUREMENT[metric]
    out = {}
    for directory in trial_dirs:
        value = config_lib.get_path(trial_dir.read_config(directory), key)
        if value in out:
            raise ValueError(f"{key}={value!r} appears twice (again in {directory})")
        steps, values = trial_dir.series(
            trial_dir.read_measurements(directory), trial_dir.TRAIN, measurement
        )
        if metric == ERROR:
            values = [1.0 - v for v in values]
        out[value] = (steps, values)
    return out


def diverged_from_trials(trial_dirs, key="optimizer.learning_rate"):
    """{key value: step} of the sweep runs whose status.json says they diverged."""
    out = {}
    for directory in trial_dirs:
        status = trial_dir.read_status(directory) or {}
        if status.get("status") == trial_dir.DIVERGED:
            value = config_lib.get_path(trial_dir.read_config(directory), key)
            out[value] = status.get("step")
    return out


def plot(series_by_lr, res):
    """Training metric vs step, one line per learning rate, fit threshold and fit point (P6)."""
    from matplotlib.figure import Figure

    n = res["numbers"]
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for lr in sorted(series_by_lr):
        steps, values = series_by_lr[lr]
        ax.plot(steps, values, label=f"lr={lr:g}")
    ax.axhline(
        res["thresholds"]["perfect_fit_threshold"]["value"],
        color="gray",
        ls=":",
        label="perfect fit",
    )
    if n["recommended_max_train_steps"] is not None:
        ax.axvline(
            n["recommended_max_train_steps"],
            color="green",
            alpha=0.6,
            label=f"max_train_steps={n['recommended_max_train_steps']}",
        )
    if n["metric"] == LOSS:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training {n['metric']}")
    ax.set_title("Constant-LR sweep: steps to a perfect fit")
    ax.legend(fontsize="small")
    return fig
