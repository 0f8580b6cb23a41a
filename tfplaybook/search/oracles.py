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

The design. At the first trial the oracle fixes its design: one coordinate of the quasi-random
sequence (and one GP input) per hyperparameter registered by then: the SearchSpace's dimensions,
then, in registration order, every other hyperparameter (`keras_space` maps keras-tuner's Float,
Int, Choice and Boolean; Fixed ones need no coordinate). keras-tuner's Tuner registers what
`build_model(hp)` declares before the first trial: it builds the model once with defaults, and
again until every `conditional_scope` has been entered (`BaseTuner._populate_initial_space`).
Every value of every trial comes from the design, so no value is left to keras-tuner's unseeded
`random_sample()`.

A hyperparameter that first appears after the first trial (declared only on some code path that
the default build does not take, e.g. inside `for i in range(hp.Int("layers", 1, 3))`) is given no
coordinate: the sequence's dimension count cannot change without changing every later point. It
keeps its default in every later trial (the trial it appeared in used the default too), a
UserWarning says so once, and the oracle state records it as a fixed hyperparameter. Declare it on
the default path (or in a `conditional_scope`, or in `hyperparameters=`) to tune it.

Roles. A SearchSpace carries roles; in keras-tuner's way `scientific=[names]` marks the scientific
hyperparameters, the others are nuisance, Fixed and late ones fixed. The oracle state (oracle.json,
section "tfplaybook") keeps the roles, the objective and the design for the analysis
(`tfplaybook.analysis.keras_tuner_study`).

Seeds: keras-tuner treats `seed=0` as "pick a random seed"; these oracles keep the given seed as
is (0 included; the default is DEFAULT_SEED = 0), so every study is reproducible and two seeds
give two studies (checklist 57). Resume: the position in the quasi-random sequence, the seed, the
design, the fitted GP hyperparameters and a fingerprint of the space are saved with the oracle;
reloading the project directory continues the sequence without repeats, and refuses a changed
space, seed or set of scientific hyperparameters.

Infeasible trials (checklist 41, 63): status INVALID or FAILED, a NaN or infinite score, or a
metric named "infeasible" with value 1. The quasi-random oracle needs no special handling
(checklist 100); the Bayesian oracle models them and multiplies expected improvement by P(feasible).
"""

import json
import math
import warnings

import keras_tuner
import numpy as np

from tfplaybook import internals
from tfplaybook.config import ConfigError
from tfplaybook.search import bayes, keras_space
from tfplaybook.search.halton import make_sampler
from tfplaybook.search.space import INACTIVE_UNIT, SearchSpace

DEFAULT_SEED = 0
INFEASIBLE_METRIC = "infeasible"
_RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
_STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED
_COMPLETED = keras_tuner.engine.trial.TrialStatus.COMPLETED
_FAILED_STATUSES = (
    keras_tuner.engine.trial.TrialStatus.INVALID,
    keras_tuner.engine.trial.TrialStatus.FAILED,
)


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


def keras_hyperparameters(space):
    """The space's dimensions as keras_tuner.HyperParameters, named by dimension id (no Fixed)."""
    return keras_space.to_hyperparameters(space, include_fixed=False)


class _SpaceOracle(keras_tuner.Oracle):
    """Shared plumbing: the design, seed, quasi-random sequence position and resume checks."""

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
        if search_space is not None and not isinstance(search_space, SearchSpace):
            raise ConfigError(
                f"search_space={search_space!r} is not a tfplaybook SearchSpace; pass "
                "keras-tuner's own arguments by keyword (objective=..., max_trials=..., seed=...)"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(
                f"seed={seed!r} must be a non-negative integer (omit it for {DEFAULT_SEED}: these "
                "oracles have no random seed, every study is reproducible)"
            )
        if isinstance(scientific, str) or not all(isinstance(n, str) for n in scientific):
            raise ConfigError(f"scientific={scientific!r} must be a list of hyperparameter names")
        if search_space is not None:
            if len(search_space) == 0:
                raise ConfigError(
                    "the search space varies nothing: add a scientific or nuisance entry"
                )
            if hyperparameters is not None:
                raise ConfigError("give search_space or hyperparameters, not both")
            hyperparameters = keras_hyperparameters(search_space)
            roles = {d.id: d.role for d in search_space.dimensions}
            clash = [n for n in scientific if roles.get(n, "scientific") != "scientific"]
            if clash:
                raise ConfigError(
                    f"scientific={list(scientific)} names {clash}, which the search space gives "
                    "another role: set roles in the search space"
                )
        # Checks the sampler name (and halton_compat's need of max_trials) before any trial.
        make_sampler(sampler, max(1, len(search_space or ())), int(seed), max_trials)
        super().__init__(
            objective=make_objective(objective),
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            seed=int(seed) + 1,  # Overwritten below: keras-tuner would randomise seed=0.
            **oracle_kwargs,
        )
        self.seed = self._study_seed = int(seed)
        internals.set_seed_state(self, self.seed)
        self.search_space = search_space
        self.space = search_space  # The design once the first trial fixed it.
        self.scientific = tuple(scientific)
        self.sampler_name = sampler
        self._sampler = None  # Made with the design.
        self._next_index = 0
        self._pinned = {}  # Hyperparameters that appeared after the first trial: their value.

    # The design: fixed at the first trial, rebuilt from the saved ids on resume.

    def _candidate_space(self, ids=None):
        """The SearchSpace's dimensions, then the other registered hyperparameters (among ids)."""
        known = set(self.search_space.ids) if self.search_space is not None else set()
        others = [
            hp
            for hp in self.hyperparameters.space
            if hp.name not in known
            and (ids is None or hp.name in ids or type(hp).__name__ == "Fixed")
        ]
        roles = {hp.name: "scientific" for hp in others if hp.name in self.scientific}
        extra = keras_space.from_hyperparameters(others, roles, unsupported_conditions="ignore")
        if self.search_space is None:
            return extra
        return SearchSpace(
            self.search_space.dimensions + extra.dimensions,
            {**self.search_space.fixed, **extra.fixed},
        )

    def _fix_design(self, ids=None, fingerprint=None):
        candidates = self._candidate_space(ids)
        if ids is None:
            design = candidates
            if len(design) == 0:
                raise ConfigError(
                    "no hyperparameter to search at the first trial: give a hypermodel whose "
                    "build(hp) declares them, hyperparameters=, or a search_space"
                )
            unknown = [n for n in self.scientific if n not in design.ids]
            if unknown:
                raise ConfigError(
                    f"scientific={list(self.scientific)} names {unknown}, which are not tuned "
                    f"hyperparameters; tuned: {', '.join(design.ids)}"
                )
        else:
            missing = [i for i in ids if i not in candidates.ids]
            if missing:
                raise ConfigError(
                    f"the saved design names hyperparameters {missing} the oracle does not have"
                )
            design = SearchSpace([candidates.dimension(i) for i in ids], candidates.fixed)
            if fingerprint is not None and fingerprint != _design_fingerprint(design):
                raise ConfigError(
                    "the hyperparameters differ from those this study's design was made of; "
                    "start a new study (another project name)"
                )
        self.space = design
        self._sampler = make_sampler(self.sampler_name, len(design), self.seed, self.max_trials)
        self._on_design()

    def _on_design(self):
        """Called once the design is fixed (subclasses build what depends on it)."""

    def _pin_late_hyperparameters(self):
        """Gives every hyperparameter registered after the first trial its default, once."""
        for hp in self.hyperparameters.space:
            name = hp.name
            if name in self.space.ids or name in self.space.fixed or name in self._pinned:
                continue
            if type(hp).__name__ == "Fixed":
                continue  # One value, no coordinate needed.
            self._pinned[name] = hp.default
            warnings.warn(
                f"hyperparameter {name!r} appeared after the first trial, when the quasi-random "
                f"design of {len(self.space)} dimensions was fixed: it keeps its default "
                f"{hp.default!r} in every later trial. Declare it on build_model's default path "
                "(or in a conditional_scope, or in hyperparameters=) to tune it.",
                stacklevel=3,
            )

    def _prepare(self):
        if self._sampler is None:
            self._fix_design()
        self._pin_late_hyperparameters()

    def _values(self, point):
        """The values of one unit point: every active hyperparameter, keras-tuner's activity."""
        column = {d.id: j for j, d in enumerate(self.space.dimensions)}
        hps = keras_tuner.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            if hp.name in column:
                value = self.space.dimension(hp.name).from_unit(point[column[hp.name]])
            elif hp.name in self.space.fixed:
                value = self.space.fixed[hp.name]
            else:
                value = self._pinned.get(hp.name, hp.default)
            hps.values[hp.name] = value
        return hps.values

    def _units(self, values, strict=False):
        """Coordinates of `values`; inactive (or, unless strict, missing) ones get INACTIVE_UNIT.

        Raises:
          ValueError: for a value that does not fit its dimension, or with `strict` a missing
            active one.
        """
        point = []
        for dim in self.space.dimensions:
            active = self.space.is_active(dim, values)
            if active and dim.id in values:
                point.append(dim.to_unit(values[dim.id]))
            elif active and strict:
                raise ValueError(f"point {values!r} lacks the active dimension {dim.id!r}")
            else:
                # Inactive, or a condition the design keeps unconditional (keras_space).
                point.append(INACTIVE_UNIT)
        return point

    def _next_quasi_random(self):
        """Values of the next unseen point of the sequence, or None when it is exhausted."""
        for _ in range(internals.max_collisions(self) + 1):
            try:
                point = self._sampler.point(self._next_index)
            except IndexError:
                return None
            self._next_index += 1
            values = self._values(point)
            # Only a space of few discrete values repeats itself; skip repeats.
            if not internals.is_duplicate(self, values):
                return values
        return None

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        """keras-tuner's `Oracle.create_trial` (internals.create_trial), with ids of a fixed width.

        keras-tuner pads a new trial's id to the digits of the *current* max_trials, so a study
        extended from 8 to 10 trials named its new trials 08 and 09 beside 0..7. Here the width is
        the one the study's first trial got (`trial_id_width`) whatever max_trials becomes.
        """
        if tuner_id in self.ongoing_trials or internals.retry_queue(self):
            return internals.create_trial(self, tuner_id, None)  # No new id needed.
        number, width = len(self.trials), self.trial_id_width()
        while f"{number:0{width}d}" in self.trials:  # A trial directory was removed by hand.
            number += 1
        return internals.create_trial(self, tuner_id, f"{number:0{width}d}")

    def trial_id_width(self):
        """Digits of a trial id: those of the study's trial 0, else keras-tuner's (max_trials').

        Derived from the trials themselves, so studies made before this rule keep their names.
        """
        first = [t for t in self.trials if t.isdigit() and int(t) == 0]
        return len(first[0]) if first else len(str(self.max_trials))

    # Recovery: the state rebuilt from the trials when oracle.json is lost
    # (tfplaybook.study.recovery).

    def recover_state(self, trials):
        """This oracle's own state (oracle.json's "tfplaybook" section) rebuilt from its trials.

        The design is made of the hyperparameters the first trial was created with. The position
        in the quasi-random sequence is found by replaying the sequence: one past the last point
        that is some trial's values, so the study continues the sequence without repeats.

        Args:
          trials: {trial_id: keras_tuner Trial}, every trial of the study.

        Returns:
          The section, as `get_state()["tfplaybook"]` (this oracle is left in that state).

        Raises:
          ConfigError: when a trial that must be a point of the sequence is not one (another
            seed, sampler or space made it), so the position cannot be found.
        """
        self._next_index, self._pinned, self._sampler, self.space = 0, {}, None, self.search_space
        if trials:
            first = trials[min(trials, key=trial_number)]
            registered = {hp.name for hp in first.hyperparameters.space}
            candidates = self._candidate_space(registered)
            self._fix_design([d.id for d in candidates.dimensions if d.id in registered])
            design = set(self.space.ids) | set(self.space.fixed)
            self._pinned = {
                hp.name: hp.default
                for hp in self.hyperparameters.space
                if hp.name not in design and type(hp).__name__ != "Fixed"
            }
            self._next_index = self._sequence_position(trials)
        return self.get_state()["tfplaybook"]

    def _sequence_trials(self, trials):
        """Ids of the trials whose values must be points of the quasi-random sequence."""
        return list(trials)

    def _sequence_position(self, trials):
        """1 + the index of the last point of the sequence that is some trial's values."""
        dims = [d.id for d in self.space.dimensions]

        def key(values):
            return tuple(values.get(i) for i in dims)

        wanted = {}
        for trial_id in sorted(trials, key=trial_number):
            wanted.setdefault(key(trials[trial_id].hyperparameters.values), trial_id)
        required = {key(trials[t].hyperparameters.values) for t in self._sequence_trials(trials)}
        found = {}
        # Each quasi-random trial skips at most _max_collisions repeats of earlier points.
        for index in range((internals.max_collisions(self) + 1) * (len(trials) + 1)):
            try:
                point = self._sampler.point(index)
            except IndexError:  # halton_compat has max_trials points.
                break
            values_key = key(self._values(point))
            if values_key in wanted:
                found.setdefault(values_key, index)
                if len(found) == len(wanted):
                    break
        missing = sorted((wanted[k] for k in required - set(found)), key=trial_number)
        if missing:
            raise ConfigError(
                f"trial {missing[0]}'s values are not a point of this study's quasi-random "
                f"sequence (seed={self._study_seed}, sampler={self.sampler_name!r}), so the "
                "position in it cannot be rebuilt"
            )
        return max(found.values()) + 1 if found else 0

    def roles(self):
        """{hyperparameter: role} of the design, fixed and late hyperparameters."""
        if self._sampler is None:
            return {}
        roles = {d.id: d.role for d in self.space.dimensions}
        roles.update({name: "fixed" for name in list(self.space.fixed) + list(self._pinned)})
        return roles

    def get_state(self):
        state = super().get_state()
        objective = self.objective
        state["tfplaybook"] = {
            "oracle": type(self).__name__,
            "seed": self._study_seed,
            "sampler": self.sampler_name,
            "num_samples": self.max_trials,
            "next_index": self._next_index,
            "space": None if self.search_space is None else self.search_space.fingerprint(),
            "design": None if self._sampler is None else self.space.ids,
            "design_fingerprint": (
                None if self._sampler is None else _design_fingerprint(self.space)
            ),
            "pinned": self._pinned,
            "scientific": list(self.scientific),
            "roles": self.roles(),
            "objective": {"name": objective.name, "direction": objective.direction},
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        ours = state["tfplaybook"]
        space = None if self.search_space is None else self.search_space.fingerprint()
        if ours["space"] != space:
            raise ConfigError(
                "the search space differs from the one this study started with; start a new "
                f"study (another project name). Saved: {ours['space']}"
            )
        if ours["seed"] != self._study_seed or ours["sampler"] != self.sampler_name:
            raise ConfigError(
                f"this study started with seed={ours['seed']} sampler={ours['sampler']!r}, not "
                f"seed={self._study_seed} sampler={self.sampler_name!r}"
            )
        if self.sampler_name == "halton_compat" and ours["num_samples"] != self.max_trials:
            raise ConfigError(
                f"halton_compat orders its points by the trial count: this study started with "
                f"max_trials={ours['num_samples']}, not {self.max_trials}"
            )
        if ours.get("scientific", []) != list(self.scientific):
            raise ConfigError(
                f"this study started with scientific={ours.get('scientific', [])}, not "
                f"{list(self.scientific)}"
            )
        self._next_index = ours["next_index"]
        self._pinned = dict(ours.get("pinned", {}))
        # States saved before the design existed: the design was the search space.
        ids = ours["design"] if "design" in ours else self.search_space.ids
        if ids is not None:
            self._fix_design(ids, ours.get("design_fingerprint"))


def trial_number(trial_id):
    """Creation order of keras-tuner trial ids ("0", "07", "10"); other ids sort last."""
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


def _design_fingerprint(space):
    return json.dumps([d.spec() for d in space.dimensions], sort_keys=True, default=str)


class QuasiRandomOracle(_SpaceOracle):
    """Quasi-random search (checklist 36, 99): trial i gets point i of a seeded sequence.

    Built like any keras-tuner oracle (`QuasiRandomOracle(objective=..., max_trials=...,
    seed=...)`, the space declared in `build_model(hp)`) or over a SearchSpace. The design (one
    coordinate per hyperparameter) is fixed at the first trial; a hyperparameter that appears
    later keeps its default, with a warning (see the module docstring).

    Args:
      search_space: optional SearchSpace; without it the space is the keras-tuner one.
      objective: see the module docstring.
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


class BayesianOracle(_SpaceOracle):
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
      objective: see the module docstring.
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
