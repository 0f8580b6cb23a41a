"""Periodic validation curves (checklist 85): the phase-folding test and the report check."""

import fixtures_analysis as fx
import numpy as np
import pytest

from tfplaybook.analysis import checks, periodicity, study_data

pytestmark = pytest.mark.pure


def _trend(n):
    return 0.9 * (1 - np.exp(-np.arange(n) / (n / 6)))


@pytest.mark.parametrize("n, period", [(40, 5), (60, 8), (100, 12)])
def test_a_repeating_pattern_is_found_at_its_period(n, period):
    rng = np.random.default_rng(n)
    t = np.arange(n)
    curve = _trend(n) + 0.01 * np.sin(2 * np.pi * t / period) + 0.003 * rng.normal(size=n)
    found = periodicity.period(curve, 1e-4)
    assert found is not None and found[0] == period and found[1] < 1e-4


@pytest.mark.parametrize("noise", [0.0005, 0.003, 0.02])
def test_trend_and_noise_alone_are_not_periodic_for_fixed_seeds(noise):
    flagged = [
        seed
        for seed in range(200)
        if periodicity.period(
            _trend(50) + noise * np.random.default_rng(seed).normal(size=50), 1e-4
        )
    ]
    assert len(flagged) <= 2, flagged  # About 0.3% measured; 1% allowed on these 200 seeds.


def test_short_and_flat_curves_are_not_judged():
    assert not periodicity.judgeable(10) and periodicity.judgeable(19)
    assert periodicity.period(np.sin(np.arange(10)), 1e-4) is None
    assert periodicity.period(np.ones(40), 1e-4) is None


def _study(tmp_path, shape, max_train_steps=800):
    config = fx.base_config(max_train_steps=max_train_steps)
    trials = [
        {"values": {"optimizer.learning_rate": lr}, "shape": shape, "config": config}
        for lr in (0.01, 0.03, 0.1)
    ]
    fx.make_study(str(tmp_path / shape), [fx.LR_DIM], trials)
    result = checks.run_checks(study_data.load_study(str(tmp_path / shape)))
    return {r.id: r for r in result}["periodicity"]


def test_the_check_warns_on_periodic_curves_and_names_the_period_in_steps(tmp_path):
    result = _study(tmp_path, "periodic")
    assert result.verdict == checks.WARNING
    assert "every 100 steps" in result.finding
    assert {r["period_steps"] for r in result.numbers["trials"]} == {100}


def test_the_check_is_quiet_on_ordinary_curves(tmp_path):
    assert _study(tmp_path, "normal").verdict == checks.OK


def test_too_few_evaluations_is_not_applicable_and_says_what_to_do(tmp_path):
    result = _study(tmp_path, "normal", max_train_steps=200)  # 10 evaluations.
    assert result.verdict == checks.NA and "eval_every_steps" in result.finding
