"""Rounds of tuning for compute-bound work: a short round 1, a long round 2 (checklist 72-76).

Round 1 trains each trial for a fraction (default 10%) of the production max_train_steps to tune
the model and optimizer hyperparameters (72-73). Round 2 trains the best round-1 config for the
full budget, spending the extra steps at a high learning rate rather than a small one (74, 76):

- linear decay: keep round 1's decay length and lengthen the constant phase before it;
- cosine decay: keep the base learning rate and stretch the schedule to the new max_train_steps;
- constant: simply train longer.

Schedule fields are those of tfplaybook.training.schedules: name, warmup_steps, decay_start_step
(the decay starts at max(warmup_steps, decay_start_step)), decay_steps (0: until max_train_steps)
and end_factor. A config whose schedule section lacks decay_start_step gets it added in round 2.
"""

import copy

from tfplaybook.procedures import INFO, OK, check, playbook, result, threshold
from tfplaybook.training import schedules

ROUND1_FRACTION = 0.1  # Checklist 72: many questions can be answered at ~10% of production length.
TRANSFER = (
    "What transfers from short to long runs (playbook, most to least likely): warmup length and "
    "initialisation very likely; big architecture wins likely; optimizer hyperparameters, data "
    "augmentation and regularisation might; the learning-rate schedule unlikely."
)


def _schedule_name(config):
    name = config["schedule"]["name"]
    if name not in schedules.SCHEDULES:
        raise ValueError(f"schedule.name={name!r} is not one of {', '.join(schedules.SCHEDULES)}")
    return name


def _scale_intervals(config, new_steps):
    # Keep the number of evaluations and checkpoints per run, so retrospective checkpoint
    # selection sees the same resolution in short and long runs.
    scale = new_steps / config["max_train_steps"]
    for key in ("eval_every_steps", "checkpoint_every_steps"):
        if key in config:
            config[key] = int(min(new_steps, max(1, round(config[key] * scale))))
    config["max_train_steps"] = int(new_steps)


def _overrides(old, new):
    """KEY=VALUE overrides turning `old` into `new` (leaf keys that changed)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(b, dict):
            out += [f"{key}.{o}" for o in _overrides(a if isinstance(a, dict) else {}, b)]
        elif a != b:
            out.append(f"{key}={b}")
    return out


def round1_config(config, fraction=ROUND1_FRACTION):
    """Round 1: the production config shortened to `fraction` of its steps (checklist 72-73).

    The evaluation and checkpoint intervals shrink by the same factor; decays defined over
    max_train_steps shrink with it; warmup_steps stays (it transfers as absolute steps, 75).

    Args:
      config: the production config (its max_train_steps is the production budget).
      fraction: round-1 length / production length, in (0, 1).

    Raises:
      ValueError: on a fraction outside (0, 1), an unknown schedule, or a round 1 no longer than
        the warmup.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1), e.g. 0.1")
    name = _schedule_name(config)
    new = copy.deepcopy(config)
    production = int(config["max_train_steps"])
    steps = max(1, round(production * fraction))
    warmup = int(config["schedule"].get("warmup_steps", 0))
    if warmup >= steps:
        raise ValueError(
            f"round 1 of {steps} steps ({fraction:g} x {production}) is no longer than "
            f"warmup_steps={warmup}: raise fraction"
        )
    # Explicit decay steps shrink with the run; warmup stays in absolute steps.
    schedule = new["schedule"]
    if schedule.get("decay_start_step", 0) > warmup:
        schedule["decay_start_step"] = max(warmup, round(schedule["decay_start_step"] * fraction))
    if schedule.get("decay_steps", 0) > 0:
        schedule["decay_steps"] = max(1, round(schedule["decay_steps"] * fraction))
    _scale_intervals(new, steps)
    explanation = (
        f"Round 1 trains {steps} steps ({fraction:.0%} of the production {production}) to tune "
        f"the model and optimizer hyperparameters; the {name} schedule is defined over "
        "max_train_steps and shrinks with it, warmup_steps stays as is. " + TRANSFER
    )
    checklist = [
        check(72, INFO, "Conclusions at 10% of production length may differ at 100%."),
        check(73, OK, f"Round 1 of 2: {steps} steps per trial."),
    ]
    if warmup > 0.1 * steps:
        checklist.append(
            check(75, INFO, f"warmup_steps={warmup} is over 10% of round 1's {steps} steps.")
        )
    return result(
        "round1",
        explanation,
        {"max_train_steps": steps, "production_max_train_steps": production, "fraction": fraction},
        checklist,
        {"fraction": threshold(fraction, playbook("L1262-1274, ~10%"))},
        config=new,
        overrides=_overrides(config, new),
    )


def round2_config(best_round1_config, max_train_steps):
    """Round 2: the best round-1 config extended to the full budget (checklist 74, 76).

    Raises:
      ValueError: on an unknown schedule or a budget not longer than round 1.
    """
    old = best_round1_config
    name = _schedule_name(old)
    short = old["max_train_steps"]
    if max_train_steps <= short:
        raise ValueError(f"max_train_steps={max_train_steps!r} must exceed round 1's {short} steps")
    new = copy.deepcopy(old)
    _scale_intervals(new, max_train_steps)
    lr = old["optimizer"]["learning_rate"]
    start, end = schedules.decay_window(old["schedule"], short)
    extra = max_train_steps - short
    if name == "linear":
        # The whole decay window moves later by the extra steps: same length, longer constant
        # phase before it.
        new["schedule"]["decay_start_step"] = start + extra
        explanation = (
            f"Linear decay: keep round 1's decay length ({end - start} steps) and lengthen the "
            f"constant phase at the base learning rate {lr:g} from {start} to {start + extra} "
            "steps, so the extra steps run at a high learning rate (schedule.decay_start_step)."
        )
    elif name == "cosine":
        if old["schedule"].get("decay_steps", 0) > 0:
            # An explicit decay length stretches in proportion, as the implicit one does.
            span = (max_train_steps - start) / (short - start)
            new["schedule"]["decay_steps"] = max(1, round((end - start) * span))
        explanation = (
            f"Cosine decay: keep the base learning rate {lr:g} and stretch the schedule from "
            f"{short} to {max_train_steps} steps, as in the Chinchilla paper."
        )
    else:
        explanation = (
            f"Constant schedule: train {max_train_steps} steps at {lr:g}; round 2 is a good "
            "moment to add and tune a linear or cosine decay."
        )
    explanation += (
        " Run very few long trials, on the best round-1 points. Pitfall: a schedule tuned on "
        "short runs and merely extended can spend the extra steps at too small a learning rate."
    )
    needs_field = name == "linear" and "decay_start_step" not in old["schedule"]
    checklist = [
        check(73, OK, f"Round 2: {short} -> {max_train_steps} steps on the best round-1 config."),
        check(74, INFO, "Between rounds, the main question is how to adjust the LR decay."),
        check(76, INFO, explanation.split(". Run very")[0] + "."),
    ]
    return result(
        "round2",
        explanation,
        {
            "max_train_steps": int(max_train_steps),
            "round1_max_train_steps": short,
            "schedule": name,
            "decay_start_step": new["schedule"].get("decay_start_step"),
        },
        checklist,
        {},
        config=new,
        overrides=_overrides(old, new),
        needs_schedule_field=needs_field,
    )
