"""Learning-rate schedules as pure functions of the step (no TensorFlow).

Families (checklist 96): constant, linear decay and cosine decay, each with an optional linear
warmup from 0 prepended (checklist 110-113). Fields of the config's `schedule` section:

  name              constant | linear | cosine
  warmup_steps      linear ramp from 0 to the base learning rate over this many steps
  decay_start_step  the decay starts here (0: right after warmup); the steps before it run at the
                    base rate. Round 2 of compute-bound tuning lengthens this constant phase while
                    keeping the decay length (checklist 76).
  decay_steps       length of the decay (0: until max_train_steps)
  end_factor        final learning rate as a fraction of the base rate

`tfplaybook.training.optimizers.KerasSchedule` evaluates the same formula in TensorFlow; a test
checks they agree step for step.
"""

import math

SCHEDULES = ("constant", "linear", "cosine")


def validate(schedule, max_train_steps):
    """Raises ValueError naming the bad field; returns the schedule."""
    name = schedule.get("name")
    if name not in SCHEDULES:
        raise ValueError(f"schedule.name={name!r} is not one of {', '.join(SCHEDULES)}")
    for key in ("warmup_steps", "decay_start_step", "decay_steps"):
        value = schedule.get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"schedule.{key}={value!r} must be a non-negative integer")
    if schedule.get("warmup_steps", 0) >= max_train_steps:
        raise ValueError(
            f"schedule.warmup_steps={schedule['warmup_steps']} must be below "
            f"max_train_steps={max_train_steps}"
        )
    end = schedule.get("end_factor", 0.0)
    if not 0.0 <= end <= 1.0:
        raise ValueError(f"schedule.end_factor={end!r} must be within [0, 1]")
    return schedule


def decay_window(schedule, max_train_steps):
    """Returns (start, end) steps of the decay phase."""
    start = max(schedule.get("warmup_steps", 0), schedule.get("decay_start_step", 0))
    length = schedule.get("decay_steps", 0) or max(1, max_train_steps - start)
    return start, start + length


def learning_rate(step, base_learning_rate, schedule, max_train_steps):
    """The learning rate used for the update at `step` (0-based)."""
    warmup = schedule.get("warmup_steps", 0)
    if step < warmup:
        return base_learning_rate * step / warmup
    name = schedule["name"]
    if name == "constant":
        return base_learning_rate
    start, end = decay_window(schedule, max_train_steps)
    progress = min(1.0, max(0.0, (step - start) / (end - start)))
    end_factor = schedule.get("end_factor", 0.0)
    if name == "linear":
        factor = 1.0 - (1.0 - end_factor) * progress
    else:
        factor = end_factor + (1.0 - end_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_learning_rate * factor
