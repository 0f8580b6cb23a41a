"""Critical batch size, in words: the checklist verdicts and the recommendation of a result.

`checklist` and `recommendation` word what `rule.analyze` measured (its table rows and numbers)
as the playbook's checklist items 12, 14, 16 and 42 and one paragraph of advice.
"""

from tfplaybook.procedures import INFO, OK, WARN, check


def objective_text(metric, goal, target):
    """The target as a condition, e.g. "validation accuracy >= 0.8"."""
    return f"validation {metric} {'>=' if goal == 'max' else '<='} {target:.4g}"


def checklist(rows, n, tolerance):
    """The checklist verdicts of the rows and numbers `rule.analyze` computed."""
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


def recommendation(rows, n, tolerance):
    """What to do next, in sentences: the critical batch size and where scaling breaks."""
    if n["target_value"] is None:
        return "Every trial diverged or failed: no batch size has a validation value to compare."
    target = objective_text(n["metric"], n["goal"], n["target_value"])
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
