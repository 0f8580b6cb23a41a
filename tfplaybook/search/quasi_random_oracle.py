"""Quasi-random search as a keras-tuner oracle: trial i gets point i of a seeded sequence.

Built on tfplaybook.search.space_oracle (the design, seed and resume); import it from
tfplaybook.search.oracles, whose docstring shows both ways to give the space.
"""

import keras_tuner

from tfplaybook.search.space_oracle import DEFAULT_SEED, SpaceOracle

_RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
_STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED


class QuasiRandomOracle(SpaceOracle):
    """Quasi-random search (checklist 36, 99): trial i gets point i of a seeded sequence.

    Built like any keras-tuner oracle (`QuasiRandomOracle(objective=..., max_trials=...,
    seed=...)`, the space declared in `build_model(hp)`) or over a SearchSpace. The design (one
    coordinate per hyperparameter) is fixed at the first trial; a hyperparameter that appears
    later keeps its default, with a warning (see tfplaybook.search.space_oracle).

    Args:
      search_space: optional SearchSpace; without it the space is the keras-tuner one.
      objective: see `make_objective` (tfplaybook.search.objectives).
      max_trials: the study's trial budget.
      seed: the study seed (default 0, kept as given); another seed gives another set of points
        (study variance).
      sampler: "halton" (seeded scrambled Halton, default) or "halton_compat" (the playbook's
        reference generator point for point; needs max_trials).
      hyperparameters: optional keras_tuner.HyperParameters registered up front (not with
        search_space).
      scientific: names of the scientific hyperparameters (the others are nuisance), stored in
        the oracle state for the analysis.
      **oracle_kwargs: passed to keras_tuner.Oracle (e.g. max_retries_per_trial,
        tune_new_entries, allow_new_entries).
    """

    def __init__(
        self,
        search_space=None,
        objective=None,
        max_trials=None,
        seed=DEFAULT_SEED,
        sampler="halton",
        hyperparameters=None,
        scientific=(),
        **oracle_kwargs,
    ):
        super().__init__(
            search_space,
            objective,
            max_trials,
            seed,
            sampler,
            hyperparameters=hyperparameters,
            scientific=scientific,
            **oracle_kwargs,
        )

    def populate_space(self, trial_id):
        self._prepare()
        values = self._next_quasi_random()
        if values is None:
            return {"status": _STOPPED, "values": None}
        return {"status": _RUNNING, "values": values}
