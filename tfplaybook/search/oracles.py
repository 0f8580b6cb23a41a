"""keras-tuner oracles, quasi-random and Bayesian, over a SearchSpace or keras-tuner's own space.

Both subclass `keras_tuner.Oracle`, so any keras-tuner tuner drives them, including distributed
tuning. Two ways to give the space:

    # 1. tfplaybook's SearchSpace (tfplaybook.search.space), e.g. from an experiment config:
    space = SearchSpace.from_config(config)
    oracle = QuasiRandomOracle(space, objective=config["objective"], max_trials=20, seed=0)
    oracle = BayesianOracle(space, ("accuracy", "max"), max_trials=40, seed=1,
                            warm_start=[(trial_values, accuracy_or_None), ...])
    # in MyTuner.run_trial(trial): values = trial.hyperparameters.values
    #     trial_config = space.apply(config, values); hparams = space.hparams(values)

    # 2. keras-tuner's way: the space is whatever build_model(hp) declares (docs/keras_tuner.md):
    oracle = QuasiRandomOracle(objective=keras_tuner.Objective("val_loss", "min"), max_trials=20,
                               seed=0, scientific=["units"])
    tuner = keras_tuner.Tuner(oracle=oracle, hypermodel=build_model, directory=..., ...)

`objective` is a `keras_tuner.Objective`, a metric name, a (name, direction) pair, or the config's
{"metric": ..., "goal": "max"|"min"} dict. A SearchSpace is registered in the oracle's
`keras_tuner.HyperParameters` under its dimension ids (`SearchSpace.to_hyperparameters`).

The modules behind this one: `space_oracle` (the base both share: the design fixed at the first
trial, seeds, resume and recovery; its docstring explains the design), `quasi_random_oracle`,
`bayesian_oracle` and `objectives`. This module re-exports their public names, and is the import
path to use.

Infeasible trials (checklist 41, 63): status INVALID or FAILED, a NaN or infinite score, or a
metric named "infeasible" with value 1. The quasi-random oracle needs no special handling
(checklist 100); the Bayesian oracle models them and multiplies expected improvement by P(feasible).
"""

from tfplaybook.search.bayesian_oracle import BayesianOracle
from tfplaybook.search.objectives import INFEASIBLE_METRIC, make_objective
from tfplaybook.search.quasi_random_oracle import QuasiRandomOracle
from tfplaybook.search.space_oracle import DEFAULT_SEED, keras_hyperparameters, trial_number

__all__ = [
    "DEFAULT_SEED",
    "INFEASIBLE_METRIC",
    "BayesianOracle",
    "QuasiRandomOracle",
    "keras_hyperparameters",
    "make_objective",
    "trial_number",
]
