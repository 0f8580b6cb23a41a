"""What a tfplaybook oracle optimises: the objective as keras-tuner takes it, and infeasibility.

A trial is infeasible (checklist 41, 63) when its status is INVALID or FAILED, its score is NaN or
infinite, or it reports the metric INFEASIBLE_METRIC ("infeasible") with value 1. The quasi-random
oracle needs no special handling of them (checklist 100); the Bayesian oracle models them.
"""

import keras_tuner

from tfplaybook.config import ConfigError

INFEASIBLE_METRIC = "infeasible"


def make_objective(objective):
    """A keras_tuner.Objective from an Objective, a name, (name, direction) or a config dict.

    None (a `run_trial` that returns one number to minimise) and a list of Objectives or names
    (keras-tuner's multi-objective) are passed to keras-tuner as they are.
    """
    if objective is None or isinstance(objective, keras_tuner.Objective):
        return objective
    if isinstance(objective, list) and all(
        isinstance(o, (keras_tuner.Objective, str)) for o in objective
    ):
        if not (len(objective) == 2 and objective[1] in ("min", "max")):
            return objective
    if isinstance(objective, dict):
        goal = objective.get("goal")
        if goal not in ("min", "max") or "metric" not in objective:
            raise ConfigError(f"objective={objective!r} needs a metric and goal 'min' or 'max'")
        return keras_tuner.Objective(objective["metric"], goal)
    if isinstance(objective, (tuple, list)) and len(objective) == 2:
        if objective[1] not in ("min", "max"):
            raise ConfigError(f"objective direction {objective[1]!r}; allowed: min, max")
        return keras_tuner.Objective(*objective)
    if isinstance(objective, str):
        return objective  # keras-tuner infers the direction from well-known names.
    raise ConfigError(f"objective={objective!r}: give an Objective, a name or (name, direction)")
