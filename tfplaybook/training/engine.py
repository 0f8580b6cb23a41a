"""A trainer's engine: its optimizer, step counter and metrics, and the traced loops that use them.

`train_loop(iterator, num_steps)` runs `num_steps` per-replica steps under `strategy.run` inside
one `tf.function` (the loss averaged over the *global* batch) and returns their losses, unclipped
gradient norms, clipped flags and loss-scale skips; `eval_loop(iterator, num_steps)` updates the
evaluation loss and metrics. The step all-reduces the gradients itself so it can log the
unclipped global gradient norm of the summed gradient every step and clip by it (checklist 106,
115-116); Keras optimizers clip per replica, before their own all-reduce, which would be the wrong
norm under a strategy.

Trials of one study that differ only in hyperparameter values the step reads (the learning
rate and its schedule's warmup, decay window and end factor, `max_train_steps`, momentum, rho,
Adam's betas and epsilon, weight decay, the clip norm) and in seeds share one engine: `reuse`
resets a cached engine's model and optimizer variables to what a fresh build gives, and those
hyperparameters are variables (`optimizers.configure`). Whether there is momentum, weight decay
or clipping at all, and the schedule's family, stay structural. Tracing cost about 0.8 s a
trial of the default study; a 20-step trial spends most of its time there. The cache is keyed on
everything else that the traced functions close over (`reuse_key`).
"""

import collections
import json

import keras
import tensorflow as tf

from tfplaybook import internals
from tfplaybook.training import ema as ema_lib
from tfplaybook.training import metrics as metrics_lib
from tfplaybook.training import optimizers

# ------------------------------------------------------------------------- one trace per shape

_ENGINES = collections.OrderedDict()
MAX_ENGINES = 4
MAX_REUSE_PARAMETERS = 10_000_000  # Larger models: no copies kept (their memory matters more).
_NOT_TRACED = ("seed", "data_seed", "study", "eval_every_steps", "checkpoint_every_steps")
_NOT_TRACED += ("keep_best_checkpoints", "divergence_loss_factor", "objective")
# max_train_steps only places the schedule's decay window, which is a variable.
_NOT_TRACED += ("max_train_steps",)
# Optimizer values the traced step reads from variables (tfplaybook.training.optimizers).
_VALUES = ("learning_rate", "momentum", "rho", "beta1", "beta2", "epsilon")
# What TensorFlow's kernel cache may hold that no cached engine owns: engines built and not kept,
# and whether an engine was evicted or forgotten. `end_trial` clears the cache then.
_KERNELS = {"unowned": 0, "evicted": False}


def reuse_key(config, runtime, strategy, builder, spec):
    """What a traced step depends on, or None when this trial must build its own."""
    if config.get("ema_decay") or runtime.precision == "mixed_float16":
        return None  # Averages and loss scales have state of their own: always fresh.
    rest = {k: v for k, v in config.items() if k not in _NOT_TRACED}
    optimizer = dict(rest["optimizer"], **dict.fromkeys(_VALUES))
    name = optimizer["name"]
    if name in ("momentum", "nesterov"):
        optimizer["momentum"] = bool(config["optimizer"].get("momentum", 0.9))
    # Whether there is weight decay or clipping at all changes the traced step; their values
    # do not (AdamW always decays, by a value that may be 0).
    optimizer["weight_decay"] = name == "adamw" or bool(config["optimizer"].get("weight_decay"))
    optimizer["clip_norm"] = bool(config["optimizer"].get("clip_norm"))
    rest["optimizer"] = optimizer
    rest["schedule"] = {"name": config["schedule"]["name"]}  # The rest are variables.
    text = json.dumps(rest, sort_keys=True, default=repr)
    return (text, repr(runtime), id(strategy), id(builder), repr(spec.element_spec))


def _variables_match(a, b):
    return len(a) == len(b) and all(
        tuple(x.shape) == tuple(y.shape) and x.dtype == y.dtype for x, y in zip(a, b)
    )


def reuse(trainer, key):
    """Adopts a cached engine for `key` (True), resetting it to this trial's fresh state."""
    cached = _ENGINES.get(key) if key else None
    if cached is None or not _variables_match(cached["model"].variables, trainer.model.variables):
        return False
    _ENGINES.move_to_end(key)
    fresh = trainer.model
    for variable, value in zip(cached["model"].variables, fresh.variables):
        variable.assign(value)  # This trial's initial weights (and dropout seed states).
    for variable, value in zip(cached["optimizer"].variables, cached["initial"]):
        variable.assign(value)
    config = trainer.config
    optimizers.configure(
        cached["optimizer"], config["optimizer"], config["schedule"], config["max_train_steps"]
    )
    for name in ("model", "optimizer", "step", "train_metrics", "eval_loss", "eval_metrics"):
        setattr(trainer, name, cached[name])
    trainer.class_counts, trainer.ema = cached["class_counts"], None
    trainer.train_loop, trainer._eval_loop = cached["train_loop"], cached["eval_loop"]
    trainer.step.assign(0)
    return True


def remember(trainer, key):
    """Caches `trainer`'s engine under `key` (None or a large model: nothing is kept)."""
    if key is None or trainer.model.count_params() > MAX_REUSE_PARAMETERS:
        return
    _ENGINES[key] = {
        # The key holds ids: keep the objects alive so no other object can take their id.
        "identities": (trainer.strategy, trainer.task.model_builder(trainer.config)),
        "model": trainer.model,
        "optimizer": trainer.optimizer,
        "initial": [v.numpy() for v in trainer.optimizer.variables],
        "step": trainer.step,
        "train_metrics": trainer.train_metrics,
        "eval_loss": trainer.eval_loss,
        "eval_metrics": trainer.eval_metrics,
        "class_counts": trainer.class_counts,
        "train_loop": trainer.train_loop,
        "eval_loop": trainer._eval_loop,
    }
    _KERNELS["unowned"] -= 1
    while len(_ENGINES) > MAX_ENGINES:
        _ENGINES.popitem(last=False)
        _KERNELS["evicted"] = True


def end_trial():
    """Resets Keras' session after a trial; keeps the kernel cache of the cached engines.

    The full `keras.backend.clear_session` also clears TensorFlow's kernel cache, and the next
    trial on a cached engine would instantiate its traced loops again (about 0.4 s a trial of the
    default study). That cache is cleared only when it may hold a traced function that no cached
    engine owns, so a study over many shapes does not accumulate them.
    """
    if _KERNELS["unowned"] > 0 or _KERNELS["evicted"]:
        keras.backend.clear_session(free_memory=False)
        _KERNELS.update(unowned=0, evicted=False)
    else:
        internals.clear_session_keeping_kernels()


def forget_traces():
    """Drops every cached engine (tests; a caller that wants fresh traces)."""
    _ENGINES.clear()
    _KERNELS["evicted"] = True


# ----------------------------------------------------------------------------- a fresh engine


def build(trainer):
    """Builds `trainer`'s optimizer, step, metrics and weight average, and traces its loops."""
    config, runtime = trainer.config, trainer.runtime
    with trainer.strategy.scope():
        trainer.optimizer = optimizers.make_optimizer(
            config["optimizer"],
            config["schedule"],
            config["max_train_steps"],
            runtime.precision,
        )
        trainer.optimizer.build(trainer.model.trainable_variables)
        trainer.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        trainer.train_metrics = metrics_lib.make_metrics(config)
        trainer.eval_loss = keras.metrics.Mean("loss")
        trainer.eval_metrics = metrics_lib.make_metrics(config)
        trainer.class_counts = metrics_lib.make_class_counts(config, _output_width(trainer.model))
        decay = float(config.get("ema_decay") or 0.0)
        trainer.ema = (
            ema_lib.WeightAverage(trainer.model.trainable_variables, decay) if decay else None
        )
    _disable_optimizer_all_reduce(trainer.optimizer)
    trainer.train_loop, trainer._eval_loop = _trace_loops(trainer)
    _KERNELS["unowned"] += 1  # Until `remember` keeps this engine.


def _disable_optimizer_all_reduce(optimizer):
    # The loop has already summed the gradients over replicas; without this, the Keras TF
    # optimizer would sum them a second time. A test compares 2-replica training with 1 replica
    # on the same global batch, so a change in this Keras internal is caught.
    internals.disable_gradient_all_reduce(optimizers.inner_optimizer(optimizer))


def _output_width(model):
    """The width of a single-output model's last axis (2 for one binary logit), else None."""
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if not isinstance(shape, tuple) or not shape or not isinstance(shape[-1], int):
        return None
    return 2 if shape[-1] == 1 else shape[-1]


def _trace_loops(trainer):
    """The (train_loop, eval_loop) `tf.function`s of `trainer` (traced at their first call)."""
    strategy, model, optimizer = trainer.strategy, trainer.model, trainer.optimizer
    global_batch = trainer.config["batch_size"]
    clips = bool(trainer.config["optimizer"]["clip_norm"])
    clip_value = optimizers.inner_optimizer(optimizer).playbook_clip_norm
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    variables = model.trainable_variables
    loss_fn, eval_loss_fn = trainer.loss_fn, trainer.eval_loss_fn
    ema = trainer.ema

    def outputs_of(features, training):
        # Losses and metrics in float32 whatever the model's compute dtype (mixed precision).
        outputs = model(features, training=training)
        return tf.nest.map_structure(
            lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating else t, outputs
        )

    def forward(features, labels, weights):
        with tf.GradientTape() as tape:
            outputs = outputs_of(features, True)
            per_example = loss_fn(labels, outputs)
            loss = tf.nn.compute_average_loss(
                per_example, sample_weight=weights, global_batch_size=global_batch
            )
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss) if loss_scaled else loss
        return loss, outputs, tape.gradient(scaled, variables)

    if trainer.runtime.jit_compile:
        forward = tf.function(forward, jit_compile=True)

    def replica_step(features, labels, weights):
        loss, outputs, grads = forward(features, labels, weights)
        if strategy.num_replicas_in_sync > 1:
            # In a traced function, a replica context's all_reduce registers a custom
            # gradient in TensorFlow's global registry, which keeps the whole traced graph
            # alive (measured: about 5 MiB a trial). One replica has nothing to sum.
            grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        scale = tf.cast(optimizer.dynamic_scale, tf.float32) if loss_scaled else 1.0
        norm = tf.linalg.global_norm(grads) / scale  # Unclipped (checklist 106, 116).
        # The loss scale skips a step whose gradients are not finite (and lowers the scale):
        # the same test as LossScaleOptimizer's, on the same summed gradients.
        skipped = (
            tf.logical_not(optimizer.check_finite(grads)) if loss_scaled else tf.constant(False)
        )
        clipped = tf.constant(0.0)
        if clips:
            clip_norm = tf.convert_to_tensor(clip_value)
            grads, _ = tf.clip_by_global_norm(grads, clip_norm * scale, use_norm=norm * scale)
            clipped = tf.cast(tf.logical_and(norm > clip_norm, tf.logical_not(skipped)), tf.float32)
        optimizer.apply_gradients(zip(grads, variables))
        if ema is not None:
            ema.update(variables)
        for metric in trainer.train_metrics.values():
            metric.update_state(labels, outputs, sample_weight=weights)
        return loss, norm, clipped, tf.cast(skipped, tf.float32)

    @tf.function
    def train_loop(iterator, num_steps):
        losses = tf.TensorArray(tf.float32, size=num_steps)
        norms = tf.TensorArray(tf.float32, size=num_steps)
        clips = tf.TensorArray(tf.float32, size=num_steps)
        skips = tf.TensorArray(tf.float32, size=num_steps)
        for i in tf.range(num_steps):
            loss, norm, clipped, skipped = strategy.run(replica_step, args=next(iterator))
            losses = losses.write(i, strategy.reduce("sum", loss, axis=None))
            norms = norms.write(i, strategy.reduce("mean", norm, axis=None))
            clips = clips.write(i, strategy.reduce("mean", clipped, axis=None))
            skips = skips.write(i, strategy.reduce("sum", skipped, axis=None))
            trainer.step.assign_add(1)
        return losses.stack(), norms.stack(), clips.stack(), skips.stack()

    def eval_replica_step(features, labels, weights):
        outputs = outputs_of(features, False)
        # Padding (weight 0) must not turn an infinite loss into NaN (0 x inf).
        per_example = eval_loss_fn(labels, outputs)
        per_example = tf.where(weights > 0, per_example, tf.zeros_like(per_example))
        trainer.eval_loss.update_state(per_example, sample_weight=weights)
        for metric in trainer.eval_metrics.values():
            metric.update_state(labels, outputs, sample_weight=weights)
        if trainer.class_counts is not None:
            trainer.class_counts.update_state(labels, outputs, sample_weight=weights)

    @tf.function
    def eval_loop(iterator, num_steps):
        for _ in tf.range(num_steps):
            strategy.run(eval_replica_step, args=next(iterator))

    return train_loop, eval_loop
