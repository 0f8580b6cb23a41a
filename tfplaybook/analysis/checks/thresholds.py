"""The checks' thresholds: name -> (default, meaning), the defaults, and `resolve_thresholds`.

Where the playbook gives a number (10% / 25% of training for the best step, 50% of updates
clipped, the Adam trial budgets) the default is the playbook's; every other number is
tfplaybook's own choice, marked so in its meaning. Curve amounts are fractions of the curve's
range (its best minus its worst value), so one threshold serves accuracy, error rate and loss.
"""

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


def resolve_thresholds(thresholds=None):
    """Returns the defaults updated with `thresholds`; unknown names raise ValueError."""
    unknown = sorted(set(thresholds or {}) - set(DEFAULT_THRESHOLDS))
    if unknown:
        known = ", ".join(sorted(DEFAULT_THRESHOLDS))
        raise ValueError(f"unknown check thresholds {unknown}; known: {known}")
    return dict(DEFAULT_THRESHOLDS, **(thresholds or {}))
