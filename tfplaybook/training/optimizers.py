"""Optimizers with the playbook's update rules (checklist 121-126) and the schedule in Keras.

sgd, momentum and nesterov use `Momentum`, which implements checklist 121-123 exactly
(v <- gamma v + g; theta <- theta - lr v, or lr (gamma v + g) for Nesterov), unlike Keras' SGD,
which folds the learning rate into the velocity. adam and adamw are Keras' own Adam/AdamW, whose
update is checklist 125 (epsilon outside the square root, bias correction folded into the step).
nadam uses `NAdam`, checklist 126 (Keras' Nadam uses Dozat's momentum schedule instead).
Weight decay is decoupled (theta <- theta - lr wd theta) for every optimizer.
"""

import keras
from keras import ops

from tfplaybook import internals
from tfplaybook.choices import OPTIMIZERS
from tfplaybook.config import ConfigError
from tfplaybook.training import schedules

ADAM_FAMILY = ("adam", "adamw", "nadam")  # Keras' Adam step reads beta_1, beta_2 and epsilon.


def _value(initial, name):
    """A float32 hyperparameter that the traced step reads: a variable, so trials that differ in
    it alone share one traced step (tfplaybook.training.engine)."""
    return keras.Variable(float(initial), dtype="float32", trainable=False, name=name)


class KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`tfplaybook.training.schedules.learning_rate` in Keras ops, driven by the optimizer's
    step. Only the family (`schedule.name`) is fixed at construction: the base rate, warmup,
    decay window and end factor are variables that `configure` sets for each trial."""

    def __init__(self, base_learning_rate, schedule, max_train_steps):
        self.name = schedule["name"]
        self.base = _value(base_learning_rate, "base_learning_rate")
        self.warmup = _value(0, "warmup_steps")
        self.start = _value(0, "decay_start")
        self.end = _value(1, "decay_end")
        self.end_factor = _value(0, "end_factor")
        self.configure(base_learning_rate, schedule, max_train_steps)

    def configure(self, base_learning_rate, schedule, max_train_steps):
        if schedule["name"] != self.name:
            raise ValueError(f"a {self.name} schedule cannot become {schedule['name']}")
        self.base_learning_rate = float(base_learning_rate)
        self.schedule = dict(schedule)
        self.max_train_steps = int(max_train_steps)
        start, end = schedules.decay_window(schedule, max_train_steps)
        self.base.assign(self.base_learning_rate)
        self.warmup.assign(float(schedule.get("warmup_steps", 0)))
        self.start.assign(float(start))
        self.end.assign(float(end))
        self.end_factor.assign(float(schedule.get("end_factor", 0.0)))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        base = ops.convert_to_tensor(self.base)
        if self.name == "constant":
            rate = base
        else:
            start, end = ops.convert_to_tensor(self.start), ops.convert_to_tensor(self.end)
            progress = ops.clip((step - start) / (end - start), 0.0, 1.0)
            end_factor = ops.convert_to_tensor(self.end_factor)
            if self.name == "linear":
                factor = 1.0 - (1.0 - end_factor) * progress
            else:
                factor = end_factor + (1.0 - end_factor) * 0.5 * (
                    1.0 + ops.cos(3.141592653589793 * progress)
                )
            rate = base * factor
        warmup = ops.convert_to_tensor(self.warmup)
        return ops.where(step < warmup, base * step / ops.maximum(warmup, 1.0), rate)

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "schedule": self.schedule,
            "max_train_steps": self.max_train_steps,
        }


class Momentum(keras.optimizers.Optimizer):
    """SGD with heavy-ball or Nesterov momentum as the playbook states it (checklist 121-123)."""

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, name="momentum", **kw):
        super().__init__(learning_rate=learning_rate, name=name, **kw)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        # The value the step reads: a variable, so trials that differ only in momentum share a
        # traced step (tfplaybook.training.engine). Whether there is momentum at all stays
        # structural.
        self.momentum_value = _value(self.momentum, "momentum_value")

    def set_momentum(self, momentum):
        if bool(momentum) != bool(self.momentum):
            raise ValueError("momentum cannot change between zero and non-zero in a traced step")
        self.momentum = float(momentum)
        self.momentum_value.assign(self.momentum)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._velocities = [
            self.add_variable_from_reference(v, "velocity") if self.momentum else None
            for v in variables
        ]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if not self.momentum:
            self.assign_sub(variable, lr * gradient)
            return
        velocity = self._velocities[internals.variable_index(self, variable)]
        momentum = ops.cast(self.momentum_value, variable.dtype)
        new_velocity = momentum * velocity + gradient
        self.assign(velocity, new_velocity)
        direction = momentum * new_velocity + gradient if self.nesterov else new_velocity
        self.assign_sub(variable, lr * direction)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return config


class RMSProp(keras.optimizers.Optimizer):
    """RMSProp as the playbook states it (checklist 124): v0 = 1, m0 = 0,
    v <- rho v + (1 - rho) g^2, m <- gamma m + lr g / sqrt(v + eps) (eps inside the root),
    theta <- theta - m. Keras' RMSprop starts v at 0, puts eps outside the root and applies the
    learning rate outside the momentum, which differs once the rate changes."""

    def __init__(
        self, learning_rate=0.01, rho=0.9, momentum=0.0, epsilon=1e-7, name="rmsprop", **kw
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kw)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.rho_value = _value(rho, "rho_value")
        self.momentum_value = _value(momentum, "momentum_value")
        self.epsilon_value = _value(epsilon, "epsilon_value")

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._second_moments = [
            self.add_variable_from_reference(v, "second_moment", initializer="ones")
            for v in variables
        ]
        self._momentums = [self.add_variable_from_reference(v, "momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        index = internals.variable_index(self, variable)
        v, m = self._second_moments[index], self._momentums[index]
        rho = ops.cast(self.rho_value, variable.dtype)
        momentum = ops.cast(self.momentum_value, variable.dtype)
        epsilon = ops.cast(self.epsilon_value, variable.dtype)
        self.assign(v, rho * v + (1 - rho) * ops.square(gradient))
        self.assign(m, momentum * m + lr * gradient / ops.sqrt(v + epsilon))
        self.assign_sub(variable, m)

    def get_config(self):
        config = super().get_config()
        config.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon)
        return config


class NAdam(keras.optimizers.Adam):
    """Adam with the Nesterov numerator beta1 m_{t+1} + (1 - beta1) g (checklist 126)."""

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta1 = ops.cast(self.beta_1, variable.dtype)
        beta2 = ops.cast(self.beta_2, variable.dtype)
        index = internals.variable_index(self, variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, (gradient - m) * (1 - beta1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - beta2))
        correction = ops.sqrt(1 - ops.power(beta2, step)) / (1 - ops.power(beta1, step))
        numerator = beta1 * m + (1 - beta1) * gradient
        self.assign_sub(variable, lr * correction * numerator / (ops.sqrt(v) + self.epsilon))


def make_optimizer(opt_cfg, schedule_cfg, max_train_steps, precision="float32"):
    """Builds the optimizer for the config's `optimizer` and `schedule` sections.

    Clipping is not configured here: the training loop measures and clips the global norm of the
    all-reduced gradient itself (checklist 115-116).

    Raises:
      ConfigError: on an unknown optimizer or schedule, naming the allowed values.
    """
    name = opt_cfg["name"]
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name={name!r} is not one of {', '.join(OPTIMIZERS)}")
    try:
        schedules.validate(schedule_cfg, max_train_steps)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if opt_cfg["learning_rate"] <= 0:
        raise ConfigError(f"optimizer.learning_rate={opt_cfg['learning_rate']!r} must be positive")
    # The structure only; every hyperparameter value is set by `configure`, so a config's values
    # are read in one place whether the optimizer is new or reused by a later trial.
    lr = KerasSchedule(opt_cfg["learning_rate"], schedule_cfg, max_train_steps)
    wd = opt_cfg.get("weight_decay", 0.0) or None
    if name in ("sgd", "momentum", "nesterov"):
        optimizer = Momentum(lr, _momentum(opt_cfg), nesterov=name == "nesterov", weight_decay=wd)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(lr, weight_decay=wd)
    elif name == "rmsprop":
        optimizer = RMSProp(lr, weight_decay=wd)
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(lr, weight_decay=wd or 0.0)
    else:
        optimizer = NAdam(lr, weight_decay=wd, name="nadam")
    optimizer.playbook_schedule = lr
    if optimizer.weight_decay is not None:  # None (no decay at all) stays structural.
        optimizer.weight_decay = _value(0.0, "weight_decay_value")
    if name in ADAM_FAMILY:
        # Keras' Adam reads these attributes in its step; as variables they can change per trial.
        optimizer.beta_1 = _value(0.0, "beta_1_value")
        optimizer.beta_2 = _value(0.0, "beta_2_value")
        optimizer.epsilon = _value(0.0, "epsilon_value")
    # The training loop clips by this (tfplaybook.training.engine); whether it clips at all is
    # fixed by whether optimizer.clip_norm is 0.
    optimizer.playbook_clip_norm = _value(0.0, "clip_norm_value")
    configure(optimizer, opt_cfg, schedule_cfg, max_train_steps)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def configure(optimizer, opt_cfg, schedule_cfg, max_train_steps):
    """Sets every hyperparameter value of an optimizer built by `make_optimizer` for another
    config of the same structure (name, schedule family, whether there is momentum, weight decay
    and clipping): the base learning rate and schedule, momentum, rho, Adam's betas and epsilon,
    weight decay and the clip norm."""
    inner = inner_optimizer(optimizer)
    inner.playbook_schedule.configure(opt_cfg["learning_rate"], schedule_cfg, max_train_steps)
    name = opt_cfg["name"]
    if isinstance(inner, Momentum):
        inner.set_momentum(_momentum(opt_cfg))
    if isinstance(inner, RMSProp):
        for attr in ("rho", "momentum", "epsilon"):
            setattr(inner, attr, float(opt_cfg[attr]))
            getattr(inner, f"{attr}_value").assign(float(opt_cfg[attr]))
    if name in ADAM_FAMILY:
        inner.beta_1.assign(float(opt_cfg.get("beta1", 0.9)))
        inner.beta_2.assign(float(opt_cfg.get("beta2", 0.999)))
        inner.epsilon.assign(float(opt_cfg.get("epsilon", 1e-7)))
    wd = float(opt_cfg.get("weight_decay", 0.0) or 0.0)
    if (inner.weight_decay is None) != (wd == 0.0 and name != "adamw"):
        raise ValueError("weight decay cannot change between zero and non-zero in a traced step")
    if inner.weight_decay is not None:
        inner.weight_decay.assign(wd)
    inner.playbook_clip_norm.assign(float(opt_cfg.get("clip_norm") or 0.0))


def _momentum(opt_cfg):
    """The momentum of a config's sgd, momentum or nesterov optimizer (sgd: none)."""
    return 0.0 if opt_cfg["name"] == "sgd" else opt_cfg.get("momentum", 0.9)


def inner_optimizer(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)
