"""Coverage of tfplaybook's default quasi-random sampler: discrepancy (lower = more even).

Run: python bench/bench_quasi_random.py [--seeds 200] [--method CD]   (about 30 s for 200 seeds)

For n = 20, 50 points in d = 2, 4, 8 dimensions, the median over seeds 0 .. seeds-1 of
`scipy.stats.qmc.discrepancy` (centred L2 by default; "WD" and "L2-star" check that choosing the
scrambling by CD does not trade one discrepancy for another) for:

- ours: tfplaybook's default sampler, HaltonSampler(d, seed).points(0, n);
- scipy: scipy.stats.qmc.Halton(d, scramble=True, seed=seed).random(n);
- iid: i.i.d. uniform points, for reference.

Target: ours/scipy <= 1. Two samplers equal in distribution land within about +-4% of each other
at 200 seeds. "distinct" checks that the seeds gave as many different point sets as there are seeds.
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.stats import qmc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfplaybook.search.halton import HaltonSampler  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="Seeds per cell (at least 10).")
    parser.add_argument("--method", default="CD", choices=("CD", "WD", "L2-star"))
    args = parser.parse_args()
    if args.seeds < 10:
        parser.error("--seeds must be at least 10")
    seeds = range(args.seeds)
    start = time.perf_counter()
    print(f"{args.method} discrepancy, median over {args.seeds} seeds (lower is better)")
    columns = ("ours", "scipy", "iid", "ours/scipy", "distinct")
    print(f"{'d':>3}{'n':>5}" + "".join(f"{c:>12}" for c in columns))
    for d in (2, 4, 8):
        samplers = [HaltonSampler(d, s) for s in seeds]
        for n in (20, 50):
            ours = [sampler.points(0, n) for sampler in samplers]
            scipy_points = [qmc.Halton(d, scramble=True, seed=s).random(n) for s in seeds]
            iid_points = [np.random.default_rng(s).random((n, d)) for s in seeds]
            row = [
                np.median([qmc.discrepancy(x, method=args.method) for x in points])
                for points in (ours, scipy_points, iid_points)
            ]
            distinct = len({x.tobytes() for x in ours}) == len(ours)
            print(
                f"{d:>3}{n:>5}"
                + "".join(f"{v:>12.5f}" for v in row)
                + f"{row[0] / row[1]:>12.3f}{'yes' if distinct else 'NO':>12}",
                flush=True,
            )
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
