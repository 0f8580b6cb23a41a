"""Quasi-random points in the unit cube: seeded scrambled Halton, and the playbook's reference.

Pure NumPy/SciPy. Two samplers, both resumable (point i depends only on the seed and i):

- `HaltonSampler` (default, "halton"): `scipy.stats.qmc.Halton(d, scramble=True)` (small prime
  bases, random digit permutations) plus a random Cranley-Patterson shift per dimension (a rotation
  x -> (x + s) mod 1), both drawn from the study seed. Another seed gives another point set, which
  is what the playbook's study variance (checklist 57) needs; the points are genuinely
  low-discrepancy (checklist 99). By default the shift is drawn on the grid {0, 1/b, ..., (b-1)/b}
  of the dimension's base b: such a rotation moves whole Halton strata onto strata, so the shifted
  set keeps scipy's discrepancy exactly in distribution. A shift drawn uniformly from [0, 1)
  (`shift="uniform"`) cuts strata at 0 and raised the centred L2 discrepancy by 4-36% over scipy's
  at n = 20-50, d = 2-8 (bench/bench_quasi_random.py).
- `CompatSampler` ("halton_compat"): the playbook's reference generator (mlcommons algoperf
  `halton.py`, checklist 102) point for point: bases are the largest odd primes below 1000 (minus
  the largest), digit permutation and shift come from `numpy.random.RandomState(prime)`, indices
  start at 1 after skipping 100, and the n points are shuffled with NumPy's legacy generator. The
  reference shuffles with the *global* generator; here the shuffle is seeded (`shuffle_seed`), which
  equals calling `np.random.seed(shuffle_seed)` before the reference. Its point set does not depend
  on the seed (only its order does) and its trial order depends on the number of trials.
"""

import math

import numpy as np
from scipy.stats import qmc

SAMPLERS = ("halton", "halton_compat")


def odd_primes_below(n):
    """Odd primes < n, ascending (2 is excluded, as in the reference)."""
    sieve = np.ones(max(n, 2), dtype=bool)
    sieve[:2] = False
    for k in range(2, int(math.isqrt(n - 1)) + 1 if n > 2 else 2):
        if sieve[k]:
            sieve[k * k :: k] = False
    return [int(p) for p in np.flatnonzero(sieve) if p != 2]


def compat_bases(num_dims):
    """The reference's bases: the `num_dims` largest odd primes below 1000*k minus the largest."""
    k = 1
    primes = odd_primes_below(1000 * k)
    while len(primes) < num_dims + 1:
        k += 1
        primes = odd_primes_below(1000 * k)
    return primes[len(primes) - num_dims - 1 : len(primes) - 1]


def _compat_column(num_indices, base, shift):
    """Radical inverse of indices 1..num_indices with the reference's permutation and shift."""
    rng = np.random.RandomState(base)
    digits = list(range(1, base))
    rng.shuffle(digits)
    perm = np.array([0] + digits, dtype=np.int64)
    dim_shift = rng.random_sample()
    m = np.arange(1, num_indices + 1, dtype=np.int64)
    x = np.zeros(num_indices)
    denominator = base
    # Least-significant digit first, one float addition per digit: the reference's exact order
    # of operations (adding perm[0] / b = 0.0 for exhausted digits changes nothing).
    while m.any():
        x += perm[m % base] / denominator
        denominator *= base
        m //= base
    return np.fmod(x + dim_shift, 1.0) if shift else x


def halton_compat(num_samples, num_dims, skip=100, shift=True, shuffle=True, shuffle_seed=None):
    """The reference generator's `generate_sequence`, as an (num_samples, num_dims) array.

    Args:
      num_samples: number of points.
      num_dims: number of dimensions.
      skip: leading indices dropped (the reference drops 1..100).
      shift: add the per-dimension shift drawn from RandomState(base).
      shuffle: shuffle the order of the points, as the reference does.
      shuffle_seed: None shuffles with NumPy's global legacy generator (exactly the reference);
        an int shuffles with RandomState(shuffle_seed), reproducibly.

    Returns:
      A float array in [0, 1).
    """
    if num_samples < 0 or num_dims < 1 or skip < 0:
        raise ValueError(
            f"need num_samples >= 0, num_dims >= 1, skip >= 0; got {num_samples}, {num_dims}, "
            f"{skip}"
        )
    columns = [
        _compat_column(num_samples + skip, base, shift)[skip:] for base in compat_bases(num_dims)
    ]
    points = np.stack(columns, axis=1) if columns else np.zeros((num_samples, 0))
    if shuffle:
        # Shuffling an index list draws the same swaps as shuffling the list of rows.
        order = list(range(num_samples))
        if shuffle_seed is None:
            np.random.shuffle(order)
        else:
            np.random.RandomState(shuffle_seed).shuffle(order)
        points = points[order]
    return points


class HaltonSampler:
    """Scrambled Halton with a random shift, seeded; point i is a pure function of (seed, i)."""

    name = "halton"

    def __init__(self, num_dims, seed, shift="grid"):
        """Builds the sampler.

        Args:
          num_dims: dimension of the unit cube.
          seed: the study seed; it draws both the digit permutations and the shift.
          shift: "grid" (a random multiple of 1/base per dimension, the default), "uniform" (a
            random real shift in [0, 1)) or "none".
        """
        if num_dims < 1:
            raise ValueError(f"num_dims={num_dims} must be at least 1")
        if shift not in ("grid", "uniform", "none"):
            raise ValueError(f"shift={shift!r}; allowed: grid, uniform, none")
        self.num_dims = num_dims
        self.seed = int(seed)
        scramble_seq, shift_seq = np.random.SeedSequence(self.seed).spawn(2)
        self._engine = qmc.Halton(num_dims, scramble=True, rng=np.random.default_rng(scramble_seq))
        rng = np.random.default_rng(shift_seq)
        bases = np.array(self._engine.base)
        if shift == "grid":
            self.shift = rng.integers(0, bases) / bases
        elif shift == "uniform":
            self.shift = rng.random(num_dims)
        else:
            self.shift = np.zeros(num_dims)

    def points(self, start, count):
        """Points start .. start+count-1 of the sequence, as a (count, num_dims) array."""
        # The digit permutations are drawn once at construction; reset() only rewinds the index.
        self._engine.reset()
        if start:
            self._engine.fast_forward(start)
        return np.fmod(self._engine.random(count) + self.shift, 1.0)

    def point(self, index):
        return self.points(index, 1)[0]


class CompatSampler:
    """The reference generator's `num_samples` points in their shuffled order."""

    name = "halton_compat"

    def __init__(self, num_dims, seed, num_samples):
        if not num_samples or num_samples < 1:
            raise ValueError(
                f"halton_compat needs the number of trials up front (its order depends on it), "
                f"got {num_samples!r}"
            )
        self.num_dims = num_dims
        self.seed = int(seed)
        self.num_samples = int(num_samples)
        self._points = halton_compat(self.num_samples, num_dims, shuffle_seed=self.seed)

    def points(self, start, count):
        if start < 0 or start + count > self.num_samples:
            raise IndexError(
                f"halton_compat has {self.num_samples} points; asked for points {start} to "
                f"{start + count - 1}"
            )
        return self._points[start : start + count]

    def point(self, index):
        return self.points(index, 1)[0]


def make_sampler(name, num_dims, seed, num_samples=None):
    """Returns a sampler by name: "halton" (default) or "halton_compat"."""
    if name == "halton":
        return HaltonSampler(num_dims, seed)
    if name == "halton_compat":
        return CompatSampler(num_dims, seed, num_samples)
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
