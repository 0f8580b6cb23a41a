"""The next round's design (checklist 23-27): what a finished study's checks say to change.

Pure Python and NumPy: reads the study's files (study.json's config, the trials) and its checks,
and proposes the changes the playbook's loop calls for, each with the finding behind it:

* widen a nuisance range whose best trial sits at its edge (checklist 42-43), towards that edge,
  by WIDEN_FRACTION of the range's width in the sampler's coordinate (log for log scales);
* narrow a nuisance range whose good trials (the best quarter, at least 3) fall in a small part
  of it (at most SMALL_REGION of the width) that few trials sampled (at most SPARSE_TRIALS): the
  next round's trials land densely in the good region, padded by its own width on each side;
* fix a nuisance hyperparameter the study shows to be insensitive at its best value: the best
  objective in each third of its range (each value, for choices) differs by at most
  INSENSITIVE_FRACTION of the spread of all feasible objectives (at least 9 feasible trials);
* raise `study.max_trials` (x2) when the bootstrapped best-of-k has not reached its plateau
  (analysis.budget), raise `max_train_steps` (x2) when the best steps sit at the end of training
  or the best trials still improve there, halve it when they nearly all sit in the first 10% or
  the best trials saturate long before the end.

These thresholds are tfplaybook's choices (the playbook gives none). The round's goal, its
scientific hyperparameters, is never changed: a scientific range at its edge, and every warning
that needs a person (overfitting, instability, clipping...), is listed as a note with the
override or change that would follow it. A change that would make the config invalid (a rate
outside [0, 1), a negative size) is shrunk, then dropped with a note. No finding: nothing to change.

`advise(study_dir)` returns the Advice; `write_next_experiment` writes it as an experiment file
(`next_experiment.py` in the study directory, loadable with `get_config()`, re-exporting the
study's own `build_model` / `make_dataset`); the report shows the same advice.

This package holds `advise` and its `Advice`; `changes` proposes the changes (and holds the
thresholds above), `ranges` edits the config's search-space entries, `experiment_file` writes
the next round's file.
"""

import copy
import dataclasses
import os
import re

from tfplaybook.analysis import budget, checks, study_data
from tfplaybook.analysis.advise.changes import (
    GOOD_SHARE,
    INSENSITIVE_FRACTION,
    MIN_TRIALS_INSENSITIVE,
    MIN_TRIALS_NARROW,
    SMALL_REGION,
    SPARSE_TRIALS,
    STEPS_FACTOR,
    TRIALS_FACTOR,
    WIDEN_FRACTION,
    Change,
    _boundary_changes,
    _budget_change,
    _insensitive_changes,
    _narrow_changes,
    _notes,
    _steps_change,
)
from tfplaybook.analysis.advise.experiment_file import (
    NEXT_EXPERIMENT,
    render,
    write_next_experiment,
)
from tfplaybook.analysis.advise.ranges import entry_id
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td

__all__ = [
    "GOOD_SHARE",
    "INSENSITIVE_FRACTION",
    "MIN_TRIALS_INSENSITIVE",
    "MIN_TRIALS_NARROW",
    "NEXT_EXPERIMENT",
    "SMALL_REGION",
    "SPARSE_TRIALS",
    "STEPS_FACTOR",
    "TRIALS_FACTOR",
    "WIDEN_FRACTION",
    "Advice",
    "Change",
    "advise",
    "entry_id",
    "render",
    "write_next_experiment",
]


@dataclasses.dataclass
class Advice:
    """The next round: its config, the changes that made it and the notes left to a person."""

    study_dir: str
    name: str
    experiment: str  # The study's experiment file ("" when it came from the Python API).
    base_config: dict  # The config the study ran.
    config: dict  # The next round's config.
    changes: list
    notes: list  # Findings left to a person, one sentence each.
    scientific: list  # The round's goal: unchanged.

    @property
    def summary(self):
        if not self.changes:
            return "nothing to change: no finding of this study calls for a change of its design"
        return f"{len(self.changes)} change(s) for the next round"


def _next_name(name):
    match = re.fullmatch(r"(.*)_round(\d+)", name)
    return f"{match.group(1)}_round{int(match.group(2)) + 1}" if match else f"{name}_round2"


def advise(study_dir, thresholds=None, task=None, study=None, results=None, bootstrap=None):
    """The next round's Advice for the finished study in `study_dir`.

    Args:
      study_dir: a study directory (study.json and its trials).
      thresholds: overrides for the checks' thresholds (analysis.checks).
      task: the study's Task; default: one that knows which functions the study's experiment
        defined (study.json), so the user's code is never imported here.
      study, results, bootstrap: the loaded study, its check results and its
        `budget.best_of_k`, when the caller has them.

    Raises:
      ConfigError: when the directory holds no study this can advise on.
    """
    path = os.path.join(study_dir, "study.json")
    try:
        description = td.read_json(path)
    except (OSError, td.DamagedFileError) as e:
        raise ConfigError(f"--workdir={study_dir!r} holds no readable study.json ({e})") from None
    base = description.get("config")
    if not isinstance(base, dict) or "study" not in base:
        raise ConfigError(f"{path} records no config to start the next round from")
    study = study or study_data.load_study(study_dir)
    if not study.ranked():
        raise ConfigError(f"{study_dir!r} has no feasible trial with an objective to learn from")
    experiment = description.get("experiment") or ""
    if task is None:
        from tfplaybook.training import task as task_lib

        task = task_lib.declared(description.get("task_functions", ()))
    results = {r.id: r for r in (results or checks.run_checks(study, thresholds))}
    config = copy.deepcopy(base)
    changes, notes = [], []
    touched = _boundary_changes(study, results, config, task, changes, notes)
    _narrow_changes(study, config, task, touched, changes)
    _insensitive_changes(study, config, touched, changes)
    _budget_change(study, config, changes, bootstrap or budget.best_of_k(study))
    _steps_change(results, config, task, changes, notes)
    _notes(results, notes)
    if changes:
        name = _next_name(base["study"].get("name") or os.path.basename(study_dir))
        config["study"]["name"] = name
        changes.append(
            Change(
                "round",
                f"a new round gets a new name: {name}",
                f"config['study']['name'] = {name!r}",
            )
        )
    return Advice(
        study_dir=os.path.abspath(study_dir),
        name=study.name,
        experiment=os.path.abspath(experiment) if experiment else "",
        base_config=base,
        config=config,
        changes=changes,
        notes=notes,
        scientific=[e["name"] for e in base["study"]["search_space"] if e["role"] == "scientific"],
    )
