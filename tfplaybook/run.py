"""tfplaybook's command line: `python -m tfplaybook.run --mode=MODE [flags]`.

Turns flags into a config and calls one function per mode. Bad input ends in one line on stderr
and exit status 2, with nothing written.

Modes (--mode):
  tune            run or resume the experiment's study into --workdir (the default)
  train           train one configuration (the experiment's, with --override changes)
  analyze         (re)write a study's report from its files, without TensorFlow
  advise          write the next round's experiment file from a finished study
  list            print the study index of --runs_root
  batch_sweep     throughput and steps-to-result against the batch size
  critical_batch  the batch size past which steps stop falling
  lr_sweep        the learning-rate sweep and its unstable edge
  warmup_sweep    warmup lengths for an unstable learning rate
  probe           a short run at a learning rate times --probe_multiplier
  clip_advice     a gradient clip norm from the measured gradient norms
  compare         adopt --candidate over --baseline or not, by rerunning both bests
  bn_check        per-replica batch-norm statistics

Examples:
  python -m tfplaybook.run                                  # the default study
  python -m tfplaybook.run --experiment=my_exp.py --workdir=/tmp/my_study
  python -m tfplaybook.run --mode=analyze --workdir=/tmp/my_study

--helpfull lists absl's own flags too.
"""

import atexit
import os
import shlex
import socket
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

from tfplaybook import config as config_lib  # noqa: E402
from tfplaybook import flags  # noqa: E402

# --help (absl's --helpshort) lists the main module's key flags: tfplaybook's are defined in
# tfplaybook.flags, so they are declared key flags here.
absl_flags.adopt_module_key_flags(flags)

USAGE_EXIT = 2


def load_config():
    """(config, experiment path, task): the experiment with flags and overrides applied, validated.

    The task (tfplaybook.training.task.Task) holds the experiment file's own build_model /
    make_dataset.
    """
    from tfplaybook import validation
    from tfplaybook.training import task as task_lib

    path = flags.EXPERIMENT.value or config_lib.default_experiment()
    config, task = task_lib.load(path)
    data = {}
    if flags.DATASET.value:
        data["dataset"] = flags.DATASET.value
    if flags.DATA_DIR.value:
        data["data_dir"] = flags.DATA_DIR.value
    if data:  # Before the overrides, so a new dataset's own keys can be overridden.
        config = task_lib.complete_config(task_lib.merge(config, {"data": data}), task)
    config = task_lib.apply_overrides(config, flags.OVERRIDE.value, task)
    config = validation.check_config(config, task, study=flags.MODE.value == "tune")
    if flags.ROUND.value:
        from tfplaybook.procedures import round_driver

        # Checklist 72-76: round 1 short trials, round 2 the best of them at the full budget.
        config = round_driver.round_config(
            config, flags.ROUND.value, flags.MODE.value, flags.FROM.value
        )
        config = validation.check_config(config, task, study=flags.MODE.value == "tune")
    validation.check_tfds(config, task, flags.DOWNLOAD.value)
    validation.check_runtime(
        flags.STRATEGY.value,
        flags.TPU.value,
        flags.NUM_CPU_REPLICAS.value,
        flags.PRECISION.value,
        flags.STEPS_PER_LOOP.value,
        config["batch_size"],
    )
    return config, path, task


def default_workdir(experiment_path):
    name = os.path.splitext(os.path.basename(experiment_path))[0]
    return os.path.join("runs", name)


def writable(workdir):
    """`workdir`, once it is known to be writable (a bucket's is checked by its staging copy).

    Before TensorFlow loads: a path under a regular file, /proc or a full disk is refused here.
    """
    from tfplaybook.files import remote
    from tfplaybook.training import workdir as workdir_lib

    if not remote.is_remote(workdir):
        workdir_lib.check_writable(workdir)
    return workdir


def runtime():
    """The flags' execution settings; splits the CPU first when asked (before any TF op)."""
    from tfplaybook import runtime as runtime_lib

    if flags.NUM_CPU_REPLICAS.value > 1:
        from tfplaybook.training import strategy

        strategy.split_cpu(flags.NUM_CPU_REPLICAS.value)
    return runtime_lib.Runtime(
        strategy=flags.STRATEGY.value,
        tpu=flags.TPU.value,
        num_cpu_replicas=flags.NUM_CPU_REPLICAS.value,
        jit_compile=flags.JIT_COMPILE.value,
        precision=flags.PRECISION.value,
        steps_per_loop=flags.STEPS_PER_LOOP.value,
        download=flags.DOWNLOAD.value,
        verbose=not flags.QUIET.value,
    )


def run_train():
    """--mode=train: one configuration, end to end, into --workdir."""
    config, path, task = load_config()  # Bad input fails here, before TensorFlow loads.
    workdir = writable(flags.WORKDIR.value or default_workdir(path))
    from tfplaybook.files import remote
    from tfplaybook.training import trainer as train

    with remote.workdir(workdir) as local:  # A gs:// work directory: a mirrored local copy.
        status = train.train(config, local, runtime(), task=task, export=True)
    best = status.get("best_value")
    print(
        f"{status['status']}: best validation {config['objective']['metric']} "
        f"{best if best is None else round(best, 4)} at step {status.get('best_step')} "
        f"of {config['max_train_steps']} ({workdir}; weights {status.get('weights_digest')})"
    )
    return 0 if status["status"] != "failed" else 1


def configure_tuning_role():
    """Sets keras-tuner's chief/worker variables from the flags (none: a local study)."""
    role = flags.TUNER_ROLE.value
    for key in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        os.environ.pop(key, None)
    if role == "none":
        return
    os.environ["KERASTUNER_ORACLE_IP"] = flags.TUNER_CHIEF_ADDRESS.value
    os.environ["KERASTUNER_ORACLE_PORT"] = str(flags.TUNER_CHIEF_PORT.value)
    worker_id = flags.TUNER_ID.value or f"worker-{socket.gethostname()}-{os.getpid()}"
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if role == "chief" else worker_id


def reproduction_command():
    """The exact command line of this run (checklist 93)."""
    return shlex.join(["python", "-m", "tfplaybook.run", *sys.argv[1:]])


def run_tune():
    """--mode=tune: run or resume the experiment's study (or per-value studies) in --workdir."""
    from tfplaybook import api

    config, path, task = load_config()
    workdir = writable(flags.WORKDIR.value or default_workdir(path))
    configure_tuning_role()
    results = api.run_studies(
        config,
        task,
        path,
        workdir,
        runtime(),
        flags.RUNS_ROOT.value,
        flags.NOTES.value,
        reproduction_command(),
        flags.TUNER_ROLE.value,
        max_minutes=flags.MAX_MINUTES.value,
    )
    if len(results) > 1:  # Checklist 35: compare the per-value studies by their best trials.
        print("best trial of each scientific value:")
        for result in results:
            best = result.best_trial
            print(f"  {os.path.basename(result.workdir)}: {best and round(best.best_value, 4)}")
    return 0


def write_report(study_dir):
    from tfplaybook.analysis import report

    return report.write_report(study_dir)


def run_analyze():
    """--mode=analyze: (re)write the report of the study in --workdir from its files alone."""
    from tfplaybook.files import remote
    from tfplaybook.study import tracking

    workdir = flags.WORKDIR.value
    if workdir and remote.is_remote(workdir):
        # The study's files from the bucket (not its checkpoints), the report back to it.
        with remote.workdir(workdir, exclude=remote.ANALYSIS_EXCLUDE) as local:
            if not tracking.trial_dirs(local):
                raise config_lib.ConfigError(f"--workdir={workdir!r} holds no trials to analyze")
            write_report(local)
        print(f"report: {workdir.rstrip('/')}/report.html")
        return 0
    if not workdir or not os.path.isdir(workdir):
        raise config_lib.ConfigError(f"--workdir={workdir!r} is not a study directory")
    if not tracking.trial_dirs(workdir):
        raise config_lib.ConfigError(f"--workdir={workdir!r} holds no trials to analyze")
    print(f"report: {write_report(workdir)}")
    return 0


def run_advise():
    """--mode=advise: the next round's experiment file from the finished study in --workdir."""
    from tfplaybook.analysis import advise

    workdir = flags.WORKDIR.value
    if not workdir or not os.path.isfile(os.path.join(workdir, "study.json")):
        raise config_lib.ConfigError(f"--workdir={workdir!r} is not a study directory")
    advice = advise.advise(workdir)
    path = advise.write_next_experiment(advice)
    print(f"{advice.summary}:")
    for number, change in enumerate(advice.changes, 1):
        print(f"  {number}. {change.reason}")
    for note in advice.notes:
        print(f"  note: {note}")
    print(f"next experiment: {path}")
    return 0


def run_list():
    """--mode=list: print the study index of the runs root as a table."""
    from tfplaybook.study import tracking

    root = flags.RUNS_ROOT.value or (
        os.path.dirname(os.path.abspath(flags.WORKDIR.value)) if flags.WORKDIR.value else "runs"
    )
    print(tracking.StudyIndex(root, create=False).table())
    return 0


def procedure_workdir(path, procedure):
    return writable(flags.WORKDIR.value or os.path.join(default_workdir(path), procedure))


def run_batch_sweep():
    """--mode=batch_sweep: throughput per batch size, real vs synthetic input (checklist 6-14)."""
    from tfplaybook.procedures import batch_drivers

    config, path, task = load_config()
    return _status(
        batch_drivers.run_batch_sweep(
            config,
            task,
            procedure_workdir(path, "batch_sweep"),
            runtime(),
            flags.SWEEP_START_BATCH_SIZE.value,
            flags.SWEEP_MAX_BATCH_SIZE.value,
            flags.SWEEP_STEPS.value,
            flags.SWEEP_REPEATS.value,
            flags.REPORT_STUDY.value,
            flags.MAX_MINUTES.value,
        )
    )


def run_critical_batch():
    """--mode=critical_batch: steps to a target per batch size, LR re-tuned each (checklist 12)."""
    from tfplaybook.procedures import batch_drivers

    config, path, task = load_config()
    return _status(
        batch_drivers.run_critical_batch(
            config,
            task,
            procedure_workdir(path, "critical_batch"),
            runtime(),
            flags.SWEEP_START_BATCH_SIZE.value,
            flags.SWEEP_MAX_BATCH_SIZE.value,
            flags.CRITICAL_TRIALS.value,
            flags.CRITICAL_LR_RANGE.value,
            flags.CRITICAL_LR_SCALING.value,
            flags.TARGET_VALUE.value,
            flags.TARGET_FRACTION.value,
            flags.SCALING_TOLERANCE.value,
            path,
            flags.REPORT_STUDY.value,
            flags.MAX_MINUTES.value,
        )
    )


def run_lr_sweep():
    """--mode=lr_sweep: constant-LR grid and the initial max_train_steps (checklist 71)."""
    from tfplaybook.procedures import lr_drivers

    config, path, task = load_config()
    workdir = procedure_workdir(path, "lr_sweep")
    return _status(
        lr_drivers.run_lr_sweep(
            config,
            task,
            workdir,
            runtime(),
            flags.LEARNING_RATES.value,
            flags.FIT_ERROR.value,
            flags.FIT_LOSS.value,
            flags.REPORT_STUDY.value,
            flags.MAX_MINUTES.value,
        )
    )


def run_warmup_sweep():
    """--mode=warmup_sweep: the unstable LR, then the shortest stable warmup (checklist 110-114)."""
    from tfplaybook.procedures import lr_drivers

    config, path, task = load_config()
    return _status(
        lr_drivers.run_warmup_sweep(
            config,
            task,
            procedure_workdir(path, "warmup_sweep"),
            runtime(),
            flags.LEARNING_RATES.value,
            flags.UNSTABLE_LEARNING_RATE.value,
            flags.REPORT_STUDY.value,
        )
    )


def run_probe():
    """--mode=probe: instability probes at 2x and 5-10x the best LR (checklist 105, 107-108)."""
    from tfplaybook.procedures import check_drivers

    config, path, task = load_config()
    best = flags.BEST_LEARNING_RATE.value
    return _status(
        check_drivers.run_probe(
            config,
            task,
            procedure_workdir(path, "probe"),
            runtime(),
            config["optimizer"]["learning_rate"] if best is None else best,
            flags.PROBE_STEPS.value,
            flags.PROBE_MULTIPLIER.value,
            flags.REPORT_STUDY.value,
        )
    )


def run_clip_advice():
    """--mode=clip_advice: a clipping threshold from --from's grad norms (checklist 115-119)."""
    from tfplaybook.procedures import check_drivers

    source = flags.FROM.value
    workdir = writable(flags.WORKDIR.value or os.path.join(source or ".", "clip_advice"))
    return _status(check_drivers.run_clip_advice(source, workdir, flags.REPORT_STUDY.value))


def run_compare():
    """--mode=compare: adopt --candidate over --baseline? Reruns both bests (checklist 57-61)."""
    from tfplaybook.procedures import check_drivers

    baseline, candidate = flags.BASELINE.value, flags.CANDIDATE.value
    check_drivers.check_compare(baseline, candidate)  # Before runtime(): fails before any work.
    out_dir = writable(flags.WORKDIR.value or os.path.join("runs", "compare"))
    return _status(
        check_drivers.run_compare(
            baseline, candidate, flags.RERUNS.value, out_dir, runtime(), flags.RERUN_VARY.value
        )
    )


def run_bn_check():
    """--mode=bn_check: per-replica batch-norm statistics before and after a few steps."""
    from tfplaybook.procedures import check_drivers

    config, _, task = load_config()
    return _status(check_drivers.run_bn_check(config, task, runtime(), flags.BN_CHECK_STEPS.value))


def _status(res):
    del res  # Printed and written by the driver; a recommendation is a success.
    return 0


def _mode_functions():
    """{mode: run_MODE} for every mode of flags.MODES, the one list of modes.

    Raises at import when a mode has no run_MODE function here or a run_MODE function has no
    mode, so a mode cannot be added in one place only.
    """
    functions = {
        name[len("run_") :]: fn for name, fn in globals().items() if name.startswith("run_")
    }
    missing = [mode for mode in flags.MODES if mode not in functions]
    unlisted = [mode for mode in functions if mode not in flags.MODES]
    if missing or unlisted:
        raise ImportError(
            f"tfplaybook.run and flags.MODES disagree: no run_MODE function for {missing}, "
            f"run_MODE functions for modes not in flags.MODES: {unlisted}"
        )
    return {mode: functions[mode] for mode in flags.MODES}


_MODES = _mode_functions()


def main(argv):
    from tfplaybook import api

    api.quiet_libraries()
    try:
        if len(argv) > 1:
            raise config_lib.ConfigError(
                f"unexpected arguments {' '.join(argv[1:])!r}: tfplaybook takes only --flags"
            )
        return _MODES[flags.MODE.value]()
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_EXIT


def parse_flags(argv):
    """absl's parser, but a bad flag is one line and exit status 2 (absl exits 1)."""
    try:
        return absl_flags.FLAGS(argv)
    except absl_flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USAGE_EXIT)


def _skip_the_collections_at_exit():
    """Runs after every other exit handler (registered before TensorFlow loads, and handlers run
    last-registered first): freezes the objects alive then, so the interpreter's teardown does
    not walk TensorFlow's and Keras' object graph in its cyclic collections (1.3-1.6 s of a run's
    exit here; 0.1-0.2 s frozen). Files and writers are closed by then; objects freed by reference
    counting are still finalized."""
    import gc

    gc.freeze()


if __name__ == "__main__":
    atexit.register(_skip_the_collections_at_exit)
    from tfplaybook import internals

    internals.skip_keras_optional_imports()
    app.run(main, flags_parser=parse_flags)
