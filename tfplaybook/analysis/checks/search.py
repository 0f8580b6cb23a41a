"""Checks of the search space and the study's design (checklist 16, 31, 41-44, 98).

They read the trials' hyperparameter values, statuses and objectives, never their curves:
batch size changed without re-tuning, optimizer hyperparameters fixed in a comparison,
infeasible trials, best trials near the boundary, an infeasible region at high learning rates,
and the Adam hyperparameters to tune for the trial budget. Each returns (verdict, finding,
numbers).

Rule for checklist 16 (batch size changed without re-tuning): the reference batch size is the
most common batch size of `baseline_study` when one is passed, else the top-level
`tuned_for_batch_size` of the trial configs; the check warns when trials ran at another batch size
and the study varies no optimizer hyperparameter (`is_optimizer_dimension`).
"""

import collections

from tfplaybook.analysis.checks.common import NA, OK, WARNING, _r
from tfplaybook.files import trial_dir as td


def is_optimizer_dimension(dim, th):
    """True when `dim` is an optimizer hyperparameter by the thresholds' prefixes and exclusions."""
    prefixed = dim.name.startswith(tuple(th["optimizer_prefixes"]))
    return prefixed and dim.name not in th["non_optimizer_names"]


def _tuned_optimizer_ids(study, th):
    return [d.id for d in study.varied_dimensions() if is_optimizer_dimension(d, th)]


# The checks, in checklist order.


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
