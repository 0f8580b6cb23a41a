"""The orbit-style training loop every trial runs on.

One code path for the default strategy, MirroredStrategy, MultiWorkerMirroredStrategy and
TPUStrategy: a per-replica step under `strategy.run` inside a `tf.function`, the loss averaged over
the *global* batch, `steps_per_loop` steps per host call, and Keras models, optimizers and metrics.
Keras 3 `model.fit` cannot run under MultiWorkerMirroredStrategy (docs/engineering.md), hence
this loop.

`Trainer.run` reads like big_vision's loop: restore the run so far (`resume`), then per host call
run the steps (the traced loops and their cache: `engine`), record them (`records`) and check
them (`divergence`), and at a boundary evaluate, keep the best checkpoints and save the latest.
"""

import hashlib
import os
import time

import keras
import tensorflow as tf

from tfplaybook import config as config_lib
from tfplaybook import internals, progress
from tfplaybook.choices import PRECISIONS
from tfplaybook.files import remote
from tfplaybook.files import trial_dir as td
from tfplaybook.runtime import Runtime  # noqa: F401  (part of this module's interface)
from tfplaybook.training import batchnorm, best_export
from tfplaybook.training import data as data_lib
from tfplaybook.training import divergence
from tfplaybook.training import ema as ema_lib
from tfplaybook.training import engine
from tfplaybook.training import metrics as metrics_lib
from tfplaybook.training import records
from tfplaybook.training import resume as resume_lib
from tfplaybook.training import selection
from tfplaybook.training import strategy as strategy_lib
from tfplaybook.training import task as task_lib
from tfplaybook.training import workdir as workdir_lib

# This module's interface from before the loop's parts had modules of their own.
from tfplaybook.training.divergence import MAX_SKIPPED_STEPS  # noqa: F401
from tfplaybook.training.divergence import Diverged, check_divergence
from tfplaybook.training.engine import _ENGINES, forget_traces  # noqa: F401
from tfplaybook.training.records import write_trial_hparams  # noqa: F401
from tfplaybook.training.resume import host_shuffle_seed


def _next_boundary(step, config, steps_per_loop):
    """The next step at which the loop must return to the host (eval, checkpoint or the end)."""
    stops = [config["max_train_steps"], step + steps_per_loop]
    for every in (config["eval_every_steps"], config.get("checkpoint_every_steps", 0)):
        if every:
            stops.append((step // every + 1) * every)
    return min(stops)


def should_evaluate(step, config):
    """Pure predicate: evaluate at regular step intervals, never time (checklist 84)."""
    return step % config["eval_every_steps"] == 0 or step == config["max_train_steps"]


def should_checkpoint(step, config):
    every = config.get("checkpoint_every_steps", 0) or config["eval_every_steps"]
    return step % every == 0 or step == config["max_train_steps"]


class EvalPasses:
    """The evaluation split, repeated, and one iterator over it: each evaluation reads one pass.

    Shared by the trials of a process on the same strategy and data (`data.shared`), so the
    split's in-memory cache and the iterator (about 40 ms to create here) serve every evaluation
    of a study instead of being made again for each.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self._iterator = None

    def iterator(self):
        if self._iterator is None:
            self._iterator = iter(self.dataset)
        return self._iterator

    def discard(self):
        self._iterator = None


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
        builder = self.task.model_builder(config)

        def build():
            with self.strategy.scope():
                return builder(config, self.spec)

        # The same model init on every host (checklist 95).
        self.model = internals.seeded_build(config["seed"], build)
        if not isinstance(self.model, keras.Model):
            raise config_lib.ConfigError(
                f"build_model returned {type(self.model).__name__}, expected a keras.Model"
            )
        # Optimizer, step, metrics and the traced `train_loop` / `_eval_loop`: a cached engine
        # of an earlier trial of the same shape, or a fresh one.
        key = engine.reuse_key(config, runtime, self.strategy, builder, self.spec)
        if not engine.reuse(self, key):
            engine.build(self)
            engine.remember(self, key)

    def datasets(self, shuffle_seed):
        """The distributed training dataset (shuffled from `shuffle_seed`) and EvalPasses.

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
            return data_lib.eval_dataset(
                spec, config, self.eval_batch, self.eval_steps, ctx, repeat=True
            )

        train = data_lib.shared_train_pipeline(
            spec,
            config,
            shuffle_seed,
            (self.strategy, config["batch_size"]),
            lambda: self.strategy.distribute_datasets_from_function(train_fn),
        )
        evaluation = data_lib.shared(
            ("eval", self.strategy, spec, self.eval_batch, self.eval_steps),
            lambda: EvalPasses(self.strategy.distribute_datasets_from_function(eval_fn)),
        )
        return train, evaluation

    def evaluate(self, passes):
        """Evaluates the model on one pass of `passes` (EvalPasses); returns {metric: value}."""
        batchnorm.sync_moving_statistics(self.model, self.strategy)  # Checklist 94-95.
        self.eval_loss.reset_state()
        for metric in self.eval_metrics.values():
            metric.reset_state()
        if self.class_counts is not None:
            self.class_counts.reset_state()
        try:
            self._eval_loop(passes.iterator(), tf.constant(self.eval_steps))
        except BaseException:
            passes.discard()  # Stopped mid-pass: the next evaluation starts a fresh iterator.
            raise
        results = {"loss": float(self.eval_loss.result())}
        results.update({name: records.scalar(m.result()) for name, m in self.eval_metrics.items()})
        if self.class_counts is not None:  # Checklist 89: counts, not only rates.
            results.update(self.class_counts.results())
        return results

    def _log(self, text):
        if self.runtime.verbose and self.is_chief:
            print(text, flush=True)

    # ----------------------------------------------------------------------------- running

    def run(self):
        """Trains to max_train_steps (resuming if the workdir holds an interrupted run).

        Returns:
          The final status dict (as written to status.json).
        """
        config = self.config
        latest = resume_lib.latest_checkpoint(self)
        state = resume_lib.resume(self, latest)
        writer = records.summary_writer(self.workdir, self.is_chief)
        train_ds, eval_ds = self.datasets(state.shuffle_seed)
        iterator = iter(train_ds)
        state.start_clock(config["max_train_steps"])
        try:
            while state.step < config["max_train_steps"]:
                loop = self._train_steps(iterator, state)
                self._record(loop, state)
                if should_evaluate(loop.end, config):
                    self._evaluate_and_keep_best(eval_ds, loop.end, state, writer)
                records.train_scalars(writer, loop)
                if should_checkpoint(loop.end, config):
                    self._checkpoint(latest, loop.end)
                self._log_progress(loop, state)
        except Diverged as e:
            self._log(f"diverged: {e}")
            return self._finish(td.DIVERGED, str(e), e.step, state)
        finally:
            writer.close()  # Its file complete, and its thread ended, at every trial's end.
            latest.close()
        return self._finish(td.COMPLETED, "", state.step, state)

    def _train_steps(self, iterator, state):
        """Runs the steps up to the next boundary in one host call; returns their records.Loop."""
        n = _next_boundary(state.step, self.config, self.runtime.steps_per_loop) - state.step
        for metric in self.train_metrics.values():
            metric.reset_state()
        t0 = time.time()
        outputs = [x.numpy() for x in self.train_loop(iterator, tf.constant(n))]
        seconds = time.time() - t0
        state.train_seconds += seconds
        loss_scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        loop = records.Loop(state.step, n, outputs, seconds, self.config, loss_scaled)
        state.step = loop.end
        return loop

    def _record(self, loop, state):
        """Writes the loop's measurements, then raises Diverged at its first bad step."""
        if state.first_loss is None:
            state.first_loss = float(loop.losses[0])
            if self.is_chief:
                td.write_status(
                    self.workdir, td.RUNNING, step=loop.start, first_loss=state.first_loss
                )
        rows = records.train_rows(loop, self.train_metrics)
        if loop.loss_scaled:
            state.skipped_steps += int(loop.skipped.sum())
        if self.is_chief:
            td.append_measurements(self.workdir, rows)
        state.skip_run = check_divergence(
            loop.start,
            loop.losses,
            loop.norms,
            state.first_loss,
            self.config.get("divergence_loss_factor", 0.0),
            loop.skipped if loop.loss_scaled else None,
            state.skip_run,
        )

    def _evaluate_and_keep_best(self, eval_ds, step, state, writer):
        """Evaluates at `step` (and the averaged weights), records it, keeps the best checkpoints.

        Raises Diverged for a non-finite metric, before anything of the evaluation is written.
        """
        metrics = self.evaluate(eval_ds)
        divergence.check_evaluation(step, metrics)
        if self.is_chief:
            td.append_measurements(
                self.workdir, [(step, td.VALIDATION, k, v) for k, v in metrics.items()]
            )
        state.best.on_epoch_end(step, metrics)
        state.evaluations[step] = metrics[self.objective["metric"]]
        if self.ema is not None:
            averaged = self._evaluate_average(eval_ds, step, state.best_ema)
            state.ema_evaluations[step] = averaged[ema_lib.PREFIX + self.objective["metric"]]
            metrics = dict(metrics, **averaged)
        records.validation_scalars(writer, step, metrics)
        metric = self.objective["metric"]
        state.last_eval = f" | val {metric} {metrics[metric]:.4f}"

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

    def _checkpoint(self, latest, step):
        """Saves the latest checkpoint at `step` (every worker) and the running status."""
        if not should_evaluate(step, self.config):  # evaluate() has just synced them.
            batchnorm.sync_moving_statistics(self.model, self.strategy)  # 94-95.
        latest.save(step)
        if self.is_chief:
            td.write_status(self.workdir, td.RUNNING, step=step)
            remote.sync(self.workdir)  # A gs:// work directory: the bucket is current.

    def _log_progress(self, loop, state):
        state.eta.update(loop.end)
        left = state.eta.remaining_seconds()
        self._log(records.progress_line(loop, self.config, state.last_eval, left))

    def _finish(self, status, reason, step, state):
        """Writes the final status (chief) with the retrospective best evaluation; returns it."""
        best = selection.best_of(state.evaluations.items(), self.objective["goal"])
        digest = hashlib.sha256(b"".join(w.tobytes() for w in self.model.get_weights()))
        fields = dict(
            weights_digest=digest.hexdigest()[:16],
            step=step,
            best_step=best[0] if best else None,
            best_value=best[1] if best else None,
            train_seconds=state.train_seconds,
            wall_seconds=time.time() - state.wall_start,
            skipped_steps=state.skipped_steps,
        )
        if self.ema is not None:
            averaged = selection.best_of(state.ema_evaluations.items(), self.objective["goal"])
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
