"""Deciding whether to adopt a change (checklist 57-61): rerun both bests, then apply the rule.

`--mode=compare --baseline=STUDY --candidate=STUDY --reruns=N` takes the best completed trial of
each study, re-trains its exact config N times with new seeds (trial variance: initialisation,
data order), and adopts the candidate only if a one-sided Welch t-test on the reruns finds it
better at level 0.05 (`tfplaybook.analysis.compare.decide`). Reruns are ordinary trial
directories, so an interrupted comparison resumes where it stopped.
"""

import os

from tfplaybook import config as config_lib
from tfplaybook import selection, tracking
from tfplaybook import trainer as train
from tfplaybook import trial_dir as td
from tfplaybook.analysis import compare, report


def best_trial(study_dir):
    """The directory and config of a study's best completed trial.

    Raises:
      ConfigError: when the directory holds no completed trial.
    """
    best = None
    for directory in tracking.trial_dirs(study_dir):
        try:
            status = td.read_status(directory)
            config = td.read_config(directory)
        except (td.DamagedFileError, OSError):
            continue
        value = status.get("best_value")
        if status["status"] != td.COMPLETED or value is None:
            continue
        goal = config["objective"]["goal"]
        if best is None or selection.is_better(value, best[2], goal):
            best = (directory, config, value)
    if best is None:
        raise config_lib.ConfigError(f"study {study_dir!r} has no completed trial to compare")
    return best[0], best[1]


def study_task(study_dir):
    """The Task a study's trials ran with: its experiment file's functions, else the registries.

    study.json records the experiment file; a study of a user task is rerun with the same
    build_model and make_dataset, so that file must still exist.
    """
    from tfplaybook import task as task_lib
    from tfplaybook import tuner

    path = os.path.join(study_dir, tuner.STUDY)
    experiment = td.read_json(path).get("experiment") if os.path.exists(path) else None
    if not experiment or not os.path.isfile(experiment):
        return task_lib.Task()
    return task_lib.load(experiment)[1]


def rerun(config, out_dir, reruns, runtime, task=None):
    """Trains `config` with seeds seed+1 .. seed+reruns; returns the best values."""
    values = []
    for k in range(1, reruns + 1):
        seeded = dict(config, seed=config["seed"] + k)
        status = train.train(seeded, os.path.join(out_dir, f"rerun_{k}"), runtime, task=task)
        values.append(status.get("best_value") if status["status"] == td.COMPLETED else None)
    return [float("nan") if v is None else v for v in values]


def compare_studies(baseline_dir, candidate_dir, reruns, out_dir, runtime):
    """Reruns both bests and writes the decision report into `out_dir`; returns the decision."""
    if reruns < 2:
        raise config_lib.ConfigError(
            f"--reruns={reruns}: at least 2 reruns per study are needed to measure trial variance"
        )
    base_trial, base_config = best_trial(baseline_dir)
    cand_trial, cand_config = best_trial(candidate_dir)
    goal = base_config["objective"]["goal"]
    if cand_config["objective"] != base_config["objective"]:
        raise config_lib.ConfigError(
            f"the studies optimise different objectives ({base_config['objective']} vs "
            f"{cand_config['objective']}); compare studies of the same objective"
        )
    baseline_values = rerun(
        base_config, os.path.join(out_dir, "baseline"), reruns, runtime, study_task(baseline_dir)
    )
    candidate_values = rerun(
        cand_config, os.path.join(out_dir, "candidate"), reruns, runtime, study_task(candidate_dir)
    )
    decision = compare.decide(baseline_values, candidate_values, goal)
    report.write_comparison_report(
        out_dir,
        decision,
        {
            "baseline study": baseline_dir,
            "baseline trial": base_trial,
            "candidate study": candidate_dir,
            "candidate trial": cand_trial,
            "reruns": reruns,
        },
    )
    return decision
