"""The adoption rule (checklist 57-61): improvement must exceed the rerun spread of both arms."""

import statistics

import pytest

from tfplaybook.analysis import compare


def test_adopts_when_the_gain_exceeds_both_spreads():
    decision = compare.decide([0.90, 0.91, 0.905], [0.93, 0.935, 0.94], goal="max")
    assert decision["decision"] == compare.ADOPT
    assert decision["mean_improvement"] == pytest.approx(0.935 - 0.905)
    assert decision["required_improvement"] == pytest.approx(0.01)
    assert decision["best_improvement"] == pytest.approx(0.94 - 0.91)


def test_keeps_baseline_when_the_gain_is_within_trial_variance():
    # The candidate's mean is higher, but its reruns spread more than the gain.
    decision = compare.decide([0.90, 0.91], [0.89, 0.94], goal="max")
    assert decision["mean_improvement"] == pytest.approx(0.01)
    assert decision["required_improvement"] == pytest.approx(0.05)
    assert decision["decision"] == compare.KEEP


def test_the_larger_spread_decides():
    # Gain 0.03 beats the candidate's spread (0.01) but not the baseline's (0.04).
    decision = compare.decide([0.88, 0.92], [0.925, 0.935], goal="max")
    assert decision["decision"] == compare.KEEP
    decision = compare.decide([0.895, 0.905], [0.925, 0.935], goal="max")
    assert decision["decision"] == compare.ADOPT


def test_goal_min_reverses_the_direction():
    baseline, candidate = [0.30, 0.31, 0.305], [0.25, 0.255, 0.26]
    assert compare.decide(baseline, candidate, goal="min")["decision"] == compare.ADOPT
    assert compare.decide(baseline, candidate, goal="max")["decision"] == compare.KEEP
    assert compare.decide(baseline, candidate, goal="min")["mean_improvement"] > 0


def test_summary_reports_trial_variance():
    values = [0.91, 0.93, 0.92, 0.95]
    summary = compare.decide(values, [0.1, 0.2], goal="max")["baseline"]
    assert summary["mean"] == pytest.approx(statistics.fmean(values))
    assert summary["std"] == pytest.approx(statistics.stdev(values))
    assert summary["spread"] == pytest.approx(0.04)
    assert (summary["min"], summary["max"], summary["best"], summary["n"]) == (0.91, 0.95, 0.95, 4)


def test_a_diverged_candidate_rerun_keeps_the_baseline():
    decision = compare.decide([0.90, 0.91], [0.97, float("nan"), 0.98], goal="max")
    assert decision["decision"] == compare.KEEP
    assert decision["candidate"]["n_nonfinite"] == 1
    assert "diverged" in decision["reason"]


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="at least 2"):
        compare.decide([0.9], [0.95, 0.96])
    with pytest.raises(ValueError, match="'max', 'min'"):
        compare.decide([0.9, 0.91], [0.95, 0.96], goal="maximize")
    with pytest.raises(ValueError, match="non-finite"):
        compare.decide([float("nan"), float("inf")], [0.95, 0.96])
