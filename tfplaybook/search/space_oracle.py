"""The base of tfplaybook's keras-tuner oracles: the design, the seed, resume and recovery.

`SpaceOracle` is what QuasiRandomOracle (tfplaybook.search.quasi_random_oracle) and BayesianOracle
(tfplaybook.search.bayesian_oracle) share; tfplaybook.search.oracles is their public import path
and says how to build them.

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
"""

import json
import warnings

import keras_tuner
import numpy as np

from tfplaybook import internals
from tfplaybook.config import ConfigError
from tfplaybook.search import keras_space
from tfplaybook.search.halton import make_sampler
from tfplaybook.search.objectives import make_objective
from tfplaybook.search.space import INACTIVE_UNIT, SearchSpace

DEFAULT_SEED = 0


def keras_hyperparameters(space):
    """The space's dimensions as keras_tuner.HyperParameters, named by dimension id (no Fixed)."""
    return keras_space.to_hyperparameters(space, include_fixed=False)


class SpaceOracle(keras_tuner.Oracle):
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
