"""mixed_float16: steps skipped by the loss scale are counted, not taken for divergence.

Keras' LossScaleOptimizer skips a step whose gradients overflow float16 and halves its loss
scale, which is normal in early steps. The loop logs each loop's `skipped_steps`, keeps the
non-finite norm of a skipped step out of the gradient-norm rows, and sums the skips in
status.json; a run diverges on its loss (non-finite, or the loss-factor rule) or when
MAX_SKIPPED_STEPS steps in a row are skipped. Real runs on CPU with mixed_float16.
"""

import math

import keras
import pytest

from tfplaybook.files import trial_dir as td
from tfplaybook.training import models
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train

RUNTIME = dict(verbose=False, steps_per_loop=10, strategy="cpu", precision="mixed_float16")


@pytest.fixture
def mixed(experiment_config, tmp_path):
    """A digits_mlp Trainer under mixed_float16 (the dtype policy is reset afterwards)."""

    def make(*overrides, task=None):
        config = experiment_config(
            "digits_mlp", "max_train_steps=100", "eval_every_steps=50", *overrides
        )
        trainer = train.Trainer(config, str(tmp_path), train.Runtime(**RUNTIME), task=task)
        td.write_config(str(tmp_path), config)
        return trainer

    yield make
    keras.config.set_dtype_policy("float32")


def test_early_overflows_are_skipped_and_counted_and_training_goes_on(mixed, tmp_path):
    t = mixed()
    assert isinstance(t.optimizer, keras.optimizers.LossScaleOptimizer)
    # A loss scale far too high for float16, as after a long stretch of scale growth: the first
    # steps overflow and the optimizer lowers the scale until they do not.
    t.optimizer.dynamic_scale.assign(2.0**32)
    status = t.run()
    assert status["status"] == "completed", status
    assert status["best_value"] > 0.8  # It trained: chance is 0.1.
    rows = td.read_measurements(str(tmp_path))
    _, counts = td.series(rows, "train", "skipped_steps")
    assert len(counts) == 10 and 0 < status["skipped_steps"] == sum(counts) < 30
    skipped = int(status["skipped_steps"])
    # The first `skipped` steps, loop by loop (10 steps each), then none.
    assert counts == [min(10, max(0, skipped - 10 * i)) for i in range(10)]
    steps, norms = td.series(rows, "train", "grad_norm")
    assert steps == list(range(skipped + 1, 101))  # Skipped steps applied nothing: no norm.
    assert all(math.isfinite(r["value"]) for r in rows)
    assert float(t.optimizer.dynamic_scale.numpy()) == 2.0 ** (32 - skipped)


class NanGradient(keras.layers.Layer):
    """The identity forward; NaN backward, so every gradient below it is NaN and the loss finite."""

    def call(self, x):
        import tensorflow as tf

        @tf.custom_gradient
        def identity(v):
            return tf.identity(v), lambda dy: dy * float("nan")

        return identity(x)


def _nan_gradient_mlp(config, data_spec):
    base = models.get_builder("mlp").build(config, data_spec)
    return keras.Model(base.inputs, NanGradient()(base.outputs[0]))


def test_every_step_skipped_for_a_long_stretch_is_divergence(mixed, tmp_path):
    # NaN gradients with a finite loss: float32 diverges at step 1 on the gradient norm; the
    # loss scale skips every step instead, and MAX_SKIPPED_STEPS in a row end the run. (Made by
    # a layer's backward pass: inf activations times zero gradients, the older construction,
    # give NaN already in the forward pass under oneDNN's float16 kernels on CPUs with
    # AVX512-FP16.)
    t = mixed(task=task_lib.Task(build_model=_nan_gradient_mlp))
    status = t.run()
    limit = train.MAX_SKIPPED_STEPS
    assert status["status"] == "diverged", status
    assert status["reason"].startswith(f"gradient norm ({limit} steps in a row skipped"), status
    assert status["step"] == limit and status["skipped_steps"] == limit
    rows = td.read_measurements(str(tmp_path))
    losses = td.series(rows, "train", "loss")[1]
    assert len(losses) == limit and all(math.isfinite(v) for v in losses)
    assert sum(td.series(rows, "train", "skipped_steps")[1]) == limit


def test_the_skip_rule():
    inf, nan = math.inf, math.nan
    # Skipped steps (non-finite norms) alone are no divergence; the run resets on an applied step.
    run = train.check_divergence(0, [2.0] * 4, [inf, nan, 1.0, inf], 2.0, 20.0, [1, 1, 0, 1])
    assert run == 1
    # The run carries across loops and ends the run at MAX_SKIPPED_STEPS in a row.
    limit = train.MAX_SKIPPED_STEPS
    run = train.check_divergence(10, [2.0] * 5, [inf] * 5, 2.0, 20.0, [1] * 5, limit - 6)
    assert run == limit - 1
    with pytest.raises(train.Diverged, match=f"{limit} steps in a row") as e:
        train.check_divergence(15, [2.0] * 5, [inf] * 5, 2.0, 20.0, [1] * 5, limit - 1)
    assert e.value.step == 16
    # The loss still counts on a skipped step, and an applied step's non-finite norm diverges.
    with pytest.raises(train.Diverged, match="training loss is nan at step 2"):
        train.check_divergence(0, [2.0, nan], [inf, inf], 2.0, 20.0, [1, 1])
    with pytest.raises(train.Diverged, match="training loss .* at step 1"):
        train.check_divergence(0, [50.0], [inf], 2.0, 20.0, [1])
    with pytest.raises(train.Diverged, match="gradient norm is inf at step 2"):
        train.check_divergence(0, [2.0, 2.0], [1.0, inf], 2.0, 20.0, [0, 0])
    # Without loss scaling (skipped=None) a non-finite norm diverges at once, as before.
    with pytest.raises(train.Diverged, match="gradient norm is inf at step 1"):
        train.check_divergence(0, [2.0], [inf], 2.0, 20.0)
