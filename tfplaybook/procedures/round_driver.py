"""The tuning rounds of --round (checklist 72-76): the config of round 1 or round 2.

Round 1 (with --mode=tune) shortens the production config; round 2 (with --mode=train) trains the
best trial of the round-1 study to the production max_train_steps (the rules:
tfplaybook.procedures.rounds). run.load_config applies it before the config is checked again.
"""

import os

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir as td
from tfplaybook.procedures import driver_base, rounds
from tfplaybook.study import tracking


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
        return _round_result(driver_base.call_rule(rounds.round1_config, config))
    if mode != "train":
        raise config_lib.ConfigError(f"--round=2 goes with --mode=train, not --mode={mode}")
    if not source or not os.path.isdir(source):
        raise config_lib.ConfigError(f"--round=2 needs --from=STUDY_DIR; got --from={source!r}")
    best = best_trial_config(source, config["objective"]["goal"])
    return _round_result(
        driver_base.call_rule(rounds.round2_config, best, config["max_train_steps"])
    )


def _round_result(res):
    print(f"round: {res['recommendation']}")
    return res["config"]
