"""tfplaybook's Python API: run a study or one training from a notebook or a script.

    import tfplaybook

    study = tfplaybook.tune("experiments/my_task.py", workdir="runs/my_study")
    study = tfplaybook.tune(config=my_config, build_model=build_model,
                            make_dataset=make_dataset, workdir="runs/my_study")
    print(study.best_trial.values, study.best_trial.best_value, study.report_path)
    run = tfplaybook.train(config=my_config, build_model=build_model,
                           make_dataset=make_dataset, workdir="runs/one")

The same code as `python -m tfplaybook.run`: the same config completion and validation, the same
trial directories, report and study index, the same plan and progress lines (`verbose=False`
silences the per-step ones, as --quiet), and TensorFlow's start-up noise is silenced the same
way. Bad input raises `tfplaybook.ConfigError` (a ValueError) with the one-line message the
command line prints.
"""

import dataclasses
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfplaybook import config as config_lib  # noqa: E402
from tfplaybook.training import task as task_lib  # noqa: E402


@dataclasses.dataclass
class TrialResult:
    """One trial of a study, as its directory records it."""

    id: str
    directory: str
    values: dict  # The hyperparameters the oracle chose: {dimension id: value}.
    status: str  # completed | diverged | failed | running
    best_value: float  # Best validation value of the objective over training (None if none).
    best_step: int


@dataclasses.dataclass
class StudyResult:
    """A finished (or interrupted) study: its trials, the best one and the report."""

    workdir: str
    objective: dict
    trials: list
    report_path: str

    @property
    def best_trial(self):
        """The completed trial with the best objective value, or None."""
        scored = [t for t in self.trials if t.status == "completed" and t.best_value is not None]
        if not scored:
            return None
        sign = 1.0 if self.objective["goal"] == "max" else -1.0
        return max(scored, key=lambda t: (sign * t.best_value, t.id))


def quiet_libraries():
    """absl's info logging off (TensorFlow's C++ start-up lines: TF_CPP_MIN_LOG_LEVEL above;
    TFDS' progress bars: tfplaybook.training.datasets turns them off when it first uses TFDS)."""
    from absl import logging

    logging.set_verbosity(logging.WARNING)


def make_config(experiment=None, config=None, build_model=None, make_dataset=None, overrides=()):
    """(completed, validated config, Task, experiment label) from a file or a dict and callables.

    Args:
      experiment: path of an experiment file (get_config, optional build_model / make_dataset).
      config: a config dict instead of a file (only batch_size and max_train_steps are required).
      build_model: `build_model(config, data_spec) -> keras.Model`, overriding the file's.
      make_dataset: `make_dataset(split, config[, input_context]) -> tf.data.Dataset`.
      overrides: "KEY=VALUE" strings with dotted keys, as --override.
    """
    if (experiment is None) == (config is None):
        raise config_lib.ConfigError("give exactly one of experiment= (a file) or config= (a dict)")
    if experiment is not None:
        base, task = task_lib.load(experiment)
        label = experiment
    else:
        base, task, label = config, task_lib.Task(source="python"), "python"
    for name, fn in (("build_model", build_model), ("make_dataset", make_dataset)):
        if fn is not None:
            if not callable(fn):
                raise config_lib.ConfigError(f"{name}={fn!r} is not callable")
            setattr(task, name, fn)
    from tfplaybook import validation

    full = task_lib.complete_config(base, task)
    full = task_lib.apply_overrides(full, overrides, task)
    return validation.check_config(full, task), task, label


def runtime(**options):
    """A runtime.Runtime from keyword options (strategy, num_cpu_replicas, precision, ...)."""
    from tfplaybook import runtime as runtime_lib

    try:
        options = runtime_lib.Runtime(**options)
    except TypeError as e:
        fields = ", ".join(f.name for f in dataclasses.fields(runtime_lib.Runtime))
        raise config_lib.ConfigError(f"{e}; runtime options: {fields}") from None
    if options.num_cpu_replicas > 1:
        from tfplaybook.training import strategy as strategy_lib

        strategy_lib.split_cpu(options.num_cpu_replicas)
    return options


def trial_results(study_dir):
    """TrialResult of every trial directory of a study, in trial order."""
    from tfplaybook.files import trial_dir as td
    from tfplaybook.study import tracking

    out = []
    for directory in tracking.trial_dirs(study_dir):
        try:
            status = td.read_status(directory) or {}
            hparams_path = os.path.join(directory, td.HPARAMS)
            values = td.read_json(hparams_path)["values"] if os.path.exists(hparams_path) else {}
        except td.DamagedFileError:
            continue
        out.append(
            TrialResult(
                id=os.path.basename(directory),
                directory=directory,
                values=values,
                status=status.get("status", "running"),
                best_value=status.get("best_value"),
                best_step=status.get("best_step"),
            )
        )
    return out


def run_studies(
    config,
    task,
    experiment,
    workdir,
    run_options,
    runs_root=None,
    notes="",
    command="",
    role="none",
    max_minutes=None,
):
    """Runs (or resumes) the study, or one study per scientific value, and writes each report.

    The one implementation behind `tfplaybook.tune` and `--mode=tune`. Returns a list of
    StudyResult (one per study; workers get results with no report).
    """
    from tfplaybook.files import remote

    # A gs:// study runs in a local staging copy of the bucket (tfplaybook.files.remote).
    with remote.workdir(workdir) as local:
        return _run_studies(
            config,
            task,
            experiment,
            local,
            run_options,
            runs_root or (os.path.abspath("runs") if remote.is_remote(workdir) else None),
            notes,
            command,
            role,
            max_minutes,
        )


def _run_studies(
    config, task, experiment, workdir, run_options, runs_root, notes, command, role, max_minutes
):
    from tfplaybook.analysis.report import background
    from tfplaybook.search import designs
    from tfplaybook.study import tracking

    plan = designs.study_plan(config, workdir)
    # Pure checks first: a changed config is refused, a finished study answers without
    # TensorFlow, and nothing is written (the index included) before every study is valid.
    states = [tracking.check_study_dir(d, c) for d, c in plan]
    if role != "worker" and all(state == tracking.FINISHED for state in states):
        return [_finished(d, c) for d, c in plan]
    root = runs_root or os.path.dirname(os.path.abspath(workdir))
    if role != "worker":
        tracking.StudyIndex.check(root)
    run = (config, task, experiment, run_options, root, notes, command, max_minutes)
    if role == "worker":  # Workers write no report.
        return _run_plan(plan, run, None)
    # Started before TensorFlow loads: the report's process imports its libraries meanwhile.
    with background.Reporter() as reporter:
        return _run_plan(plan, run, reporter)


def _run_plan(plan, run, reporter):
    """Runs each study of `plan`; with a `reporter` (not a worker), reports and exports each."""
    from tfplaybook.files import remote
    from tfplaybook.study import tracking, tuner

    config, task, experiment, run_options, root, notes, command, max_minutes = run
    for study_dir, study_config in plan:
        tuner.prepare_study(study_config, study_dir, run_options, task, checked=True)
    results = []
    for study_dir, study_config in plan:
        index = tracking.StudyIndex(root) if reporter else None

        if index:
            index.record(study_dir, study_config, experiment, notes, command, "running")
        try:
            tuner.tune(study_config, study_dir, run_options, experiment, task, max_minutes, True)
        except BaseException:
            if index:  # The index tells the truth: this run of the study failed.
                _record(index, study_dir, study_config, experiment, notes, command, "failed")
            raise
        if not index:
            results.append(StudyResult(study_dir, config["objective"], [], None))
            continue
        remote.pull(study_dir, remote.ANALYSIS_EXCLUDE)  # Other hosts' trials, for the report.
        trials = trial_results(study_dir)
        # The report (in the second process) while this one exports the best trial.
        reporter.request(study_dir)
        try:
            best = StudyResult(study_dir, config["objective"], trials, None).best_trial
            exported = _export_best_trial(best, task, run_options)
        finally:  # A failed export still leaves the report and the index row.
            report_path = reporter.result()
            summary = _record(index, study_dir, study_config, experiment, notes, command)
        print(
            f"study {study_dir}: {summary['trials']} trials, best validation "
            f"{config['objective']['metric']} {_rounded(summary['best_value'])} "
            f"({summary['status']})"
        )
        print(f"report: {report_path}", flush=True)
        if exported and run_options.verbose:
            print(f"exported the best trial: {exported}", flush=True)
        results.append(StudyResult(study_dir, config["objective"], trials, report_path))
    return results


def _export_best_trial(best, task, run_options):
    """The study's best trial (a TrialResult, or None) exported once
    (tfplaybook.training.best_export), not every trial; returns the export's path, or None when
    there was nothing to export."""
    from tfplaybook.files import remote
    from tfplaybook.files import trial_dir as td
    from tfplaybook.training import best_export

    if best is None or best_export.exported(best.directory):
        return None
    config = td.read_config(best.directory)
    path = best_export.export_best(best.directory, config, task, run_options.download)
    remote.sync(best.directory)  # gs://: the export's files (Keras wrote them) to the bucket.
    return path


def _record(index, study_dir, config, experiment, notes, command, status=None):
    """Writes the study's index row from its trial directories; returns their summary."""
    from tfplaybook.study import tracking

    summary = tracking.summarize(study_dir, config)
    index.record(
        study_dir,
        config,
        experiment,
        notes,
        command,
        status or summary["status"],
        summary["trials"],
        summary["best_value"],
    )
    return summary


def _finished(study_dir, config):
    """A finished study's result: nothing trains, and its report is written only if missing."""
    from tfplaybook.analysis import report
    from tfplaybook.study import tracking

    report_path = os.path.join(study_dir, "report.html")
    if not os.path.exists(report_path):
        report_path = report.write_report(study_dir)
    summary = tracking.summarize(study_dir, config)
    print(
        f"study {study_dir}: already finished, {summary['trials']} trials, best validation "
        f"{config['objective']['metric']} {_rounded(summary['best_value'])}; nothing to train "
        "(raise study.max_trials to run more)"
    )
    print(f"report: {report_path}", flush=True)
    return StudyResult(study_dir, config["objective"], trial_results(study_dir), report_path)


def _rounded(value):
    return None if value is None else f"{value:.4g}"


def tune(
    experiment=None,
    *,
    config=None,
    build_model=None,
    make_dataset=None,
    workdir=None,
    overrides=(),
    notes="",
    runs_root=None,
    max_minutes=None,
    **runtime_options,
):
    """Runs (or resumes) a study and writes its report; returns a StudyResult.

    Args:
      experiment, config, build_model, make_dataset, overrides: see `make_config`.
      workdir: the study directory (default runs/<experiment name>, or runs/study for a dict).
      notes: a description for the study index.
      runs_root: where the study index lives (default: the work directory's parent).
      max_minutes: start no trial after this many minutes (the study stays resumable).
      **runtime_options: runtime.Runtime fields: strategy, tpu, num_cpu_replicas, jit_compile,
        precision, steps_per_loop, download, verbose.

    With `study.design=per_value` several studies run; the result is the first one's and
    `StudyResult.workdir` of the others are subdirectories of `workdir`.
    """
    full, task, label, workdir, options = _start(
        experiment, config, build_model, make_dataset, overrides, workdir, "study", runtime_options
    )
    command = shlex.join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])
    results = run_studies(
        full, task, label, workdir, options, runs_root, notes, command, max_minutes=max_minutes
    )
    return results[0]


def train(
    experiment=None,
    *,
    config=None,
    build_model=None,
    make_dataset=None,
    workdir=None,
    overrides=(),
    **runtime_options,
):
    """Trains one configuration into `workdir` (resuming if interrupted); returns a TrialResult."""
    from tfplaybook.files import remote
    from tfplaybook.training import trainer as train_lib

    full, task, _, workdir, options = _start(
        experiment, config, build_model, make_dataset, overrides, workdir, "train", runtime_options
    )
    with remote.workdir(workdir) as local:
        status = train_lib.train(full, local, options, task=task, export=True)
    return TrialResult(
        id=os.path.basename(os.path.normpath(workdir)),
        directory=workdir,
        values={},
        status=status["status"],
        best_value=status.get("best_value"),
        best_step=status.get("best_step"),
    )


def analyze(workdir):
    """(Re)writes a study's report from its files alone; returns the report's path."""
    from tfplaybook.analysis import report

    if not workdir or not os.path.isdir(workdir):
        raise config_lib.ConfigError(f"workdir={workdir!r} is not a study directory")
    return report.write_report(workdir)


def _start(experiment, config, build_model, make_dataset, overrides, workdir, kind, options):
    """What tune and train share: the checked config and runtime, the work directory."""
    full, task, label = make_config(experiment, config, build_model, make_dataset, overrides)
    _check_runtime(full, options)
    run_options = runtime(**options)
    quiet_libraries()
    return full, task, label, workdir or _default_workdir(experiment, kind), run_options


def _check_runtime(config, options):
    from tfplaybook import validation

    validation.check_runtime(
        options.get("strategy", "auto"),
        options.get("tpu", "local"),
        options.get("num_cpu_replicas", 1),
        options.get("precision", "float32"),
        options.get("steps_per_loop", 50),
        config["batch_size"],
    )


def _default_workdir(experiment, fallback):
    name = os.path.splitext(os.path.basename(experiment))[0] if experiment else fallback
    return os.path.join("runs", name)
