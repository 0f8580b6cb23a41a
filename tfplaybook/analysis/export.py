"""Exports a study's trials as trials.csv: one row per trial, readable by pandas or csv.

Columns, in order:

  trial_id, status, reason, feasible, objective, best_step, max_train_steps, batch_size
  hp:<dimension id>      the trial's value (empty when a conditional dimension was inactive)
  role:<dimension id>    scientific | nuisance | fixed, repeated on every row
  final:<split>/<metric> the last logged value of every measured series (per-class series such
                         as correct_count/7 are left to measurements.jsonl: one column per class
                         would bury the rest)

One header row and one row per trial, so `pandas.read_csv` gives numeric columns for numbers; the
roles sit in their own string columns rather than in a second header row, which would turn every
column into text. `objective` is the best validation value over training (checklist 43) of the
study's objective metric; `feasible` is False for diverged and failed trials (checklist 41).
"""

import csv
import io
import math
import os

from tfplaybook.files import trial_dir as td

BASE_COLUMNS = (
    "trial_id",
    "status",
    "reason",
    "feasible",
    "objective",
    "best_step",
    "max_train_steps",
    "batch_size",
)


def _cell(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None else str(value)
    if isinstance(value, float):
        return repr(value)  # Shortest string that reads back to the same float.
    return str(value)


def trial_table(study):
    """Returns (header, rows) for the study's trials; rows are lists of Python values."""
    dims = [d.id for d in study.dimensions]
    series = sorted(
        {key for trial in study.trials for key in trial.series if "_count/" not in key[1]}
    )
    header = list(BASE_COLUMNS)
    header += [f"hp:{d}" for d in dims] + [f"role:{d}" for d in dims]
    header += [f"final:{split}/{metric}" for split, metric in series]
    roles = {d.id: d.role for d in study.dimensions}
    rows = []
    for trial in study.trials:
        row = [
            trial.id,
            trial.status,
            trial.reason,
            trial.feasible,
            trial.objective,
            trial.best_step,
            trial.max_train_steps,
            trial.batch_size,
        ]
        row += [trial.values.get(d) for d in dims]
        row += [trial.roles.get(d, roles[d]) for d in dims]
        row += [trial.final(split, metric) for split, metric in series]
        rows.append(row)
    return header, rows


def trials_csv_text(study):
    header, rows = trial_table(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue()


def write_trials_csv(study, path=None):
    """Writes trials.csv atomically (default: STUDY/trials.csv) and returns its path."""
    path = path or os.path.join(study.path, "trials.csv")
    td.atomic_write_text(path, trials_csv_text(study))
    return path
