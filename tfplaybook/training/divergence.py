"""Divergence: what ends a run early, as an infeasible trial (checklist 41).

Only divergence ends a run before `max_train_steps` (checklist 92): a non-finite training loss,
an applied step's non-finite gradient norm, a loss above `divergence_loss_factor` x the run's
first loss, too many steps in a row skipped by the loss scale, or a non-finite validation metric.
The trainer checks every loop's steps after recording them, so the measurements show the bad step.
"""

import math


class Diverged(Exception):
    """Training produced a non-finite or exploding quantity (an infeasible trial, checklist 41)."""

    def __init__(self, step, quantity, value):
        super().__init__(f"{quantity} is {value} at step {step}")
        self.step = step


# Consecutive steps skipped by the loss scale (mixed_float16) that end a run as diverged:
# tfplaybook's choice, the playbook has no number. Keras' LossScaleOptimizer skips a step whose
# gradients are not finite and halves its loss scale, which is normal in early steps (it starts
# at 2^15) and after a spike. 30 skips in a row lower the scale by 2^30 (from Keras' initial 2^15
# to 2^-15): gradients that still overflow float16 then exceed 65504 x 2^15 (about 2e9), or are
# NaN whatever the scale (e.g. 0 x inf in backpropagation with a finite loss).
MAX_SKIPPED_STEPS = 30


def check_divergence(step0, losses, norms, first_loss, factor, skipped=None, skipped_before=0):
    """Raises Diverged at the first bad step of a loop (checklist 41).

    A non-finite loss or gradient norm, or a loss above `factor` x the first loss, diverges. A
    step the loss scale skipped (`skipped[i]` true: its gradients were not finite and nothing
    was applied) is not a divergence by itself: only MAX_SKIPPED_STEPS of them in a row are.

    Args:
      step0: the step before the loop's first step.
      losses, norms: the loop's per-step training losses and unclipped gradient norms.
      first_loss: the run's first training loss (the loss-factor rule's base), or None.
      factor: divergence_loss_factor (0: no loss-factor rule).
      skipped: per-step flags of steps skipped by the loss scale, or None (no loss scaling).
      skipped_before: the run of consecutive skipped steps that ended the previous loop.

    Returns:
      The run of consecutive skipped steps at the end of this loop (the next loop's
      `skipped_before`).
    """
    run = skipped_before
    for i, (loss, norm) in enumerate(zip(losses, norms)):
        step = step0 + i + 1
        if not math.isfinite(loss):
            raise Diverged(step, "training loss", loss)
        if skipped is not None and skipped[i]:
            run += 1
            if run >= MAX_SKIPPED_STEPS:
                raise Diverged(
                    step, f"gradient norm ({run} steps in a row skipped by the loss scale)", norm
                )
        else:
            run = 0
            if not math.isfinite(norm):
                raise Diverged(step, "gradient norm", norm)
        if factor and first_loss is not None and loss > factor * first_loss:
            raise Diverged(
                step,
                f"training loss ({loss:.4g} > {factor:g} x first loss " f"{first_loss:.4g})",
                loss,
            )
    return run


def check_evaluation(step, metrics):
    """Raises Diverged for the first non-finite value of an evaluation's `metrics` dict."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise Diverged(step, f"validation {name}", value)
