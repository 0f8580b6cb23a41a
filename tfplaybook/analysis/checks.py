"""The playbook's post-study checklist as automated checks over a loaded study.

Pure Python and NumPy (no TensorFlow, no matplotlib). `run_checks(study)` returns one
`CheckResult` per check: an id, a title, the checklist items it implements (numbered as in
docs/checklist.md), a verdict ("ok", "warning", or "n/a" when the data it needs is missing), a
one-line finding, the numbers behind it, the playbook's advice, and the thresholds it used.

Where the playbook gives a number (10% / 25% of training for the best step, 50% of updates
clipped, the Adam trial budgets) the default is the playbook's. Everywhere else the number is
tfplaybook's own choice, listed with its meaning in `THRESHOLDS` (values in `DEFAULT_THRESHOLDS`);
pass `thresholds={...}` to change any of them. Curve amounts are fractions of the curve's range
(its best minus its worst value), so one threshold serves accuracy, error rate and loss alike.

Trials still running are left out of the curve-shape checks (47-52, 69): their curves are
unfinished. Rule for checklist 16 (batch size changed without re-tuning): the reference batch size
is the most common batch size of `baseline_study` when one is passed, else the top-level
`tuned_for_batch_size` of the trial configs; the check warns when trials ran at another batch size
and the study varies no optimizer hyperparameter (`is_optimizer_dimension`).
"""

import collections
import dataclasses

import numpy as np

from tfplaybook.analysis import periodicity, study_data
from tfplaybook.files import trial_dir as td

OK, WARNING, NA = "ok", "warning", "n/a"
_MINE = " tfplaybook's choice."

# name: (default, meaning). The meaning starts with the checklist items that use it.
THRESHOLDS = {
    "boundary_fraction": (
        0.05,
        "42: 'near the boundary' = within this fraction of the range at "
        "either end, in the scaled coordinate (log for log scales)." + _MINE,
    ),
    "boundary_top_k": (1, "42: how many of the best trials must keep away from the boundary."),
    "infeasible_fraction_max": (
        0.25,
        "41: warn above this fraction of infeasible (diverged or "
        "failed) finished trials; the playbook says 'very large'." + _MINE,
    ),
    "learning_rate_names": (
        ("learning_rate", "base_learning_rate", "lr"),
        "44: last component of a dimension name that marks a learning rate.",
    ),
    "instability_min_infeasible": (
        2,
        "44: infeasible trials needed at the highest learning "
        "rates to call them an infeasible region." + _MINE,
    ),
    "instability_edge_fraction": (
        0.1,
        "44: the best trial is at the region's edge when it is the "
        "highest feasible learning rate or this close to the region "
        "(scaled range)." + _MINE,
    ),
    "isolation_buckets": (5, "47, 53-54: buckets for continuous scientific hyperparameters."),
    "overfitting_tail_fraction": (
        0.25,
        "47-48: the tail of training (fraction of max_train_steps) compared with the best before.",
    ),
    "overfitting_worsening": (
        0.03,
        "47-48: problematic overfitting = validation tail mean worse "
        "than the earlier best by this fraction of the curve's range." + _MINE,
    ),
    "overfitting_trials_fraction_max": (
        0.25,
        "48: warn when more than this fraction of completed trials overfit." + _MINE,
    ),
    "curve_checks_top_k": (3, "49-51: the curve checks look at this many best trials."),
    "late_fraction": (0.25, "49-51: 'late in training' = this last fraction of max_train_steps."),
    "late_noise_max": (
        0.05,
        "49: warn when late step-to-step noise (std of successive "
        "differences / sqrt 2) exceeds this fraction of the range." + _MINE,
    ),
    "improving_gain_min": (
        0.05,
        "50: 'still improving' = the best validation value gained more "
        "than this fraction of its range in the late window." + _MINE,
    ),
    "saturation_tolerance": (
        0.02,
        "51: a curve has saturated once within this fraction of its "
        "range from its best value." + _MINE,
    ),
    "saturation_step_fraction": (
        0.5,
        "51: 'long before the last step' = both curves saturated "
        "by this fraction of max_train_steps." + _MINE,
    ),
    "smoothing_fraction": (
        0.1,
        "51-52: training loss is smoothed by a moving average over this fraction of its points.",
    ),
    "loss_rise_max": (
        0.1,
        "52: warn when the smoothed training loss ends above its minimum by "
        "more than this fraction of its range." + _MINE,
    ),
    "best_step_early_fraction": (0.1, "69: the playbook's 'first 10%' of training."),
    "best_step_late_fraction": (0.25, "69: the playbook's 'last 25%' of training."),
    "best_step_consistency": (
        0.75,
        "69: 'always' / 'consistently' = at least this fraction of completed trials." + _MINE,
    ),
    "periodicity_max_p_value": (
        1e-4,
        "85: a validation curve is periodic when its phase-folding test (analysis.periodicity) "
        "gives a Bonferroni-adjusted p-value below this." + _MINE,
    ),
    "clipped_fraction_max": (0.5, "119: the playbook's 'more than 50% of updates clipped'."),
    "optimizer_prefixes": (
        ("optimizer.", "schedule."),
        "16, 31: names with these prefixes are optimizer hyperparameters (lr, momentum, betas).",
    ),
    "non_optimizer_names": (
        ("optimizer.name", "schedule.name"),
        "16, 31: not optimizer hyperparameters: the optimizer choice is scientific or fixed (32).",
    ),
    "adam_optimizers": (("adam", "nadam", "adamw"), "98: optimizers given the Adam advice."),
    "adam_beta1_trials": (10, "98: from this many trials also tune beta1 (playbook: 10-25)."),
    "adam_epsilon_trials": (25, "98: from this many trials also tune epsilon (playbook: 25+)."),
    "adam_beta2_trials": (
        50,
        "98: from this many trials also tune beta2 (playbook: "
        "'substantially more than 25')." + _MINE,
    ),
}
DEFAULT_THRESHOLDS = {name: value for name, (value, _) in THRESHOLDS.items()}
THRESHOLD_DOCS = {name: doc for name, (_, doc) in THRESHOLDS.items()}


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check."""

    id: str
    title: str
    checklist: tuple
    verdict: str  # "ok", "warning" or "n/a".
    finding: str  # One sentence with the key numbers (the reason, for "n/a").
    numbers: dict
    advice: str
    thresholds: dict

    def to_dict(self):
        return dataclasses.asdict(self)


def resolve_thresholds(thresholds=None):
    """Returns the defaults updated with `thresholds`; unknown names raise ValueError."""
    unknown = sorted(set(thresholds or {}) - set(DEFAULT_THRESHOLDS))
    if unknown:
        known = ", ".join(sorted(DEFAULT_THRESHOLDS))
        raise ValueError(f"unknown check thresholds {unknown}; known: {known}")
    return dict(DEFAULT_THRESHOLDS, **(thresholds or {}))


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


def _top_completed(study, th):
    return [t for t in study.ranked() if t.completed][: th["curve_checks_top_k"]]


def is_optimizer_dimension(dim, th):
    prefixed = dim.name.startswith(tuple(th["optimizer_prefixes"]))
    return prefixed and dim.name not in th["non_optimizer_names"]


def _tuned_optimizer_ids(study, th):
    return [d.id for d in study.varied_dimensions() if is_optimizer_dimension(d, th)]


# The checks, in checklist order. Each returns (verdict, finding, numbers).


def _batch_size_retuned(study, th, baseline_study):
    if baseline_study is not None and baseline_study.trials:
        sizes = collections.Counter(t.batch_size for t in baseline_study.trials)
        reference, source = sizes.most_common(1)[0][0], f"baseline study {baseline_study.name}"
    else:
        declared = {t.config.get("tuned_for_batch_size") for t in study.trials} - {None, 0}
        if not declared:
            return NA, "No tuned_for_batch_size in the configs and no baseline study given.", {}
        reference, source = min(declared), "config tuned_for_batch_size"
    sizes = sorted({t.batch_size for t in study.trials if t.batch_size is not None})
    changed = [b for b in sizes if b != reference]
    tuned = _tuned_optimizer_ids(study, th)
    numbers = {
        "reference_batch_size": reference,
        "reference_from": source,
        "study_batch_sizes": sizes,
        "tuned_optimizer_hparams": tuned,
    }
    if not changed:
        return OK, f"Trials ran at the batch size the values were tuned at ({reference}).", numbers
    differs = f"Batch size {changed} differs from {reference} ({source})"
    if tuned:
        return OK, f"{differs}; the study re-tunes {', '.join(tuned)}.", numbers
    return WARNING, f"{differs} and no optimizer hyperparameter is tuned.", numbers


def _optimizer_hparams_fixed(study, th):
    scientific = [d.id for d in study.scientific_dimensions()]
    if not scientific:
        return NA, "No scientific hyperparameter: this is not a comparison study.", {}
    tuned = _tuned_optimizer_ids(study, th)
    numbers = {"scientific": scientific, "tuned_optimizer_hparams": tuned}
    if tuned:
        return OK, f"Optimizer hyperparameters tuned: {', '.join(tuned)}.", numbers
    finding = f"Comparing {', '.join(scientific)} with every optimizer hyperparameter fixed."
    return WARNING, finding, numbers


def _infeasible_fraction(study, th):
    finished = [t for t in study.trials if t.status in td.FINISHED]
    if not finished:
        return NA, "No finished trials yet.", {}
    infeasible = [t for t in finished if not t.feasible]
    fraction = len(infeasible) / len(finished)
    numbers = {
        "finished": len(finished),
        "infeasible": len(infeasible),
        "fraction": _r(fraction),
        "infeasible_trials": [t.id for t in infeasible],
        "reasons": dict(collections.Counter(f"{t.status}: {t.reason}" for t in infeasible)),
    }
    verdict = WARNING if fraction > th["infeasible_fraction_max"] else OK
    return verdict, f"{len(infeasible)} of {len(finished)} finished trials infeasible.", numbers


def _boundary(study, th):
    best = study.best(th["boundary_top_k"])
    dims = [d for d in study.varied_dimensions() if d.to_unit(d.min) is not None]
    if not best:
        return NA, "No feasible trial with an objective.", {}
    if not dims:
        return NA, "No varied hyperparameter with a continuous range (choices are skipped).", {}
    fraction, positions, near = th["boundary_fraction"], [], []
    for trial in best:
        for dim in dims:
            unit = dim.to_unit(trial.values.get(dim.id))
            if unit is None:
                continue
            positions.append(
                {
                    "trial": trial.id,
                    "dimension": dim.id,
                    "value": trial.values[dim.id],
                    "scaled_position": _r(unit, 3),
                }
            )
            side = "low" if unit <= fraction else "high" if unit >= 1 - fraction else None
            if side:
                near.append(f"{dim.id} ({side} end, trial {trial.id})")
    numbers = {"positions": positions, "near": near}
    if near:
        return WARNING, f"Near the boundary: {'; '.join(near)}.", numbers
    inside = f"inside the central {1 - 2 * fraction:.0%} of every varied range"
    return OK, f"The best {len(best)} trial(s) are {inside}.", numbers


def _instability_high_lr(study, th):
    names = tuple(th["learning_rate_names"])
    lr_dims = [d for d in study.varied_dimensions() if d.name.split(".")[-1] in names]
    if not lr_dims:
        return NA, "The study varies no learning rate.", {}
    per_dim, flagged = [], []
    for dim in lr_dims:
        finished = [
            t for t in study.trials if t.status in td.FINISHED and t.values.get(dim.id) is not None
        ]
        by_lr = sorted(finished, key=lambda t: -float(t.values[dim.id]))
        run = 0  # Infeasible trials at the very highest learning rates.
        while run < len(by_lr) and not by_lr[run].feasible:
            run += 1
        entry = {"dimension": dim.id, "infeasible_at_highest_lrs": run}
        ranked = [t for t in study.ranked() if t.values.get(dim.id) is not None]
        if run >= th["instability_min_infeasible"] and ranked:
            best, threshold = ranked[0], float(by_lr[run - 1].values[dim.id])
            gap = (dim.to_unit(threshold) or 0.0) - (dim.to_unit(best.values[dim.id]) or 0.0)
            highest_feasible = run < len(by_lr) and best is by_lr[run]
            at_edge = highest_feasible or 0 < gap <= th["instability_edge_fraction"]
            entry.update(
                infeasible_from=threshold,
                best_trial=best.id,
                scaled_gap=_r(gap, 3),
                best_at_edge=bool(at_edge),
            )
            if at_edge:
                flagged.append(dim.id)
        per_dim.append(entry)
    numbers = {"dimensions": per_dim}
    if flagged:
        finding = (
            f"Every trial above a {', '.join(flagged)} threshold is infeasible and the "
            "best trial sits at the edge of that region."
        )
        return WARNING, finding, numbers
    return OK, "No infeasible high-learning-rate region bordering the best trial.", numbers


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


def _on_best_trials(study, th, measure, what):
    """Runs `measure(trial) -> dict with "flagged", or None` on the best completed trials."""
    results = [m for m in (measure(t) for t in _top_completed(study, th)) if m]
    if not results:
        return NA, "No completed feasible trial with enough measurements.", {}
    flagged = [r["trial"] for r in results if r["flagged"]]
    if flagged:
        return WARNING, f"{what}: trial(s) {', '.join(flagged)}.", {"trials": results}
    return OK, f"None of the best {len(results)} trial(s): {what.lower()}.", {"trials": results}


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


_ADAM_NAMES = {
    "learning_rate": "learning_rate",
    "base_learning_rate": "learning_rate",
    "beta1": "beta1",
    "beta_1": "beta1",
    "beta2": "beta2",
    "beta_2": "beta2",
    "epsilon": "epsilon",
    "eps": "epsilon",
}


def _adam_budget(study, th):
    names = {t.optimizer_name for t in study.trials}
    names |= {t.values.get("optimizer.name") for t in study.trials} - {None}
    adam = sorted(n for n in names if n in th["adam_optimizers"])
    if not adam:
        return NA, f"Optimizer {sorted(map(str, names))} is not an Adam variant.", {}
    budget = study.max_trials or len(study.trials)
    recommended = ["learning_rate"]
    for key, name in (
        ("adam_beta1_trials", "beta1"),
        ("adam_epsilon_trials", "epsilon"),
        ("adam_beta2_trials", "beta2"),
    ):
        if budget >= th[key]:
            recommended.append(name)
    short = [d.name.split(".")[-1] for d in study.dimensions if d.role != "fixed"]
    tuned = sorted({_ADAM_NAMES[n] for n in short if n in _ADAM_NAMES})
    missing = [n for n in recommended if n not in tuned]
    extra = [n for n in tuned if n not in recommended]
    numbers = {
        "trial_budget": budget,
        "recommended": recommended,
        "tuned": tuned,
        "missing": missing,
        "extra": extra,
    }
    advice = ([f"also tune {', '.join(missing)}"] if missing else []) + (
        [f"fix {', '.join(extra)} (too many for the budget)"] if extra else []
    )
    if advice:
        return WARNING, f"{budget} trials with {', '.join(adam)}: {'; '.join(advice)}.", numbers
    return OK, f"{budget} trials with {', '.join(adam)}: tuning {', '.join(tuned)} fits.", numbers


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


@dataclasses.dataclass(frozen=True)
class _Check:
    id: str
    title: str
    checklist: tuple
    threshold_names: tuple
    advice: str
    run: object


_CHECKS = (
    _Check(
        "batch_size_retuned",
        "Batch size changed without re-tuning",
        (16,),
        ("optimizer_prefixes", "non_optimizer_names"),
        "Changing the batch size changes the best optimizer (learning rate, momentum) and "
        "regularisation hyperparameters: re-tune them at the new batch size, or go back to the "
        "batch size they were tuned at.",
        _batch_size_retuned,
    ),
    _Check(
        "optimizer_hparams_fixed",
        "Optimizer hyperparameters tuned in a comparison",
        (31,),
        ("optimizer_prefixes", "non_optimizer_names"),
        "Make the learning rate (and momentum, betas, schedule parameters) nuisance "
        "hyperparameters: they interact with almost every scientific hyperparameter, so fixing "
        "them biases the comparison.",
        _optimizer_hparams_fixed,
    ),
    _Check(
        "infeasible_fraction",
        "Infeasible trials",
        (41,),
        ("infeasible_fraction_max",),
        "Many diverged or failed trials waste the budget: shrink or reparameterise the search "
        "space away from the infeasible region; many failures can also mean a bug.",
        _infeasible_fraction,
    ),
    _Check(
        "search_space_boundary",
        "Best trials near the search-space boundary",
        (42, 43),
        ("boundary_fraction", "boundary_top_k"),
        "Expand the search range in the flagged direction until the best observed point is no "
        "longer near the edge (objective: best validation value over training, checklist 43).",
        _boundary,
    ),
    _Check(
        "instability_high_lr",
        "Infeasible region at high learning rates",
        (44,),
        ("learning_rate_names", "instability_min_infeasible", "instability_edge_fraction"),
        "The best learning rate sits at the edge of a region where training fails: possible "
        "optimisation instability. Try learning-rate warmup or gradient clipping (checklist "
        "109-119) before accepting the lower learning rate.",
        _instability_high_lr,
    ),
    _Check(
        "overfitting_best",
        "Problematic overfitting (best trial per scientific value)",
        (47,),
        ("overfitting_tail_fraction", "overfitting_worsening", "isolation_buckets"),
        "Validation performance gets worse late in training: re-run with more or better-tuned "
        "regularisation (dropout, label smoothing, weight decay) before comparing scientific "
        "values, unless they are themselves regularisation strengths.",
        _overfitting_best,
    ),
    _Check(
        "overfitting_all",
        "Problematic overfitting (all trials)",
        (48,),
        ("overfitting_tail_fraction", "overfitting_worsening", "overfitting_trials_fraction_max"),
        "Many trials overfit: picking the best trial then favours configurations with more, "
        "possibly accidental, regularisation (such as a too-small learning rate). Add or tune "
        "regularisation and re-run.",
        _overfitting_all,
    ),
    _Check(
        "late_variance",
        "High step-to-step variance late in training",
        (49,),
        ("late_fraction", "late_noise_max", "curve_checks_top_k"),
        "Noisy late curves make trials hard to compare. Causes: batch variance, a small "
        "validation set, a too-high late learning rate. Remedies: a larger batch, more "
        "validation data, learning-rate decay, Polyak averaging.",
        _late_variance,
    ),
    _Check(
        "still_improving",
        "Still improving at the end of training",
        (50,),
        ("late_fraction", "improving_gain_min", "curve_checks_top_k"),
        "Validation performance still improves at the end: training is compute-bound. Train "
        "for more steps or change the learning-rate schedule.",
        _still_improving,
    ),
    _Check(
        "saturated_early",
        "Saturated long before the last step",
        (51,),
        (
            "saturation_tolerance",
            "saturation_step_fraction",
            "smoothing_fraction",
            "curve_checks_top_k",
        ),
        "Training and validation stopped improving long before the end: not compute-bound. "
        "Reduce max_train_steps (and re-check the schedule).",
        _saturated_early,
    ),
    _Check(
        "training_loss_increasing",
        "Training loss increasing",
        (52,),
        ("smoothing_fraction", "loss_rise_max"),
        "Training loss that rises during training usually means a bug in the pipeline; it can "
        "also be instability at a high learning rate (checklist 105).",
        _training_loss_increasing,
    ),
    _Check(
        "best_step_position",
        "Retrospective best step within the step budget",
        (69,),
        ("best_step_early_fraction", "best_step_late_fraction", "best_step_consistency"),
        "Best step nearly always in the first 10%: max_train_steps is far too high. "
        "Consistently in the last 25%: train longer and re-tune the learning-rate decay "
        "schedule.",
        _best_step_position,
    ),
    _Check(
        "periodicity",
        "Periodic pattern in validation curves",
        (85,),
        ("periodicity_max_p_value", "curve_checks_top_k"),
        "A validation curve that repeats with a fixed period often repeats with the data: check "
        "that the training set does not overlap the validation set and that the training data "
        "is shuffled across epochs (compare the period with the steps per epoch).",
        _periodic,
    ),
    _Check(
        "adam_budget",
        "Adam hyperparameters for the trial budget",
        (98,),
        ("adam_optimizers", "adam_beta1_trials", "adam_epsilon_trials", "adam_beta2_trials"),
        "Playbook budget for Adam: fewer than 10 trials, tune only the learning rate; 10-25, "
        "also beta1; 25 or more, also epsilon; substantially more, also beta2.",
        _adam_budget,
    ),
    _Check(
        "clipping",
        "Gradient clipping too aggressive",
        (117, 119),
        ("clipped_fraction_max",),
        "Clipping more than half of the updates is effectively a learning-rate cut: lower the "
        "learning rate instead, or raise the threshold towards the 90th percentile of the "
        "unclipped gradient norms (checklist 117).",
        _clipping,
    ),
)
CHECK_IDS = tuple(c.id for c in _CHECKS)


def run_checks(study, thresholds=None, baseline_study=None):
    """Runs every post-study check on a loaded study.

    Args:
      study: a `study_data.Study` (see `study_data.load_study`).
      thresholds: overrides for `DEFAULT_THRESHOLDS`.
      baseline_study: optional study whose batch size the optimizer values were tuned at
        (checklist 16).

    Returns:
      A list of `CheckResult`, in checklist order.

    Raises:
      ValueError: on an unknown threshold name.
    """
    th = resolve_thresholds(thresholds)
    results = []
    for check in _CHECKS:
        if check.run is _batch_size_retuned:
            outcome = check.run(study, th, baseline_study)
        else:
            outcome = check.run(study, th)
        # A check with several pieces of advice returns the one that applies as a 4th item.
        verdict, finding, numbers = outcome[:3]
        advice = outcome[3] if len(outcome) > 3 else check.advice
        used = {name: th[name] for name in check.threshold_names}
        result = CheckResult(
            check.id, check.title, check.checklist, verdict, finding, numbers, advice, used
        )
        results.append(result)
    return results
