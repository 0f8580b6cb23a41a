"""Coverage of tfplaybook's quasi-random samplers: centred L2 discrepancy (lower = more even).

Run: python bench/bench_quasi_random.py [--seeds 200]   (about 2 s)

For n = 20, 50 points in d = 2, 4, 8 dimensions, the mean over seeds of
`scipy.stats.qmc.discrepancy` (centred L2) for:

- ours: tfplaybook's default sampler (scrambled Halton + a per-dimension rotation by a random
  multiple of 1/base), HaltonSampler(d, seed);
- ours_uniform_shift: the same with a Cranley-Patterson shift drawn uniformly from [0, 1);
- scipy: scipy.stats.qmc.Halton(d, scramble=True, rng=seed);
- iid: i.i.d. uniform points;
- compat: the playbook's reference generator (halton_compat); its point set is the same for
  every seed, so it has one value.

Target: ours no worse than scipy: the difference of the two means, in standard errors of that
difference (|z| < 2 is within noise; positive means ours is worse).
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.stats import qmc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfplaybook.search.halton import HaltonSampler, halton_compat  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="Seeds per cell (at least 10).")
    args = parser.parse_args()
    seeds = range(args.seeds)
    start = time.perf_counter()
    print(f"Centred L2 discrepancy, mean over {args.seeds} seeds (lower is better)")
    columns = ("ours", "ours_unif_shift", "scipy", "iid", "compat", "ours/scipy", "z")
    print(f"{'d':>3}{'n':>5}" + "".join(f"{c:>16}" for c in columns))
    for d in (2, 4, 8):
        for n in (20, 50):
            ours = [qmc.discrepancy(HaltonSampler(d, s).points(0, n)) for s in seeds]
            uniform = [
                qmc.discrepancy(HaltonSampler(d, s, shift="uniform").points(0, n)) for s in seeds
            ]
            scipy_cd = [
                qmc.discrepancy(qmc.Halton(d, scramble=True, rng=s).random(n)) for s in seeds
            ]
            iid = [qmc.discrepancy(np.random.default_rng(s).random((n, d))) for s in seeds]
            compat = qmc.discrepancy(halton_compat(n, d, shuffle=False))
            row = [np.mean(ours), np.mean(uniform), np.mean(scipy_cd), np.mean(iid), compat]
            error = np.sqrt((np.var(ours) + np.var(scipy_cd)) / len(seeds))
            row += [np.mean(ours) / np.mean(scipy_cd), (np.mean(ours) - np.mean(scipy_cd)) / error]
            print(
                f"{d:>3}{n:>5}"
                + "".join(f"{v:>16.5f}" for v in row[:5])
                + f"{row[5]:>16.3f}{row[6]:>16.2f}",
                flush=True,
            )
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
