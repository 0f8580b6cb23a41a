"""The learning-rate drivers: --mode=lr_sweep and --mode=warmup_sweep (checklist 71, 110-114).

lr_sweep trains a constant-LR grid and reads the step of the first perfect fit (the rules:
tfplaybook.procedures.lr_sweep); warmup_sweep finds the smallest unstable learning rate, then
sweeps warmup lengths at 10x it (the rules: tfplaybook.procedures.warmup and instability). Both
write their procedure directory through driver_base.finish.
"""

import math
import os

from tfplaybook import config as config_lib
from tfplaybook import progress
from tfplaybook.procedures import driver_base, instability, lr_sweep, output, warmup
from tfplaybook.training import metrics


def _lr_dir(workdir, lr):
    return os.path.join(workdir, f"lr_{lr:.4g}")


def _lr_label(config):
    return f"learning rate {config['optimizer']['learning_rate']:.4g}"


def _sweep_lrs(config, task, workdir, runtime, strategy, rates, deadline=None):
    configs = driver_base.call_rule(lr_sweep.lr_sweep_config, config, rates)
    dirs = [_lr_dir(workdir, lr) for lr in rates]
    return driver_base.train_all(configs, dirs, runtime, strategy, task, "run", _lr_label, deadline)


def run_lr_sweep(
    config,
    task,
    workdir,
    runtime,
    learning_rates,
    fit_error=0.0,
    fit_loss=None,
    report_study=None,
    max_minutes=None,
):
    """--mode=lr_sweep: constant-LR grid, the step of the first perfect fit (checklist 71).

    A perfect fit is read from the training error (1 - accuracy) when the task records accuracy,
    else from the training loss (at or below `fit_loss`).
    """
    rates = driver_base.parse_learning_rates(learning_rates, config)
    if not 0.0 <= fit_error < 1.0:
        raise config_lib.ConfigError(f"--fit_error={fit_error!r} must be in [0, 1)")
    if fit_loss is not None and not (math.isfinite(fit_loss) and fit_loss >= 0):
        raise config_lib.ConfigError(f"--fit_loss={fit_loss!r} must be a number >= 0")
    by_accuracy = "accuracy" in metrics.metric_names(config)
    metric = lr_sweep.ERROR if by_accuracy else lr_sweep.LOSS
    threshold = fit_error if by_accuracy else fit_loss
    deadline = driver_base.call_rule(progress.Deadline, max_minutes)
    study_dir = driver_base.report_study_dir(workdir, report_study)
    dirs = _sweep_lrs(
        config, task, workdir, runtime, driver_base.strategy_of(runtime), rates, deadline
    )
    series = lr_sweep.series_from_trials(dirs, metric=metric)
    diverged = lr_sweep.diverged_from_trials(dirs)  # The runs' own record, not the series.
    res = lr_sweep.analyze(series, metric=metric, fit_threshold=threshold, diverged=diverged)
    driver_base.mark_cut_short(res, len(dirs), len(rates), "learning rates", max_minutes)
    rows = output.series_rows(series, "learning_rate", metric)
    return driver_base.finish(res, workdir, rows, lr_sweep.plot(series, res), study_dir)


def run_warmup_sweep(
    config, task, workdir, runtime, learning_rates, unstable_learning_rate=None, report_study=None
):
    """--mode=warmup_sweep: find the unstable LR, sweep warmup at 10x it (checklist 110-114)."""
    rates = (
        None if unstable_learning_rate else driver_base.parse_learning_rates(learning_rates, config)
    )
    if unstable_learning_rate is not None:
        driver_base.positive("unstable_learning_rate", unstable_learning_rate)
    study_dir = driver_base.report_study_dir(workdir, report_study)
    strategy = driver_base.strategy_of(runtime)
    if unstable_learning_rate is None:
        dirs = _sweep_lrs(config, task, os.path.join(workdir, "lr_sweep"), runtime, strategy, rates)
        losses = lr_sweep.series_from_trials(dirs, metric=lr_sweep.LOSS)
        plan = warmup.plan(instability.classify(losses), config)
        output.write_procedure_dir(
            os.path.join(workdir, "plan"),
            plan,
            output.series_rows(losses, "learning_rate", "loss"),
        )
        driver_base.print_result(plan, os.path.join(workdir, "plan"))
        unstable = plan["numbers"].get("unstable_base_learning_rate")
        if not unstable:
            return plan  # Every rate was stable: no warmup needed at these rates (checklist 110).
    else:
        unstable = unstable_learning_rate
    grid = driver_base.call_rule(warmup.warmup_steps_grid, config["max_train_steps"])
    configs = driver_base.call_rule(warmup.warmup_sweep_configs, config, unstable, grid)
    dirs = [os.path.join(workdir, f"warmup_{w}") for w in grid]
    driver_base.train_all(
        configs,
        dirs,
        runtime,
        strategy,
        task,
        "run",
        lambda c: f"warmup_steps {c['schedule']['warmup_steps']}",
    )
    series = lr_sweep.series_from_trials(dirs, metric=lr_sweep.LOSS, key="schedule.warmup_steps")
    base = warmup.LR_MULTIPLIER * unstable
    res = warmup.analyze(instability.classify(series), config, base_learning_rate=base)
    rows = output.series_rows(series, "warmup_steps", "loss")
    return driver_base.finish(res, workdir, rows, warmup.plot(series, base, res), study_dir)
