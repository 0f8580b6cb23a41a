"""Round-1 / round-2 config transforms for compute-bound tuning (pure Python)."""

import copy

import pytest

from tfplaybook import config as config_lib
from tfplaybook.procedures import rounds
from tfplaybook.training import schedules

pytestmark = pytest.mark.pure


def production(name="cosine", max_train_steps=3000, **schedule):
    c = config_lib.load_experiment(config_lib.default_experiment())
    c.update(max_train_steps=max_train_steps, eval_every_steps=500, checkpoint_every_steps=1000)
    c["schedule"].update(name=name, **schedule)
    return c


def test_round1_is_a_tenth_of_production_with_scaled_intervals():
    prod = production(warmup_steps=20)
    before = copy.deepcopy(prod)
    res = rounds.round1_config(prod)
    new = res["config"]
    assert prod == before
    assert new["max_train_steps"] == 300
    assert new["eval_every_steps"] == 50  # Same number of evaluations as production.
    assert new["checkpoint_every_steps"] == 100
    assert new["schedule"]["warmup_steps"] == 20  # Warmup transfers in absolute steps.
    assert new["optimizer"]["learning_rate"] == prod["optimizer"]["learning_rate"]
    config_lib.validate(new)
    assert config_lib.apply_overrides(prod, res["overrides"]) == new
    assert "warmup length" in res["recommendation"]


def test_round1_fraction_is_configurable_and_checked():
    assert rounds.round1_config(production(), fraction=0.2)["config"]["max_train_steps"] == 600
    with pytest.raises(ValueError, match="fraction=1.5"):
        rounds.round1_config(production(), fraction=1.5)
    with pytest.raises(ValueError, match="warmup_steps=400"):
        rounds.round1_config(production(warmup_steps=400))
    with pytest.raises(ValueError, match="schedule.name='sqrt'"):
        rounds.round1_config(production(name="sqrt"))


def test_round2_linear_keeps_the_decay_length_and_lengthens_the_constant_phase():
    best = rounds.round1_config(production(name="linear", warmup_steps=10))["config"]
    res = rounds.round2_config(best, 3000)
    new = res["config"]
    round1_decay = best["max_train_steps"] - best["schedule"]["warmup_steps"]  # 290 steps.
    assert new["max_train_steps"] == 3000
    assert new["schedule"]["decay_start_step"] == 3000 - round1_decay
    assert new["optimizer"]["learning_rate"] == best["optimizer"]["learning_rate"]
    assert new["eval_every_steps"] == 500
    assert "schedule.decay_start_step=2710" in res["overrides"]
    # The shipped experiments declare schedule.decay_start_step, so the override applies.
    assert res["needs_schedule_field"] is False


def test_round2_linear_with_an_explicit_decay_start():
    best = production(name="linear", max_train_steps=300, warmup_steps=10, decay_start_step=200)
    new = rounds.round2_config(best, 1000)["config"]
    assert new["schedule"]["decay_start_step"] == 1000 - 100


def test_round2_cosine_keeps_the_base_lr_and_stretches_the_schedule():
    best = rounds.round1_config(production(name="cosine"))["config"]
    res = rounds.round2_config(best, 3000)
    assert res["config"]["max_train_steps"] == 3000
    assert res["config"]["schedule"].get("decay_start_step", 0) == 0
    assert res["config"]["optimizer"]["learning_rate"] == best["optimizer"]["learning_rate"]
    assert res["needs_schedule_field"] is False
    assert "Chinchilla" in res["recommendation"]


def test_round2_must_be_longer():
    best = rounds.round1_config(production())["config"]
    with pytest.raises(ValueError, match="must exceed round 1's 300 steps"):
        rounds.round2_config(best, 300)


def test_round1_scales_a_late_decay_start_and_an_explicit_decay_length():
    prod = production(name="linear", warmup_steps=20, decay_start_step=2000, decay_steps=800)
    schedule = rounds.round1_config(prod)["config"]["schedule"]
    assert schedule["decay_start_step"] == 200
    assert schedule["decay_steps"] == 80


def lr_at(config, step):
    return schedules.learning_rate(
        step, config["optimizer"]["learning_rate"], config["schedule"], config["max_train_steps"]
    )


@pytest.mark.parametrize("decay_steps", [0, 150])
def test_round2_linear_schedule_ends_with_round1_decay(decay_steps):
    best = production(name="linear", max_train_steps=300, warmup_steps=10, decay_steps=decay_steps)
    new = rounds.round2_config(best, 3000)["config"]
    base = best["optimizer"]["learning_rate"]
    # The extra 2700 steps run at the base rate; the last 300 - 10 steps repeat round 1's decay.
    assert lr_at(new, 2000) == pytest.approx(base)
    for k in range(10, 300, 7):
        assert lr_at(new, 2700 + k) == pytest.approx(lr_at(best, k))


@pytest.mark.parametrize("decay_steps", [0, 200])
def test_round2_cosine_schedule_is_round1_stretched(decay_steps):
    best = production(name="cosine", max_train_steps=300, decay_steps=decay_steps)
    new = rounds.round2_config(best, 3000)["config"]
    for k in range(0, 300, 7):
        assert lr_at(new, 10 * k) == pytest.approx(lr_at(best, k))
