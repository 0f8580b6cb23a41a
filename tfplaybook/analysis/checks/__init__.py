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

This package holds the registry (`_CHECKS`, in checklist order) and `run_checks`; the checks
live by topic: `search` (the search space and the study's design: checklist 16, 31, 41-44, 98,
with the rule for 16), `curves` (the training curves: 47-52, 69, 85; trials still running are
left out) and `clipping` (117, 119), on the shared helpers of `common`; `thresholds` holds every
threshold with its meaning.
"""

import dataclasses

from tfplaybook.analysis.checks import clipping, curves, search
from tfplaybook.analysis.checks.clipping import clipped_fraction
from tfplaybook.analysis.checks.common import NA, OK, WARNING
from tfplaybook.analysis.checks.curves import overfitting
from tfplaybook.analysis.checks.search import is_optimizer_dimension
from tfplaybook.analysis.checks.thresholds import (
    DEFAULT_THRESHOLDS,
    THRESHOLD_DOCS,
    THRESHOLDS,
    resolve_thresholds,
)

__all__ = [
    "CHECK_IDS",
    "DEFAULT_THRESHOLDS",
    "NA",
    "OK",
    "THRESHOLDS",
    "THRESHOLD_DOCS",
    "WARNING",
    "CheckResult",
    "clipped_fraction",
    "is_optimizer_dimension",
    "overfitting",
    "resolve_thresholds",
    "run_checks",
]


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
        search._batch_size_retuned,
    ),
    _Check(
        "optimizer_hparams_fixed",
        "Optimizer hyperparameters tuned in a comparison",
        (31,),
        ("optimizer_prefixes", "non_optimizer_names"),
        "Make the learning rate (and momentum, betas, schedule parameters) nuisance "
        "hyperparameters: they interact with almost every scientific hyperparameter, so fixing "
        "them biases the comparison.",
        search._optimizer_hparams_fixed,
    ),
    _Check(
        "infeasible_fraction",
        "Infeasible trials",
        (41,),
        ("infeasible_fraction_max",),
        "Many diverged or failed trials waste the budget: shrink or reparameterise the search "
        "space away from the infeasible region; many failures can also mean a bug.",
        search._infeasible_fraction,
    ),
    _Check(
        "search_space_boundary",
        "Best trials near the search-space boundary",
        (42, 43),
        ("boundary_fraction", "boundary_top_k"),
        "Expand the search range in the flagged direction until the best observed point is no "
        "longer near the edge (objective: best validation value over training, checklist 43).",
        search._boundary,
    ),
    _Check(
        "instability_high_lr",
        "Infeasible region at high learning rates",
        (44,),
        ("learning_rate_names", "instability_min_infeasible", "instability_edge_fraction"),
        "The best learning rate sits at the edge of a region where training fails: possible "
        "optimisation instability. Try learning-rate warmup or gradient clipping (checklist "
        "109-119) before accepting the lower learning rate.",
        search._instability_high_lr,
    ),
    _Check(
        "overfitting_best",
        "Problematic overfitting (best trial per scientific value)",
        (47,),
        ("overfitting_tail_fraction", "overfitting_worsening", "isolation_buckets"),
        "Validation performance gets worse late in training: re-run with more or better-tuned "
        "regularisation (dropout, label smoothing, weight decay) before comparing scientific "
        "values, unless they are themselves regularisation strengths.",
        curves._overfitting_best,
    ),
    _Check(
        "overfitting_all",
        "Problematic overfitting (all trials)",
        (48,),
        ("overfitting_tail_fraction", "overfitting_worsening", "overfitting_trials_fraction_max"),
        "Many trials overfit: picking the best trial then favours configurations with more, "
        "possibly accidental, regularisation (such as a too-small learning rate). Add or tune "
        "regularisation and re-run.",
        curves._overfitting_all,
    ),
    _Check(
        "late_variance",
        "High step-to-step variance late in training",
        (49,),
        ("late_fraction", "late_noise_max", "curve_checks_top_k"),
        "Noisy late curves make trials hard to compare. Causes: batch variance, a small "
        "validation set, a too-high late learning rate. Remedies: a larger batch, more "
        "validation data, learning-rate decay, Polyak averaging.",
        curves._late_variance,
    ),
    _Check(
        "still_improving",
        "Still improving at the end of training",
        (50,),
        ("late_fraction", "improving_gain_min", "curve_checks_top_k"),
        "Validation performance still improves at the end: training is compute-bound. Train "
        "for more steps or change the learning-rate schedule.",
        curves._still_improving,
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
        curves._saturated_early,
    ),
    _Check(
        "training_loss_increasing",
        "Training loss increasing",
        (52,),
        ("smoothing_fraction", "loss_rise_max"),
        "Training loss that rises during training usually means a bug in the pipeline; it can "
        "also be instability at a high learning rate (checklist 105).",
        curves._training_loss_increasing,
    ),
    _Check(
        "best_step_position",
        "Retrospective best step within the step budget",
        (69,),
        ("best_step_early_fraction", "best_step_late_fraction", "best_step_consistency"),
        "Best step nearly always in the first 10%: max_train_steps is far too high. "
        "Consistently in the last 25%: train longer and re-tune the learning-rate decay "
        "schedule.",
        curves._best_step_position,
    ),
    _Check(
        "periodicity",
        "Periodic pattern in validation curves",
        (85,),
        ("periodicity_max_p_value", "curve_checks_top_k"),
        "A validation curve that repeats with a fixed period often repeats with the data: check "
        "that the training set does not overlap the validation set and that the training data "
        "is shuffled across epochs (compare the period with the steps per epoch).",
        curves._periodic,
    ),
    _Check(
        "adam_budget",
        "Adam hyperparameters for the trial budget",
        (98,),
        ("adam_optimizers", "adam_beta1_trials", "adam_epsilon_trials", "adam_beta2_trials"),
        "Playbook budget for Adam: fewer than 10 trials, tune only the learning rate; 10-25, "
        "also beta1; 25 or more, also epsilon; substantially more, also beta2.",
        search._adam_budget,
    ),
    _Check(
        "clipping",
        "Gradient clipping too aggressive",
        (117, 119),
        ("clipped_fraction_max",),
        "Clipping more than half of the updates is effectively a learning-rate cut: lower the "
        "learning rate instead, or raise the threshold towards the 90th percentile of the "
        "unclipped gradient norms (checklist 117).",
        clipping._clipping,
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
        if check.run is search._batch_size_retuned:
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
