"""Learning-rate schedules as pure functions (checklist 96, 110-113)."""

import math

import pytest

from tfplaybook.training import schedules

pytestmark = pytest.mark.pure


def lr(step, name, max_steps=100, **fields):
    return schedules.learning_rate(step, 1.0, dict(name=name, **fields), max_steps)


def test_constant_is_constant_after_warmup():
    assert [lr(s, "constant", warmup_steps=4) for s in range(6)] == [0, 0.25, 0.5, 0.75, 1, 1]


def test_warmup_ramps_linearly_from_zero():
    values = [lr(s, "cosine", warmup_steps=10) for s in range(11)]
    assert values[0] == 0.0 and values[5] == pytest.approx(0.5) and values[10] == 1.0


def test_linear_and_cosine_end_at_end_factor():
    assert lr(100, "linear", end_factor=0.1) == pytest.approx(0.1)
    assert lr(100, "cosine", end_factor=0.0) == pytest.approx(0.0)
    assert lr(50, "linear") == pytest.approx(0.5)
    assert lr(50, "cosine") == pytest.approx(0.5)
    assert lr(25, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_decay_start_step_adds_a_constant_phase_and_keeps_decay_length():
    fields = dict(decay_start_step=60, decay_steps=40)
    assert lr(59, "linear", **fields) == 1.0
    assert lr(80, "linear", **fields) == pytest.approx(0.5)
    assert lr(100, "linear", **fields) == pytest.approx(0.0)


def test_decay_after_warmup_spans_the_rest_of_training():
    # Prepending warmup (checklist 113): the decay starts when warmup ends.
    assert lr(10, "linear", warmup_steps=10) == 1.0
    assert lr(55, "linear", warmup_steps=10) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "schedule, fragment",
    [
        ({"name": "step"}, "not one of"),
        ({"name": "linear", "warmup_steps": -1}, "non-negative"),
        ({"name": "linear", "warmup_steps": 100}, "below max_train_steps"),
        ({"name": "linear", "end_factor": 2.0}, "within"),
    ],
)
def test_validate_names_the_bad_field(schedule, fragment):
    with pytest.raises(ValueError, match=fragment):
        schedules.validate(schedule, 100)
