"""Critical batch size, the measurement side: one learning-rate study per batch size, as records.

At each batch size of a doubling range (`batch_sizes`) a small quasi-random study re-tunes the
learning rate (`study_config`, log scale, the range moved with the batch size by `lr_range` from
`base_lr_range`), every trial with the same step budget (checklist 14). `records_from_study` reads
a study's trials back as records (the format in tfplaybook.procedures.critical_batch), and
`measurement_rows` / `records_from_measurements` turn records into measurements.csv rows and back.
Pure Python: it reads trial directories, it never trains.
"""

import copy
import math

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir
from tfplaybook.procedures import batch_sweep

PROCEDURE = "critical_batch"
LEARNING_RATE = "optimizer.learning_rate"
# How the learning-rate range moves with the batch size, relative to the config's batch size.
LR_SCALINGS = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}
DEFAULT_LR_SCALING = "sqrt"
# The range when the experiment's study does not search the learning rate: 0.1x to 10x its value.
DEFAULT_LR_SPAN = 10.0
DEFAULT_TRIALS = 8


def batch_sizes(start, cap):
    """Batch sizes start, 2*start, ... up to `cap` (the batch sweep's doubling range)."""
    return batch_sweep.batch_sizes(start, cap)


def study_dir_name(batch_size):
    """The name of a batch size's study directory under the workdir, e.g. batch_0032."""
    return f"batch_{int(batch_size):04d}"


def base_lr_range(config):
    """(min, max) of the learning rate: the config study's optimizer.learning_rate range when it
    has a plain one, else DEFAULT_LR_SPAN below and above the config's learning rate."""
    for entry in (config.get("study") or {}).get("search_space") or ():
        if (
            entry.get("name") == LEARNING_RATE
            and entry.get("scale") in ("log", "linear")
            and "min" in entry
            and "max" in entry
            and "parent" not in entry
        ):
            return float(entry["min"]), float(entry["max"])
    lr = float(config["optimizer"]["learning_rate"])
    return lr / DEFAULT_LR_SPAN, lr * DEFAULT_LR_SPAN


def lr_range(base, batch_size, reference_batch_size, scaling=DEFAULT_LR_SCALING):
    """The learning-rate range of one batch size: `base` times (batch / reference) ** power,
    where the power is 0 (none), 1/2 (sqrt) or 1 (linear).

    Raises:
      ValueError: on an unknown scaling, or a range that is not 0 < min < max.
    """
    if scaling not in LR_SCALINGS:
        raise ValueError(f"lr scaling {scaling!r} is not one of {', '.join(LR_SCALINGS)}")
    low, high = (float(v) for v in base)
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"learning-rate range {low:g},{high:g} must satisfy 0 < min < max")
    factor = (batch_size / reference_batch_size) ** LR_SCALINGS[scaling]
    return float(f"{low * factor:.6g}"), float(f"{high * factor:.6g}")


def study_config(config, batch_size, learning_rates, trials):
    """The config of one batch size's study: a quasi-random search over the learning rate alone
    (log scale) at `batch_size`, `trials` trials, every other hyperparameter as the config has it.

    The study seed is the config's for every batch size, so every study samples the same
    quasi-random points of its (possibly scaled) range.
    """
    low, high = learning_rates
    c = copy.deepcopy(config)
    c["batch_size"] = int(batch_size)
    study = dict(c.get("study") or {})
    name = study.get("name") or PROCEDURE
    study.update(
        {
            "name": f"{name}_{study_dir_name(batch_size)}",
            "max_trials": int(trials),
            "oracle": "quasi_random",
            "design": "joint",
            "search_space": [
                {"name": LEARNING_RATE, "role": "nuisance", "scale": "log", "min": low, "max": high}
            ],
        }
    )
    c["study"] = study
    return c


def records_from_study(study_dir, batch_size, metric):
    """One record per trial directory of a batch size's study (validation `metric` series)."""
    from tfplaybook.study import tracking  # Pure Python: reads the study's trial directories.

    records = []
    for directory in tracking.trial_dirs(study_dir):
        try:
            status = trial_dir.read_status(directory) or {}
            config = trial_dir.read_config(directory)
        except (trial_dir.DamagedFileError, OSError):
            continue
        steps, values = trial_dir.series(
            trial_dir.read_measurements(directory), trial_dir.VALIDATION, metric
        )
        records.append(
            {
                "batch_size": int(batch_size),
                "trial": directory.rstrip("/").split("/")[-1],
                "learning_rate": float(config_lib.get_path(config, LEARNING_RATE)),
                "status": status.get("status", trial_dir.RUNNING),
                "steps": steps,
                "values": values,
            }
        )
    return records


def measurement_rows(records):
    """Long-format rows (one per trial evaluation) of the records, for measurements.csv."""
    rows = []
    for r in sorted(records, key=lambda r: (r["batch_size"], r["trial"])):
        for step, value in zip(r["steps"], r["values"]):
            rows.append(
                {
                    "batch_size": r["batch_size"],
                    "trial": r["trial"],
                    "learning_rate": float(r["learning_rate"]),
                    "status": r["status"],
                    "step": int(step),
                    "value": float(value),
                }
            )
    return rows


def records_from_measurements(rows):
    """The records back from `measurement_rows` (trials without an evaluation are lost)."""
    out = {}
    for row in rows:
        key = (int(row["batch_size"]), row["trial"])
        r = out.setdefault(
            key,
            {
                "batch_size": key[0],
                "trial": row["trial"],
                "learning_rate": float(row["learning_rate"]),
                "status": row["status"],
                "steps": [],
                "values": [],
            },
        )
        r["steps"].append(int(row["step"]))
        r["values"].append(float(row["value"]))
    return list(out.values())
