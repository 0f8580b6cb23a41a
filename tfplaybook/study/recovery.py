"""Reloading a study's keras-tuner files, and rebuilding them from the trial directories.

keras-tuner keeps a study in `oracle.json` (the oracle: which trials exist, started and ended, its
seed and, for our oracles, the position in the quasi-random sequence), one `trial_N/trial.json`
per trial and a `tuner*.json` per tuner. keras-tuner 1.4.8 ends in a JSONDecodeError traceback
when any of them is empty or torn, and a KeyError when oracle.json names a trial that has no
trial.json. Every trial directory also holds tfplaybook's own record of the trial (`hparams.json`:
the values; `status.json`: running or finished, and the best value), so each file is rebuilt from
those, with a warning:

- a damaged or missing `trial.json` from the directory's `hparams.json` and `status.json`: a
  finished trial is reported to the oracle exactly as `PlaybookTuner.run_trial` reported it, an
  unfinished one is RUNNING and resumes from its checkpoint;
- a damaged, missing or inconsistent `oracle.json` from the trials: the started and ended trials,
  the hashes of their values (so none is repeated), and the oracle's own section (design,
  position in the sequence: `recover_state` of tfplaybook.search.oracles); RUNNING trials are
  resumed (on a chief: kept by their workers until their heartbeat stops);
- a damaged `tuner*.json` is rewritten (keras-tuner's BaseTuner keeps no state in it).

What cannot be rebuilt (a damaged trial.json without readable hparams.json: the values are
lost; trials that are not points of the study's sequence) is refused with one ConfigError line.
Everything is decided before anything is written, so a refused run changes no file.
"""

import glob
import json
import os

import keras_tuner

from tfplaybook import internals
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td
from tfplaybook.search import oracles

ORACLE = "oracle.json"
TRIAL = "trial.json"
_TrialStatus = keras_tuner.engine.trial.TrialStatus
# Keys of keras-tuner 1.4.8's Oracle.get_state, all read back by Oracle.set_state.
_ORACLE_KEYS = (
    "ongoing_trials",
    "hyperparameters",
    "start_order",
    "end_order",
    "run_times",
    "retry_queue",
    "seed",
    "seed_state",
    "tried_so_far",
    "id_to_hash",
    "display",
)


def infeasible_value(goal):
    """The objective reported for a diverged trial with no evaluation (worst possible)."""
    return 0.0 if goal == "max" else 1e30


def trial_result(status, objective):
    """The metrics a finished trial reports to the oracle, from its status.json.

    A diverged trial (or one without an evaluation) is a completed, infeasible result: the metric
    `infeasible` = 1 (keras-tuner would retry an exception or NaN; the playbook counts it).
    """
    best = status.get("best_value")
    if status["status"] == td.COMPLETED and best is not None:
        return {objective["metric"]: best, oracles.INFEASIBLE_METRIC: 0.0}
    return {
        objective["metric"]: best if best is not None else infeasible_value(objective["goal"]),
        oracles.INFEASIBLE_METRIC: 1.0,
    }


def damaged_json(path):
    """None when `path` holds a JSON object, else why not (a missing file counts as damaged)."""
    try:
        value = td.read_json(path)
    except FileNotFoundError:
        return f"{path} is missing"
    except td.DamagedFileError as e:
        return str(e)
    if not isinstance(value, dict):
        return f"{path} is damaged (a JSON {type(value).__name__}, not an object)"
    return None


def reload_oracle(oracle):
    """Loads the study of `oracle`'s project directory into it, rebuilding damaged files.

    Does what keras-tuner's `Oracle.reload` does (trials from their trial.json, the state from
    oracle.json), but nothing is written until every file has been read and every damaged one
    rebuilt in memory; only then are the rebuilt files written, each with a warning.

    Args:
      oracle: a tfplaybook oracle (tfplaybook.search.oracles) with its project directory set.

    Raises:
      ConfigError: when a file cannot be rebuilt.
    """
    project = internals.project_dir(oracle)
    trials, rebuilt = _load_trials(oracle, project)
    oracle.trials = dict(trials)
    path = os.path.join(project, ORACLE)
    problem = damaged_json(path)
    if problem is None:
        problem = _set_saved_state(oracle, td.read_json(path))
    if problem is not None:
        state = rebuild_state(oracle, trials)
        oracle.set_state(state)
    for trial_id in rebuilt:  # Decided: now write.
        internals.save_trial(oracle, trials[trial_id])
        td.warn(
            f"{os.path.join(project, 'trial_' + trial_id, TRIAL)} was damaged or missing; "
            f"rebuilt it from the trial's {td.HPARAMS} and {td.STATUS}"
        )
    if problem is not None:
        oracle.save()
        td.warn(
            f"{problem}; rebuilt the oracle's state from {len(trials)} trial directories "
            f"(next point of the sequence: {state.get('tfplaybook', {}).get('next_index')})"
        )


def _set_saved_state(oracle, state):
    """Sets the saved state; returns why it is damaged (None when it loaded)."""
    path = os.path.join(internals.project_dir(oracle), ORACLE)
    missing = [k for k in _ORACLE_KEYS + ("tfplaybook",) if k not in state]
    if missing:
        return f"{path} is damaged (no {', '.join(missing)})"
    try:
        named = set(state["ongoing_trials"].values()) | set(state["start_order"])
        named |= set(state["end_order"]) | set(state["retry_queue"])
    except (AttributeError, TypeError):
        return f"{path} is damaged (malformed trial lists)"
    unknown = sorted(named - set(oracle.trials), key=oracles.trial_number)
    if unknown:
        return f"{path} names trial {unknown[0]}, which has no {TRIAL}"
    try:
        oracle.set_state(state)
    except ConfigError:
        raise  # A saved state of another study (space, seed, sampler): refused, not repaired.
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return f"{path} is damaged ({type(e).__name__}: {e})"
    return None


def _load_trials(oracle, project):
    """({trial_id: Trial}, [ids rebuilt]) from the trial directories; writes nothing."""
    trials, rebuilt = {}, []
    for directory in sorted(glob.glob(os.path.join(glob.escape(project), "trial_*"))):
        if not os.path.isdir(directory):
            continue
        trial_id = os.path.basename(directory)[len("trial_") :]
        path = os.path.join(directory, TRIAL)
        problem = damaged_json(path)
        if problem is None:
            try:
                trial = keras_tuner.engine.trial.Trial.load(path)
                trials[trial.trial_id] = trial
                continue
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                problem = f"{path} is damaged ({type(e).__name__}: {e})"
        if not os.path.exists(path) and not os.path.exists(os.path.join(directory, td.HPARAMS)):
            continue  # keras-tuner made the directory; the kill came before the trial existed.
        trials[trial_id] = _rebuild_trial(oracle, directory, trial_id, problem)
        rebuilt.append(trial_id)
    return trials, rebuilt


def _rebuild_trial(oracle, directory, trial_id, problem):
    """A Trial from the directory's hparams.json and status.json (as run_trial reported it)."""
    hparams = os.path.join(directory, td.HPARAMS)
    lost = damaged_json(hparams)
    values = None if lost else td.read_json(hparams).get("values")
    if not isinstance(values, dict):
        raise ConfigError(
            f"{problem}, and {lost or hparams + ' has no values'}: trial {trial_id}'s "
            "hyperparameters are lost; restore one of the two files or move the trial directory "
            "out of the study"
        )
    try:
        status = td.read_status(directory)
    except td.DamagedFileError:
        status = None  # train() rebuilds it from the measurements when the trial is resumed.
    hyperparameters = oracle.hyperparameters.copy()
    # In keras-tuner's order; hparams.json also lists the space's fixed entries, which
    # keras-tuner does not hold.
    hyperparameters.values = {
        hp.name: values[hp.name] for hp in hyperparameters.space if hp.name in values
    }
    trial = keras_tuner.engine.trial.Trial(hyperparameters, trial_id=trial_id)
    if status is None or status["status"] not in td.FINISHED:
        return trial  # RUNNING: resumed from its checkpoint.
    objective = {"metric": oracle.objective.name, "goal": oracle.objective.direction}
    for name, value in trial_result(status, objective).items():
        direction = objective["goal"] if name == objective["metric"] else None
        trial.metrics.register(name, direction=direction)
        trial.metrics.update(name, value, step=0)
    trial.status = _TrialStatus.COMPLETED
    oracle.score_trial(trial)
    return trial


def rebuild_state(oracle, trials):
    """The oracle state (as oracle.json holds it) that the trials imply.

    Ended trials (COMPLETED, FAILED, INVALID) are ended, in the order of their ids; RUNNING
    ones are ongoing, owned by "unknown-ID" (a local study's reload re-queues them; a chief keeps
    them until their heartbeat stops). The hyperparameters are the union of the trials' spaces.
    """
    order = sorted(trials, key=oracles.trial_number)
    for trial_id in order:
        oracle.update_space(trials[trial_id].hyperparameters)
    ended = [t for t in order if trials[t].status != _TrialStatus.RUNNING]
    running = [t for t in order if trials[t].status == _TrialStatus.RUNNING]
    hashes = {}
    for trial_id in order:
        trial = trials[trial_id]
        trial.hyperparameters.ensure_active_values()
        hashes[trial_id] = internals.values_hash(oracle, trial.hyperparameters.values)
    state = {
        "ongoing_trials": {f"unknown-{t}": t for t in running},
        "hyperparameters": oracle.hyperparameters.get_config(),
        "start_order": order,
        "end_order": ended,
        "run_times": {t: 1 for t in ended},
        "retry_queue": [],
        "seed": oracle.seed,
        "seed_state": internals.seed_state(oracle),
        "tried_so_far": sorted(set(hashes.values())),
        "id_to_hash": hashes,
        "display": {"search_start": None, "trial_start": {}, "trial_number": {}},
    }
    if hasattr(oracle, "recover_state"):
        state["tfplaybook"] = oracle.recover_state(trials)
    return json.loads(json.dumps(state, default=_plain))


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {value!r}")


def repair_tuner_file(path, state):
    """Rewrites a damaged tuner*.json with `state`; returns whether it did."""
    problem = damaged_json(path)
    if problem is None or not os.path.exists(path):
        return False
    td.atomic_write_text(path, json.dumps(state))
    td.warn(f"{problem}; rewrote it (keras-tuner keeps no study state there)")
    return True
