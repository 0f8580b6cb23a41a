"""The adoption rule (checklist 57-61): a one-sided Welch t-test on the reruns of both arms."""

import statistics

import pytest

from tfplaybook.analysis import compare

pytestmark = pytest.mark.pure


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


def test_more_reruns_make_a_real_gain_easier_to_adopt_not_harder():
    # The same small true gain (0.006) under the same noise, with 3 and with 30 reruns per arm:
    # the test gains power with evidence, while the range rule only gets stricter.
    def arm(mean, n):
        return [mean + 0.01 * statistics.NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]

    few = compare.decide(arm(0.900, 3), arm(0.906, 3), goal="max")
    many = compare.decide(arm(0.900, 30), arm(0.906, 30), goal="max")
    assert few["decision"] == compare.KEEP and many["decision"] == compare.ADOPT
    assert many["p_value"] < compare.LEVEL < few["p_value"]
    assert few["range_rule"] == many["range_rule"] == compare.KEEP
    assert many["required_improvement"] > few["required_improvement"]
    assert many["gain_lower_bound"] > 0 > few["gain_lower_bound"]


def test_identical_reruns_decide_by_the_sign_of_the_gain():
    assert compare.decide([0.9, 0.9], [0.91, 0.91])["decision"] == compare.ADOPT
    assert compare.decide([0.9, 0.9], [0.9, 0.9])["decision"] == compare.KEEP


def test_welch_matches_scipy():
    from scipy import stats

    baseline, candidate = [0.90, 0.91, 0.905, 0.899], [0.92, 0.905, 0.93]
    decision = compare.decide(baseline, candidate, goal="max")
    expected = stats.ttest_ind(candidate, baseline, equal_var=False, alternative="greater")
    assert decision["p_value"] == pytest.approx(expected.pvalue)
    assert decision["t"] == pytest.approx(expected.statistic)
