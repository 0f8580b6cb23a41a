"""One Bayesian-optimisation suggestion over a SearchSpace: encode, fit, maximise EI x P(feasible).

Pure NumPy/SciPy; `oracles.BayesianOracle` wraps it for keras-tuner. Points live in the unit cube
(one coordinate per dimension, as the quasi-random samplers make them). The GP sees features:

- a continuous, integer or discrete dimension is one feature, its coordinate; integers and
  discrete values are snapped to the centre of their bin, so a feature never distinguishes two
  coordinates that give the same value;
- a categorical dimension is one-hot (one feature per value);
- an inactive conditional dimension is a constant (0.5, or all-zero one-hot), so trials of other
  branches carry no information about it.

The acquisition is log expected improvement plus log P(feasible) (checklist 63), maximised over
uniform random candidates and Gaussian perturbations of the best observed points, then refined
locally around the best candidates. A perturbation step that leaves the cube is reflected back
into it, not clipped: clipping put much of the candidate mass exactly on the faces, where EI then
kept picking the face (on Branin, some seeds proposed x1 at its upper bound for most trials, at
regret ~1.5 instead of ~0.0006). Candidates equal to a tried or running point are discarded, so a
configuration is never proposed twice (keras-tuner's own Bayesian oracle can repeat itself).
Running trials enter the GP as fantasies at the posterior mean (kriging believer).

Cost: above `FIT_SUBSET` observations the GP hyperparameters are fitted on a random subset of
that many (drawn from the suggestion's rng, so a study stays reproducible), then the GP conditions
on all observations with them: one n x n Cholesky instead of one per optimiser step. A suggestion
at 1,000 trials takes well under a second on one thread (bench/bench_bayesian.py --latency).
"""

import contextlib
import math

import numpy as np
from scipy import optimize

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # Installed with scikit-learn; without it BLAS keeps its default threads.
    ThreadpoolController = None

from tfplaybook.search import gp
from tfplaybook.search.space import INACTIVE_UNIT

_DUPLICATE_TOLERANCE = 1e-9
_BELOW_ONE = math.nextafter(1.0, 0.0)
# Observations above which the GP hyperparameters are fitted on a random subset of this size.
FIT_SUBSET = 64
# Best-first candidates checked against the tried points at a time.
_DUPLICATE_CHUNK = 64

_threadpool_controller = None


def _one_blas_thread():
    """A context limiting BLAS to one thread; the controller is made once (it costs ~10 ms)."""
    global _threadpool_controller
    if ThreadpoolController is None:
        return contextlib.nullcontext()
    if _threadpool_controller is None:
        _threadpool_controller = ThreadpoolController()
    return _threadpool_controller.limit(limits=1, user_api="blas")


class Encoder:
    """Canonical unit points and GP features for one SearchSpace, vectorised over rows."""

    def __init__(self, space):
        self.space = space
        self.dims = space.dimensions
        index = {d.id: j for j, d in enumerate(self.dims)}
        # For a conditional dimension: (parent column, number of parent values, branch index).
        self._conditions = []
        for j, dim in enumerate(self.dims):
            if dim.parent is None:
                continue
            parent = space.dimension(dim.parent)
            branch = next(i for i, v in enumerate(parent.values) if v == dim.parent_value)
            self._conditions.append((j, index[dim.parent], len(parent.values), branch))
        self.num_features = sum(len(d.values) if d.scale == "categorical" else 1 for d in self.dims)

    def canonical(self, units):
        """Snaps (n, D) unit points: choices and integers to bin centres, inactive dims to 0.5."""
        units = np.array(units, dtype=float, ndmin=2)
        out = units.copy()
        for j, dim in enumerate(self.dims):
            column = np.clip(units[:, j], 0.0, _BELOW_ONE)
            if dim.is_choice:
                k = len(dim.values)
                out[:, j] = (np.floor(column * k) + 0.5) / k
            elif dim.is_int:
                out[:, j] = [dim.to_unit(dim.from_unit(u)) for u in column]
        for j, parent_col, k, branch in self._conditions:
            out[~_in_branch(units[:, parent_col], k, branch), j] = INACTIVE_UNIT
        return out

    def features(self, canonical):
        """GP inputs for canonical points (which may lie outside [0, 1) for warm-start trials)."""
        columns = []
        active = np.ones(canonical.shape, dtype=bool)
        for j, parent_col, k, branch in self._conditions:
            active[:, j] = _in_branch(canonical[:, parent_col], k, branch)
        for j, dim in enumerate(self.dims):
            if dim.scale == "categorical":
                k = len(dim.values)
                index = np.clip(np.floor(canonical[:, j] * k), 0, k - 1).astype(int)
                onehot = np.zeros((len(canonical), k))
                onehot[np.arange(len(canonical)), index] = 1.0
                columns.append(onehot * active[:, j : j + 1])
            else:
                columns.append(canonical[:, j : j + 1])
        return np.hstack(columns)


def _in_branch(parent_units, num_values, branch):
    """Whether each parent coordinate selects value number `branch` (as Dimension.from_unit)."""
    return np.floor(np.clip(parent_units, 0.0, _BELOW_ONE) * num_values) == branch


def _reflect(points):
    """Folds coordinates into [0, 1) by mirroring at the faces (the period-2 triangle map).

    Unlike clipping, a step across a face lands inside, at the mirror image: a perturbation of a
    point on (or near) a face puts no mass on the face itself.
    """
    folded = np.mod(points, 2.0)
    folded = np.where(folded > 1.0, 2.0 - folded, folded)
    return np.minimum(folded, _BELOW_ONE)


def _perturb(rng, centres, count, scale, categorical):
    """Gaussian steps around each centre, reflected at the faces of the cube.

    Categorical coordinates are redrawn with probability 1/D instead.
    """
    reps = np.repeat(centres, count, axis=0)
    points = _reflect(reps + rng.normal(0.0, scale, reps.shape))
    if categorical.any():
        # A small step in a categorical coordinate means nothing: keep it or redraw it.
        redraw = rng.random(reps.shape) < 1.0 / reps.shape[1]
        kept = np.where(redraw, rng.random(reps.shape), reps)
        points[:, categorical] = kept[:, categorical]
    return points


def _warp(y):
    """Yeo-Johnson on standardized targets: tames heavy tails (e.g. a diverging loss surface)."""
    z = (y - y.mean()) / (y.std() or 1.0)
    if len(z) < 4 or np.ptp(z) == 0:
        return z
    return yeo_johnson(z)[0]


def _yeo_johnson_transform(log1p_pos, log1p_neg, positive, lmbda):
    out = np.empty(len(positive))
    eps = np.finfo(float).eps
    if abs(lmbda) < eps:
        out[positive] = log1p_pos
    else:
        out[positive] = np.expm1(lmbda * log1p_pos) / lmbda
    if abs(lmbda - 2.0) > eps:
        out[~positive] = -np.expm1((2.0 - lmbda) * log1p_neg) / (2.0 - lmbda)
    else:
        out[~positive] = -log1p_neg
    return out


def yeo_johnson(x):
    """scipy.stats.yeojohnson(x) (maximum-likelihood lambda) in NumPy: 0.6 ms instead of 60 ms.

    The same profile log-likelihood and the same bounded Brent search (scipy's overflow-safe
    bounds and tolerance), without scipy.stats' per-evaluation array-API and NaN-policy overhead,
    which cost 60 ms per call at any n. Returns (transformed x, lambda).
    """
    x = np.asarray(x, dtype=float)
    if not np.isfinite(x).all():
        raise ValueError("Yeo-Johnson input must be finite")
    if np.all(x == 0):
        return x.copy(), 1.0
    positive = x >= 0
    log1p_pos = np.log1p(x[positive])
    log1p_neg = np.log1p(-x[~positive])
    signed_log_sum = log1p_pos.sum() - log1p_neg.sum()
    n = len(x)
    tiny = np.finfo(float).smallest_normal

    def neg_log_likelihood(lmbda):
        variance = _yeo_johnson_transform(log1p_pos, log1p_neg, positive, lmbda).var()
        if not variance >= tiny:  # Too little variance (or overflow): reject this lambda.
            return np.inf
        return n / 2 * math.log(variance) - (lmbda - 1.0) * signed_log_sum

    # scipy's bounds: values up to 20 times the largest transform without over- or underflow.
    log1p_max = math.log1p(20 * np.abs(x).max())
    log_eps = math.log(np.finfo(float).eps)
    lower = (math.log(np.finfo(float).tiny) - log_eps) / 2 / log1p_max
    upper = (math.log(np.finfo(float).max) + log_eps) / 2 / log1p_max
    if not positive.any():
        lower, upper = 2.0 - upper, 2.0 - lower
    elif not positive.all():
        lower, upper = max(2.0 - upper, lower), min(2.0 - lower, upper)
    with np.errstate(over="ignore", invalid="ignore"):
        lmbda = optimize.fminbound(neg_log_likelihood, lower, upper, xtol=1.48e-08)
    return _yeo_johnson_transform(log1p_pos, log1p_neg, positive, lmbda), float(lmbda)


class Suggester:
    """Fits the models to observations and proposes the next unit point.

    Args:
      space: the SearchSpace.
      num_random: uniform random candidates per suggestion.
      num_local: perturbation candidates per suggestion (around good points).
      num_refine: candidates of the final local refinement.
    """

    def __init__(self, space, num_random=1000, num_local=600, num_refine=300):
        self.encoder = Encoder(space)
        self.num_random = num_random
        self.num_local = num_local
        self.num_refine = num_refine
        self.categorical = np.array([d.scale == "categorical" for d in space.dimensions])
        # Last fitted log hyperparameters: the next fit starts from them (fast, and stable).
        self.theta = None
        self.feasibility_theta = None

    def suggest(self, units, objectives, pending, rng):
        """Proposes a canonical unit point.

        Args:
          units: (n, D) unit points of finished trials (any order).
          objectives: n objective values to minimise; None or NaN marks an infeasible trial.
          pending: (m, D) unit points of running trials.
          rng: numpy Generator for the candidates.

        Returns:
          (point, info): the canonical (D,) point and a dict with the acquisition value, or
          (None, info) when every candidate duplicates a tried point.
        """
        # The matrices are small (n <= a few hundred): threaded BLAS only adds contention, which
        # made a suggestion 6x slower on a loaded 2-core machine.
        with _one_blas_thread():
            return self._suggest(units, objectives, pending, rng)

    def _suggest(self, units, objectives, pending, rng):
        enc = self.encoder
        observed = enc.canonical(units)
        pending = enc.canonical(pending) if len(pending) else np.zeros((0, len(enc.dims)))
        y = np.array([np.nan if v is None else float(v) for v in objectives])
        feasible = np.isfinite(y)
        if feasible.sum() < 2:
            raise ValueError(f"a GP needs 2 feasible observations, got {int(feasible.sum())}")
        x = enc.features(observed)
        # Infeasible trials also enter the objective GP, at the worst feasible value: that makes
        # their neighbourhood unattractive even before the classifier has seen enough of them
        # (measured on bench_bayesian's lr_like: 12.5 -> 4.3 divergent proposals of 30).
        warped = _warp(np.where(feasible, y, np.max(y[feasible])))
        # Drawn first, and only above FIT_SUBSET: smaller studies see the same candidates as
        # without subsets.
        subset = fit_subset(rng, len(x))
        model = gp.GaussianProcess().fit(x, warped, theta=self.theta, subset=subset)
        self.theta = model.theta
        if len(pending):
            x_pending = enc.features(pending)
            model.condition(x_pending, model.predict(x_pending)[0])
        classifier = None
        if not feasible.all():
            classifier = gp.FeasibilityModel().fit(
                x, feasible, theta=self.feasibility_theta, subset=subset
            )
            self.feasibility_theta = classifier.gp.theta
        best = warped[feasible].min()

        def score(points):
            features = enc.features(points)
            mean, var = model.predict(features)
            value = gp.log_expected_improvement(mean, np.sqrt(var), best)
            if classifier is not None:
                value = value + classifier.log_probability(features)
            return value

        tried = np.vstack([observed, pending])
        dims = len(enc.dims)
        order = np.argsort(warped[feasible])
        centres = observed[feasible][order[: min(5, len(order))]]
        candidates = [rng.random((self.num_random, dims))]
        per_scale = max(1, self.num_local // (3 * len(centres)))
        for scale in (0.15, 0.05, 0.015):
            candidates.append(_perturb(rng, centres, per_scale, scale, self.categorical))
        candidates = enc.canonical(np.vstack(candidates))
        values = score(candidates)
        top = candidates[np.argsort(-values)[:5]]
        per_top = max(1, self.num_refine // (2 * len(top)))
        refine = [_perturb(rng, top, per_top, s, self.categorical) for s in (0.02, 0.004)]
        refine = enc.canonical(np.vstack(refine))
        candidates = np.vstack([candidates, refine])
        values = np.concatenate([values, score(refine)])
        pick = _best_fresh(candidates, values, tried)
        if pick is None:
            return None, {"acquisition": None}
        return candidates[pick], {"acquisition": float(values[pick])}


def fit_subset(rng, n, size=FIT_SUBSET):
    """Sorted indices of `size` of n observations drawn with rng, or None when n <= size."""
    if n <= size:
        return None
    return np.sort(rng.choice(n, size, replace=False))


def _best_fresh(candidates, values, tried):
    """Index of the best candidate that is not a tried point, or None.

    Candidates are checked best first, a chunk at a time: the first chunk nearly always holds a
    fresh one, so the check costs O(chunk x tried), not O(candidates x tried).
    """
    order = np.argsort(-values, kind="stable")
    for start in range(0, len(order), _DUPLICATE_CHUNK):
        chunk = order[start : start + _DUPLICATE_CHUNK]
        fresh = chunk[~_is_duplicate(candidates[chunk], tried)]
        if len(fresh):
            return int(fresh[0])
    return None


def _is_duplicate(candidates, tried):
    if len(tried) == 0:
        return np.zeros(len(candidates), dtype=bool)
    gap = np.abs(candidates[:, None, :] - tried[None, :, :]).max(axis=2)
    return (gap <= _DUPLICATE_TOLERANCE).any(axis=1)
