"""Checks of the training curves (checklist 47-52, 69, 85).

Problematic overfitting (the best trial per scientific value, all trials), late step-to-step
variance, still improving at the end, saturated long before it, a periodic validation curve, a
rising training loss and where the retrospective best step falls in the step budget. Trials
still running are left out: their curves are unfinished. Each returns (verdict, finding,
numbers), and optionally the piece of advice that applies as a 4th item.
"""

import numpy as np

from tfplaybook.analysis import periodicity, study_data
from tfplaybook.analysis.checks.common import (
    NA,
    OK,
    WARNING,
    _curve,
    _on_best_trials,
    _r,
    _smooth,
    _span,
    _tail_start,
    _validation,
)
from tfplaybook.files import trial_dir as td


def overfitting(study, trial, th):
    """Problematic overfitting of one trial's validation objective (checklist 47-48), or None.

    The mean over the last `overfitting_tail_fraction` of training is compared with the best value
    reached before that tail, as a fraction of the curve's range.
    """
    steps, better = _validation(study, trial)
    if len(steps) < 3:
        return None
    start = _tail_start(steps, trial.max_train_steps, th["overfitting_tail_fraction"], 2)
    best = int(np.argmax(better))
    worse = (better[best] - better[start:].mean()) / _span(better) if best < start else 0.0
    overfits = bool(worse > th["overfitting_worsening"])
    return {
        "trial": trial.id,
        "best_step": int(steps[best]),
        "worsening": _r(worse),
        "overfits": overfits,
    }


def _overfitting_best(study, th):
    candidates = [t for t in study.ranked() if t.completed]
    # One group per setting of the scientific hyperparameters (bucketed when continuous).
    labels = {t.id: [] for t in candidates}
    for dim in study.scientific_dimensions():
        buckets = th["isolation_buckets"]
        for label, _, members in study_data.value_groups(candidates, dim, buckets):
            for trial in members:
                labels[trial.id].append(f"{dim.id}={label}")
    best_per_group = {}
    for trial in candidates:  # Ranked order: the first trial of a group is its best.
        best_per_group.setdefault(", ".join(labels[trial.id]) or "all trials", trial)
    results = []
    for group, trial in best_per_group.items():
        found = overfitting(study, trial, th)
        if found:
            results.append(dict(found, group=group))
    if not results:
        return NA, "No completed trial with at least 3 validation evaluations.", {}
    bad = [f"{r['group']} (trial {r['trial']})" for r in results if r["overfits"]]
    if bad:
        return WARNING, f"Overfitting in the best trial of: {'; '.join(bad)}.", {"groups": results}
    return OK, f"None of the {len(results)} best trial(s) checked overfits.", {"groups": results}


def _overfitting_all(study, th):
    results = [overfitting(study, t, th) for t in study.trials if t.completed]
    results = [r for r in results if r]
    if not results:
        return NA, "No completed trial with at least 3 validation evaluations.", {}
    bad = [r["trial"] for r in results if r["overfits"]]
    fraction = len(bad) / len(results)
    numbers = {"overfitting_trials": bad, "fraction": _r(fraction), "trials": results}
    verdict = WARNING if fraction > th["overfitting_trials_fraction_max"] else OK
    return verdict, f"{len(bad)} of {len(results)} completed trials overfit.", numbers


def _late_variance(study, th):
    def measure(trial):
        out = {"trial": trial.id}
        curves = {
            "validation": _validation(study, trial),
            "train_loss": _curve(trial, "train", "loss"),
        }
        for name, (steps, values) in curves.items():
            if len(values) >= 4 and _span(values) > 0:
                late = values[_tail_start(steps, trial.max_train_steps, th["late_fraction"], 4) :]
                out[f"{name}_noise"] = _r(np.std(np.diff(late)) / np.sqrt(2) / _span(values))
        noises = [v for k, v in out.items() if k.endswith("_noise")]
        return dict(out, flagged=max(noises) > th["late_noise_max"]) if noises else None

    return _on_best_trials(study, th, measure, "Noisy late curves")


def _still_improving(study, th):
    def measure(trial):
        steps, better = _validation(study, trial)
        if len(steps) < 3 or _span(better) == 0:
            return None
        start = _tail_start(steps, trial.max_train_steps, th["late_fraction"], 1)
        gain = (better[start:].max() - better[:start].max()) / _span(better) if start else 0.0
        return {
            "trial": trial.id,
            "late_gain": _r(gain),
            "flagged": gain > th["improving_gain_min"],
        }

    return _on_best_trials(study, th, measure, "Still improving at the end")


def _saturation_step(steps, better, tolerance):
    reached = better >= better.max() - tolerance * _span(better)
    return int(steps[int(np.argmax(reached))])


def _saturated_early(study, th):
    def measure(trial):
        steps, better = _validation(study, trial)
        if len(steps) < 3 or _span(better) == 0 or not trial.max_train_steps:
            return None
        tolerance = th["saturation_tolerance"]
        step = _saturation_step(steps, better, tolerance)
        loss_steps, loss = _curve(trial, td.TRAIN, "loss")
        if len(loss) >= 3 and _span(loss) > 0:
            smooth = _smooth(loss, round(th["smoothing_fraction"] * len(loss)))
            step = max(step, _saturation_step(loss_steps, -smooth, tolerance))
        fraction = step / trial.max_train_steps
        flagged = fraction <= th["saturation_step_fraction"]
        return {"trial": trial.id, "saturated_step": step, "flagged": flagged}

    return _on_best_trials(study, th, measure, "Saturated long before the last step")


def _periodic(study, th):
    judged = []

    def measure(trial):
        steps, values = _curve(trial, td.VALIDATION, study.metric)
        if not periodicity.judgeable(len(values)):
            return None
        judged.append(trial.id)
        found = periodicity.period(values, th["periodicity_max_p_value"])
        interval = int(np.median(np.diff(steps))) if len(steps) > 1 else 0
        if found is None:
            return {"trial": trial.id, "flagged": False}
        lag, p_value = found
        return {
            "trial": trial.id,
            "period_evaluations": lag,
            "period_steps": lag * interval,
            "p_value": float(f"{p_value:.3g}"),
            "flagged": True,
        }

    verdict, finding, numbers = _on_best_trials(study, th, measure, "Periodic validation curves")
    if not judged:
        need = periodicity.MIN_POINTS
        return (
            NA,
            f"Too few evaluations to see a period (at least {need} after the first 20% of "
            "training): evaluate more often (eval_every_steps) to check.",
            {},
        )
    if verdict == WARNING:
        periods = ", ".join(
            f"{r['trial']} every {r['period_steps']} steps"
            for r in numbers["trials"]
            if r["flagged"]
        )
        finding = f"Periodic validation curves: {periods}."
    return verdict, finding, numbers


def _training_loss_increasing(study, th):
    results = []
    for trial in (t for t in study.trials if t.completed):
        _, loss = _curve(trial, td.TRAIN, "loss")
        if len(loss) < 3 or _span(loss) == 0:
            continue
        smooth = _smooth(loss, round(th["smoothing_fraction"] * len(loss)))
        rise = (smooth[-1] - smooth.min()) / _span(smooth)
        results.append({"trial": trial.id, "rise": _r(rise), "flagged": rise > th["loss_rise_max"]})
    if not results:
        return NA, "No completed trial logged a training loss.", {}
    bad = [r["trial"] for r in results if r["flagged"]]
    if bad:
        return (
            WARNING,
            f"Training loss ends above its minimum in {', '.join(bad)}.",
            {"trials": results},
        )
    return (
        OK,
        f"Training loss does not rise in {len(results)} completed trials.",
        {"trials": results},
    )


def _best_step_position(study, th):
    trials = [t for t in study.trials if t.completed and t.best_step is not None]
    trials = [t for t in trials if t.max_train_steps]
    if not trials:
        return NA, "No completed trial with a best step.", {}
    fractions = {t.id: t.best_step / t.max_train_steps for t in trials}
    early = np.mean([f <= th["best_step_early_fraction"] for f in fractions.values()])
    late = np.mean([f >= 1 - th["best_step_late_fraction"] for f in fractions.values()])
    numbers = {
        "early_share": _r(early),
        "late_share": _r(late),
        "best_step_fractions": {k: _r(f, 3) for k, f in fractions.items()},
    }
    if early >= th["best_step_consistency"]:
        return (
            WARNING,
            f"Best step in the first 10% of training in {early:.0%} of trials.",
            numbers,
            "Best step nearly always in the first 10%: max_train_steps is far too high.",
        )
    if late >= th["best_step_consistency"]:
        return (
            WARNING,
            f"Best step in the last 25% of training in {late:.0%} of trials.",
            numbers,
            "Best step consistently in the last 25%: train longer and re-tune the "
            "learning-rate decay schedule.",
        )
    return OK, f"Best step early in {early:.0%} and late in {late:.0%} of trials.", numbers
