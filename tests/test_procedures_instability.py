"""The loss-climb criterion and the instability probes (pure Python, no training)."""

import copy
import math

import numpy as np
import pytest

from tfplaybook import config as config_lib
from tfplaybook.procedures import WARN, instability

pytestmark = pytest.mark.pure

STEPS = np.arange(500)


def declining(seed=0, noise=0.02):
    """A noisy, steadily falling training loss: 2.3 -> about 0.2 over 500 steps."""
    rng = np.random.default_rng(seed)
    return 0.2 + 2.1 * np.exp(-STEPS / 80.0) + noise * rng.standard_normal(STEPS.size)


def climbing_from(step, factor=1.5):
    """Declines, then from `step` on sits at `factor` times its value there: a sustained rise."""
    loss = declining()
    loss[step:] = factor * (0.2 + 2.1 * np.exp(-step / 80.0)) + loss[step:] - loss[step:].mean()
    return loss


def test_steady_decline_is_stable():
    verdict = instability.detect_climb(STEPS, declining())
    assert verdict["verdict"] == "stable"
    assert verdict["climb_step"] is None


def test_sustained_rise_climbs_and_says_where():
    verdict = instability.detect_climb(STEPS, climbing_from(300))
    assert verdict["verdict"] == "climbs"
    # The trailing mean needs a few of the raised points before it crosses the threshold.
    assert 300 <= verdict["climb_step"] <= 300 + instability.DEFAULT_SMOOTHING_STEPS
    assert verdict["min_step"] < 300


def test_short_spike_is_not_a_climb():
    loss = declining()
    loss[200:205] *= 3.0
    assert instability.detect_climb(STEPS, loss)["verdict"] == "stable"
    # A shorter sustain requirement turns the same spike into a climb: the setting matters.
    assert instability.detect_climb(STEPS, loss, sustain_steps=2)["verdict"] == "climbs"


def test_rise_at_the_very_end_is_reported_but_unconfirmed():
    loss = declining()
    loss[-5:] *= 2.0
    verdict = instability.detect_climb(STEPS, loss)
    assert verdict["verdict"] == "stable"
    assert 495 <= verdict["unconfirmed_rise_step"] <= 499


def test_non_finite_loss_is_a_divergence():
    loss = declining()
    loss[200:] = math.nan
    verdict = instability.detect_climb(STEPS, loss)
    assert verdict == {**verdict, "verdict": "diverged", "climb_step": 200}


def test_noise_near_zero_loss_does_not_climb_by_default():
    rng = np.random.default_rng(1)
    loss = 1e-4 * (1.0 + rng.random(STEPS.size) * 3.0)  # Triples from its minimum, at 1e-4 scale.
    assert instability.detect_climb(STEPS, loss)["verdict"] == "stable"
    verdict = instability.detect_climb(STEPS, loss, min_absolute_rise=0.0, smoothing_steps=1)
    assert verdict["verdict"] == "climbs"


def test_coarse_logging_uses_steps_not_points():
    steps = np.arange(0, 2000, 50)
    loss = 0.5 + 2.0 * np.exp(-steps / 300.0)
    loss[30:] = 1.5  # From step 1500 on: well above the minimum (~0.57).
    verdict = instability.detect_climb(steps, loss)
    assert verdict["verdict"] == "climbs"
    assert verdict["climb_step"] == 1500


def test_rejects_bad_series():
    with pytest.raises(ValueError, match="equally long"):
        instability.detect_climb([0, 1], [1.0])
    with pytest.raises(ValueError, match="strictly increase"):
        instability.detect_climb([0, 2, 1], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="smoothing_steps=0"):
        instability.detect_climb([0, 1], [1.0, 1.0], smoothing_steps=0)


def test_probes_detect_instability_at_10x_only():
    res = instability.analyze_probes(
        {2.0: (STEPS, declining()), 10.0: (STEPS, climbing_from(250))}, best_learning_rate=0.05
    )
    runs = res["numbers"]["runs"]
    assert runs["2.0"]["verdict"] == "stable"
    assert runs["10.0"]["verdict"] == "climbs"
    assert runs["10.0"]["learning_rate"] == pytest.approx(0.5)
    assert [c["item"] for c in res["checklist"] if c["verdict"] == WARN] == [108]
    assert "warmup" in res["recommendation"]
    assert "choice" in res["thresholds"]["rise_fraction"]["source"]


def test_probes_without_instability():
    res = instability.analyze_probes({2.0: (STEPS, declining()), 5.0: (STEPS, declining(seed=3))})
    assert "No instability" in res["recommendation"]
    assert not [c for c in res["checklist"] if c["verdict"] == WARN]


def test_criterion_settings_reach_the_probe_verdict():
    loss = declining()
    loss[200:205] *= 3.0
    res = instability.analyze_probes({2.0: (STEPS, loss)}, sustain_steps=2)
    assert res["numbers"]["runs"]["2.0"]["verdict"] == "climbs"
    assert res["thresholds"]["sustain_steps"]["value"] == 2
    with pytest.raises(ValueError, match="unknown criterion"):
        instability.criterion_thresholds(window=3)


def test_probe_config_runs_500_steps_at_twice_the_lr_evaluating_every_step():
    base = config_lib.load_experiment(config_lib.default_experiment())
    before = copy.deepcopy(base)
    probe = instability.probe_config(base, best_learning_rate=0.05)
    assert base == before
    assert probe["optimizer"]["learning_rate"] == pytest.approx(0.1)
    assert probe["max_train_steps"] == 500
    assert probe["eval_every_steps"] == 1
    assert probe["schedule"]["name"] == "constant"
    config_lib.validate(probe)
    high = instability.probe_config(base, 0.05, lr_multiplier=10.0, max_train_steps=300)
    assert high["optimizer"]["learning_rate"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lr_multiplier=0"):
        instability.probe_config(base, 0.05, lr_multiplier=0)
