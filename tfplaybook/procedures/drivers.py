"""The playbook procedures as modes of `python -m tfplaybook.run`: the training-driving side.

The rules (what to recommend from measurements) live in the sibling modules and never train; this
module trains or times what they need, then writes one procedure directory per mode under the
workdir (output.write_procedure_dir) and prints a short table and the recommendation. Every input
is checked before anything is written or trained: a bad value is a config.ConfigError.
"""

import dataclasses
import math
import os
import time

from tfplaybook import config as config_lib
from tfplaybook import progress
from tfplaybook.files import trial_dir as td
from tfplaybook.procedures import (
    batch_sweep,
    clipping,
    critical_batch,
    instability,
    lr_sweep,
    output,
    rounds,
    warmup,
)
from tfplaybook.study import tracking
from tfplaybook.training import metrics

# A log grid around the config's learning rate, half a decade apart (checklist 71c).
DEFAULT_LR_FACTORS = (0.1, 0.316, 1.0, 3.16, 10.0)
REPORT_FILE = "report.html"


def parse_learning_rates(text, config):
    """The comma-separated --learning_rates, or the default grid around the config's LR."""
    if not text:
        base = float(config["optimizer"]["learning_rate"])
        return [float(f"{base * f:.4g}") for f in DEFAULT_LR_FACTORS]
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise config_lib.ConfigError(
            f"--learning_rates={text!r} must be comma-separated positive numbers, e.g. 0.01,0.1,1"
        ) from None
    if not all(math.isfinite(r) and r > 0 for r in rates) or len(set(rates)) != len(rates):
        raise config_lib.ConfigError(
            f"--learning_rates={text!r} must be distinct positive finite numbers"
        )
    return sorted(rates)


def _positive(name, value):
    if value is None or not value > 0 or not math.isfinite(value):
        raise config_lib.ConfigError(f"--{name}={value!r} must be a positive number")
    return float(value)


def _rule(fn, *args, **kwargs):
    # The rules raise ValueError on bad input; on the command line that is a usage error.
    try:
        return fn(*args, **kwargs)
    except config_lib.ConfigError:
        raise
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None


def _strategy(runtime):
    from tfplaybook.training import strategy as strategy_lib

    return strategy_lib.get_strategy(runtime.strategy, runtime.tpu, runtime.num_cpu_replicas)


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


def print_result(res, directory):
    """Prints the rule's table, recommendation and overrides."""
    table = res.get("table") or []
    if table:
        columns = res.get("columns") or list(dict.fromkeys(k for row in table for k in row))
        rows = [columns] + [[_cell(row.get(c)) for c in columns] for row in table]
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
        for r in rows:
            print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    print(f"recommendation: {res['recommendation']}")
    if res.get("overrides"):
        print("overrides: " + " ".join(f"--override={o}" for o in res["overrides"]))
    print(f"written: {directory}")


def _report_study(workdir, report_study):
    """The study whose report gets the section: --report_study, else a reported parent study."""
    if report_study:
        if not os.path.isdir(report_study):
            raise config_lib.ConfigError(f"--report_study={report_study!r} is not a directory")
        return report_study
    parent = os.path.dirname(os.path.abspath(workdir))
    return parent if os.path.exists(os.path.join(parent, REPORT_FILE)) else None


def _finish(res, directory, measurements, figure, study_dir):
    output.write_procedure_dir(directory, res, measurements, figure)
    print_result(res, directory)
    if study_dir:
        from tfplaybook.analysis import report

        image = os.path.relpath(os.path.join(directory, output.PLOT), study_dir)
        section = output.report_section(res, image if figure is not None else None)
        print(f"report: {report.write_report(study_dir, extra_sections=[section])}")
    return res


# --------------------------------------------------------------------------------- batch sweep


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
    sizes = _rule(batch_sweep.batch_sizes, start, cap)
    deadline = _rule(progress.Deadline, max_minutes)
    study_dir = _report_study(workdir, report_study)
    strategy = _strategy(runtime)
    _plan(
        runtime,
        f"batch_sweep of {len(sizes)} batch sizes into {workdir}",
        [
            f"batch sizes {', '.join(map(str, sizes))} (stopping at the first out-of-memory)",
            f"each: {repeats + 1} windows of {steps} steps (the first untimed), on the real "
            "pipeline and on one batch held in memory",
            _bound_line(max_minutes),
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
    _mark_cut_short(res, len(real), len(sizes), "batch sizes", max_minutes, real[-1]["status"])
    rows = batch_sweep.measurement_rows(real, synthetic)
    return _finish(res, workdir, rows, batch_sweep.plot(res), study_dir)


def _plan(runtime, title, items):
    if runtime.verbose:
        progress.plan(title, [item for item in items if item])


def _bound_line(max_minutes):
    if not max_minutes:
        return None
    return f"bounded to {max_minutes:g} min (--max_minutes): stops after the current measurement"


def _mark_cut_short(res, measured, planned, what, max_minutes, last_status="ok"):
    """Says in the result that a time bound stopped the sweep before its plan was done."""
    res["cut_short"] = measured < planned and last_status != "oom"
    if res["cut_short"]:
        note = (
            f"Cut short by --max_minutes={max_minutes:g} after {measured} of {planned} {what}; "
            "the result covers only those."
        )
        res["recommendation"] = f"{note} {res['recommendation']}"


# --------------------------------------------------------------------------------- critical batch


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
    sizes = _rule(critical_batch.batch_sizes, start, cap)
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
    deadline = _rule(progress.Deadline, max_minutes)
    study_dir = _report_study(workdir, report_study)
    metric, goal = config["objective"]["metric"], config["objective"]["goal"]
    reference = config["batch_size"]
    ranges = {b: _rule(critical_batch.lr_range, base, b, reference, lr_scaling) for b in sizes}
    configs = {b: critical_batch.study_config(config, b, ranges[b], trials) for b in sizes}
    dirs = {b: os.path.join(workdir, critical_batch.study_dir_name(b)) for b in sizes}
    # Every study is checked before the first one trains: nothing is written on bad input.
    strategy = _strategy(runtime)
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
    _plan(
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
            _bound_line(max_minutes),
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
        if states[b] != tracking.FINISHED or not os.path.exists(os.path.join(dirs[b], REPORT_FILE)):
            report.write_report(dirs[b])  # The study's own report: its learning-rate axis plot.
        measured.append(b)
        found = critical_batch.records_from_study(dirs[b], b, metric)
        records += found
        trials_done += tracking.summarize(dirs[b], configs[b])["trials"]
        best = critical_batch.best_values(found, goal).get(b)
        shown = "none" if best is None else f"{best:.4g}"
        bar.update(detail=f"batch {b}: best validation {metric} {shown} over {len(found)} trials")
    res = _rule(
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
        _mark_cut_short(res, trials_done, len(sizes) * trials, "trials", max_minutes)
    else:
        res["cut_short"] = False
    rows = critical_batch.measurement_rows(records)
    return _finish(res, workdir, rows, critical_batch.plot(res), study_dir)


# --------------------------------------------------------------------------------- LR sweeps


def _train_all(configs, dirs, runtime, strategy, task, what, label, deadline=None):
    """Trains each config into its directory, with progress; returns the directories trained.

    `label(config)` names one run in the progress line. With an expired `deadline`, stops after
    the run in progress (at least one run is always trained).
    """
    from tfplaybook.training import trainer as train

    if runtime.verbose:
        steps = configs[0]["max_train_steps"] if configs else 0
        progress.plan(
            (
                f"{len(configs)} {what}s of {steps} steps at batch {configs[0]['batch_size']}"
                if configs
                else f"no {what}s"
            ),
            [f"{label(c)} -> {d}" for c, d in zip(configs, dirs)],
        )
    bar = progress.Progress(len(configs), what, enabled=runtime.verbose)
    quiet = dataclasses.replace(runtime, verbose=False)  # One progress line per run, not per loop.
    done = []
    for config, directory in zip(configs, dirs):
        status = train.train(config, directory, quiet, strategy, task)
        done.append(directory)
        bar.update(detail=f"{label(config)}: {status['status']}")
        if deadline is not None and deadline.expired() and len(done) < len(dirs):
            break
    return done


def _lr_dir(workdir, lr):
    return os.path.join(workdir, f"lr_{lr:.4g}")


def _lr_label(config):
    return f"learning rate {config['optimizer']['learning_rate']:.4g}"


def _sweep_lrs(config, task, workdir, runtime, strategy, rates, deadline=None):
    configs = _rule(lr_sweep.lr_sweep_config, config, rates)
    dirs = [_lr_dir(workdir, lr) for lr in rates]
    return _train_all(configs, dirs, runtime, strategy, task, "run", _lr_label, deadline)


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
    rates = parse_learning_rates(learning_rates, config)
    if not 0.0 <= fit_error < 1.0:
        raise config_lib.ConfigError(f"--fit_error={fit_error!r} must be in [0, 1)")
    if fit_loss is not None and not (math.isfinite(fit_loss) and fit_loss >= 0):
        raise config_lib.ConfigError(f"--fit_loss={fit_loss!r} must be a number >= 0")
    by_accuracy = "accuracy" in metrics.metric_names(config)
    metric = lr_sweep.ERROR if by_accuracy else lr_sweep.LOSS
    threshold = fit_error if by_accuracy else fit_loss
    deadline = _rule(progress.Deadline, max_minutes)
    study_dir = _report_study(workdir, report_study)
    dirs = _sweep_lrs(config, task, workdir, runtime, _strategy(runtime), rates, deadline)
    series = lr_sweep.series_from_trials(dirs, metric=metric)
    diverged = lr_sweep.diverged_from_trials(dirs)  # The runs' own record, not the series.
    res = lr_sweep.analyze(series, metric=metric, fit_threshold=threshold, diverged=diverged)
    _mark_cut_short(res, len(dirs), len(rates), "learning rates", max_minutes)
    rows = output.series_rows(series, "learning_rate", metric)
    return _finish(res, workdir, rows, lr_sweep.plot(series, res), study_dir)


def run_warmup_sweep(
    config, task, workdir, runtime, learning_rates, unstable_learning_rate=None, report_study=None
):
    """--mode=warmup_sweep: find the unstable LR, sweep warmup at 10x it (checklist 110-114)."""
    rates = None if unstable_learning_rate else parse_learning_rates(learning_rates, config)
    if unstable_learning_rate is not None:
        _positive("unstable_learning_rate", unstable_learning_rate)
    study_dir = _report_study(workdir, report_study)
    strategy = _strategy(runtime)
    if unstable_learning_rate is None:
        dirs = _sweep_lrs(config, task, os.path.join(workdir, "lr_sweep"), runtime, strategy, rates)
        losses = lr_sweep.series_from_trials(dirs, metric=lr_sweep.LOSS)
        plan = warmup.plan(instability.classify(losses), config)
        output.write_procedure_dir(
            os.path.join(workdir, "plan"),
            plan,
            output.series_rows(losses, "learning_rate", "loss"),
        )
        print_result(plan, os.path.join(workdir, "plan"))
        unstable = plan["numbers"].get("unstable_base_learning_rate")
        if not unstable:
            return plan  # Every rate was stable: no warmup needed at these rates (checklist 110).
    else:
        unstable = unstable_learning_rate
    grid = _rule(warmup.warmup_steps_grid, config["max_train_steps"])
    configs = _rule(warmup.warmup_sweep_configs, config, unstable, grid)
    dirs = [os.path.join(workdir, f"warmup_{w}") for w in grid]
    _train_all(
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
    return _finish(res, workdir, rows, warmup.plot(series, base, res), study_dir)


def run_probe(
    config, task, workdir, runtime, best_learning_rate, steps, high_multiplier, report_study=None
):
    """--mode=probe: 2x and 5-10x LR probe runs, eval every step (checklist 105, 107-108)."""
    best = _positive("best_learning_rate", best_learning_rate)
    if steps < 1:
        raise config_lib.ConfigError(f"--probe_steps={steps} must be >= 1")
    if not 5.0 <= high_multiplier <= 10.0:
        raise config_lib.ConfigError(
            f"--probe_multiplier={high_multiplier} must be in [5, 10] (checklist 108)"
        )
    multipliers = (2.0, float(high_multiplier))
    configs = [
        _rule(instability.probe_config, config, best, m, max_train_steps=steps) for m in multipliers
    ]
    study_dir = _report_study(workdir, report_study)
    dirs = [os.path.join(workdir, f"probe_{m:g}x") for m in multipliers]
    _train_all(
        configs,
        dirs,
        runtime,
        _strategy(runtime),
        task,
        "probe",
        lambda c: f"learning rate {c['optimizer']['learning_rate']:.4g}",
    )
    runs = {}
    for m, directory in zip(multipliers, dirs):
        rows = td.read_measurements(directory)
        runs[m] = td.series(rows, td.TRAIN, "loss")
    res = instability.analyze_probes(runs, best_learning_rate=best)
    rows = output.series_rows(runs, "lr_multiplier", "loss")
    return _finish(res, workdir, rows, instability.plot(runs, res), study_dir)


def run_clip_advice(source, workdir, report_study=None):
    """--mode=clip_advice: a clipping threshold from a finished run's grad norms (115-119)."""
    if not source or not os.path.exists(os.path.join(source, td.STATUS)):
        raise config_lib.ConfigError(f"--from={source!r} is not a trial directory (no status.json)")
    study_dir = _report_study(workdir, report_study)
    steps, norms, clip_norm = clipping.read_grad_norms(source)
    res = _rule(clipping.analyze, norms, clip_norm)
    rows = [{"step": int(s), "grad_norm": float(n)} for s, n in zip(steps, norms)]
    return _finish(res, workdir, rows, clipping.plot(steps, norms, res), study_dir)


# --------------------------------------------------------------------------------- rounds


def best_trial_config(study_dir, goal):
    """The config of the study's best completed trial (by status.json best_value)."""
    best = None
    for directory in tracking.trial_dirs(study_dir):
        try:
            status = td.read_status(directory)
        except td.DamagedFileError:
            continue
        value = status.get("best_value")
        if status["status"] != td.COMPLETED or value is None:
            continue
        if best is None or (value > best[0] if goal == "max" else value < best[0]):
            best = (value, directory)
    if best is None:
        raise config_lib.ConfigError(f"--from={study_dir!r} holds no completed trial")
    return td.read_config(best[1])


def round_config(config, round_number, mode, source):
    """The config of a tuning round (checklist 72-76): 0 leaves `config` as it is.

    Round 1 (with --mode=tune) shortens the production config; round 2 (with --mode=train) takes
    the best trial of the round-1 study `source` to the production max_train_steps.
    """
    if round_number == 0:
        return config
    if round_number == 1:
        if mode != "tune":
            raise config_lib.ConfigError(f"--round=1 goes with --mode=tune, not --mode={mode}")
        return _round_result(_rule(rounds.round1_config, config))
    if mode != "train":
        raise config_lib.ConfigError(f"--round=2 goes with --mode=train, not --mode={mode}")
    if not source or not os.path.isdir(source):
        raise config_lib.ConfigError(f"--round=2 needs --from=STUDY_DIR; got --from={source!r}")
    best = best_trial_config(source, config["objective"]["goal"])
    return _round_result(_rule(rounds.round2_config, best, config["max_train_steps"]))


def _round_result(res):
    print(f"round: {res['recommendation']}")
    return res["config"]
