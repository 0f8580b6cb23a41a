"""Critical batch size: steps to a target validation value per batch size (Shallue et al. 2018).

Checklist 12 (and 14, 16). Beyond the throughput sweep (batch_sweep), the playbook says that up
to a *critical batch size* doubling the batch halves the number of steps needed to reach a given
result, and that beyond it the saving shrinks. Training measures it: at each batch size of a
doubling range (`batch_sizes`), a small quasi-random study re-tunes the learning rate
(`study_config`, log scale, the range optionally scaled with the batch size by `lr_range`), every
trial with the same step budget (checklist 14). The driver reads each trial into one record:

    {"batch_size": 64, "trial": "trial_1", "learning_rate": 0.0031,
     "status": "completed" | "diverged" | "failed" | "running",
     "steps": [5, 10, ...], "values": [0.61, 0.78, ...]}   validation objective per evaluation

`analyze` turns the records into the rules' verdict:

- the target: `target_value` when given, else derived (`default_target`): the best validation
  value that *every* batch size reached (the worst of the per-batch-size bests), loosened by
  (1 - target_fraction) of its magnitude, so that every batch size reaches it before its budget
  ends rather than at its very last evaluation;
- a trial's steps to target: the first evaluation step at which its validation objective reaches
  the target (`first_step_reaching`); only completed trials count: a diverged or failed trial
  never gives a step, even if it reached the target before diverging;
- a batch size's steps to target: the minimum over its trials; its best learning rate: that
  trial's (ties go to the smaller, more stable learning rate);
- perfect scaling: steps halve when the batch doubles, from the smallest batch size b0 that
  reached the target: perfect(b) = steps(b0) * b0 / b;
- the critical batch size: the largest batch size b up to which every measured batch size stays
  within the tolerance: steps(b) <= scaling_tolerance * perfect(b) (`critical_batch_size`); the
  first batch size beyond it (slower, or never reaching the target) is where scaling breaks.

The package reads top to bottom in four modules: `study` sets up the per-batch-size studies and
reads their trials as records, `rule` is `analyze`, `verdicts` words its checklist and
recommendation, and `figure` draws steps to target against the batch size. All of it is pure
Python (matplotlib only inside `figure.plot`); tfplaybook.procedures.batch_drivers trains the
studies. Every public name is importable from here, e.g. `critical_batch.analyze`.
"""

from tfplaybook.procedures.critical_batch.figure import plot
from tfplaybook.procedures.critical_batch.rule import (
    COLUMNS,
    DEFAULT_SCALING_TOLERANCE,
    DEFAULT_TARGET_FRACTION,
    GOALS,
    analyze,
    best_values,
    critical_batch_size,
    default_target,
    first_step_reaching,
    rule_text,
)
from tfplaybook.procedures.critical_batch.study import (
    DEFAULT_LR_SCALING,
    DEFAULT_LR_SPAN,
    DEFAULT_TRIALS,
    LEARNING_RATE,
    LR_SCALINGS,
    PROCEDURE,
    base_lr_range,
    batch_sizes,
    lr_range,
    measurement_rows,
    records_from_measurements,
    records_from_study,
    study_config,
    study_dir_name,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_LR_SCALING",
    "DEFAULT_LR_SPAN",
    "DEFAULT_SCALING_TOLERANCE",
    "DEFAULT_TARGET_FRACTION",
    "DEFAULT_TRIALS",
    "GOALS",
    "LEARNING_RATE",
    "LR_SCALINGS",
    "PROCEDURE",
    "analyze",
    "base_lr_range",
    "batch_sizes",
    "best_values",
    "critical_batch_size",
    "default_target",
    "first_step_reaching",
    "lr_range",
    "measurement_rows",
    "plot",
    "records_from_measurements",
    "records_from_study",
    "rule_text",
    "study_config",
    "study_dir_name",
]
