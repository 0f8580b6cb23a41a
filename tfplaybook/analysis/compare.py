"""Whether to adopt a candidate configuration over the baseline (checklist 57-61).

Pure Python. Inputs are the objective values of N reruns (different seeds) of the baseline and of
the candidate, so the decision sees trial variance (checklist 57-59) and not just one lucky run.

Rule (checklist 60): adopt when a one-sided Welch t-test finds the candidate's mean better than
the baseline's, in the direction of the goal, at level LEVEL (0.05): equivalently, the lower
95% confidence bound of the mean gain is above 0. Its power grows with the number of reruns, so
more evidence makes a real gain easier to adopt and a spurious one no easier. (The earlier rule,
gain > the rerun spread max - min of both arms, grew stricter with every rerun, because the range
of N draws grows with N; its verdict is still reported as `range_rule`.) A candidate rerun that
diverged (a non-finite value) means "keep baseline": an unstable configuration is not adopted.
Whether the gain outweighs the added complexity is left to a person (the report says so).
"""

import math
import statistics

ADOPT, KEEP = "adopt", "keep baseline"
LEVEL = 0.05
RULE = (
    f"adopt when a one-sided Welch t-test says the candidate's mean is better at level {LEVEL} "
    "(the lower 95% confidence bound of the goal-aware mean gain is above 0)"
)


def std(values):
    """Sample standard deviation of the finite values; None with fewer than 2."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return statistics.stdev(finite) if len(finite) > 1 else None


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


def welch(baseline, candidate, sign, level=LEVEL):
    """(t, degrees of freedom, one-sided p, lower confidence bound of the gain) for the
    goal-aware gain sign * (candidate mean - baseline mean)."""
    from scipy import stats

    gain = sign * (candidate["mean"] - baseline["mean"])
    var_b = baseline["std"] ** 2 / len(baseline["values"])
    var_c = candidate["std"] ** 2 / len(candidate["values"])
    se = math.sqrt(var_b + var_c)
    if se == 0.0:  # Both arms identical across reruns: the gain is exact.
        return (math.inf if gain > 0 else -math.inf, math.inf, 0.0 if gain > 0 else 1.0, gain)
    terms = [v**2 / (len(arm["values"]) - 1) for v, arm in ((var_b, baseline), (var_c, candidate))]
    df = (var_b + var_c) ** 2 / sum(terms)
    t = gain / se
    return t, df, float(stats.t.sf(t, df)), gain - float(stats.t.ppf(1 - level, df)) * se


def decide(baseline_values, candidate_values, goal="max"):
    """Applies the adoption rule to rerun results.

    Args:
      baseline_values: objective values of the baseline's reruns (at least 2).
      candidate_values: objective values of the candidate's reruns (at least 2).
      goal: "max" or "min", the objective's direction.

    Returns:
      dict with "decision" ("adopt" or "keep baseline"), "reason", "rule", "goal", per-arm
      summaries "baseline" and "candidate" (n, values, mean, std, min, max, spread, best),
      "mean_improvement" and "best_improvement" (goal-aware: positive favours the candidate),
      the Welch test ("t", "df", "p_value", "gain_lower_bound", "level"), and the earlier range
      rule for reference: "required_improvement" (the larger of the two spreads) and
      "range_rule" (its decision).

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
    if len(baseline["values"]) < 2:
        raise ValueError(
            f"only one baseline rerun is finite ({list(baseline_values)}); the test needs at "
            "least 2 to measure trial variance"
        )
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
    t, df, p_value, lower = welch(baseline, candidate, sign)
    adopt = p_value < LEVEL
    result.update(
        decision=ADOPT if adopt else KEEP,
        mean_improvement=mean_gain,
        best_improvement=sign * (candidate["best"] - baseline["best"]),
        t=t,
        df=df,
        p_value=p_value,
        gain_lower_bound=lower,
        level=LEVEL,
        required_improvement=required,
        range_rule=ADOPT if mean_gain > required else KEEP,
        reason=f"mean improvement {mean_gain:.4g}, Welch one-sided p = {p_value:.3g} "
        f"{'<' if adopt else '>='} {LEVEL} (lower 95% bound of the gain {lower:.4g}; "
        f"{baseline['n']} vs {candidate['n']} reruns)",
    )
    return result
