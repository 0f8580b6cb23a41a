"""The drivers that test one configuration: --mode=probe, clip_advice, compare and bn_check.

probe trains two short runs at 2x and 5-10x the best learning rate (checklist 105, 107-108; the
rules: tfplaybook.procedures.instability), clip_advice reads a finished run's gradient norms
(checklist 115-119; tfplaybook.procedures.clipping), compare reruns the bests of two studies to
decide on adopting a change (checklist 57-61; tfplaybook.study.adoption), and bn_check prints
per-replica batch-norm statistics before and after a few training steps.
"""

import os

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir as td
from tfplaybook.procedures import clipping, driver_base, instability, output


def run_probe(
    config, task, workdir, runtime, best_learning_rate, steps, high_multiplier, report_study=None
):
    """--mode=probe: 2x and 5-10x LR probe runs, eval every step (checklist 105, 107-108)."""
    best = driver_base.positive("best_learning_rate", best_learning_rate)
    if steps < 1:
        raise config_lib.ConfigError(f"--probe_steps={steps} must be >= 1")
    if not 5.0 <= high_multiplier <= 10.0:
        raise config_lib.ConfigError(
            f"--probe_multiplier={high_multiplier} must be in [5, 10] (checklist 108)"
        )
    multipliers = (2.0, float(high_multiplier))
    configs = [
        driver_base.call_rule(instability.probe_config, config, best, m, max_train_steps=steps)
        for m in multipliers
    ]
    study_dir = driver_base.report_study_dir(workdir, report_study)
    dirs = [os.path.join(workdir, f"probe_{m:g}x") for m in multipliers]
    driver_base.train_all(
        configs,
        dirs,
        runtime,
        driver_base.strategy_of(runtime),
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
    return driver_base.finish(res, workdir, rows, instability.plot(runs, res), study_dir)


def run_clip_advice(source, workdir, report_study=None):
    """--mode=clip_advice: a clipping threshold from a finished run's grad norms (115-119)."""
    if not source or not os.path.exists(os.path.join(source, td.STATUS)):
        raise config_lib.ConfigError(f"--from={source!r} is not a trial directory (no status.json)")
    study_dir = driver_base.report_study_dir(workdir, report_study)
    steps, norms, clip_norm = clipping.read_grad_norms(source)
    res = driver_base.call_rule(clipping.analyze, norms, clip_norm)
    rows = [{"step": int(s), "grad_norm": float(n)} for s, n in zip(steps, norms)]
    return driver_base.finish(res, workdir, rows, clipping.plot(steps, norms, res), study_dir)


def check_compare(baseline, candidate):
    """Fails early, before anything is written, unless both are studies with a completed trial."""
    from tfplaybook.study import adoption

    for flag, value in (("--baseline", baseline), ("--candidate", candidate)):
        if not value or not os.path.isdir(value):
            raise config_lib.ConfigError(f"{flag}={value!r} is not a study directory")
    for study in (baseline, candidate):
        adoption.best_trial(study)


def run_compare(baseline, candidate, reruns, out_dir, runtime, vary="both"):
    """--mode=compare: adopt `candidate` over `baseline`? Reruns both bests (checklist 57-61).

    The studies are checked by `check_compare` first. Prints the reruns' values (and with
    vary="sources" each arm's standard deviation per source), the decision and the report path.
    """
    from tfplaybook.study import adoption

    decision = adoption.compare_studies(baseline, candidate, reruns, out_dir, runtime, vary)
    base, cand = decision["baseline"], decision["candidate"]
    print(f"baseline reruns: {base['values']}")
    print(f"candidate reruns: {cand['values']}")
    for arm, stds in decision.get("variance_sources", {}).items():
        shown = ", ".join(f"{k} {v:.4g}" if v is not None else f"{k} n/a" for k, v in stds.items())
        print(f"{arm} rerun standard deviation by source: {shown}")
    print(f"decision: {decision['decision']} ({decision['reason']})")
    print(f"report: {os.path.join(out_dir, 'report.html')}")
    return decision


def _bn_report(trainer, batch):
    from tfplaybook.training import bn_check

    return "\n".join(
        bn_check.format_bn_report(bn_check.bn_report(trainer.model, trainer.strategy, batch))
    )


def run_bn_check(config, task, runtime, steps):
    """--mode=bn_check: per-replica batch-norm statistics before and after `steps` steps.

    Writes nothing (the trainer never runs its training loop to a workdir); returns the number of
    moving statistics averaged over the replicas after the steps.
    """
    import tensorflow as tf

    from tfplaybook.training import batchnorm
    from tfplaybook.training import trainer as train

    trainer = train.Trainer(config, "", runtime, task=task)  # Writes nothing: no run() call.
    train_ds, _ = trainer.datasets(shuffle_seed=config["seed"])
    iterator = iter(train_ds)
    batch = next(iterator)
    print(f"{trainer.replicas} replica(s), model.batch_norm={config['model'].get('batch_norm')}")
    print("before training:")
    print(_bn_report(trainer, batch))
    trainer.train_loop(iterator, tf.constant(steps))
    synced = batchnorm.sync_moving_statistics(trainer.model, trainer.strategy)
    print(
        f"after {steps} steps ({synced} moving statistics averaged over "
        "replicas, as before every evaluation and checkpoint):"
    )
    print(_bn_report(trainer, batch))
    return synced
