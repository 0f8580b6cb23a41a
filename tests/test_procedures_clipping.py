"""Gradient clipping advice from recorded gradient norms (pure Python, no training)."""

import math

import numpy as np
import pytest

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir
from tfplaybook.procedures import WARN, clipping

pytestmark = pytest.mark.pure

NORMS = np.random.default_rng(0).lognormal(mean=0.0, sigma=0.5, size=1000)


def test_proposes_the_90th_percentile_when_the_run_did_not_clip():
    res = clipping.analyze(NORMS, clip_norm=0.0)
    n = res["numbers"]
    assert n["proposed_clip_norm"] == pytest.approx(np.percentile(NORMS, 90))
    assert n["proposed_clipped_fraction"] == pytest.approx(0.1, abs=0.002)
    assert n["clipped_fraction"] == 0.0
    assert res["overrides"] == [f"optimizer.clip_norm={n['proposed_clip_norm']:.4g}"]
    assert not [c for c in res["checklist"] if c["verdict"] == WARN]


def test_clipping_more_than_half_the_steps_says_lower_the_learning_rate():
    clip = float(np.percentile(NORMS, 30))  # Clips 70% of steps.
    res = clipping.analyze(NORMS, clip_norm=clip)
    assert res["numbers"]["clipped_fraction"] == pytest.approx(0.7, abs=0.002)
    assert [c["item"] for c in res["checklist"] if c["verdict"] == WARN] == [119]
    assert "Lower the learning rate" in res["recommendation"]
    assert res["overrides"] == []


def test_moderate_clipping_is_accepted():
    res = clipping.analyze(NORMS, clip_norm=float(np.percentile(NORMS, 95)))
    assert res["numbers"]["clipped_fraction"] == pytest.approx(0.05, abs=0.002)
    assert [c["verdict"] for c in res["checklist"] if c["item"] == 119] == ["ok"]
    assert "acceptable" in res["recommendation"]


def test_limit_and_percentile_are_configurable():
    clip = float(np.percentile(NORMS, 60))  # Clips 40% of steps.
    assert not [c for c in clipping.analyze(NORMS, clip)["checklist"] if c["verdict"] == WARN]
    strict = clipping.analyze(NORMS, clip, max_clipped=0.3)
    assert [c["item"] for c in strict["checklist"] if c["verdict"] == WARN] == [119]
    p50 = clipping.analyze(NORMS, percentile=50)["numbers"]["proposed_clip_norm"]
    assert p50 == pytest.approx(np.median(NORMS))


def test_non_finite_norms_are_counted_and_left_out_of_the_percentile():
    norms = np.concatenate([NORMS, [math.inf, math.nan]])
    res = clipping.analyze(norms, clip_norm=1e9)
    assert res["numbers"]["num_non_finite"] == 2
    assert res["numbers"]["proposed_clip_norm"] == pytest.approx(np.percentile(NORMS, 90))
    assert res["numbers"]["clipped_fraction"] == pytest.approx(2 / norms.size)
    assert 106 in [c["item"] for c in res["checklist"] if c["verdict"] == WARN]
    with pytest.raises(ValueError, match="no finite gradient norm"):
        clipping.analyze([math.nan])
    with pytest.raises(ValueError, match="clip_norm=-1"):
        clipping.analyze(NORMS, clip_norm=-1)


def test_analyze_trial_reads_norms_and_clip_norm_from_the_trial_dir(tmp_path):
    config = config_lib.load_experiment(config_lib.default_experiment())
    config["optimizer"]["clip_norm"] = float(np.percentile(NORMS, 20))
    trial_dir.write_config(str(tmp_path), config)
    rows = [(step, "train", "grad_norm", norm) for step, norm in enumerate(NORMS)]
    rows += [(step, "train", "loss", 1.0) for step in range(10)]  # Other metrics are ignored.
    trial_dir.append_measurements(str(tmp_path), rows)
    steps, norms, clip_norm = clipping.read_grad_norms(str(tmp_path))
    assert steps[:3] == [0, 1, 2] and len(norms) == NORMS.size
    assert clip_norm == config["optimizer"]["clip_norm"]
    res = clipping.analyze_trial(str(tmp_path))
    assert res["numbers"]["clipped_fraction"] == pytest.approx(0.8, abs=0.002)
    assert "Lower the learning rate" in res["recommendation"]
