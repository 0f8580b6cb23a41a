"""Gaussian-process Bayesian optimisation with feasibility modelling as a keras-tuner oracle.

Built on tfplaybook.search.space_oracle (the design, seed and resume) and tfplaybook.search.bayes
(the GP and the acquisition); import it from tfplaybook.search.oracles. Infeasible trials
(tfplaybook.search.objectives) are observations too: expected improvement is multiplied by the
modelled P(feasible).
"""

import json
import math

import keras_tuner
import numpy as np

from tfplaybook import internals
from tfplaybook.config import ConfigError
from tfplaybook.search import bayes
from tfplaybook.search.objectives import INFEASIBLE_METRIC
from tfplaybook.search.space_oracle import DEFAULT_SEED, SpaceOracle, trial_number

_RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
_STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED
_COMPLETED = keras_tuner.engine.trial.TrialStatus.COMPLETED
_FAILED_STATUSES = (
    keras_tuner.engine.trial.TrialStatus.INVALID,
    keras_tuner.engine.trial.TrialStatus.FAILED,
)


class BayesianOracle(SpaceOracle):
    """GP Bayesian optimisation with feasibility modelling (checklist 36, 62, 63).

    The first `num_initial_points` trials (minus warm-start trials) are quasi-random points of the
    seeded Halton sequence; then each trial maximises log EI + log P(feasible) (tfplaybook.search.
    bayes). Suggestions are deterministic given the seed and the finished trials. It optimises
    over scientific hyperparameters too instead of sampling them uniformly: compare scientific
    values with QuasiRandomOracle studies (checklist 37), exploit with this one (checklist 62).
    The GP sees every coordinate of the design (fixed at the first trial, as QuasiRandomOracle's);
    a hyperparameter that appears later keeps its default, with a warning.

    Args:
      search_space: optional SearchSpace; without it the space is the keras-tuner one.
      objective: see `make_objective` (tfplaybook.search.objectives).
      max_trials: the study's trial budget.
      seed: the study seed (default 0, kept as given).
      num_initial_points: quasi-random trials before the GP; default the number of dimensions,
        within 4..10.
      warm_start: optional list of (values, objective) pairs from an earlier study over the same
        space (checklist 62); values keyed by dimension id (numbers outside the ranges are kept,
        extrapolated), objective in the objective's own direction or None for an infeasible trial.
        It is saved with the oracle: a resumed study uses the warm start it started with.
      hyperparameters: optional keras_tuner.HyperParameters registered up front.
      scientific: names of the scientific hyperparameters, stored for the analysis.
      **oracle_kwargs: passed to keras_tuner.Oracle.
    """

    def __init__(
        self,
        search_space=None,
        objective=None,
        max_trials=None,
        seed=DEFAULT_SEED,
        num_initial_points=None,
        warm_start=None,
        hyperparameters=None,
        scientific=(),
        **oracle_kwargs,
    ):
        super().__init__(
            search_space,
            objective,
            max_trials,
            seed,
            "halton",
            hyperparameters=hyperparameters,
            scientific=scientific,
            **oracle_kwargs,
        )
        self.num_initial_points = num_initial_points
        self.warm_start = []
        for index, pair in enumerate(warm_start or ()):
            values, value = pair
            if search_space is not None:
                try:
                    search_space.to_unit(values)
                except ValueError as e:
                    raise ConfigError(f"warm_start[{index}]: {e}") from None
            finite = value is not None and math.isfinite(value)
            # Stored in the oracle's JSON state: plain Python numbers only.
            plain = json.loads(json.dumps(dict(values), default=lambda v: v.item()))
            self.warm_start.append([plain, float(value) if finite else None])
        self._suggester = None  # Made with the design.
        self.last_acquisition = None

    def _on_design(self):
        # One quasi-random point per dimension, 4 to 10: enough for a first GP, and every point
        # spent here is an adaptive one less (on bench_bayesian's lr_like, 6 initial points gave
        # a mean of 4.5 divergent trials of 30, 4 gave 3.5, at lower regret).
        if not self.num_initial_points:
            self.num_initial_points = min(max(len(self.space), 4), 10)
        for index, (values, _) in enumerate(self.warm_start):
            try:
                self._units(values, strict=True)
            except ValueError as e:
                raise ConfigError(f"warm_start[{index}]: {e}") from None
        self._suggester = bayes.Suggester(self.space)

    def _sequence_trials(self, trials):
        # populate_space: trials before num_initial_points (warm start included) are
        # quasi-random; later ones are the GP's, or quasi-random when it found nothing new.
        initial = self.num_initial_points - len(self.warm_start)
        return [t for t in trials if trial_number(t)[0] == 0 and int(t) < initial]

    def _to_minimize(self, score):
        return -score if self.objective.direction == "max" else score

    def _observations(self):
        """(units, objectives to minimise or None, pending units) from warm start and trials."""
        units, objectives, pending = [], [], []
        for values, score in self.warm_start:
            units.append(self._units(values, strict=True))
            objectives.append(None if score is None else self._to_minimize(score))
        for trial in self.trials.values():
            point = self._units(trial.hyperparameters.values)
            if trial.status == _RUNNING:
                pending.append(point)
            elif trial.status in _FAILED_STATUSES or trial.status == _COMPLETED:
                units.append(point)
                objectives.append(self._objective_of(trial))
        return units, objectives, pending

    def _objective_of(self, trial):
        if trial.status != _COMPLETED:
            return None
        if trial.metrics.exists(INFEASIBLE_METRIC):
            if trial.metrics.get_last_value(INFEASIBLE_METRIC) >= 0.5:
                return None
        if trial.score is None or not math.isfinite(trial.score):
            return None
        return self._to_minimize(trial.score)

    def populate_space(self, trial_id):
        self._prepare()
        units, objectives, pending = self._observations()
        num_feasible = sum(v is not None for v in objectives)
        started = len(self.trials) + len(self.warm_start)
        values = None
        if started >= self.num_initial_points and num_feasible >= 2:
            rng = np.random.default_rng([self.seed, len(self.trials)])
            point, info = self._suggester.suggest(units, objectives, pending, rng)
            self.last_acquisition = info["acquisition"]
            if point is not None:
                values = self._values(point)
                if internals.is_duplicate(self, values):
                    values = None
        if values is None:
            # Too few observations for a GP yet, or nothing new found: quasi-random point.
            values = self._next_quasi_random()
        if values is None:
            return {"status": _STOPPED, "values": None}
        return {"status": _RUNNING, "values": values}

    def get_state(self):
        state = super().get_state()
        suggester = self._suggester
        state["tfplaybook"].update(
            num_initial_points=self.num_initial_points,
            warm_start=self.warm_start,
            theta=None if suggester is None else _as_list(suggester.theta),
            feasibility_theta=None if suggester is None else _as_list(suggester.feasibility_theta),
        )
        return state

    def set_state(self, state):
        ours = state["tfplaybook"]
        # Before the design is rebuilt (super), which checks the warm start against it.
        self.num_initial_points = ours["num_initial_points"]
        self.warm_start = ours["warm_start"]
        super().set_state(state)
        for name in ("theta", "feasibility_theta"):
            if ours.get(name) is not None and self._suggester is not None:
                setattr(self._suggester, name, np.array(ours[name]))


def _as_list(array):
    return None if array is None else array.tolist()
