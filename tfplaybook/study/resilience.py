"""Keeping a study alive through kills of the process, the chief or a worker.

keras-tuner 1.4.8, measured here under random SIGKILLs (bench/chaos.py) and with a chief and two
workers on loopback: it writes its state files in place (a torn file blocks reloading), re-queues
every ongoing trial when a chief restarts (two workers on one trial), never reassigns the trial of
a worker that died (the chief waits for ever), and a kill between writing trial.json and
oracle.json leaves a trial nobody runs. This module mends each of these around keras-tuner's own
engine: atomic state writes, oracles that keep trials with their workers and reassign a trial whose
heartbeat stopped, and the repair of damaged trial files before a study restarts.
"""

import os
import time

import keras
import keras_tuner
from keras_tuner.engine import trial as kt_trial

from tfplaybook import internals
from tfplaybook.files import remote
from tfplaybook.files import trial_dir as td
from tfplaybook.search import oracles
from tfplaybook.study import recovery, tracking
from tfplaybook.training import trainer as train

HEARTBEAT = "heartbeat"  # Rewritten by the process running a trial, so a chief can tell it lives.
HEARTBEAT_SECONDS = 2.0
STALE_TRIAL_SECONDS = 120.0  # Default of study.stale_trial_seconds.


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

    A worker that dies *between* trials holds no trial, but keras-tuner's chief waits for every
    tuner that ever asked to be told to stop: it never exited. Every request of a worker counts
    as its heartbeat: a chief forgets a tuner that holds no trial and has not asked for
    `stale_trial_seconds` (idle workers ask every HEARTBEAT_SECONDS / 2), so it ends by itself.
    """

    def __init__(self, *args, stale_trial_seconds=STALE_TRIAL_SECONDS, **kwargs):
        super().__init__(*args, **kwargs)
        self.stale_trial_seconds = float(stale_trial_seconds)
        self._beats = {}  # trial_id -> (last heartbeat text, local time it was first seen)
        self._last_seen = {}  # tuner_id -> local time of its last request
        self._saved_ongoing = {}
        if internals.is_chief_oracle():
            internals.install_chief_exit_check()

    def set_state(self, state):
        super().set_state(state)
        self._saved_ongoing = dict(state.get("ongoing_trials", {}))

    def reload(self):
        # keras-tuner's reload, with damaged or missing files rebuilt (tfplaybook.study.recovery).
        recovery.reload_oracle(self)
        # A trial.json rebuilt while its status.json was unreadable too says RUNNING: run it
        # again even if oracle.json had ended it (train() rebuilds its status, or resumes it).
        running = {
            t for t, trial in self.trials.items() if trial.status == kt_trial.TrialStatus.RUNNING
        }
        self.end_order = [t for t in self.end_order if t not in running]
        ended = set(self.end_order)
        # keras-tuner re-queues the trials that were ongoing: their tuners are gone. A trial that
        # had ended (a kill between keras-tuner's save and its removal from ongoing) is not rerun.
        internals.set_retry_queue(self, [t for t in internals.retry_queue(self) if t not in ended])
        queue = internals.retry_queue(self)
        for trial in self.ongoing_trials.values():
            if trial.trial_id not in ended and trial.trial_id not in queue:
                queue.append(trial.trial_id)
        self.ongoing_trials = {}
        if internals.is_chief_oracle():
            # A restarted chief: the workers keep their trials (each asks again with its id).
            for tuner_id, trial_id in self._saved_ongoing.items():
                if trial_id in ended:
                    continue
                if trial_id in queue:
                    queue.remove(trial_id)
                self.ongoing_trials[tuner_id] = self.trials[trial_id]
        known = set(self.end_order) | set(queue)
        known |= {t.trial_id for t in self.ongoing_trials.values()}
        for trial_id, trial in sorted(self.trials.items()):
            if trial.status == kt_trial.TrialStatus.RUNNING and trial_id not in known:
                # Started (trial.json written) but the kill came before oracle.json: run it.
                internals.record_values(self, trial)
                queue.append(trial_id)
                td.warn(f"trial {trial_id} is unfinished but not queued by the oracle; resuming it")

    def _heartbeat_age(self, trial_id, now):
        path = os.path.join(internals.project_dir(self), f"trial_{trial_id}", HEARTBEAT)
        try:
            text = remote.read_text(path)  # From the bucket for a gs:// study: another host's.
        except OSError:
            text = None
        last = self._beats.get(trial_id)
        if last is None or last[0] != text:
            # Changes are judged by this process' clock only: hosts' clocks may disagree.
            self._beats[trial_id] = (text, now)
            return 0.0
        return now - last[1]

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        self._last_seen[tuner_id] = time.time()
        distributed = internals.is_chief_oracle()
        if distributed and tuner_id not in self.ongoing_trials and not internals.retry_queue(self):
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

    @keras_tuner.synchronized
    def end_trial(self, trial):
        owner = [t for t, o in self.ongoing_trials.items() if o.trial_id == trial.trial_id]
        if not owner and trial.trial_id in self.end_order:
            # A worker repeating an end this chief recorded: the reply was lost when the chief
            # died mid-call (internals.retry_calls_lost_with_the_chief). Recorded once.
            return
        super().end_trial(trial)
        for tuner_id in owner:
            self._last_seen[tuner_id] = time.time()
        # keras-tuner saves oracle.json before it removes the trial from ongoing_trials, so the
        # last save of a study listed its last trial as ongoing: save again without it.
        self.save()

    @keras_tuner.synchronized
    def forget_silent_tuners(self):
        """Forgets tuners that hold no trial and have not asked for one in stale_trial_seconds.

        keras-tuner's chief exits once no trial is ongoing and every tuner that asked has been
        told to stop; a worker that died between trials is never told. Called by the chief's
        exit check (`internals.install_chief_exit_check`). A forgotten tuner that asks again is
        known again.
        """
        now = time.time()
        for tuner_id in sorted(self.tuner_ids - set(self.ongoing_trials)):
            silent = now - self._last_seen.setdefault(tuner_id, now)
            if silent >= self.stale_trial_seconds:
                self.tuner_ids.discard(tuner_id)
                td.warn(
                    f"tuner {tuner_id!r} holds no trial and has not asked for one for "
                    f"{silent:.0f} s; the study no longer waits for it"
                )


class QuasiRandomStudyOracle(_Resilience, oracles.QuasiRandomOracle):
    """QuasiRandomOracle that survives kills (see _Resilience)."""


class BayesianStudyOracle(_Resilience, oracles.BayesianOracle):
    """BayesianOracle that survives kills (see _Resilience)."""


def heartbeat(directory, stop):
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


def repair_trials(study_dir, config, runtime, task=None):
    """Checks every trial directory of a study before it (re)starts; repairs damaged files.

    A damaged status.json is recovered by `train.train` (a finished trial's status is rebuilt
    from its measurements, an unfinished trial resumes from its checkpoint); a damaged
    best-checkpoint index is rebuilt from the weight files and the measurements. Every other
    trial is left untouched. Returns the trial directories that were repaired.
    """
    from tfplaybook.training import checkpoints

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
            train.train(trial_config, directory, runtime, task=task)
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
            best.write_index([])
        repaired.append(directory)
    return repaired
