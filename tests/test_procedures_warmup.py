"""Warmup procedure rules (pure Python, no training)."""

import copy

import numpy as np
import pytest

from tfplaybook import config as config_lib
from tfplaybook.procedures import WARN, instability, warmup
from tfplaybook.training import schedules

pytestmark = pytest.mark.pure


def baseline(max_train_steps=10000, **schedule):
    c = config_lib.load_experiment(config_lib.default_experiment())
    c["max_train_steps"] = max_train_steps
    c["eval_every_steps"] = min(c["eval_every_steps"], max_train_steps)
    c["schedule"].update(schedule)
    return c


def warned(res):
    return sorted(c["item"] for c in res["checklist"] if c["verdict"] == WARN)


def test_unstable_base_learning_rate_is_the_smallest_unstable():
    assert (
        warmup.unstable_base_learning_rate({0.01: True, 0.1: True, 0.3: False, 1.0: False}) == 0.3
    )
    assert warmup.unstable_base_learning_rate({0.01: True, 0.1: True}) is None


def test_unstable_learning_rate_from_loss_series():
    steps = np.arange(300)
    falling = 2.0 * np.exp(-steps / 50.0) + 0.1
    rising = falling.copy()
    rising[150:] = 1.5  # Far above its minimum from step 150 on.
    diverged = falling.copy()
    diverged[40:] = np.inf
    verdicts = instability.classify(
        {0.03: (steps, falling), 0.1: (steps, rising), 0.3: (steps, diverged)}
    )
    assert warmup.unstable_base_learning_rate(verdicts) == 0.1


def test_plan_sweeps_warmup_at_ten_times_the_unstable_lr():
    res = warmup.plan({0.01: True, 0.1: True, 0.3: False}, baseline(20000))
    n = res["numbers"]
    assert n["unstable_base_learning_rate"] == 0.3
    assert n["base_learning_rate"] == pytest.approx(3.0)
    assert n["warmup_steps_grid"] == [10, 100, 1000, 10000]
    none = warmup.plan({0.01: True, 0.1: True}, baseline())
    assert none["numbers"]["base_learning_rate"] is None
    assert "extend the sweep" in none["recommendation"]
    erratic = warmup.plan({0.1: False, 0.3: True}, baseline())
    assert any(c["item"] == 105 for c in erratic["checklist"])


def test_warmup_grid_spans_orders_of_magnitude_up_to_the_budget():
    assert warmup.warmup_steps_grid(20000) == [10, 100, 1000, 10000]
    assert warmup.warmup_steps_grid(300) == [10, 100]
    assert warmup.warmup_steps_grid(1000, start=1) == [1, 10, 100, 1000]
    with pytest.raises(ValueError, match="max_train_steps=5"):
        warmup.warmup_steps_grid(5)


def test_sweep_configs_ramp_to_the_base_lr_then_stay_constant():
    base = baseline()
    before = copy.deepcopy(base)
    configs = warmup.warmup_sweep_configs(base, 0.3, [1000, 10])
    assert base == before
    assert [c["schedule"]["warmup_steps"] for c in configs] == [10, 1000]
    # post_warmup_steps = 2 x warmup, but at least MIN_POST_WARMUP_STEPS.
    assert [c["max_train_steps"] for c in configs] == [10 + 100, 1000 + 2000]
    for c in configs:
        assert c["optimizer"]["learning_rate"] == pytest.approx(3.0)
        assert c["schedule"]["name"] == "constant"
        config_lib.validate(c)
    with pytest.raises(ValueError, match="distinct positive integers"):
        warmup.warmup_sweep_configs(base, 0.3, [10, 10])


def test_shortest_stable_warmup_within_5_percent_has_no_warning():
    res = warmup.analyze({10: False, 100: True, 1000: True}, baseline(10000), 3.0)
    assert res["numbers"]["warmup_steps"] == 100
    assert res["numbers"]["warmup_fraction"] == pytest.approx(0.01)
    assert warned(res) == []
    assert res["overrides"] == ["schedule.warmup_steps=100", "max_train_steps=10100"]


def test_warmup_between_5_and_10_percent_warns_about_training_longer():
    # The playbook's example: 10,000 steps + 1,000 warmup = 11,000.
    res = warmup.analyze({10: False, 100: False, 1000: True}, baseline(10000))
    assert res["overrides"] == ["schedule.warmup_steps=1000", "max_train_steps=11000"]
    assert warned(res) == [114]


def test_warmup_above_10_percent_warns():
    res = warmup.analyze({10: False, 100: False, 1000: True}, baseline(5000))
    assert res["numbers"]["warmup_fraction"] == pytest.approx(0.2)
    assert warned(res) == [112, 114]
    assert "exceeds 10%" in res["recommendation"]


def test_no_stable_warmup():
    res = warmup.analyze({10: False, 100: False}, baseline())
    assert res["numbers"]["warmup_steps"] is None
    assert res["overrides"] == []
    assert warned(res) == [111]


def test_prepend_overrides_apply_to_the_real_config():
    base = baseline(300)
    overrides = warmup.prepend_warmup_overrides(base, 30)
    merged = config_lib.apply_overrides(base, overrides)
    assert merged["schedule"]["warmup_steps"] == 30
    assert merged["max_train_steps"] == 330


def test_prepend_replaces_an_existing_warmup_and_shifts_a_late_decay_start():
    base = baseline(10000, warmup_steps=200, decay_start_step=4000)
    assert warmup.prepend_warmup_overrides(base, 1000) == [
        "schedule.warmup_steps=1000",
        "max_train_steps=10800",
        "schedule.decay_start_step=4800",
    ]
    # A decay that starts right after the warmup keeps doing so: no decay_start_step override.
    early = baseline(10000, warmup_steps=200, decay_start_step=0)
    assert len(warmup.prepend_warmup_overrides(early, 1000)) == 2


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "cosine", "warmup_steps": 0},
        {"name": "linear", "warmup_steps": 0, "decay_start_step": 4000},
        {"name": "linear", "warmup_steps": 0, "decay_start_step": 0, "decay_steps": 3000},
    ],
)
def test_prepended_schedule_repeats_the_old_one_after_the_warmup(schedule):
    old = baseline(10000, **schedule)
    new = config_lib.apply_overrides(old, warmup.prepend_warmup_overrides(old, 1000))
    base = old["optimizer"]["learning_rate"]

    def lr(c, step):
        return schedules.learning_rate(step, base, c["schedule"], c["max_train_steps"])

    assert lr(new, 0) == 0.0 and lr(new, 500) == pytest.approx(base / 2)
    for k in range(0, 10000, 97):
        assert lr(new, 1000 + k) == pytest.approx(lr(old, k))
