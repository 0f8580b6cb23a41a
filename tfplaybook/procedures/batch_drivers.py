"""The batch-size drivers: --mode=batch_sweep and --mode=critical_batch (checklist 6-16).

batch_sweep times training steps at doubling batch sizes on the real input pipeline and on one
batch held in memory (the rules: tfplaybook.procedures.batch_sweep); critical_batch runs one
learning-rate study per batch size and reads steps to a target from its trials (the rules:
tfplaybook.procedures.critical_batch). Both write their procedure directory through
driver_base.finish.
"""

import dataclasses
import math
import os
import time

from tfplaybook import config as config_lib
from tfplaybook import progress
from tfplaybook.procedures import batch_sweep, critical_batch, driver_base
from tfplaybook.study import tracking


def _time_windows(trainer, dataset, steps, repeats):
    """Seconds per step of `repeats` windows of `steps`, after one untimed warm-up window."""
    import tensorflow as tf

    iterator = iter(dataset)
    n = tf.constant(steps)
    trainer.train_loop(iterator, n)[0].numpy()  # Warm-up: tracing and the pipeline's start.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.train_loop(iterator, n)[0].numpy()  # .numpy() waits for the steps to finish.
        times.append((time.perf_counter() - start) / steps)
    return times


def _measure_batch(config, task, batch, strategy, runtime, workdir, steps, repeats):
    """(real record, synthetic record) for one batch size (checklist 7-8)."""
    import tensorflow as tf

    from tfplaybook.training import data as data_lib
    from tfplaybook.training import trainer as train

    try:
        sized = dict(config, batch_size=batch)
        trainer = train.Trainer(sized, workdir, runtime, strategy, task)
        real_ds, _ = trainer.datasets(config["seed"])
        real = _time_windows(trainer, real_ds, steps, repeats)
        synthetic_ds = strategy.distribute_datasets_from_function(
            lambda ctx: data_lib.in_memory_dataset(trainer.spec, sized, batch, ctx)
        )
        synthetic = _time_windows(trainer, synthetic_ds, steps, repeats)
    except (tf.errors.ResourceExhaustedError, MemoryError) as e:
        oom = {"batch_size": batch, "status": "oom", "reason": str(e).splitlines()[0][:200]}
        return oom, dict(oom)
    return (
        {"batch_size": batch, "status": "ok", "step_times_s": real},
        {"batch_size": batch, "status": "ok", "step_times_s": synthetic},
    )


def run_batch_sweep(
    config, task, workdir, runtime, start, cap, steps, repeats, report_study=None, max_minutes=None
):
    """--mode=batch_sweep: throughput per batch size, real vs synthetic data (checklist 6-14).

    With `max_minutes`, the sweep stops after the batch size being measured when the time is
    up, analyses what it measured and says in its summary that it was cut short.
    """
    if steps < 1 or repeats < 1:
        raise config_lib.ConfigError(
            f"--sweep_steps={steps} and --sweep_repeats={repeats} must be >= 1"
        )
    if start > cap:
        raise config_lib.ConfigError(
            f"--sweep_start_batch_size={start} exceeds --sweep_max_batch_size={cap}"
        )
    sizes = driver_base.call_rule(batch_sweep.batch_sizes, start, cap)
    deadline = driver_base.call_rule(progress.Deadline, max_minutes)
    study_dir = driver_base.report_study_dir(workdir, report_study)
    strategy = driver_base.strategy_of(runtime)
    driver_base.plan(
        runtime,
        f"batch_sweep of {len(sizes)} batch sizes into {workdir}",
        [
            f"batch sizes {', '.join(map(str, sizes))} (stopping at the first out-of-memory)",
            f"each: {repeats + 1} windows of {steps} steps (the first untimed), on the real "
            "pipeline and on one batch held in memory",
            driver_base.bound_line(max_minutes),
        ],
    )
    bar = progress.Progress(len(sizes), "batch size", enabled=runtime.verbose)
    real, synthetic = [], []
    for batch in sizes:
        r, s = _measure_batch(config, task, batch, strategy, runtime, workdir, steps, repeats)
        real.append(r)
        synthetic.append(s)
        if r["status"] == "oom":  # Larger batches will not fit either (checklist 6).
            break
        bar.update(detail=f"batch {batch}: {batch / min(r['step_times_s']):.0f} examples/s")
        if deadline.expired() and batch != sizes[-1]:
            break
    res = batch_sweep.analyze(real, synthetic, current_batch_size=config["batch_size"])
    driver_base.mark_cut_short(
        res, len(real), len(sizes), "batch sizes", max_minutes, real[-1]["status"]
    )
    rows = batch_sweep.measurement_rows(real, synthetic)
    return driver_base.finish(res, workdir, rows, batch_sweep.plot(res), study_dir)


def parse_lr_range(text, name="critical_lr_range"):
    """--critical_lr_range=MIN,MAX as (min, max), or None when not given."""
    if not text:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise config_lib.ConfigError(
            f"--{name}={text!r} must be two comma-separated learning rates MIN,MAX, e.g. 1e-4,1e-1"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise config_lib.ConfigError(f"--{name}={text!r} must satisfy 0 < MIN < MAX")
    return low, high


def _minutes_left(deadline):
    if deadline.seconds is None:
        return None
    left = deadline.seconds - (deadline.clock() - deadline.started)
    return max(left / 60.0, 1e-9)  # 0 would mean "no bound" to the tuner.


def run_critical_batch(
    config,
    task,
    workdir,
    runtime,
    start,
    cap,
    trials,
    lr_range=None,
    lr_scaling=critical_batch.DEFAULT_LR_SCALING,
    target_value=None,
    target_fraction=critical_batch.DEFAULT_TARGET_FRACTION,
    scaling_tolerance=critical_batch.DEFAULT_SCALING_TOLERANCE,
    experiment_path="",
    report_study=None,
    max_minutes=None,
):
    """--mode=critical_batch: steps to a target validation value per batch size (checklist 12).

    At each batch size of the doubling range, a quasi-random study of `trials` trials over the
    learning rate runs in WORKDIR/batch_NNNN (a study of its own: the same command resumes it);
    critical_batch.analyze reads the trials and names the critical batch size. With
    `max_minutes`, the sweep stops after the trial in progress when the time is up, analyses what
    it measured and says in its summary that it was cut short.
    """
    from tfplaybook import validation
    from tfplaybook.training import strategy as strategy_lib
    from tfplaybook.training import workdir as workdir_lib

    if trials is None or trials < 1:
        raise config_lib.ConfigError(f"--critical_trials={trials!r} must be >= 1")
    if start > cap:
        raise config_lib.ConfigError(
            f"--sweep_start_batch_size={start} exceeds --sweep_max_batch_size={cap}"
        )
    sizes = driver_base.call_rule(critical_batch.batch_sizes, start, cap)
    base = parse_lr_range(lr_range) or critical_batch.base_lr_range(config)
    if lr_scaling not in critical_batch.LR_SCALINGS:
        raise config_lib.ConfigError(
            f"--critical_lr_scaling={lr_scaling!r} is not one of "
            f"{', '.join(critical_batch.LR_SCALINGS)}"
        )
    if target_value is not None and not math.isfinite(target_value):
        raise config_lib.ConfigError(f"--target_value={target_value!r} must be a finite number")
    if target_fraction is None or not 0 < target_fraction <= 1:
        raise config_lib.ConfigError(f"--target_fraction={target_fraction!r} must be in (0, 1]")
    if scaling_tolerance is None or not scaling_tolerance >= 1:
        raise config_lib.ConfigError(
            f"--scaling_tolerance={scaling_tolerance!r} must be a number >= 1"
        )
    deadline = driver_base.call_rule(progress.Deadline, max_minutes)
    study_dir = driver_base.report_study_dir(workdir, report_study)
    metric, goal = config["objective"]["metric"], config["objective"]["goal"]
    reference = config["batch_size"]
    ranges = {
        b: driver_base.call_rule(critical_batch.lr_range, base, b, reference, lr_scaling)
        for b in sizes
    }
    configs = {b: critical_batch.study_config(config, b, ranges[b], trials) for b in sizes}
    dirs = {b: os.path.join(workdir, critical_batch.study_dir_name(b)) for b in sizes}
    # Every study is checked before the first one trains: nothing is written on bad input.
    strategy = driver_base.strategy_of(runtime)
    states = {}
    for b in sizes:
        validation.check_config(configs[b], task, study=True)
        strategy_lib.check_batch_size(b, strategy)
        states[b] = tracking.check_study_dir(dirs[b], configs[b])
    workdir_lib.check_writable(workdir)
    target = (
        f"validation {metric} {'>=' if goal == 'max' else '<='} {target_value:g} (--target_value)"
        if target_value is not None
        else f"{target_fraction:g} of the best validation {metric} every batch size reached"
    )
    driver_base.plan(
        runtime,
        f"critical_batch of {len(sizes)} batch sizes x {trials} trials into {workdir}",
        [
            f"batch sizes {', '.join(map(str, sizes))}: a quasi-random study over "
            f"{critical_batch.LEARNING_RATE} (log) in {os.path.join(workdir, 'batch_NNNN')}",
            "learning-rate ranges ("
            + (f"{lr_scaling} scaling from batch {reference}" if lr_scaling != "none" else "same")
            + "): "
            + ", ".join(f"{b}: {lo:.3g}-{hi:.3g}" for b, (lo, hi) in ranges.items()),
            f"each trial: {config['max_train_steps']} steps, validation {metric} every "
            f"{config['eval_every_steps']} steps",
            f"target: {target}; near-perfect scaling: steps within {scaling_tolerance:g}x of "
            "perfect scaling",
            driver_base.bound_line(max_minutes),
        ],
    )
    from tfplaybook.analysis import report
    from tfplaybook.study import tuner

    quiet = dataclasses.replace(runtime, verbose=False)  # One line per trial, not per loop.
    bar = progress.Progress(len(sizes), "batch size", enabled=runtime.verbose)
    records, measured, trials_done = [], [], 0
    for b in sizes:
        if measured and deadline.expired():
            break
        if states[b] != tracking.FINISHED:
            left = _minutes_left(deadline)
            tuner.tune(configs[b], dirs[b], quiet, experiment_path, task, left, checked=True)
        if states[b] != tracking.FINISHED or not os.path.exists(
            os.path.join(dirs[b], driver_base.REPORT_FILE)
        ):
            report.write_report(dirs[b])  # The study's own report: its learning-rate axis plot.
        measured.append(b)
        found = critical_batch.records_from_study(dirs[b], b, metric)
        records += found
        trials_done += tracking.summarize(dirs[b], configs[b])["trials"]
        best = critical_batch.best_values(found, goal).get(b)
        shown = "none" if best is None else f"{best:.4g}"
        bar.update(detail=f"batch {b}: best validation {metric} {shown} over {len(found)} trials")
    res = driver_base.call_rule(
        critical_batch.analyze,
        records,
        metric=metric,
        goal=goal,
        target_value=target_value,
        target_fraction=target_fraction,
        scaling_tolerance=scaling_tolerance,
        planned_batch_sizes=sizes,
        max_train_steps=config["max_train_steps"],
    )
    res["numbers"].update(
        trials_per_batch_size=trials,
        lr_scaling=lr_scaling,
        learning_rate_ranges=[list(ranges[b]) for b in res["numbers"]["batch_sizes"]],
        study_dirs=[dirs[b] for b in res["numbers"]["batch_sizes"]],
    )
    if max_minutes:
        driver_base.mark_cut_short(res, trials_done, len(sizes) * trials, "trials", max_minutes)
    else:
        res["cut_short"] = False
    rows = critical_batch.measurement_rows(records)
    return driver_base.finish(res, workdir, rows, critical_batch.plot(res), study_dir)
