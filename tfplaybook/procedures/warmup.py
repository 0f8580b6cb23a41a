"""Learning-rate warmup: unstable LR, warmup-length sweep, prepending the result.

Checklist 105 and 110-114. (a) From an LR sweep's training losses, `unstable_base_learning_rate`
is the smallest learning rate whose run is unstable (it diverges or its loss climbs by the
criterion in tfplaybook.procedures.instability). (b) `warmup_sweep_configs` trains at a base LR of
10x that value with warmup lengths over orders of magnitude (`warmup_steps_grid`), each followed
by `post_warmup_steps` = 2x warmup at the base LR (111). (c) `analyze` picks the shortest warmup
that trains stably and warns above 5% (114) and 10% (112) of max_train_steps. (d)
`prepend_warmup_overrides` prepends it to the existing schedule (113).

Schedule semantics these overrides assume (the schedules module implements them):
warmup ramps linearly from 0 to the base LR over `schedule.warmup_steps`; the decay then runs
from max(warmup_steps, decay_start_step) to max_train_steps. Prepending w warmup steps therefore
means max_train_steps + w (and decay_start_step + w when the decay starts later than the warmup
ends), which leaves the old schedule's shape intact after the ramp.
"""

import copy

from tfplaybook.procedures import (
    INFO,
    OK,
    WARN,
    check,
    instability,
    ours,
    playbook,
    result,
    threshold,
)

LR_MULTIPLIER = 10.0  # Checklist 110: base LR at least 10x the unstable one (can repeat at ~100x).
POST_WARMUP_FACTOR = 2.0  # Checklist 111: post_warmup_steps = 2 x warmup_steps is usually fine.
# Ours: a 10-step warmup followed by 20 steps is too short for the climb criterion to see
# anything, so every sweep run trains at least this many steps after its ramp.
MIN_POST_WARMUP_STEPS = 100
LONG_WARMUP_FRACTION = 0.05  # Checklist 114: > 5% of max_train_steps: consider training longer.
MAX_WARMUP_FRACTION = 0.10  # Checklist 112: the largest feasible warmup <= 10% of max_train_steps.


def unstable_base_learning_rate(stable_by_lr):
    """The smallest unstable learning rate, or None when every run was stable (checklist 110).

    Args:
      stable_by_lr: {learning_rate: bool stable, or an instability.detect_climb verdict}; a
        diverged run is unstable.
    """
    unstable = [lr for lr, v in stable_by_lr.items() if not instability.is_stable(v)]
    return float(min(unstable)) if unstable else None


def warmup_steps_grid(max_train_steps, start=10, factor=10):
    """Warmup lengths over orders of magnitude, start * factor^k, capped at max_train_steps.

    For max_train_steps=20000 this is [10, 100, 1000, 10000] (checklist 112's example grid).

    Raises:
      ValueError: when start < 1, factor < 2 or max_train_steps < start.
    """
    if start < 1 or factor < 2 or max_train_steps < start:
        raise ValueError(
            f"need start >= 1, factor >= 2 and max_train_steps >= start; got start={start!r}, "
            f"factor={factor!r}, max_train_steps={max_train_steps!r}"
        )
    grid = []
    steps = int(start)
    while steps <= max_train_steps:
        grid.append(steps)
        steps *= int(factor)
    return grid


def plan(stable_by_lr, config, lr_multiplier=LR_MULTIPLIER):
    """Steps (a) and (b): the unstable LR, the sweep's base LR and its warmup grid.

    Args:
      stable_by_lr: {learning_rate: bool stable, or an instability.detect_climb verdict}.
      config: the baseline config; its max_train_steps caps the warmup grid.
      lr_multiplier: base LR = this x the unstable LR.

    Returns:
      The common result dict; numbers["base_learning_rate"] and numbers["warmup_steps_grid"] are
      None and [] when no learning rate was unstable.
    """
    if not stable_by_lr:
        raise ValueError("stable_by_lr is empty: give {learning_rate: stable}")
    unstable_lr = unstable_base_learning_rate(stable_by_lr)
    grid = sorted(float(lr) for lr in stable_by_lr)
    numbers = {
        "learning_rates": grid,
        "unstable_base_learning_rate": unstable_lr,
        "base_learning_rate": None,
        "warmup_steps_grid": [],
    }
    thresholds = {
        "lr_multiplier": threshold(lr_multiplier, playbook("L1910-1922")),
        "post_warmup_factor": threshold(POST_WARMUP_FACTOR, playbook("L1923-1928")),
        "min_post_warmup_steps": threshold(
            MIN_POST_WARMUP_STEPS, ours("enough steps after the ramp to see a loss climb")
        ),
    }
    checklist = []
    if unstable_lr is None:
        text = (
            f"Every learning rate up to {grid[-1]:g} trained stably: extend the sweep to larger "
            "learning rates to find where training becomes unstable before sweeping warmup."
        )
        checklist.append(check(110, INFO, "No unstable learning rate in the sweep."))
        return result("warmup_plan", text, numbers, checklist, thresholds)
    stable_above = [
        lr for lr in grid if lr > unstable_lr and instability.is_stable(stable_by_lr[lr])
    ]
    if stable_above:
        checklist.append(
            check(
                105,
                INFO,
                f"Learning rates {stable_above} above the unstable {unstable_lr:g} trained "
                "stably: instability is erratic here; repeat those runs with another seed.",
            )
        )
    base = unstable_lr * lr_multiplier
    warmups = warmup_steps_grid(config["max_train_steps"])
    numbers.update(base_learning_rate=base, warmup_steps_grid=warmups)
    checklist.append(
        check(110, OK, f"Unstable from {unstable_lr:g}; warmup sweep at base LR {base:g}.")
    )
    text = (
        f"Training becomes unstable at learning rate {unstable_lr:g}. Sweep warmup_steps over "
        f"{warmups} at base learning rate {base:g} ({lr_multiplier:g}x) and keep the shortest "
        "warmup that trains stably."
    )
    return result("warmup_plan", text, numbers, checklist, thresholds)


def warmup_sweep_configs(
    config,
    unstable_learning_rate,
    warmup_steps_list,
    lr_multiplier=LR_MULTIPLIER,
    post_warmup_factor=POST_WARMUP_FACTOR,
    min_post_warmup_steps=MIN_POST_WARMUP_STEPS,
):
    """One config per warmup length at base LR = lr_multiplier x unstable LR (checklist 110-112).

    Each run ramps from 0 to the base LR over warmup_steps, then stays constant for
    max(post_warmup_factor * warmup_steps, min_post_warmup_steps) steps.

    Returns:
      A list of configs, in increasing warmup order.

    Raises:
      ValueError: on a non-positive learning rate or multiplier, or warmup lengths that are not
        distinct positive integers.
    """
    if not unstable_learning_rate > 0 or not lr_multiplier > 0:
        raise ValueError(
            f"unstable_learning_rate={unstable_learning_rate!r} and lr_multiplier="
            f"{lr_multiplier!r} must be positive"
        )
    lengths = list(warmup_steps_list)
    if (
        not lengths
        or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in lengths)
        or len(set(lengths)) != len(lengths)
    ):
        raise ValueError(f"warmup_steps_list={lengths!r} must be distinct positive integers")
    configs = []
    for warmup in sorted(lengths):
        c = copy.deepcopy(config)
        c["optimizer"]["learning_rate"] = float(unstable_learning_rate * lr_multiplier)
        c["schedule"]["name"] = "constant"
        c["schedule"]["warmup_steps"] = warmup
        post = max(round(post_warmup_factor * warmup), int(min_post_warmup_steps))
        c["max_train_steps"] = warmup + post
        c["eval_every_steps"] = min(c["eval_every_steps"], c["max_train_steps"])
        configs.append(c)
    return configs


def prepend_warmup_overrides(config, warmup_steps):
    """Overrides that prepend `warmup_steps` of warmup to the config's schedule (checklist 113).

    Example: max_train_steps=10000 without warmup and warmup_steps=1000 give
    ["schedule.warmup_steps=1000", "max_train_steps=11000"]. A warmup the config already has is
    replaced, so only the difference is added to the step counts.
    """
    if not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"warmup_steps={warmup_steps!r} must be a positive integer")
    schedule = config["schedule"]
    old_warmup = int(schedule.get("warmup_steps", 0))
    shift = warmup_steps - old_warmup
    overrides = [
        f"schedule.warmup_steps={warmup_steps}",
        f"max_train_steps={config['max_train_steps'] + shift}",
    ]
    decay_start = int(schedule.get("decay_start_step", 0))
    if decay_start > old_warmup:
        overrides.append(f"schedule.decay_start_step={decay_start + shift}")
    return overrides


def analyze(stable_by_warmup, config, base_learning_rate=None):
    """Picks the shortest stable warmup and says how to apply it (checklist 111-114).

    Args:
      stable_by_warmup: {warmup_steps: bool stable, or an instability.detect_climb verdict}.
      config: the baseline config the warmup will be prepended to; its max_train_steps is the
        budget the 5% and 10% checks use.
      base_learning_rate: the base LR the sweep trained at, for the message.

    Returns:
      The common result dict; "overrides" holds the prepend overrides when a warmup worked.
    """
    if not stable_by_warmup:
        raise ValueError("stable_by_warmup is empty: give {warmup_steps: stable}")
    budget = config["max_train_steps"]
    grid = sorted(int(w) for w in stable_by_warmup)
    stable = [w for w in grid if instability.is_stable(stable_by_warmup[w])]
    shortest = stable[0] if stable else None
    fraction = shortest / budget if shortest is not None else None
    lr_text = f" at base learning rate {base_learning_rate:g}" if base_learning_rate else ""
    numbers = {
        "warmup_steps": shortest,
        "warmup_fraction": fraction,
        "max_train_steps": budget,
        "grid": grid,
        "stable_warmup_steps": stable,
        "base_learning_rate": base_learning_rate,
    }
    thresholds = {
        "long_warmup_fraction": threshold(LONG_WARMUP_FRACTION, playbook("L1941-1943")),
        "max_warmup_fraction": threshold(MAX_WARMUP_FRACTION, playbook("L1929-1933")),
        "lr_multiplier": threshold(LR_MULTIPLIER, playbook("L1910-1922, at least 10x")),
        "post_warmup_factor": threshold(POST_WARMUP_FACTOR, playbook("L1923-1928")),
    }
    checklist = []
    if shortest is None:
        text = (
            f"No warmup in {grid} made training stable{lr_text}. Try longer warmups (while they "
            f"stay within {MAX_WARMUP_FRACTION:.0%} of max_train_steps), then gradient clipping, "
            "another optimizer or architecture fixes; lower the learning rate only as a last "
            "resort."
        )
        checklist.append(check(111, WARN, "No warmup length in the sweep trained stably."))
        return result("warmup_sweep", text, numbers, checklist, thresholds, overrides=[])
    overrides = prepend_warmup_overrides(config, shortest)
    text = (
        f"Use warmup_steps={shortest}: the shortest warmup that trained stably{lr_text} "
        f"({fraction:.1%} of max_train_steps={budget}). Prepend it to the baseline schedule "
        f"({', '.join(overrides)}) and compare with the baseline by retrospective checkpoint "
        "selection; the warmup should let the learning-rate search reach higher values."
    )
    checklist.append(check(111, OK, f"Shortest stable warmup: {shortest} steps."))
    if shortest == grid[0]:
        checklist.append(
            check(111, INFO, f"{shortest} is the shortest length tried; shorter may work too.")
        )
    unstable_after = [w for w in grid if w > shortest and w not in stable]
    if unstable_after:
        checklist.append(
            check(
                111,
                INFO,
                f"Longer warmups {unstable_after} were unstable again: the instability may not "
                "be an early one; consider gradient clipping too.",
            )
        )
    if fraction > MAX_WARMUP_FRACTION:
        text += (
            f" This warmup exceeds {MAX_WARMUP_FRACTION:.0%} of the training budget: "
            "increase max_train_steps or fix the instability another way (gradient clipping)."
        )
        checklist.append(
            check(112, WARN, f"Warmup is {fraction:.1%} of max_train_steps, above 10%.")
        )
    elif fraction > LONG_WARMUP_FRACTION:
        text += f" It exceeds {LONG_WARMUP_FRACTION:.0%} of the budget: consider more steps."
    if fraction > LONG_WARMUP_FRACTION:
        checklist.append(
            check(
                114,
                WARN,
                f"Stable training needs {fraction:.1%} of max_train_steps in warmup (> 5%): "
                "consider increasing max_train_steps.",
            )
        )
    else:
        checklist.append(check(114, OK, f"Warmup is {fraction:.1%} of max_train_steps (<= 5%)."))
    checklist.append(
        check(113, INFO, "Total steps = old max_train_steps + warmup_steps: " + overrides[1])
    )
    return result("warmup_sweep", text, numbers, checklist, thresholds, overrides=overrides)


def plot(series_by_warmup, base_learning_rate, res=None):
    """Training loss vs step per warmup length, and the learning-rate ramps (P8)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, lr_ax = fig.subplots(1, 2)
    chosen = res["numbers"]["warmup_steps"] if res else None
    stable = res["numbers"]["stable_warmup_steps"] if res else list(series_by_warmup)
    for warmup in sorted(series_by_warmup):
        steps, losses = series_by_warmup[warmup]
        label = f"warmup {warmup}" + (" (chosen)" if warmup == chosen else "")
        label += "" if warmup in stable else " (unstable)"
        line = loss_ax.plot(steps, losses, label=label, lw=2.5 if warmup == chosen else 1.2)[0]
        end = steps[-1] if len(steps) else warmup
        lr_ax.plot(
            [0, warmup, max(end, warmup)],
            [0.0, base_learning_rate, base_learning_rate],
            color=line.get_color(),
        )
    loss_ax.set_xscale("log")
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title("Warmup sweep")
    loss_ax.legend(fontsize="small")
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_title(f"Linear warmup to {base_learning_rate:g}")
    return fig
