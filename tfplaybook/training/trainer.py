"""The orbit-style training loop every trial runs on.

One code path for the default strategy, MirroredStrategy, MultiWorkerMirroredStrategy and
TPUStrategy: a per-replica step under `strategy.run` inside a `tf.function`, the loss averaged over
the *global* batch, `steps_per_loop` steps per host call, and Keras models, optimizers and metrics.
Keras 3 `model.fit` cannot run under MultiWorkerMirroredStrategy (docs/engineering.md), hence
this loop.

The loop all-reduces the gradients itself so it can log the unclipped global gradient norm of the
summed gradient every step and clip by it (checklist 106, 115-116); Keras optimizers clip per
replica, before their own all-reduce, which would be the wrong norm under a strategy.
"""

import collections
import hashlib
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfplaybook import config as config_lib
from tfplaybook import internals, progress
from tfplaybook.choices import PRECISIONS
from tfplaybook.files import remote
from tfplaybook.files import trial_dir as td
from tfplaybook.runtime import Runtime  # noqa: F401  (part of this module's interface)
from tfplaybook.training import batchnorm, best_export
from tfplaybook.training import checkpoints as ckpt_lib
from tfplaybook.training import data as data_lib
from tfplaybook.training import ema as ema_lib
from tfplaybook.training import metrics as metrics_lib
from tfplaybook.training import optimizers, schedules, selection
from tfplaybook.training import strategy as strategy_lib
from tfplaybook.training import task as task_lib
from tfplaybook.training import workdir as workdir_lib


class Diverged(Exception):
    """Training produced a non-finite or exploding quantity (an infeasible trial, checklist 41)."""

    def __init__(self, step, quantity, value):
        super().__init__(f"{quantity} is {value} at step {step}")
        self.step = step


def _disable_optimizer_all_reduce(optimizer):
    # The loop has already summed the gradients over replicas; without this, the Keras TF
    # optimizer would sum them a second time. A test compares 2-replica training with 1 replica
    # on the same global batch, so a change in this Keras internal is caught.
    internals.disable_gradient_all_reduce(optimizers.inner_optimizer(optimizer))


def _next_boundary(step, config, steps_per_loop):
    """The next step at which the loop must return to the host (eval, checkpoint or the end)."""
    stops = [config["max_train_steps"], step + steps_per_loop]
    for every in (config["eval_every_steps"], config.get("checkpoint_every_steps", 0)):
        if every:
            stops.append((step // every + 1) * every)
    return min(stops)


def host_shuffle_seed(base_seed, host_index):
    """The data-shuffle seed of one host: differs per host (checklist 95)."""
    return base_seed + 7919 * host_index


def should_evaluate(step, config):
    """Pure predicate: evaluate at regular step intervals, never time (checklist 84)."""
    return step % config["eval_every_steps"] == 0 or step == config["max_train_steps"]


def should_checkpoint(step, config):
    every = config.get("checkpoint_every_steps", 0) or config["eval_every_steps"]
    return step % every == 0 or step == config["max_train_steps"]


# Consecutive steps skipped by the loss scale (mixed_float16) that end a run as diverged:
# tfplaybook's choice, the playbook has no number. Keras' LossScaleOptimizer skips a step whose
# gradients are not finite and halves its loss scale, which is normal in early steps (it starts
# at 2^15) and after a spike. 30 skips in a row lower the scale by 2^30 (from Keras' initial 2^15
# to 2^-15): gradients that still overflow float16 then exceed 65504 x 2^15 (about 2e9), or are
# NaN whatever the scale (e.g. 0 x inf in backpropagation with a finite loss).
MAX_SKIPPED_STEPS = 30


def check_divergence(step0, losses, norms, first_loss, factor, skipped=None, skipped_before=0):
    """Raises Diverged at the first bad step of a loop (checklist 41).

    A non-finite loss or gradient norm, or a loss above `factor` x the first loss, diverges. A
    step the loss scale skipped (`skipped[i]` true: its gradients were not finite and nothing
    was applied) is not a divergence by itself: only MAX_SKIPPED_STEPS of them in a row are.

    Args:
      step0: the step before the loop's first step.
      losses, norms: the loop's per-step training losses and unclipped gradient norms.
      first_loss: the run's first training loss (the loss-factor rule's base), or None.
      factor: divergence_loss_factor (0: no loss-factor rule).
      skipped: per-step flags of steps skipped by the loss scale, or None (no loss scaling).
      skipped_before: the run of consecutive skipped steps that ended the previous loop.

    Returns:
      The run of consecutive skipped steps at the end of this loop (the next loop's
      `skipped_before`).
    """
    run = skipped_before
    for i, (loss, norm) in enumerate(zip(losses, norms)):
        step = step0 + i + 1
        if not math.isfinite(loss):
            raise Diverged(step, "training loss", loss)
        if skipped is not None and skipped[i]:
            run += 1
            if run >= MAX_SKIPPED_STEPS:
                raise Diverged(
                    step, f"gradient norm ({run} steps in a row skipped by the loss scale)", norm
                )
        else:
            run = 0
            if not math.isfinite(norm):
                raise Diverged(step, "gradient norm", norm)
        if factor and first_loss is not None and loss > factor * first_loss:
            raise Diverged(
                step,
                f"training loss ({loss:.4g} > {factor:g} x first loss " f"{first_loss:.4g})",
                loss,
            )
    return run


# ------------------------------------------------------------------------- one trace per shape

# Trials of one study that differ only in the learning rate, momentum and seeds share a traced
# train and eval step: the model's and optimizer's variables are reset to what a fresh build
# gives, and those hyperparameters are variables. Tracing cost about 0.8 s a trial of the default
# study; a 20-step trial spends most of its time there. Keyed on everything else that the traced
# functions close over.
_ENGINES = collections.OrderedDict()
MAX_ENGINES = 4
MAX_REUSE_PARAMETERS = 10_000_000  # Larger models: no copies kept (their memory matters more).
_NOT_TRACED = ("seed", "data_seed", "study", "eval_every_steps", "checkpoint_every_steps")
_NOT_TRACED += ("keep_best_checkpoints", "divergence_loss_factor", "objective")


def _reuse_key(config, runtime, strategy, builder, spec):
    """What a traced step depends on, or None when this trial must build its own."""
    if config.get("ema_decay") or runtime.precision == "mixed_float16":
        return None  # Averages and loss scales have state of their own: always fresh.
    rest = {k: v for k, v in config.items() if k not in _NOT_TRACED}
    optimizer = dict(rest["optimizer"], learning_rate=None)
    if optimizer["name"] in ("momentum", "nesterov"):
        optimizer["momentum"] = bool(optimizer.get("momentum", 0.9))
    rest["optimizer"] = optimizer
    text = json.dumps(rest, sort_keys=True, default=repr)
    return (text, repr(runtime), id(strategy), id(builder), repr(spec.element_spec))


def _variables_match(a, b):
    return len(a) == len(b) and all(
        tuple(x.shape) == tuple(y.shape) and x.dtype == y.dtype for x, y in zip(a, b)
    )


def _reuse(trainer, key):
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
    cached["optimizer"].playbook_schedule.set_base(config["optimizer"]["learning_rate"])
    if isinstance(cached["optimizer"], optimizers.Momentum):
        cached["optimizer"].set_momentum(config["optimizer"].get("momentum", 0.9))
    for name in ("model", "optimizer", "step", "train_metrics", "eval_loss", "eval_metrics"):
        setattr(trainer, name, cached[name])
    trainer.class_counts, trainer.ema = cached["class_counts"], None
    trainer.train_loop, trainer._eval_loop = cached["train_loop"], cached["eval_loop"]
    trainer.step.assign(0)
    return True


def _remember(trainer, key):
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
    while len(_ENGINES) > MAX_ENGINES:
        _ENGINES.popitem(last=False)


def forget_traces():
    """Drops every cached engine (tests; a caller that wants fresh traces)."""
    _ENGINES.clear()


class Trainer:
    """Builds everything for one configuration and runs it to `max_train_steps`.

    `task` (tfplaybook.training.task.Task) supplies the model builder and the dataset function; None
    reads both from the registries (`model.name`, `data.dataset`).
    """

    def __init__(self, config, workdir, runtime, strategy=None, task=None):
        self.config = config_lib.validate(config)
        self.workdir = workdir
        self.runtime = runtime
        self.task = task or task_lib.Task()
        if runtime.precision not in PRECISIONS:
            raise config_lib.ConfigError(
                f"--precision={runtime.precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        if runtime.steps_per_loop < 1:
            raise config_lib.ConfigError(f"--steps_per_loop={runtime.steps_per_loop} must be >= 1")
        # The strategy comes first: splitting the CPU must precede any TensorFlow op.
        self.strategy = strategy or strategy_lib.get_strategy(
            runtime.strategy, runtime.tpu, runtime.num_cpu_replicas
        )
        self.replicas = self.strategy.num_replicas_in_sync
        strategy_lib.check_batch_size(config["batch_size"], self.strategy)
        self.task_type, self.task_id, self.is_chief = strategy_lib.task_info(self.strategy)
        if (
            runtime.jit_compile
            and self.replicas > 1
            and not isinstance(self.strategy, tf.distribute.TPUStrategy)
        ):
            # Measured here: an XLA-compiled replica step under MirroredStrategy can interleave its
            # collectives differently per replica (shape-mismatch aborts) and fails outright with
            # synchronized batch norm. TPUStrategy compiles the whole step and has neither problem.
            raise config_lib.ConfigError(
                f"--jit_compile with {self.replicas} CPU/GPU replicas is not supported; use it "
                "with one device (--strategy=cpu or one_device) or on TPUs"
            )
        self.objective = config["objective"]
        self.spec = data_lib.get_data_spec(config, self.task, runtime.download)
        self.eval_batch = data_lib.eval_batch_size(
            config["data"], config["batch_size"], self.replicas
        )
        self.loss_fn = metrics_lib.make_loss(config)
        self.eval_loss_fn = metrics_lib.make_loss(config, training=False)
        keras.config.set_dtype_policy(runtime.precision)
        keras.utils.set_random_seed(config["seed"])  # Same model init on every host (checklist 95).
        builder = self.task.model_builder(config)
        with self.strategy.scope():
            self.model = builder(config, self.spec)
            if not isinstance(self.model, keras.Model):
                raise config_lib.ConfigError(
                    f"build_model returned {type(self.model).__name__}, expected a keras.Model"
                )
        key = _reuse_key(config, runtime, self.strategy, builder, self.spec)
        if _reuse(self, key):
            return
        with self.strategy.scope():
            self.optimizer = optimizers.make_optimizer(
                config["optimizer"],
                config["schedule"],
                config["max_train_steps"],
                runtime.precision,
            )
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.train_metrics = metrics_lib.make_metrics(config)
            self.eval_loss = keras.metrics.Mean("loss")
            self.eval_metrics = metrics_lib.make_metrics(config)
            self.class_counts = metrics_lib.make_class_counts(config, _output_width(self.model))
            decay = float(config.get("ema_decay") or 0.0)
            self.ema = (
                ema_lib.WeightAverage(self.model.trainable_variables, decay) if decay else None
            )
        _disable_optimizer_all_reduce(self.optimizer)
        self._build_functions()
        _remember(self, key)

    # ----------------------------------------------------------------------------- tf.functions

    def _build_functions(self):
        strategy, model, optimizer = self.strategy, self.model, self.optimizer
        global_batch = self.config["batch_size"]
        clip_norm = float(self.config["optimizer"]["clip_norm"] or 0.0)
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        variables = model.trainable_variables
        loss_fn, eval_loss_fn = self.loss_fn, self.eval_loss_fn
        ema = self.ema

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

        if self.runtime.jit_compile:
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
            if clip_norm > 0:
                grads, _ = tf.clip_by_global_norm(grads, clip_norm * scale, use_norm=norm * scale)
                clipped = tf.cast(
                    tf.logical_and(norm > clip_norm, tf.logical_not(skipped)), tf.float32
                )
            optimizer.apply_gradients(zip(grads, variables))
            if ema is not None:
                ema.update(variables)
            for metric in self.train_metrics.values():
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
                self.step.assign_add(1)
            return losses.stack(), norms.stack(), clips.stack(), skips.stack()

        def eval_replica_step(features, labels, weights):
            outputs = outputs_of(features, False)
            # Padding (weight 0) must not turn an infinite loss into NaN (0 x inf).
            per_example = eval_loss_fn(labels, outputs)
            per_example = tf.where(weights > 0, per_example, tf.zeros_like(per_example))
            self.eval_loss.update_state(per_example, sample_weight=weights)
            for metric in self.eval_metrics.values():
                metric.update_state(labels, outputs, sample_weight=weights)
            if self.class_counts is not None:
                self.class_counts.update_state(labels, outputs, sample_weight=weights)

        @tf.function
        def eval_loop(iterator, num_steps):
            for _ in tf.range(num_steps):
                strategy.run(eval_replica_step, args=next(iterator))

        self.train_loop, self._eval_loop = train_loop, eval_loop

    # ----------------------------------------------------------------------------- datasets

    def datasets(self, shuffle_seed):
        """The distributed (training, evaluation) datasets; training shuffles from `shuffle_seed`.

        `train_loop(iter(training), tf.constant(n))` runs n steps and returns the per-step losses,
        unclipped gradient norms, clipped flags and flags of the steps the loss scale skipped
        (mixed_float16; the batch sweep and bn_check drive it).
        """
        config, spec = self.config, self.spec
        pipelines = strategy_lib.num_hosts(self.strategy)
        self.eval_steps = data_lib.eval_steps(spec.num_eval_examples, self.eval_batch, pipelines)

        def train_fn(ctx):
            seed = host_shuffle_seed(shuffle_seed, ctx.input_pipeline_id)
            return data_lib.train_dataset(spec, config, config["batch_size"], seed, ctx)

        def eval_fn(ctx):
            return data_lib.eval_dataset(spec, config, self.eval_batch, self.eval_steps, ctx)

        train = self.strategy.distribute_datasets_from_function(train_fn)
        evaluation = self.strategy.distribute_datasets_from_function(eval_fn)
        return train, evaluation

    # ----------------------------------------------------------------------------- running

    def evaluate(self, eval_ds):
        batchnorm.sync_moving_statistics(self.model, self.strategy)  # Checklist 94-95.
        self.eval_loss.reset_state()
        for metric in self.eval_metrics.values():
            metric.reset_state()
        if self.class_counts is not None:
            self.class_counts.reset_state()
        self._eval_loop(iter(eval_ds), tf.constant(self.eval_steps))
        results = {"loss": float(self.eval_loss.result())}
        results.update({name: _scalar(m.result()) for name, m in self.eval_metrics.items()})
        if self.class_counts is not None:  # Checklist 89: counts, not only rates.
            results.update(self.class_counts.results())
        return results

    def _log(self, text):
        if self.runtime.verbose and self.is_chief:
            print(text, flush=True)

    def run(self):
        """Trains to max_train_steps (resuming if the workdir holds an interrupted run).

        Returns:
          The final status dict (as written to status.json).
        """
        config, workdir, chief = self.config, self.workdir, self.is_chief
        ckpt_dir = os.path.join(workdir, td.CHECKPOINTS)
        latest = ckpt_lib.LatestCheckpoint(
            os.path.join(ckpt_dir, ckpt_lib.LATEST),
            chief,
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            **({"ema": self.ema.checkpointable} if self.ema else {}),
        )
        restored = latest.restore()
        start = int(self.step.numpy())
        try:
            previous = td.read_status(workdir)
        except td.DamagedFileError:
            previous = None  # train() has already warned and decided to resume.
        if not restored and (previous or {}).get("step"):
            td.warn(
                f"{workdir} had reached step {previous['step']} but has no usable checkpoint; "
                "restarting this trial from step 0"
            )
        first_loss = (previous or {}).get("first_loss") if restored else None
        # Objective per evaluated step, so far: rebuilds a damaged best-checkpoint index and gives
        # the retrospective best at the end (checklist 43, 91) without re-reading the file.
        evaluations = {}
        self.skipped_steps = 0  # Steps the loss scale skipped (mixed_float16), resumes included.
        if chief:
            rows = td.read_measurements(workdir)
            steps, values = td.series(rows, td.VALIDATION, self.objective["metric"])
            evaluations = {s: v for s, v in zip(steps, values) if s <= start}
            steps, counts = td.series(rows, td.TRAIN, "skipped_steps")
            self.skipped_steps = int(sum(c for s, c in zip(steps, counts) if s <= start))
        best = ckpt_lib.BestCheckpoints(
            os.path.join(ckpt_dir, ckpt_lib.BEST),
            self.objective["metric"],
            self.objective["goal"],
            config.get("keep_best_checkpoints", 3),
            chief,
            evaluations=evaluations,
        )
        best.set_model(self.model)
        ema_evaluations, best_ema = {}, None
        if self.ema is not None:
            ema_metric = ema_lib.PREFIX + self.objective["metric"]
            if chief:
                steps, values = td.series(rows, td.VALIDATION, ema_metric)
                ema_evaluations = {s: v for s, v in zip(steps, values) if s <= start}
            best_ema = ckpt_lib.BestCheckpoints(
                os.path.join(ckpt_dir, ckpt_lib.BEST_EMA),
                ema_metric,
                self.objective["goal"],
                config.get("keep_best_checkpoints", 3),
                chief,
                evaluations=ema_evaluations,
            )
            best_ema.set_model(self.model)
        # The data order follows `data_seed` when set, else `seed` (initialisation and dropout):
        # reruns can then vary one source of trial variance at a time (checklist 59).
        data_seed = config.get("data_seed")
        base_seed = config["seed"] if data_seed is None else data_seed
        shuffle_seed = base_seed + start  # A resumed run continues with fresh shuffling.
        seeds = {
            "model_init": config["seed"],
            "data_shuffle_base": shuffle_seed,
            # Checklist 95: the same init seed everywhere, a different shuffle seed per host.
            "data_shuffle_per_host": [
                host_shuffle_seed(shuffle_seed, host)
                for host in range(strategy_lib.num_hosts(self.strategy))
            ],
        }
        if chief:
            td.truncate_measurements(workdir, start)
            best.forget_after(start)
            if best_ema is not None:
                best_ema.forget_after(start)
            td.write_status(
                workdir,
                td.RUNNING,
                "resumed" if restored else "",
                step=start,
                seeds=seeds,
                objective=self.objective,
                replicas=self.replicas,
                resumed_from=start if restored else None,
            )
        writer = (
            tf.summary.create_file_writer(os.path.join(workdir, td.TENSORBOARD))
            if chief
            else tf.summary.create_noop_writer()
        )
        if chief:
            write_trial_hparams(writer, workdir)
        train_ds, eval_ds = self.datasets(shuffle_seed)
        iterator = iter(train_ds)
        factor = config.get("divergence_loss_factor", 0.0)
        loss_scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        skip_run = 0  # Steps in a row the loss scale skipped, across loops.
        train_seconds, wall_start, step = 0.0, time.time(), start
        eta = progress.Progress(config["max_train_steps"], "step", done=start, enabled=False)
        last_eval = ""
        try:
            while step < config["max_train_steps"]:
                n = _next_boundary(step, config, self.runtime.steps_per_loop) - step
                for metric in self.train_metrics.values():
                    metric.reset_state()
                t0 = time.time()
                losses, norms, clips, skips = (
                    x.numpy() for x in self.train_loop(iterator, tf.constant(n))
                )
                skipped = skips > 0
                seconds = time.time() - t0
                train_seconds += seconds
                if first_loss is None:
                    first_loss = float(losses[0])
                    if chief:
                        td.write_status(workdir, td.RUNNING, step=step, first_loss=first_loss)
                rows = [(step + i + 1, td.TRAIN, "loss", losses[i]) for i in range(n)]
                # A skipped step applied nothing: its non-finite norm is not logged as one.
                applied = [i for i in range(n) if not skipped[i]]
                rows += [(step + i + 1, td.TRAIN, "grad_norm", norms[i]) for i in applied]
                loop_start, step = step, step + n
                lr = schedules.learning_rate(
                    step - 1,
                    config["optimizer"]["learning_rate"],
                    config["schedule"],
                    config["max_train_steps"],
                )
                finite = norms[applied][np.isfinite(norms[applied])]
                rows += [
                    (step, td.TRAIN, name, _scalar(metric.result()))
                    for name, metric in self.train_metrics.items()
                ]
                rows.append((step, td.TRAIN, "learning_rate", lr))
                if applied:
                    rows += [
                        (
                            step,
                            td.TRAIN,
                            "grad_norm_mean",
                            finite.mean() if finite.size else np.nan,
                        ),
                        (step, td.TRAIN, "grad_norm_max", finite.max() if finite.size else np.nan),
                    ]
                rows += [
                    (step, td.TRAIN, "clipped_fraction", float(clips.mean())),
                    (step, td.TRAIN, "steps_per_second", n / seconds),
                ]
                if loss_scaled:
                    rows.append((step, td.TRAIN, "skipped_steps", int(skipped.sum())))
                    self.skipped_steps += int(skipped.sum())
                if chief:
                    td.append_measurements(workdir, rows)
                skip_run = check_divergence(
                    loop_start,
                    losses,
                    norms,
                    first_loss,
                    factor,
                    skipped if loss_scaled else None,
                    skip_run,
                )
                if should_evaluate(step, config):
                    metrics = self.evaluate(eval_ds)
                    for name, value in metrics.items():
                        if not math.isfinite(value):
                            raise Diverged(step, f"validation {name}", value)
                    if chief:
                        td.append_measurements(
                            workdir, [(step, td.VALIDATION, k, v) for k, v in metrics.items()]
                        )
                    best.on_epoch_end(step, metrics)
                    evaluations[step] = metrics[self.objective["metric"]]
                    if self.ema is not None:
                        averaged = self._evaluate_average(eval_ds, step, best_ema)
                        ema_evaluations[step] = averaged[ema_lib.PREFIX + self.objective["metric"]]
                        metrics = dict(metrics, **averaged)
                    with writer.as_default(step=step):
                        for name, value in metrics.items():
                            tf.summary.scalar(f"validation/{name}", value)
                    last_eval = (
                        f" | val {self.objective['metric']} "
                        f"{metrics[self.objective['metric']]:.4f}"
                    )
                with writer.as_default(step=step):
                    tf.summary.scalar("train/loss", float(np.mean(losses)))
                    if finite.size:
                        tf.summary.scalar("train/grad_norm", float(np.mean(finite)))
                    if loss_scaled:
                        tf.summary.scalar("train/skipped_steps", int(skipped.sum()))
                    tf.summary.scalar("train/learning_rate", lr)
                if should_checkpoint(step, config):
                    if not should_evaluate(step, config):  # evaluate() has just synced them.
                        batchnorm.sync_moving_statistics(self.model, self.strategy)  # 94-95.
                    latest.save(step)
                    if chief:
                        td.write_status(workdir, td.RUNNING, step=step)
                        remote.sync(workdir)  # A gs:// work directory: the bucket is current.
                eta.update(step)
                left = eta.remaining_seconds()
                self._log(
                    f"step {step}/{config['max_train_steps']} | {n / seconds:.1f} steps/s | "
                    f"{n * config['batch_size'] / seconds:.0f} examples/s | "
                    f"loss {float(np.mean(losses)):.4f}{last_eval}"
                    + (f" | about {progress.format_seconds(left)} left" if left else "")
                )
        except Diverged as e:
            self._log(f"diverged: {e}")
            return self._finish(
                td.DIVERGED, str(e), e.step, evaluations, train_seconds, wall_start, ema_evaluations
            )
        finally:
            writer.flush()
            latest.close()
        return self._finish(
            td.COMPLETED, "", step, evaluations, train_seconds, wall_start, ema_evaluations
        )

    def _evaluate_average(self, eval_ds, step, best_ema):
        """Evaluates the averaged weights (ema/<metric>) and keeps their best checkpoints."""
        self.ema.swap()
        try:
            averaged = {
                ema_lib.PREFIX + k: v
                for k, v in self.evaluate(eval_ds).items()
                if not k.startswith("example_count")  # The same examples: counted once.
            }
            best_ema.on_epoch_end(step, averaged)  # Saves the averaged weights.
        finally:
            self.ema.swap()
        if self.is_chief:
            td.append_measurements(
                self.workdir, [(step, td.VALIDATION, k, v) for k, v in averaged.items()]
            )
        return averaged

    def _finish(
        self, status, reason, step, evaluations, train_seconds, wall_start, ema_evaluations=None
    ):
        best = selection.best_of(evaluations.items(), self.objective["goal"])
        digest = hashlib.sha256(b"".join(w.tobytes() for w in self.model.get_weights()))
        fields = dict(
            weights_digest=digest.hexdigest()[:16],
            step=step,
            best_step=best[0] if best else None,
            best_value=best[1] if best else None,
            train_seconds=train_seconds,
            wall_seconds=time.time() - wall_start,
            skipped_steps=self.skipped_steps,
        )
        if self.ema is not None:
            averaged = selection.best_of((ema_evaluations or {}).items(), self.objective["goal"])
            fields.update(
                best_step_ema=averaged[0] if averaged else None,
                best_value_ema=averaged[1] if averaged else None,
            )
        if not self.is_chief:
            return dict(fields, status=status, reason=reason)
        return td.write_status(self.workdir, status, reason, **fields)


def _export(workdir, config, task, runtime):
    path = best_export.export_best(workdir, config, task, runtime.download)
    if path and runtime.verbose:
        print(f"exported the best checkpoint: {path}", flush=True)


def _output_width(model):
    """The width of a single-output model's last axis (2 for one binary logit), else None."""
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if not isinstance(shape, tuple) or not shape or not isinstance(shape[-1], int):
        return None
    return 2 if shape[-1] == 1 else shape[-1]


def _scalar(value):
    """A metric result as one float (a vector-valued metric such as F1 per class: its mean)."""
    return float(np.mean(np.asarray(value, dtype=np.float64)))


def write_trial_hparams(writer, workdir):
    """TensorBoard HParams-plugin summary of a study trial, from its hparams.json."""
    path = os.path.join(workdir, td.HPARAMS)
    if not os.path.exists(path):
        return
    from tensorboard.plugins.hparams import api as hp

    values = {
        k: v
        for k, v in td.read_json(path)["values"].items()
        if isinstance(v, (bool, int, float, str))
    }
    with writer.as_default():
        hp.hparams(values, trial_id=os.path.basename(os.path.normpath(workdir)))


def train(config, workdir, runtime, strategy=None, task=None, export=False):
    """Trains one configuration into `workdir` (the trial directory); resumes if interrupted.

    Everything that can be wrong with the input is checked before anything is written. With
    `export`, the chief then writes WORKDIR/export/ from the best checkpoint (predictions on a
    fixed sample, .keras and SavedModel: tfplaybook.training.best_export), also for a run that had
    finished before without one.

    Returns:
      The final status dict.
    """
    try:
        previous = workdir_lib.prepare(workdir, config)
    except td.DamagedFileError as e:
        td.warn(str(e))
        previous = workdir_lib.recover_status(workdir, config)
    if previous and previous["status"] in td.FINISHED:
        if runtime.verbose:
            print(f"{workdir}: already {previous['status']}; nothing to do", flush=True)
        if export and not best_export.exported(workdir):
            _export(workdir, config, task, runtime)
        return previous
    trainer = Trainer(config, workdir, runtime, strategy, task)
    if (
        trainer.is_chief
        and runtime.verbose
        and not os.path.exists(os.path.join(workdir, td.HPARAMS))
    ):
        # A study's trials have the study's plan; a training of its own gets one.
        progress.plan(
            f"train {config['max_train_steps']} steps at batch {config['batch_size']} on "
            f"{trainer.replicas} replica(s) into {workdir}",
            [
                f"evaluate every {config['eval_every_steps']} steps on "
                f"{trainer.spec.num_eval_examples} examples; keep the "
                f"{config['keep_best_checkpoints']} best checkpoints by validation "
                f"{trainer.objective['metric']} ({trainer.objective['goal']})"
            ],
        )
    try:
        if trainer.is_chief:
            os.makedirs(workdir, exist_ok=True)
            td.write_config(workdir, config)
        status = trainer.run()
        if export and trainer.is_chief:
            _export(workdir, config, trainer.task, runtime)
        if trainer.is_chief:
            remote.sync(workdir)
        return status
    except (OSError, tf.errors.OpError) as e:
        # A full or read-only disk mid-run: one line, and the atomic state files stay resumable.
        error = workdir_lib.disk_error(e, workdir)
        if error is None:
            raise
        raise error from None
