"""Studies: a keras-tuner `BaseTuner` whose trials run the foundation training loop.

The study directory is the keras-tuner project directory: `oracle.json` and `tuner*.json` (the
oracle's position, so a re-run resumes), `study.json` (what was searched, for analysis), and one
trial directory per trial (`trial_NNNN/`, the foundation's trial-directory format plus
`hparams.json`). Every trial has the same `max_train_steps` (checklist 68) and is scored by its
best validation value over training (checklist 43). A diverged trial is reported to the oracle as
a completed, *infeasible* result (the metric `infeasible` = 1): keras-tuner would otherwise retry
it or count it towards stopping the study, and the playbook wants it counted and plotted
(checklist 41, 63).

Tuning across machines uses keras-tuner's own chief/worker engine: the chief serves the oracle
over gRPC (bound to loopback unless an address is given) and runs no trials; each worker runs one
trial at a time (`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`, `KERASTUNER_TUNER_ID`).
"""

import json
import os
import threading
import time

import keras
import keras_tuner
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute import utils as kt_dist
from keras_tuner.src.engine import trial as kt_trial
from keras_tuner.src.engine.oracle import synchronized

from tfplaybook import config as config_lib
from tfplaybook import tracking, train
from tfplaybook import trial_dir as td
from tfplaybook.search import oracles, space as space_lib

ORACLES = ("quasi_random", "bayesian")
STUDY = "study.json"
HEARTBEAT = "heartbeat"  # Rewritten by the process running a trial, so a chief can tell it lives.
HEARTBEAT_SECONDS = 2.0
STALE_TRIAL_SECONDS = 120.0  # Default of study.stale_trial_seconds.


def _atomic_save_json(path, obj):
    # keras-tuner 1.4.8 writes oracle.json, trial.json and tuner*.json in place: a SIGKILL during
    # a write leaves a torn file and the study can no longer be reloaded. Every keras-tuner state
    # write goes through utils.save_json (Stateful.save), so route it through a temporary file
    # and a rename. A keras-tuner upgrade that bypasses it is caught by bench/chaos.py and
    # tests/test_reliability.py (kills at random moments).
    text = json.dumps(obj)
    if "://" in str(path):  # gs:// and other tf.io.gfile paths: keras-tuner's own writer.
        return _ORIGINAL_SAVE_JSON(path, obj)
    td.atomic_write_text(path, text)
    return text


_ORIGINAL_SAVE_JSON = kt_utils.save_json
kt_utils.save_json = _atomic_save_json


class StudyAbort(keras_tuner.errors.FatalError):
    """A trial hit bad input or a full disk: keras-tuner must not retry it, the study stops."""


class _Resilience:
    """Mixed into our oracles: survive kills of the process, the chief or a worker.

    keras-tuner 1.4.8 on reload sends every ongoing trial to the retry queue. That is right for a
    local study (its only tuner is dead) but wrong for a restarted chief: the workers still run
    those trials, and the first worker to ask would get a copy of a trial another worker is
    running. It also never reassigns the trial of a worker that died: the study waits for it
    forever. And a kill between saving a new trial.json and oracle.json leaves a RUNNING trial
    that nothing runs, whose values the next trial repeats.
    """

    def __init__(self, *args, stale_trial_seconds=STALE_TRIAL_SECONDS, **kwargs):
        super().__init__(*args, **kwargs)
        self.stale_trial_seconds = float(stale_trial_seconds)
        self._beats = {}  # trial_id -> (last heartbeat text, local time it was first seen)
        self._saved_ongoing = {}

    def set_state(self, state):
        super().set_state(state)
        self._saved_ongoing = dict(state.get("ongoing_trials", {}))

    def reload(self):
        super().reload()
        if kt_dist.is_chief_oracle():
            # A restarted chief: the workers keep their trials (each asks again with its id).
            for tuner_id, trial_id in self._saved_ongoing.items():
                if trial_id in self._retry_queue:
                    self._retry_queue.remove(trial_id)
                self.ongoing_trials[tuner_id] = self.trials[trial_id]
        known = set(self.end_order) | set(self._retry_queue)
        known |= {t.trial_id for t in self.ongoing_trials.values()}
        for trial_id, trial in sorted(self.trials.items()):
            if trial.status == kt_trial.TrialStatus.RUNNING and trial_id not in known:
                # Started (trial.json written) but the kill came before oracle.json: run it.
                self._record_values(trial)
                self._retry_queue.append(trial_id)
                td.warn(f"trial {trial_id} was started but not recorded by the oracle; resuming it")

    def _heartbeat_age(self, trial_id, now):
        path = os.path.join(self._project_dir, f"trial_{trial_id}", HEARTBEAT)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            text = None
        last = self._beats.get(trial_id)
        if last is None or last[0] != text:
            # Changes are judged by this process' clock only: hosts' clocks may disagree.
            self._beats[trial_id] = (text, now)
            return 0.0
        return now - last[1]

    @synchronized
    def create_trial(self, tuner_id):
        distributed = kt_dist.is_chief_oracle()
        if distributed and tuner_id not in self.ongoing_trials and not self._retry_queue:
            now = time.time()
            for owner, trial in list(self.ongoing_trials.items()):
                age = self._heartbeat_age(trial.trial_id, now)
                if age >= self.stale_trial_seconds:
                    # Its worker died: hand the trial (and its checkpoint) to the one asking.
                    td.warn(
                        f"trial {trial.trial_id} of tuner {owner!r} has had no heartbeat for "
                        f"{age:.0f} s; reassigning it to tuner {tuner_id!r}"
                    )
                    self.ongoing_trials.pop(owner)
                    self.tuner_ids.discard(owner)
                    self.tuner_ids.add(tuner_id)
                    self.ongoing_trials[tuner_id] = trial
                    self._beats.pop(trial.trial_id, None)
                    self.save()
                    return trial
            if self.max_trials and len(self.trials) >= self.max_trials and self.ongoing_trials:
                # No new trial, but another worker's trial may still need taking over: wait.
                self.tuner_ids.add(tuner_id)
                return kt_trial.Trial(self.hyperparameters.copy(), status="IDLE")
        return super().create_trial(tuner_id)


class QuasiRandomStudyOracle(_Resilience, oracles.QuasiRandomOracle):
    """QuasiRandomOracle that survives kills (see _Resilience)."""


class BayesianStudyOracle(_Resilience, oracles.BayesianOracle):
    """BayesianOracle that survives kills (see _Resilience)."""


def make_oracle(config, space):
    study = config["study"]
    name = study.get("oracle", "quasi_random")
    objective = oracles.make_objective(config["objective"])
    common = dict(
        search_space=space,
        objective=objective,
        max_trials=study["max_trials"],
        seed=study.get("seed", config["seed"]),
        stale_trial_seconds=study.get("stale_trial_seconds", STALE_TRIAL_SECONDS),
    )
    if name == "quasi_random":
        return QuasiRandomStudyOracle(sampler=study.get("sampler", "halton"), **common)
    if name == "bayesian":
        return BayesianStudyOracle(**common)
    raise config_lib.ConfigError(f"study.oracle={name!r} is not one of {', '.join(ORACLES)}")


def infeasible_value(goal):
    """The objective reported for a diverged trial with no evaluation (worst possible)."""
    return 0.0 if goal == "max" else 1e30


class PlaybookTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Runs each trial with `tfplaybook.train.train` into the trial's directory."""

    def __init__(self, oracle, base_config, space, runtime, study_dir, **kwargs):
        self.base_config = base_config
        self.space = space
        self.runtime = runtime
        self.study_started = time.time()
        self.best_so_far = None
        self._asked = False
        if os.path.isdir(study_dir):  # A resumed study keeps counting from its finished trials.
            self.best_so_far = tracking.summarize(study_dir, base_config)["best_value"]
        study_dir = os.path.abspath(study_dir)
        super().__init__(
            oracle=oracle,
            directory=os.path.dirname(study_dir),
            project_name=os.path.basename(study_dir),
            overwrite=False,
            **kwargs,
        )

    def _populate_initial_space(self):
        # keras-tuner reloads only when the tuner file exists, which it writes after the first
        # trial ends: a study killed during its first trial would restart its oracle from
        # scratch. Reload the oracle whenever its state exists.
        oracle_file = os.path.join(self.project_dir, "oracle.json")
        if not self._is_worker() and os.path.exists(oracle_file):
            self.oracle.reload()
        else:
            super()._populate_initial_space()

    def pre_create_trial(self):
        # The chief answers IDLE while another worker's trial may still need taking over: poll.
        if self._asked:
            time.sleep(HEARTBEAT_SECONDS / 2)
        self._asked = True

    def on_trial_begin(self, trial):
        self._asked = False
        super().on_trial_begin(trial)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        config = self.space.apply(self.base_config, values)
        directory = self.get_trial_dir(trial.trial_id)
        os.makedirs(directory, exist_ok=True)
        td.atomic_write_json(os.path.join(directory, td.HPARAMS), self.space.hparams(values))
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(directory, stop), daemon=True)
        beat.start()
        try:
            status = train.train(config, directory, self.runtime)
        except config_lib.ConfigError as e:
            raise StudyAbort(str(e)) from None
        finally:
            stop.set()
            beat.join()
        keras.backend.clear_session()  # Free the finished trial's graphs and models.
        objective = config["objective"]
        best = status.get("best_value")
        if status["status"] == td.COMPLETED and best is not None:
            return {objective["metric"]: best, oracles.INFEASIBLE_METRIC: 0.0}
        # Diverged (or no evaluation): counted and plotted as infeasible, never retried.
        return {
            objective["metric"]: best if best is not None else infeasible_value(objective["goal"]),
            oracles.INFEASIBLE_METRIC: 1.0,
        }

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        status = td.read_status(self.get_trial_dir(trial.trial_id)) or {}
        value = status.get("best_value")
        goal = self.base_config["objective"]["goal"]
        if status.get("status") == td.COMPLETED and value is not None:
            if self.best_so_far is None or (
                value > self.best_so_far if goal == "max" else value < self.best_so_far
            ):
                self.best_so_far = value
        # Counted from the trial directories: a distributed worker's oracle is a gRPC client.
        summary = tracking.summarize(self.project_dir, self.base_config)
        left = max(0, self.base_config["study"]["max_trials"] - summary["trials"])
        shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.hyperparameters.values.items())
        print(
            f"trial {trial.trial_id} | {shown} | {status.get('status', '?')} | best "
            f"{_short(value)} | best so far {_short(self.best_so_far)} | {left} left | "
            f"{time.time() - self.study_started:.0f} s",
            flush=True,
        )


def _heartbeat(directory, stop):
    """Rewrites DIR/heartbeat every HEARTBEAT_SECONDS until `stop` is set."""
    count = 0
    while True:
        try:
            td.atomic_write_text(os.path.join(directory, HEARTBEAT), f"{os.getpid()} {count}\n")
        except OSError:
            pass  # A full disk is reported by the training loop itself.
        count += 1
        if stop.wait(HEARTBEAT_SECONDS):
            return


def repair_trials(study_dir, config, runtime):
    """Checks every trial directory of a study before it (re)starts; repairs damaged files.

    A damaged status.json is recovered by `train.train` (a finished trial's status is rebuilt
    from its measurements, an unfinished trial resumes from its checkpoint); a damaged
    best-checkpoint index is rebuilt from the weight files and the measurements. Every other
    trial is left untouched. Returns the trial directories that were repaired.
    """
    from tfplaybook import checkpoints

    repaired = []
    for directory in tracking.trial_dirs(study_dir):
        try:
            td.read_status(directory)
            status_ok = True
        except td.DamagedFileError as e:
            td.warn(str(e))
            status_ok = False
        best_dir = os.path.join(directory, td.CHECKPOINTS, checkpoints.BEST)
        index = os.path.join(best_dir, "index.json")
        index_ok = True
        if os.path.exists(index):
            try:
                td.read_json(index)
            except td.DamagedFileError:
                index_ok = False
        if status_ok and index_ok:
            continue
        try:
            trial_config = td.read_config(directory)
        except (OSError, td.DamagedFileError) as e:
            td.warn(f"{directory} cannot be repaired ({e}); left as it is")
            continue
        if not status_ok:
            train.train(trial_config, directory, runtime)
            keras.backend.clear_session()
        if not index_ok:
            objective = trial_config["objective"]
            steps, values = td.series(
                td.read_measurements(directory), td.VALIDATION, objective["metric"]
            )
            best = checkpoints.BestCheckpoints(
                best_dir,
                objective["metric"],
                objective["goal"],
                trial_config.get("keep_best_checkpoints", 3),
                evaluations=dict(zip(steps, values)),
            )
            best._write_index([])
        repaired.append(directory)
    return repaired


def _short(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_study_json(study_dir, config, space, experiment_path):
    study = config["study"]
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
        },
    )


def write_hparams_config(study_dir, space, objective):
    """The study-level HParams-plugin config, so `tensorboard --logdir STUDY` shows the
    hyperparameter table and parallel coordinates next to each trial's scalars."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

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
    with tf.summary.create_file_writer(os.path.join(study_dir, td.TENSORBOARD)).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)


def check_dataset(config, runtime=None):
    """Raises ConfigError for a dataset the trials could not read, before anything is written.

    With `runtime`, the dataset is resolved as a trial would (prepared, or downloadable with
    --download); without, only the name of a TFDS dataset is checked against TFDS' registry.
    """
    from tfplaybook import data as data_lib

    if runtime is not None:
        data_lib.get_data_spec(config["data"], config["seed"], runtime.download)
        return
    dataset = config["data"]["dataset"]
    if dataset.startswith("tfds:"):
        import tensorflow_datasets as tfds

        name = dataset[5:].split("/")[0].split(":")[0]
        try:
            tfds.builder_cls(name)
        except Exception:  # TFDS raises its own DatasetNotFoundError (a private class).
            raise config_lib.ConfigError(
                f"dataset {dataset!r}: TFDS has no dataset named {name!r}"
            ) from None


def prepare_study(config, study_dir, runtime=None):
    """Validates the study, its dataset and the study directory before anything is written.

    Returns:
      The parsed SearchSpace.
    """
    if "study" not in config:
        raise config_lib.ConfigError("the experiment has no 'study' section to tune")
    max_trials = config["study"].get("max_trials")
    if not isinstance(max_trials, int) or max_trials < 1:
        raise config_lib.ConfigError(f"study.max_trials={max_trials!r} must be a positive integer")
    name = config["study"].get("oracle", "quasi_random")
    if name not in ORACLES:  # make_oracle says the same, but only after files are written.
        raise config_lib.ConfigError(f"study.oracle={name!r} is not one of {', '.join(ORACLES)}")
    space = space_lib.SearchSpace.from_config(config)
    check_dataset(config, runtime)
    train.check_writable(study_dir)
    existing = os.path.join(study_dir, STUDY)
    if os.path.exists(existing):
        try:
            saved = td.read_json(existing)
        except td.DamagedFileError as e:
            # Rewritten below; the oracle's own fingerprint still refuses a changed space.
            td.warn(f"{e}; it will be rewritten")
            saved = {"search_space": space.to_spec()}
        if saved.get("search_space") != space.to_spec():
            raise config_lib.ConfigError(
                f"--workdir={study_dir!r} holds a study over a different search space; use a new "
                "--workdir"
            )
    return space


def tune(config, study_dir, runtime, experiment_path):
    """Runs (or resumes) the study in `study_dir`; returns the tuner."""
    space = prepare_study(config, study_dir, runtime)
    oracle = make_oracle(config, space)
    tuner = PlaybookTuner(oracle, config, space, runtime, study_dir)
    os.makedirs(study_dir, exist_ok=True)
    write_study_json(study_dir, config, space, experiment_path)
    try:
        if os.environ.get("KERASTUNER_TUNER_ID") in (None, "chief"):  # Workers leave these.
            write_hparams_config(study_dir, space, config["objective"])
            repair_trials(study_dir, config, runtime)
        tuner.search(verbose=0)
    except StudyAbort as e:
        raise config_lib.ConfigError(str(e)) from None
    return tuner
