"""Update rules match the playbook's formulas (checklist 121-126), and the Keras schedule matches
the pure one."""

import keras
import numpy as np
import pytest

from tfplaybook.training import optimizers, schedules

GRADS = [
    np.array([0.5, -1.0], np.float32),
    np.array([0.2, 0.3], np.float32),
    np.array([-0.4, 0.1], np.float32),
]
LR = 0.1


def run_keras(optimizer):
    var = keras.Variable(np.array([1.0, 2.0], np.float32))
    for g in GRADS:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    return np.array(var.numpy())


def momentum_reference(gamma, nesterov):
    theta, v = np.array([1.0, 2.0]), np.zeros(2)
    for g in GRADS:
        v = gamma * v + g
        theta = theta - LR * (gamma * v + g if nesterov else v)
    return theta


def adam_reference(b1, b2, eps, nadam):
    theta, m, v = np.array([1.0, 2.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(GRADS):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        b = np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        numerator = b1 * m + (1 - b1) * g if nadam else m
        theta = theta - LR * numerator / (np.sqrt(v) + eps) * b
    return theta


@pytest.mark.parametrize(
    "name, gamma, nesterov",
    [("sgd", 0.0, False), ("momentum", 0.9, False), ("nesterov", 0.9, True)],
)
def test_momentum_family(name, gamma, nesterov):
    opt = optimizers.make_optimizer(
        {"name": name, "learning_rate": LR, "momentum": 0.9}, {"name": "constant"}, 100
    )
    np.testing.assert_allclose(run_keras(opt), momentum_reference(gamma, nesterov), rtol=1e-5)


@pytest.mark.parametrize("name, nadam", [("adam", False), ("nadam", True)])
def test_adam_family(name, nadam):
    cfg = {"name": name, "learning_rate": LR, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}
    opt = optimizers.make_optimizer(cfg, {"name": "constant"}, 100)
    np.testing.assert_allclose(run_keras(opt), adam_reference(0.8, 0.95, 1e-3, nadam), rtol=1e-5)


def test_rmsprop_is_the_playbooks():
    rho, gamma, eps = 0.8, 0.5, 1e-3
    theta, v, m = np.array([1.0, 2.0]), np.ones(2), np.zeros(2)
    for g in GRADS:
        v = rho * v + (1 - rho) * g**2
        m = gamma * m + LR * g / np.sqrt(v + eps)
        theta = theta - m
    cfg = {"name": "rmsprop", "learning_rate": LR, "rho": rho, "momentum": gamma, "epsilon": eps}
    opt = optimizers.make_optimizer(dict(cfg, weight_decay=0.0), {"name": "constant"}, 100)
    np.testing.assert_allclose(run_keras(opt), theta, rtol=1e-5)
    keras_default = keras.optimizers.RMSprop(LR, rho=rho, momentum=gamma, epsilon=eps)
    assert not np.allclose(run_keras(keras_default), theta, rtol=1e-3)  # Keras' differs.


def test_nadam_differs_from_adam():
    assert not np.allclose(
        adam_reference(0.8, 0.95, 1e-3, True), adam_reference(0.8, 0.95, 1e-3, False)
    )


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "cosine", "warmup_steps": 10, "end_factor": 0.1},
        {"name": "linear", "warmup_steps": 0, "decay_start_step": 30, "decay_steps": 50},
        {"name": "constant", "warmup_steps": 5},
    ],
)
def test_keras_schedule_matches_pure_schedule(schedule):
    keras_schedule = optimizers.KerasSchedule(0.3, schedule, 100)
    for step in (0, 1, 5, 9, 10, 31, 55, 80, 99, 100):
        assert float(keras_schedule(step)) == pytest.approx(
            schedules.learning_rate(step, 0.3, schedule, 100), rel=1e-5, abs=1e-7
        )


def test_unknown_optimizer_lists_allowed():
    from tfplaybook.config import ConfigError

    with pytest.raises(ConfigError, match="sgd, momentum, nesterov, rmsprop, adam, nadam, adamw"):
        optimizers.make_optimizer({"name": "lion", "learning_rate": 0.1}, {"name": "constant"}, 10)
