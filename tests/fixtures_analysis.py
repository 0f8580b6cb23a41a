"""Writes synthetic study directories for the analysis tests, through tfplaybook.files.trial_dir.

Each trial's curves follow a named shape so that a test can build a study that triggers one check
and another that does not. Curves are a function of progress p = step / max_train_steps:

  normal      accuracy and loss settle around 60% of training (time constant 0.15)
  improving   still climbing at the end (time constant 0.7)
  saturated   settled by 15% of training (time constant 0.04)
  overfit     validation accuracy peaks at 40% of training, then falls by 0.1
  early_peak  validation accuracy peaks at 5% of training, then falls (best step in the first 10%)
  noisy       like normal, with large step-to-step noise on every curve
  loss_up     like normal, but the training loss climbs back during the second half
  plateau     rises linearly to its best at 50% of training and holds it (0.002 below), no noise
  periodic    like normal, plus a validation wave of amplitude 0.02 every 100 steps (5 evaluations)

Gradient norms are log-normal around `grad_norm_median` (90th percentile about 1.47x the median).
"""

import math
import os

import numpy as np

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir as td
from tfplaybook.search import space as space_lib

MAX_TRAIN_STEPS = 400
EVAL_EVERY_STEPS = 20
LOG_EVERY_STEPS = 10

LR_DIM = {
    "name": "optimizer.learning_rate",
    "role": "nuisance",
    "scale": "log",
    "min": 1e-3,
    "max": 1.0,
}
MOMENTUM_DIM = {
    "name": "optimizer.momentum",
    "role": "nuisance",
    "scale": "reverse_log",
    "min": 0.5,
    "max": 0.99,
}
WIDTH_DIM = {
    "name": "model.width",
    "role": "scientific",
    "scale": "discrete",
    "values": [16, 32, 64],
}
DROPOUT_DIM = {
    "name": "model.dropout",
    "role": "scientific",
    "scale": "linear",
    "min": 0.0,
    "max": 0.5,
}

_TIME_CONSTANTS = {
    "normal": 0.15,
    "improving": 0.7,
    "saturated": 0.04,
    "overfit": 0.1,
    "early_peak": 0.01,
    "noisy": 0.15,
    "loss_up": 0.15,
    "plateau": None,
    "periodic": 0.15,
}
SHAPES = tuple(_TIME_CONSTANTS)


def base_config(**top_level):
    """The shipped digits experiment with the fixture's step budget and `top_level` overrides."""
    config = config_lib.load_experiment(config_lib.default_experiment())
    config.update(max_train_steps=MAX_TRAIN_STEPS, eval_every_steps=EVAL_EVERY_STEPS)
    config.update(top_level)
    return config


def curve_rows(
    shape="normal",
    final_accuracy=0.95,
    seed=0,
    grad_norm_median=1.0,
    clip_norm=0.0,
    max_train_steps=MAX_TRAIN_STEPS,
    diverge_at=None,
):
    """Measurement rows (step, split, metric, value) for one synthetic trial."""
    if shape not in _TIME_CONSTANTS:
        raise ValueError(f"shape {shape!r} is not one of {', '.join(SHAPES)}")
    rng = np.random.RandomState(seed)
    tau = _TIME_CONSTANTS[shape]
    noise = 0.1 if shape == "noisy" else 0.0 if shape == "plateau" else 0.003
    start_accuracy, start_loss, end_loss = 0.1, 2.3, 0.05 + (1 - final_accuracy)
    last_step = diverge_at or max_train_steps
    rows = []
    for step in range(1, last_step + 1):
        p = step / max_train_steps
        progress = min(2 * p, 1.0) if tau is None else 1 - math.exp(-p / tau)
        norm = grad_norm_median * math.exp(0.3 * rng.randn())
        if diverge_at and step == diverge_at:
            rows.append((step, td.TRAIN, "loss", float("nan")))
            rows.append((step, td.TRAIN, "grad_norm", float("inf")))
            break
        rows.append((step, td.TRAIN, "grad_norm", norm))
        rows.append((step, td.TRAIN, "learning_rate", 0.1 * 0.5 * (1 + math.cos(math.pi * p))))
        if step % LOG_EVERY_STEPS == 0:
            loss = end_loss + (start_loss - end_loss) * (1 - progress)
            if shape == "loss_up" and p > 0.5:
                loss += 1.5 * (p - 0.5)
            loss *= 1 + noise * 3 * rng.randn()
            rows.append((step, td.TRAIN, "loss", loss))
            rows.append((step, td.TRAIN, "accuracy", min(1.0, final_accuracy + 0.03) * progress))
            if clip_norm > 0:
                rows.append((step, td.TRAIN, "clipped_fraction", float(norm > clip_norm)))
        if step % EVAL_EVERY_STEPS == 0:
            accuracy = start_accuracy + (final_accuracy - start_accuracy) * progress
            if shape == "overfit" and p > 0.4:
                accuracy -= 0.1 * (p - 0.4) / 0.6
            if shape == "periodic":
                accuracy += 0.02 * math.sin(2 * math.pi * step / 100)
            if shape == "plateau" and p > 0.5:
                accuracy -= 0.002
            if shape == "early_peak" and p > 0.05:
                accuracy -= 0.15 * (p - 0.05) / 0.95
            accuracy += noise * rng.randn()
            rows.append((step, td.VALIDATION, "accuracy", accuracy))
            rows.append((step, td.VALIDATION, "loss", end_loss + 2.2 * (1 - accuracy)))
    return rows


def write_study_json(
    study_dir, search_space, name="fixture", goal="max", max_trials=None, metric="accuracy"
):
    os.makedirs(study_dir, exist_ok=True)
    td.atomic_write_json(
        os.path.join(study_dir, "study.json"),
        {
            "name": name,
            "experiment": "experiments/digits_cnn.py",
            "objective": {"metric": metric, "goal": goal},
            "max_trials": max_trials,
            "oracle": "quasi_random",
            "search_space": search_space,
        },
    )


def write_trial(
    study_dir,
    trial_id,
    values,
    search_space,
    status=td.COMPLETED,
    shape="normal",
    final_accuracy=0.95,
    seed=0,
    config=None,
    grad_norm_median=1.0,
    diverge_at=None,
    record_best=True,
):
    """Writes one trial directory; returns its path.

    Args:
      values: {dimension id: value} for the hyperparameters this trial used (conditional
        dimensions are namespaced as `parent_value/name`, see tfplaybook.search.space).
      search_space: the study's dimension specs; `search.space` writes hparams.json from them.
      status: the final status; "diverged" stops the curves with a NaN loss at `diverge_at`.
      record_best: False leaves best_step/best_value out of status.json, so the reader must
        recompute them from measurements.
    """
    path = os.path.join(study_dir, trial_id)
    os.makedirs(path, exist_ok=True)
    space = space_lib.parse(search_space)
    config = space.apply(config or base_config(), values)
    td.write_config(path, config)
    td.atomic_write_json(os.path.join(path, td.HPARAMS), space.hparams(values))
    if status == td.DIVERGED and diverge_at is None:
        diverge_at = 30
    rows = curve_rows(
        shape,
        final_accuracy,
        seed,
        grad_norm_median,
        config["optimizer"]["clip_norm"],
        config["max_train_steps"],
        diverge_at,
    )
    td.append_measurements(path, rows)
    fields = {"step": rows[-1][0], "objective": config["objective"], "seeds": {"init": seed}}
    validation = [(s, v) for s, split, m, v in rows if split == td.VALIDATION and m == "accuracy"]
    if record_best and validation:
        best_step, best_value = max(validation, key=lambda sv: (sv[1], -sv[0]))
        fields.update(best_step=best_step, best_value=best_value)
    reason = "loss is NaN" if status == td.DIVERGED else ""
    td.write_status(path, status, reason, **fields)
    return path


def make_study(study_dir, search_space, trials, **study_kwargs):
    """Writes study.json and one trial per dict in `trials` (keyword arguments of write_trial).

    Trial ids are trial_000, trial_001, ...; returns `study_dir`.
    """
    write_study_json(study_dir, search_space, **study_kwargs)
    for i, trial in enumerate(trials):
        trial = dict(trial)
        trial.setdefault("seed", i)
        write_trial(study_dir, f"trial_{i:03d}", search_space=search_space, **trial)
    return study_dir


def _accuracy(lr, momentum, width):
    """A smooth objective landscape: best near lr 0.05 (log), momentum 0.9, wider is better."""
    effective = math.log10(lr / (1 - momentum) / 0.5)
    return 0.975 - 0.06 * effective**2 - 0.01 * (64 / width - 1)


def realistic_study(study_dir, num_trials=14, seed=0, clip_norm=2.0):
    """A study like the shipped digits one: 14 trials over learning rate, momentum and width.

    Learning rates whose effective value lr / (1 - momentum) exceeds 8 diverge (infeasible);
    small learning rates are still improving at the end.
    """
    search_space = [LR_DIM, MOMENTUM_DIM, WIDTH_DIM]
    rng = np.random.RandomState(seed)
    config = base_config()
    config["optimizer"]["clip_norm"] = clip_norm
    trials = []
    for i in range(num_trials):
        lr = float(10 ** rng.uniform(-3, 0))
        momentum = float(1 - 10 ** rng.uniform(math.log10(0.01), math.log10(0.5)))
        width = WIDTH_DIM["values"][i % 3]
        values = {
            "optimizer.learning_rate": lr,
            "optimizer.momentum": momentum,
            "model.width": width,
        }
        diverged = lr / (1 - momentum) > 8
        trials.append(
            {
                "values": values,
                "config": config,
                "status": td.DIVERGED if diverged else td.COMPLETED,
                "shape": "improving" if lr < 0.005 else "normal",
                "final_accuracy": max(0.2, _accuracy(lr, momentum, width)),
                "grad_norm_median": 0.5 + 2 * lr,
            }
        )
    return make_study(study_dir, search_space, trials, name="digits_fixture", max_trials=num_trials)
