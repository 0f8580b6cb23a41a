"""Studies: a keras-tuner `BaseTuner` whose trials run the foundation training loop.

The study directory is the keras-tuner project directory: `oracle.json` and `tuner*.json` (the
oracle's position, so a re-run resumes), `study.json` (what was searched, for analysis), and one
trial directory per trial (`trial_N/`, zero-padded to the digits of max_trials when the study
began, kept when it grows; the foundation's trial-directory format plus `hparams.json`). Damaged
keras-tuner files are rebuilt from the trial directories (tfplaybook.study.recovery). Every trial
has the same `max_train_steps` (checklist 68) and is scored by its best validation value over
training (checklist 43). A diverged trial is reported to the oracle as a completed, *infeasible*
result (the metric `infeasible` = 1): keras-tuner would otherwise retry it or count it towards
stopping the study, and the playbook wants it counted and plotted (checklist 41, 63).

Tuning across machines uses keras-tuner's own chief/worker engine: the chief serves the oracle
over gRPC (bound to loopback unless an address is given) and runs no trials; each worker runs one
trial at a time (`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`, `KERASTUNER_TUNER_ID`).
"""

import glob
import os
import threading
import time

import keras_tuner

from tfplaybook import config as config_lib
from tfplaybook import internals, progress, validation
from tfplaybook.choices import ORACLES
from tfplaybook.files import remote
from tfplaybook.files import trial_dir as td
from tfplaybook.search import oracles
from tfplaybook.search import space as space_lib
from tfplaybook.study import tracking
from tfplaybook.study.recovery import repair_tuner_file, trial_result
from tfplaybook.study.resilience import (
    HEARTBEAT_SECONDS,
    STALE_TRIAL_SECONDS,
    BayesianStudyOracle,
    QuasiRandomStudyOracle,
    StudyAbort,
    heartbeat,
    repair_trials,
)
from tfplaybook.training import engine
from tfplaybook.training import strategy as strategy_lib
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train
from tfplaybook.training import workdir as workdir_lib

STUDY = tracking.STUDY


def make_oracle(config, space):
    study = config["study"]
    name = study.get("oracle", "quasi_random")
    objective = oracles.make_objective(config["objective"])
    common = dict(
        search_space=space,
        objective=objective,
        max_trials=study["max_trials"],
        seed=config["seed"] if study.get("seed") is None else study["seed"],
        stale_trial_seconds=study.get("stale_trial_seconds", STALE_TRIAL_SECONDS),
    )
    if name == "quasi_random":
        return QuasiRandomStudyOracle(sampler=study.get("sampler", "halton"), **common)
    if name == "bayesian":
        return BayesianStudyOracle(**common)
    raise config_lib.ConfigError(f"study.oracle={name!r} is not one of {', '.join(ORACLES)}")


class PlaybookTuner(internals.InitialSpaceHook, keras_tuner.engine.base_tuner.BaseTuner):
    """Runs each trial with `tfplaybook.training.trainer.train` into the trial's directory."""

    def __init__(
        self, oracle, base_config, space, runtime, study_dir, task=None, deadline=None, **kwargs
    ):
        self.base_config = base_config
        self.task = task
        self.deadline = deadline
        self.progress = progress.Progress(
            base_config["study"]["max_trials"],
            "trial",
            done=tracking.summarize(study_dir, base_config)["trials"],
        )
        self.space = space
        self.runtime = runtime
        self._asked = 0  # Requests since the last trial began (IDLE answers after the first).
        self._finished = {}  # Finished trials' status, for tracking.summarize.
        study_dir = os.path.abspath(study_dir)
        super().__init__(
            oracle=oracle,
            directory=os.path.dirname(study_dir),
            project_name=os.path.basename(study_dir),
            overwrite=False,
            **kwargs,
        )
        internals.retry_calls_lost_with_the_chief(self)

    def populate_initial_space(self):
        # keras-tuner reloads only when the tuner file exists, which it writes after the first
        # trial ends: a study killed during its first trial would restart its oracle from
        # scratch. Reload the oracle whenever its state or a trial exists (a lost oracle.json is
        # rebuilt from the trials: tfplaybook.study.recovery).
        oracle_file = os.path.join(self.project_dir, "oracle.json")
        trials = glob.glob(os.path.join(glob.escape(self.project_dir), "trial_*", "*.json"))
        if not internals.is_worker(self) and (os.path.exists(oracle_file) or trials):
            self.oracle.reload()
        else:
            self.default_initial_space()

    def reload(self):
        # BaseTuner.reload (the oracle, then this tuner's tuner*.json, which holds no state): a
        # damaged tuner file is rewritten once the oracle has loaded, instead of a traceback.
        if not internals.is_worker(self):
            self.oracle.reload()
        repair_tuner_file(internals.tuner_file(self), self.get_state())
        internals.load_tuner_file(self, internals.tuner_file(self))

    def pre_create_trial(self):
        # At least one trial per run, so a bound always makes progress.
        ended_here = self.progress.done > self.progress.start_done
        if self.deadline is not None and ended_here and self.deadline.expired():
            raise StudyCutShort()
        # The chief answers IDLE while another worker's trial may still need taking over: poll.
        if self._asked:
            if self._asked == 1 and self.runtime.verbose:
                print(
                    f"tuner {self.tuner_id}: every trial is assigned; waiting for the running "
                    "ones to end (or to take over one whose worker stopped)",
                    flush=True,
                )
            time.sleep(HEARTBEAT_SECONDS / 2)
        self._asked += 1

    def on_trial_begin(self, trial):
        self._asked = 0
        super().on_trial_begin(trial)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        config = self.space.apply(self.base_config, values)
        directory = self.get_trial_dir(trial.trial_id)
        os.makedirs(directory, exist_ok=True)
        remote.pull(directory)  # gs://: a trial another host started continues from the bucket.
        td.atomic_write_json(os.path.join(directory, td.HPARAMS), self.space.hparams(values))
        stop = threading.Event()
        beat = threading.Thread(target=heartbeat, args=(directory, stop), daemon=True)
        beat.start()
        gradients = internals.custom_gradients()
        try:
            status = train.train(config, directory, self.runtime, task=self.task)
        except config_lib.ConfigError as e:
            raise StudyAbort(str(e)) from None
        finally:
            stop.set()
            beat.join()
        # Free the finished trial's graphs and models. Without the forced garbage collection
        # (0.4 s a trial here): Python's own collector frees the cycles as trials go on, and the
        # 1,000-trial benchmark shows the memory staying flat. The kernel cache of the shared
        # engines stays (engine.end_trial).
        engine.end_trial()
        internals.forget_custom_gradients(gradients)
        # Diverged (or no evaluation): counted and plotted as infeasible, never retried.
        return trial_result(status, config["objective"])

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        status = td.read_status(self.get_trial_dir(trial.trial_id)) or {}
        value = status.get("best_value")
        # Counted from the trial directories (resumed and other workers' trials included): a
        # distributed worker's oracle is a gRPC client without the trial list.
        summary = tracking.summarize(self.project_dir, self.base_config, self._finished)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.hyperparameters.values.items())
        self.progress.update(
            summary["trials"],
            detail=f"trial {trial.trial_id} | {shown} | {status.get('status', '?')} | best "
            f"{_short(value)} | best so far {_short(summary['best_value'])}",
        )


class StudyCutShort(Exception):
    """The study's time bound (--max_minutes) passed: stop before the next trial."""


def print_plan(config, study_dir, space):
    """What the study will run and where it writes, before trial 0 (--quiet too)."""
    study = config["study"]
    done = tracking.summarize(study_dir, config)["trials"]
    objective = config["objective"]
    dims = [f"{d['id']} ({d['role']}, {d['scale']})" for d in space.describe() if "scale" in d]
    progress.plan(
        f"study {study_dir}: {study['max_trials']} trials"
        + (f" ({done} already finished)" if done else ""),
        [
            f"each trial: {config['max_train_steps']} steps at batch {config['batch_size']}, "
            f"evaluated every {config['eval_every_steps']} steps",
            f"oracle {study.get('oracle', 'quasi_random')} over {', '.join(dims)}",
            f"objective: validation {objective['metric']} ({objective['goal']})",
            f"writes: {study_dir} (trial directories, report.html)",
        ],
    )


def _short(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_study_json(study_dir, config, space, experiment_path, task=None):
    study = config["study"]
    functions = [n for n in task_lib.FUNCTIONS if getattr(task, n, None) is not None]
    td.atomic_write_json(
        os.path.join(study_dir, STUDY),
        {
            "name": study.get("name", os.path.basename(study_dir)),
            "experiment": experiment_path,
            "objective": config["objective"],
            "max_trials": study["max_trials"],
            "oracle": study.get("oracle", "quasi_random"),
            "search_space": space.to_spec(),
            "max_train_steps": config["max_train_steps"],
            "batch_size": config["batch_size"],
            # The config the study runs: a rerun with another one is refused (tracking).
            "config": config,
            # Which task functions the experiment defines (analysis checks configs without them).
            "task_functions": functions,
        },
    )


def write_hparams_config(study_dir, space, objective):
    """The study-level HParams-plugin config, so `tensorboard --logdir STUDY` shows the
    hyperparameter table and parallel coordinates next to each trial's scalars."""
    from tensorboard.plugins.hparams import api as hp

    from tfplaybook.training import records

    hparams = [
        hp.HParam(d["id"], description=f"{d['role']}, {d['scale']}")
        for d in space.describe()
        if d["role"] != "fixed"
    ]
    metrics = [
        hp.Metric(
            f"validation/{objective['metric']}",
            display_name="validation " f"{objective['metric']} (per evaluation)",
        ),
        hp.Metric("validation/loss"),
        hp.Metric("train/loss"),
    ]
    writer = records.EventWriter(os.path.join(study_dir, td.TENSORBOARD))
    writer.summary(hp.hparams_config_pb(hparams=hparams, metrics=metrics))
    writer.close()  # On disk now, not when the writer happens to be collected.


def check_dataset(config, runtime=None, task=None):
    """Raises ConfigError for a dataset the trials could not read, before anything is written.

    With `runtime`, the dataset is resolved as a trial would (prepared, or downloadable with
    --download); without, only the name of a TFDS dataset is checked against TFDS' registry.
    """
    from tfplaybook.training import data as data_lib
    from tfplaybook.training import task as task_lib

    if runtime is not None:
        data_lib.get_data_spec(config, task or task_lib.Task(), runtime.download)
        return
    validation.check_tfds(config, task, name_only=True)


def prepare_study(config, study_dir, runtime=None, task=None, checked=False):
    """Validates the study, its dataset and the study directory before anything is written.

    `checked`: the caller has already run tracking.check_study_dir (the same config as the
    study started with) on this directory.

    Returns:
      The parsed SearchSpace.
    """
    if "study" not in config:
        raise config_lib.ConfigError("the experiment has no 'study' section to tune")
    validation.check_study(config, task)
    internals.check()
    if not checked:
        tracking.check_study_dir(study_dir, config)
    space = space_lib.SearchSpace.from_config(config)
    workdir_lib.check_writable(study_dir)  # Before a dataset is prepared anywhere.
    check_dataset(config, runtime, task)
    if runtime is not None:
        strategy = strategy_lib.get_strategy(
            runtime.strategy, runtime.tpu, runtime.num_cpu_replicas
        )
        strategy_lib.check_batch_size(config["batch_size"], strategy)
    return space


def tune(config, study_dir, runtime, experiment_path, task=None, max_minutes=None, checked=False):
    """Runs (or resumes) the study in `study_dir`; returns the tuner.

    `task` (tfplaybook.training.task.Task) builds every trial's model and data; None uses the
    registries. With `max_minutes`, no trial starts once that much time has passed (the study stays
    resumable: the same command continues it); `tuner.cut_short` then says so.
    """
    space = prepare_study(config, study_dir, runtime, task, checked)
    with internals.installed():  # keras-tuner's internals replaced for this study only.
        return _search(config, study_dir, runtime, experiment_path, task, max_minutes, space)


def _search(config, study_dir, runtime, experiment_path, task, max_minutes, space):
    oracle = make_oracle(config, space)
    deadline = progress.Deadline(max_minutes) if max_minutes else None
    print_plan(config, study_dir, space)
    tuner = PlaybookTuner(oracle, config, space, runtime, study_dir, task, deadline)
    tuner.cut_short = False
    os.makedirs(study_dir, exist_ok=True)
    write_study_json(study_dir, config, space, experiment_path, task)
    try:
        if os.environ.get("KERASTUNER_TUNER_ID") in (None, "chief"):  # Workers leave these.
            write_hparams_config(study_dir, space, config["objective"])
            repair_trials(study_dir, config, runtime, task)
        tuner.search(verbose=0)
    except StudyCutShort:
        tuner.cut_short = True
        if runtime.verbose:
            print(
                f"study {study_dir}: stopped by --max_minutes={max_minutes:g}; run the same "
                "command again to continue it",
                flush=True,
            )
    except StudyAbort as e:
        raise config_lib.ConfigError(str(e)) from None
    return tuner
