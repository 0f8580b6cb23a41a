"""The study's own question: which scientific value won, by how much, and is that more than noise.

A study compares values of its scientific hyperparameters, with the nuisance ones tuned for each
(checklist 20-22, 53). This module answers that comparison from the trials alone: per scientific
dimension, the best objective reached at each value, the spread of that value's top few trials
(how much the nuisance settings moved it), the gap between the winner and the runner-up, and
whether the gap exceeds the trial-to-trial noise the study measured. The noise comes from the
study's own repeats (trials with the same hyperparameter values and another seed) or from sibling
studies of the same space with other seeds (study variance, checklist 57); with neither, the
answer says the study cannot tell and how to find out (`--mode=compare` reruns both bests).

Pure Python on `study_data.Study`: no TensorFlow, no matplotlib.
"""

import numpy as np

from tfplaybook.analysis import study_data

TOP_NUISANCE = 3  # Top trials per scientific value whose spread is reported.
NUM_BUCKETS = 4  # Groups for a continuous scientific dimension.
NOISE_MULTIPLE = 2.0  # A gap counts as larger than noise beyond this many noise deviations.


def repeat_noise(study):
    """(pooled standard deviation, number of repeated settings) of trials that share every
    hyperparameter value, or (None, 0) when no setting was run twice."""
    groups = {}
    for trial in study.ranked():
        key = repr(sorted(trial.values.items()))
        groups.setdefault(key, []).append(trial.objective)
    repeated = [np.asarray(v, float) for v in groups.values() if len(v) > 1]
    if not repeated:
        return None, 0
    squares = sum(((v - v.mean()) ** 2).sum() for v in repeated)
    dof = sum(len(v) - 1 for v in repeated)
    return float(np.sqrt(squares / dof)), len(repeated)


def answer(study, variance=None):
    """The comparison per scientific dimension.

    Args:
      study: a `study_data.Study`.
      variance: `budget.study_variance(study)` if the caller has it (None: not used).

    Returns:
      A dict: "dimensions" (one entry per scientific dimension with at least two values among
      feasible trials: "name", "groups" best first, each {"label", "best", "trial", "top",
      "spread", "n"}, "winner", "gap" (winner minus runner-up, in the goal's direction)),
      "noise" (standard deviation or None), "noise_source" (a phrase) and "verdicts" (one
      sentence per dimension).
    """
    noise, repeats = repeat_noise(study)
    source = f"{repeats} repeated setting(s) in this study" if noise is not None else None
    if noise is None and variance is not None:
        noise, source = variance["std"], f"{len(variance['studies'])} studies with other seeds"
    ranked = study.ranked()
    sign = study.sign()
    dimensions, verdicts = [], []
    for dim in study.scientific_dimensions():
        groups = []
        for label, _, members in study_data.value_groups(ranked, dim, NUM_BUCKETS):
            objectives = sorted((t.objective for t in members), key=lambda v: -sign * v)
            top = objectives[:TOP_NUISANCE]
            groups.append(
                {
                    "label": label,
                    "best": float(top[0]),
                    "trial": min(members, key=lambda t: (-sign * t.objective, t.id)).id,
                    "top": [float(v) for v in top],
                    "spread": float(abs(top[0] - top[-1])),
                    "n": len(members),
                }
            )
        if len(groups) < 2:
            continue
        groups.sort(key=lambda g: -sign * g["best"])
        gap = sign * (groups[0]["best"] - groups[1]["best"])
        entry = {"name": dim.name, "groups": groups, "winner": groups[0]["label"], "gap": gap}
        dimensions.append(entry)
        verdicts.append(_verdict(study, entry, noise, source))
    return {"dimensions": dimensions, "noise": noise, "noise_source": source, "verdicts": verdicts}


def _verdict(study, entry, noise, source):
    first, second = entry["groups"][0], entry["groups"][1]
    head = (
        f"{entry['name']}={first['label']} reached the best {study.metric} "
        f"({first['best']:.4g}, {first['trial']}), {entry['gap']:.3g} ahead of "
        f"{entry['name']}={second['label']} ({second['best']:.4g})."
    )
    if noise is None:
        return (
            f"{head} The study has no repeated trials and no sibling studies with other seeds, so "
            "it cannot tell whether that gap is more than trial-to-trial noise: rerun both bests "
            "with --mode=compare (checklist 57-60)."
        )
    if entry["gap"] > NOISE_MULTIPLE * noise:
        judged = f"larger than {NOISE_MULTIPLE:g}x the noise"
    else:
        judged = f"within {NOISE_MULTIPLE:g}x the noise, so not a clear difference"
    return f"{head} The gap is {judged} (standard deviation {noise:.3g}, from {source})."
