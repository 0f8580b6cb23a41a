"""Whether to adopt a candidate configuration over the baseline (checklist 57-61).

Pure Python. Inputs are the objective values of N reruns (different seeds) of the baseline and of
the candidate, so the decision sees trial variance (checklist 57-59) and not just one lucky run.

Rule (checklist 60): adopt when the improvement of the candidate's mean over the baseline's mean,
in the direction of the goal, is larger than the rerun spread (max - min) of the baseline AND
larger than that of the candidate. A candidate rerun that diverged (a non-finite value) means
"keep baseline": an unstable configuration is not adopted. Whether the gain outweighs the added
complexity is left to a person (the report says so).
"""

import math
import statistics

ADOPT, KEEP = "adopt", "keep baseline"
RULE = (
    "adopt when (candidate mean - baseline mean), in the direction of the goal, exceeds the "
    "rerun spread (max - min) of both the baseline and the candidate"
)


def summarize(values, goal):
    """Trial-variance summary of rerun objective values (non-finite values counted apart)."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    if not finite:
        return {"n": len(values), "n_nonfinite": len(values), "values": list(values)}
    return {
        "n": len(values),
        "n_nonfinite": len(values) - len(finite),
        "values": finite,
        "mean": statistics.fmean(finite),
        "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "min": min(finite),
        "max": max(finite),
        "spread": max(finite) - min(finite),
        "best": max(finite) if goal == "max" else min(finite),
    }


def decide(baseline_values, candidate_values, goal="max"):
    """Applies the adoption rule to rerun results.

    Args:
      baseline_values: objective values of the baseline's reruns (at least 2).
      candidate_values: objective values of the candidate's reruns (at least 2).
      goal: "max" or "min", the objective's direction.

    Returns:
      dict with "decision" ("adopt" or "keep baseline"), "reason", "rule", "goal", per-arm
      summaries "baseline" and "candidate" (n, values, mean, std, min, max, spread, best),
      "mean_improvement" and "best_improvement" (goal-aware: positive favours the candidate) and
      "required_improvement" (the larger of the two spreads).

    Raises:
      ValueError: on an unknown goal, fewer than 2 values in an arm, or no finite baseline value.
    """
    if goal not in ("max", "min"):
        raise ValueError(f"goal {goal!r} is not one of 'max', 'min'")
    for name, values in (("baseline", baseline_values), ("candidate", candidate_values)):
        if len(values) < 2:
            raise ValueError(
                f"{name} has {len(values)} rerun value(s) {list(values)}; the rule "
                "needs at least 2 per arm to measure trial variance"
            )
    baseline, candidate = summarize(baseline_values, goal), summarize(candidate_values, goal)
    if "mean" not in baseline:
        raise ValueError(f"every baseline rerun is non-finite: {list(baseline_values)}")
    result = {"goal": goal, "rule": RULE, "baseline": baseline, "candidate": candidate}
    if candidate["n_nonfinite"]:
        result.update(
            decision=KEEP,
            mean_improvement=None,
            best_improvement=None,
            required_improvement=None,
            reason=f"{candidate['n_nonfinite']} of {candidate['n']} candidate reruns "
            "diverged (non-finite objective)",
        )
        return result
    sign = 1.0 if goal == "max" else -1.0
    mean_gain = sign * (candidate["mean"] - baseline["mean"])
    required = max(baseline["spread"], candidate["spread"])
    adopt = mean_gain > required
    comparison = ">" if adopt else "<="
    result.update(
        decision=ADOPT if adopt else KEEP,
        mean_improvement=mean_gain,
        best_improvement=sign * (candidate["best"] - baseline["best"]),
        required_improvement=required,
        reason=f"mean improvement {mean_gain:.4g} {comparison} largest rerun spread "
        f"{required:.4g}",
    )
    return result
