"""Bayesian-optimisation quality and suggestion latency of tfplaybook's oracles.

Run: python bench/bench_bayesian.py [--seeds 10] [--trials 30] [--oracles ours_bayes,kt_bayes]
                                    [--problems branin,lr_like] [--latency] [--quick]

Quality: median and upper quartile of the simple regret (best feasible value found minus the
known optimum) after `--trials` trials over `--seeds` seeds on four test functions, for
tfplaybook's BayesianOracle and QuasiRandomOracle and keras-tuner's BayesianOptimizationOracle and
RandomSearchOracle (default settings), all driven through the same keras-tuner Oracle calls
(create_trial, update_trial, end_trial). Infeasible evaluations end the trial with status FAILED,
as a crashed trial would. The table also counts proposals on a bound (any unit coordinate within
1e-6 of 0 or 1) per study: an optimiser that piles onto a face of the cube shows up there.

- branin: 2-D, linear scales, optimum 0.397887.
- hartmann6: 6-D unit cube, optimum -3.32237.
- rosenbrock4_log: 4-D Rosenbrock with every coordinate log-scaled on [0.05, 5], optimum 0 at 1.
- lr_like: learning rate (log), one minus momentum (log), weight decay (log) and a categorical
  activation. Training "diverges" (infeasible) when the effective learning rate
  lr / (1 - momentum) exceeds an activation-dependent edge; the best loss lies 0.35 decades below
  that edge, as the playbook describes for real workloads (checklist 44). Optimum 0.08.
  The table also counts divergent proposals per study (target: at most 5 of 30 for ours).

Latency (`--latency`): wall time of one BayesianOracle.populate_space call with 10, 50, 100 and
1,000 finished trials (median and max of 5 calls), on hartmann6 and on lr_like (whose infeasible
trials add the feasibility model). The last of the n trials is the oracle's own suggestion, so the
timed ones start from its fitted GP hyperparameters, as in a study. Target on one BLAS thread: at
most 50 ms at 100 trials and 1 s at 1,000.
"""

import argparse
import math
import os
import sys
import tempfile
import time
import warnings

# The GP matrices here are small: threaded BLAS only adds contention on a shared machine (a
# keras-tuner Bayesian study took minutes instead of 10 s on a loaded 2-core CPU).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_tuner  # noqa: E402

from tfplaybook.search import oracles  # noqa: E402
from tfplaybook.search.space import parse  # noqa: E402


def branin(v):
    x1, x2 = v["x1"], v["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(v):
    x = np.array([v[f"x{i}"] for i in range(1, 7)])
    return float(-(_H_ALPHA * np.exp(-(_H_A * (x - _H_P) ** 2).sum(1))).sum())


def rosenbrock4(v):
    x = [v[f"x{i}"] for i in range(1, 5)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


_EDGE = {"relu": 0.7, "gelu": 0.9, "tanh": 0.4}  # log10 of the divergence threshold
_BASE = {"relu": 0.10, "gelu": 0.08, "tanh": 0.15}


def lr_like(v):
    """A validation-loss-like surface; None when training diverges."""
    act = v["activation"]
    effective = math.log10(v["learning_rate"] / v["one_minus_momentum"])
    if effective > _EDGE[act]:
        return None
    gap = effective - (_EDGE[act] - 0.35)
    momentum_term = (math.log10(v["one_minus_momentum"]) + 1.5) ** 2
    decay_term = (math.log10(v["weight_decay"]) + 4 + 0.5 * gap) ** 2
    return _BASE[act] + 0.08 * gap**2 + 0.03 * momentum_term + 0.02 * decay_term


def _dims(names, scale, low, high):
    return [{"name": n, "role": "nuisance", "scale": scale, "min": low, "max": high} for n in names]


PROBLEMS = {
    "branin": (
        [dict(_dims(["x1"], "linear", -5, 10)[0]), dict(_dims(["x2"], "linear", 0, 15)[0])],
        branin,
        0.397887,
    ),
    "hartmann6": (_dims([f"x{i}" for i in range(1, 7)], "linear", 0.0, 1.0), hartmann6, -3.32237),
    "rosenbrock4_log": (_dims([f"x{i}" for i in range(1, 5)], "log", 0.05, 5.0), rosenbrock4, 0.0),
    "lr_like": (
        _dims(["learning_rate"], "log", 1e-4, 1.0)
        + _dims(["one_minus_momentum"], "log", 1e-3, 0.5)
        + _dims(["weight_decay"], "log", 1e-6, 1e-2)
        + [
            {
                "name": "activation",
                "role": "nuisance",
                "scale": "categorical",
                "values": ["relu", "gelu", "tanh"],
            }
        ],
        lr_like,
        0.08,
    ),
}

_OBJECTIVE = keras_tuner.Objective("loss", "min")
_KT_KWARGS = {"max_consecutive_failed_trials": 10**6}


def make_oracle(name, space, trials, seed):
    if name == "ours_bayes":
        return oracles.BayesianOracle(space, _OBJECTIVE, trials, seed, **_KT_KWARGS)
    if name == "ours_quasi":
        return oracles.QuasiRandomOracle(space, _OBJECTIVE, trials, seed, **_KT_KWARGS)
    hps = oracles.keras_hyperparameters(space)
    # keras-tuner treats seed 0 as "random": shift so that every run is reproducible.
    common = dict(objective=_OBJECTIVE, max_trials=trials, seed=seed + 1, hyperparameters=hps)
    if name == "kt_bayes":
        return keras_tuner.oracles.BayesianOptimizationOracle(**common, **_KT_KWARGS)
    return keras_tuner.oracles.RandomSearchOracle(**common, **_KT_KWARGS)


ORACLES = ("ours_bayes", "kt_bayes", "ours_quasi", "kt_random")


_BOUND_TOLERANCE = 1e-6


def run_study(oracle, function, trials, directory, space=None):
    """Drives `oracle` for `trials` trials.

    Returns:
      (best feasible value, infeasible count, proposals on a bound); the last is None without
      `space`.
    """
    oracle._set_project_dir(directory, "study")
    oracle.verbose = 0
    best, infeasible, on_bound = math.inf, 0, 0
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        if space is not None:
            unit = np.asarray(space.to_unit(values), dtype=float)
            on_bound += bool(((unit <= _BOUND_TOLERANCE) | (unit >= 1.0 - _BOUND_TOLERANCE)).any())
        value = function(values)
        if value is None:
            infeasible += 1
            trial.status = "FAILED"
        else:
            best = min(best, value)
            oracle.update_trial(trial.trial_id, {"loss": value})
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return best, infeasible, on_bound if space is not None else None


def quality(seeds, trials, names, problems):
    print(
        f"\nSimple regret after {trials} trials over {seeds} seeds (lower is better): median, "
        "upper quartile (UQ); proposals on a bound per study: mean and max"
    )
    print(f"{'problem':<16}{'oracle':<12}{'median':>11}{'UQ':>11}{'bound mean':>12}{'max':>5}")
    divergent = {}
    seconds = {o: 0.0 for o in names}
    for problem in problems:
        entries, function, optimum = PROBLEMS[problem]
        space = parse(entries)
        for name in names:
            regrets, counts, bounds = [], [], []
            for seed in range(seeds):
                with tempfile.TemporaryDirectory() as directory:
                    start = time.perf_counter()
                    oracle = make_oracle(name, space, trials, seed)
                    best, infeasible, on_bound = run_study(
                        oracle, function, trials, directory, space
                    )
                    seconds[name] += time.perf_counter() - start
                regrets.append(best - optimum)
                counts.append(infeasible)
                bounds.append(on_bound)
            print(
                f"{problem:<16}{name:<12}{np.median(regrets):>11.4g}"
                f"{np.percentile(regrets, 75):>11.4g}{np.mean(bounds):>12.2f}{max(bounds):>5d}",
                flush=True,
            )
            if problem == "lr_like":
                divergent[name] = counts
    if divergent:
        print(f"\nDivergent (infeasible) proposals per {trials}-trial study on lr_like")
        print(f"{'oracle':<12}{'median':>8}{'max':>6}{'mean':>8}   per seed")
        for name, c in divergent.items():
            print(f"{name:<12}{np.median(c):>8.1f}{max(c):>6d}{np.mean(c):>8.2f}   {c}")
    print(
        "\nTotal wall time per oracle (s): " + ", ".join(f"{o} {s:.1f}" for o, s in seconds.items())
    )


def latency(sizes=(10, 50, 100, 1000), repeats=5):
    print(f"\nBayesianOracle.populate_space latency (ms), median / max of {repeats} calls")
    print(f"{'problem':<12}" + "".join(f"{'n=' + str(n):>20}" for n in sizes))
    for problem in ("hartmann6", "lr_like"):
        entries, function, _ = PROBLEMS[problem]
        space = parse(entries)
        row = f"{problem:<12}"
        for n in sizes:
            with tempfile.TemporaryDirectory() as directory:
                # n - 1 quasi-random initial points make the history cheaply; the n-th trial is
                # the GP's, so the timed suggestions start from a warm fit, as in a study.
                oracle = oracles.BayesianOracle(
                    space, _OBJECTIVE, n + 10, 0, num_initial_points=n - 1, **_KT_KWARGS
                )
                run_study(oracle, function, n, directory)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    response = oracle.populate_space(str(n))
                    times.append(time.perf_counter() - start)
                    assert response["status"] == "RUNNING"
            cell = f"{1e3 * np.median(times):.1f} / {1e3 * max(times):.1f}"
            row += f"{cell:>20}"
        print(row, flush=True)


def _names(text, known, flag):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise SystemExit(f"{flag}: unknown {unknown or text!r}; choose from {', '.join(known)}")
    return names


def main():
    # scikit-learn (under keras-tuner's oracle) warns at every fit that hits a length-scale bound.
    warnings.filterwarnings("ignore", module="sklearn")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="Seeds per problem and oracle.")
    parser.add_argument("--trials", type=int, default=30, help="Trials per study.")
    parser.add_argument(
        "--oracles", default=",".join(ORACLES), help="Comma list of oracles to run (default all)."
    )
    parser.add_argument(
        "--problems", default=",".join(PROBLEMS), help="Comma list of problems (default all)."
    )
    parser.add_argument("--quick", action="store_true", help="3 seeds: a run of about a minute.")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="Also measure the suggestion latency at 10, 50, 100 and 1,000 finished trials.",
    )
    args = parser.parse_args()
    names = _names(args.oracles, ORACLES, "--oracles")
    problems = _names(args.problems, PROBLEMS, "--problems")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    if args.seeds > 0:
        quality(3 if args.quick else args.seeds, args.trials, names, problems)
    if args.latency:
        latency()


if __name__ == "__main__":
    main()
