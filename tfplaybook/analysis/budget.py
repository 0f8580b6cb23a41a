"""How many trials (checklist 103): the bootstrapped best-of-k objective for k = 1..n.

Pure Python and NumPy. The playbook's figure resamples a finished study: draw k of its n trials
with replacement, keep the best objective, repeat; the median and interquartile range of that
best-of-k against k show how much a budget of k trials depends on luck and whether more trials
still help. Infeasible trials are drawn too and count as no result (a draw of only infeasible
trials has no best and is left out of that k's quantiles).

The verdict ("more trials stop helping") is tfplaybook's rule, the playbook gives none: the
budget is past the plateau when doubling it, from ceil(n/2) to n trials, moves the median
best-of-k by at most PLATEAU_FRACTION (2%) of the spread of the feasible trials' objectives
(best minus worst), so one threshold serves accuracy, error and loss alike, as in the checks.
"""

import math

import numpy as np

RESAMPLES = 2000
PLATEAU_FRACTION = 0.02


def best_of_k(study, resamples=RESAMPLES, seed=0):
    """Bootstraps best-of-k over the study's trials.

    Returns:
      dict with "k" (1..n), "median", "q25", "q75" (arrays, NaN where no draw had a result),
      "n", "feasible", "plateau" (bool or None when it cannot be told), "gain" (median change
      from ceil(n/2) to n, goal-aware: positive = better), "iqr" (at n) and "threshold"
      (PLATEAU_FRACTION of the objectives' spread); None when the study has fewer than 2 trials
      or no feasible one.
    """
    values = [
        (
            t.objective
            if t.feasible and t.objective is not None and math.isfinite(t.objective)
            else np.nan
        )
        for t in study.trials
    ]
    n = len(values)
    feasible = int(np.sum(np.isfinite(values)))
    if n < 2 or feasible == 0:
        return None
    sign = study.sign()
    scores = sign * np.asarray(values, dtype=float)  # Larger is better from here on.
    rng = np.random.default_rng(seed)
    ks = np.arange(1, n + 1)
    median, q25, q75 = (np.full(n, np.nan) for _ in range(3))
    for i, k in enumerate(ks):
        draws = scores[rng.integers(0, n, size=(resamples, k))]
        has = np.isfinite(draws).any(axis=1)
        if not has.any():
            continue
        best = np.nanmax(np.where(np.isfinite(draws), draws, -np.inf)[has], axis=1)
        q25[i], median[i], q75[i] = np.percentile(best, [25, 50, 75])
    half = int(math.ceil(n / 2)) - 1
    gain = median[-1] - median[half]
    iqr = q75[-1] - q25[-1]
    spread = np.nanmax(scores) - np.nanmin(scores)
    threshold = PLATEAU_FRACTION * spread
    plateau = bool(gain <= threshold) if np.isfinite(gain) else None
    back = (lambda a: sign * a) if sign < 0 else (lambda a: a)
    lower, upper = (back(q25), back(q75)) if sign > 0 else (back(q75), back(q25))
    return {
        "k": ks,
        "median": back(median),
        "q25": lower,
        "q75": upper,
        "n": n,
        "feasible": feasible,
        "gain": float(gain),
        "iqr": float(iqr),
        "threshold": float(threshold),
        "plateau": plateau,
    }


def verdict(result, metric):
    """One sentence for the report."""
    if result is None:
        return "Too few trials (or no feasible one) to bootstrap the trial budget."
    n, half = result["n"], int(math.ceil(result["n"] / 2))
    numbers = (
        f"from {half} to {n} trials the median best {metric} moves by {result['gain']:.4g} "
        f"(goal-aware; the plateau threshold is {result['threshold']:.4g}, 2% of the trials' "
        f"spread); the interquartile range at {n} trials is {result['iqr']:.4g}"
    )
    if result["plateau"]:
        return (
            f"The budget was past the point where more trials stop helping: {numbers}. More "
            "trials of this space would mostly buy luck; a new round should change the space."
        )
    return (
        f"More trials would still help: {numbers}. Consider raising study.max_trials (the "
        "same command resumes the study)."
    )


def _study_seed(description):
    config = description.get("config") or {}
    study = config.get("study") or {}
    return config.get("seed") if study.get("seed") is None else study["seed"]


def _same_space(a, b):
    keys = ("search_space", "objective", "max_train_steps", "batch_size")
    return all(a.get(k) == b.get(k) for k in keys)


def study_variance(study, resamples=RESAMPLES):
    """The same space run with other seeds (study variance, checklist 57 and 61).

    Looks for sibling directories of `study` (same parent) whose study.json has the same search
    space, objective, step budget and batch size but another study seed (`study.seed`, else
    `seed`). Returns None when there is none; else a dict with "studies" (one entry per study,
    this one included, sorted by seed: "path", "seed", "n", "best" (its best feasible objective)
    and "curve" (its bootstrapped median best-of-k)), "n" (the smallest trial count among them),
    and "spread" and "std" of the best objective across the studies.
    """
    import os

    from tfplaybook.analysis import study_data
    from tfplaybook.files import trial_dir as td

    here = os.path.abspath(study.path)
    try:
        description = td.read_json(os.path.join(here, "study.json"))
    except (OSError, td.DamagedFileError):
        return None
    parent, seeds, found = os.path.dirname(here), {_study_seed(description)}, [study]
    for name in sorted(os.listdir(parent)):
        other = os.path.join(parent, name)
        path = os.path.join(other, "study.json")
        if other == here or not os.path.isfile(path):
            continue
        try:
            theirs = td.read_json(path)
        except td.DamagedFileError:
            continue
        seed = _study_seed(theirs)
        if seed in seeds or not _same_space(description, theirs):
            continue
        try:
            found.append(study_data.load_study(other))
        except (OSError, ValueError):
            continue
        seeds.add(seed)
    if len(found) < 2:
        return None
    entries = []
    for member in found:
        result = best_of_k(member, resamples)
        ranked = member.ranked()
        if result is None or not ranked:
            continue
        entries.append(
            {
                "path": member.path,
                "seed": _study_seed(td.read_json(os.path.join(member.path, "study.json"))),
                "n": len(member.trials),
                "best": float(ranked[0].objective),
                "curve": result["median"],
            }
        )
    if len(entries) < 2:
        return None
    bests = np.array([e["best"] for e in entries])
    return {
        "studies": sorted(entries, key=lambda e: str(e["seed"])),
        "n": min(e["n"] for e in entries),
        "spread": float(bests.max() - bests.min()),
        "std": float(bests.std(ddof=1)),
    }


def variance_sentence(variance, metric):
    """One sentence for the report (empty when there are no other seeds)."""
    if variance is None:
        return ""
    count = len(variance["studies"])
    return (
        f"Study variance: {count} studies of this space with different seeds reach best {metric} "
        f"values spread over {variance['spread']:.4g} (standard deviation {variance['std']:.4g}); "
        "a difference between studies smaller than that is within what a new seed changes."
    )
