"""Deciding whether to adopt a change (checklist 57-61): rerun both bests, then apply the rule.

`--mode=compare --baseline=STUDY --candidate=STUDY --reruns=N` takes the best completed trial of
each study, re-trains its exact config N times with new seeds (trial variance), and adopts the
candidate only if a one-sided Welch t-test on the reruns finds it better at level 0.05
(`tfplaybook.analysis.compare.decide`). Reruns are ordinary trial directories, so an interrupted
comparison resumes where it stopped.

Which seeds change (`--rerun_vary`, the variance sources of checklist 59): `both` (default) gives
each rerun a new `seed` and with it a new data order; `init` a new `seed` (initialisation and
dropout) with the data order of the original (`data_seed` kept); `data` a new data order
(`data_seed`) with the original initialisation. `sources` runs all three sets of reruns, decides
on `both`, and reports each arm's standard deviation per source, so a user can see whether the
trial-to-trial noise comes from the initialisation or from the data order.
"""

import os

from tfplaybook import choices
from tfplaybook import config as config_lib
from tfplaybook.analysis import compare, report
from tfplaybook.files import trial_dir as td
from tfplaybook.study import tracking
from tfplaybook.training import selection


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
    from tfplaybook.study import tuner
    from tfplaybook.training import task as task_lib

    path = os.path.join(study_dir, tuner.STUDY)
    experiment = td.read_json(path).get("experiment") if os.path.exists(path) else None
    if not experiment or not os.path.isfile(experiment):
        return task_lib.Task()
    return task_lib.load(experiment)[1]


VARY = choices.RERUN_SEEDS
VARY_CHOICES = choices.RERUN_VARY_CHOICES
_PREFIX = {"both": "rerun", "init": "rerun_init", "data": "rerun_data"}


def seeded(config, k, vary="both"):
    """The config of rerun k (k >= 1) when `vary` ("both", "init" or "data") seeds change."""
    if vary not in VARY:
        raise config_lib.ConfigError(f"--rerun_vary={vary!r}; allowed: {', '.join(VARY_CHOICES)}")
    data_seed = config.get("data_seed")
    original_data = config["seed"] if data_seed is None else data_seed
    if vary == "both":
        return dict(config, seed=config["seed"] + k)
    if vary == "init":
        return dict(config, seed=config["seed"] + k, data_seed=original_data)
    return dict(config, data_seed=original_data + k)


def rerun(config, out_dir, reruns, runtime, task=None, vary="both"):
    """Trains rerun 1..reruns of `config` (seeds per `vary`); returns the best values."""
    from tfplaybook.training import trainer as train  # TensorFlow: not for the early checks.

    values = []
    for k in range(1, reruns + 1):
        directory = os.path.join(out_dir, f"{_PREFIX[vary]}_{k}")
        status = train.train(seeded(config, k, vary), directory, runtime, task=task)
        values.append(status.get("best_value") if status["status"] == td.COMPLETED else None)
    return [float("nan") if v is None else v for v in values]


def compare_studies(baseline_dir, candidate_dir, reruns, out_dir, runtime, vary="both"):
    """Reruns both bests and writes the decision report into `out_dir`; returns the decision.

    With vary="sources" the decision (on the "both" reruns) also holds "variance_sources":
    {arm: {source: standard deviation}}.
    """
    if vary not in VARY_CHOICES:
        raise config_lib.ConfigError(f"--rerun_vary={vary!r}; allowed: {', '.join(VARY_CHOICES)}")
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
    arms = {
        "baseline": (base_config, study_task(baseline_dir)),
        "candidate": (cand_config, study_task(candidate_dir)),
    }
    sources = VARY if vary == "sources" else (vary,)
    values = {
        (arm, source): rerun(config, os.path.join(out_dir, arm), reruns, runtime, task, source)
        for source in sources
        for arm, (config, task) in arms.items()
    }
    decide_on = "both" if vary == "sources" else vary
    decision = compare.decide(
        values[("baseline", decide_on)], values[("candidate", decide_on)], goal
    )
    decision["rerun_vary"] = vary
    details = {
        "baseline study": baseline_dir,
        "baseline trial": base_trial,
        "candidate study": candidate_dir,
        "candidate trial": cand_trial,
        "reruns": reruns,
        "seeds changed per rerun": vary,
    }
    if vary == "sources":
        decision["variance_sources"] = {
            arm: {source: compare.std(values[(arm, source)]) for source in VARY} for arm in arms
        }
        for arm, stds in decision["variance_sources"].items():
            details[f"{arm} std by source"] = ", ".join(
                f"{source} {'n/a' if std is None else f'{std:.4g}'}" for source, std in stds.items()
            )
    report.write_comparison_report(out_dir, decision, details)
    return decision
