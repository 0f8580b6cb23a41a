"""What the trainer records of each loop: measurement rows, TensorBoard scalars, a progress line.

A loop is one host call of the traced train loop: up to `steps_per_loop` steps, fewer before an
evaluation or a checkpoint. Its rows in measurements.jsonl are the per-step training loss and
unclipped gradient norm (checklist 106; a step the loss scale skipped applied nothing, so its norm
is not logged), then at the loop's last step the training metrics, the learning rate, the
gradient norm's mean and max, the fraction of clipped steps, the speed and, under a loss scale,
the number of skipped steps. TensorBoard gets the loop averages and every evaluation. Only the
chief writes files: the trainer decides; these functions only build and emit.
"""

import os
import time

import numpy as np

from tfplaybook import progress
from tfplaybook.files import trial_dir as td
from tfplaybook.training import schedules


def scalar(value):
    """A metric result as one float (a vector-valued metric such as F1 per class: its mean)."""
    return float(np.mean(np.asarray(value, dtype=np.float64)))


class Loop:
    """One loop's numbers: steps `start` + 1 to `end` and what the train loop returned for them.

    Args:
      start: the step before the loop's first step.
      n: the number of steps run.
      outputs: the train loop's (losses, norms, clips, skips) as NumPy arrays of length `n`.
      seconds: the loop's wall time.
      config: the trial's configuration (for the learning rate at the loop's last step).
      loss_scaled: whether a loss scale (mixed_float16) can skip steps.
    """

    def __init__(self, start, n, outputs, seconds, config, loss_scaled):
        self.losses, self.norms, self.clips, skips = outputs
        self.skipped = skips > 0
        self.start, self.n, self.end = start, n, start + n
        self.seconds = seconds
        self.loss_scaled = loss_scaled
        self.applied = [i for i in range(n) if not self.skipped[i]]
        applied_norms = self.norms[self.applied]
        self.finite_norms = applied_norms[np.isfinite(applied_norms)]
        self.learning_rate = schedules.learning_rate(
            self.end - 1,
            config["optimizer"]["learning_rate"],
            config["schedule"],
            config["max_train_steps"],
        )


def train_rows(loop, train_metrics):
    """The loop's measurement rows (step, split, metric, value), in the order they are written."""
    rows = [(loop.start + i + 1, td.TRAIN, "loss", loop.losses[i]) for i in range(loop.n)]
    # A skipped step applied nothing: its non-finite norm is not logged as one.
    rows += [(loop.start + i + 1, td.TRAIN, "grad_norm", loop.norms[i]) for i in loop.applied]
    step, finite = loop.end, loop.finite_norms
    rows += [
        (step, td.TRAIN, name, scalar(metric.result())) for name, metric in train_metrics.items()
    ]
    rows.append((step, td.TRAIN, "learning_rate", loop.learning_rate))
    if loop.applied:
        rows += [
            (step, td.TRAIN, "grad_norm_mean", finite.mean() if finite.size else np.nan),
            (step, td.TRAIN, "grad_norm_max", finite.max() if finite.size else np.nan),
        ]
    rows += [
        (step, td.TRAIN, "clipped_fraction", float(loop.clips.mean())),
        (step, td.TRAIN, "steps_per_second", loop.n / loop.seconds),
    ]
    if loop.loss_scaled:
        rows.append((step, td.TRAIN, "skipped_steps", int(loop.skipped.sum())))
    return rows


class EventWriter:
    """A TensorBoard event file of scalars and HParams summaries, written from Python.

    TensorBoard's own writer and summary protos, not `tf.summary` ops: an evaluation's 23
    scalars of the default study cost 23 ms as eager summary ops here, about 2 ms as
    protos. The files are the ones `tf.summary.scalar` writes (tensor summaries
    with the scalars plugin's metadata), so TensorBoard shows them the same way.
    """

    def __init__(self, logdir):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(logdir)

    def scalars(self, step, values):
        """Writes {tag: number} at `step`, as one event."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.scalar import summary_v2

        summary = Summary()
        for tag, value in values.items():
            summary.value.extend(summary_v2.scalar_pb(tag, float(value)).value)
        self.summary(summary, step)

    def summary(self, summary, step=0):
        """Writes a Summary proto at `step`."""
        from tensorboard.compat.proto.event_pb2 import Event

        self._writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def close(self):
        self._writer.close()


class _NoWriter:
    """What a worker other than the chief writes: nothing."""

    def scalars(self, step, values):
        pass

    def summary(self, summary, step=0):
        pass

    def close(self):
        pass


def summary_writer(workdir, is_chief):
    """The TensorBoard writer (one that writes nothing off the chief), with a study trial's
    HParams summary."""
    if not is_chief:
        return _NoWriter()
    writer = EventWriter(os.path.join(workdir, td.TENSORBOARD))
    write_trial_hparams(writer, workdir)
    return writer


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
    writer.summary(hp.hparams_pb(values, trial_id=os.path.basename(os.path.normpath(workdir))))


def train_scalars(writer, loop):
    """The loop's TensorBoard scalars at its last step: mean loss and norm, skips, learning rate."""
    values = {"train/loss": float(np.mean(loop.losses))}
    if loop.finite_norms.size:
        values["train/grad_norm"] = float(np.mean(loop.finite_norms))
    if loop.loss_scaled:
        values["train/skipped_steps"] = int(loop.skipped.sum())
    values["train/learning_rate"] = loop.learning_rate
    writer.scalars(loop.end, values)


def validation_scalars(writer, step, metrics):
    """An evaluation's metrics as TensorBoard scalars validation/<name>."""
    writer.scalars(step, {f"validation/{name}": value for name, value in metrics.items()})


def progress_line(loop, config, last_eval, seconds_left):
    """The line logged after a loop: step, speed, mean loss, the latest evaluation, time left."""
    return (
        f"step {loop.end}/{config['max_train_steps']} | {loop.n / loop.seconds:.1f} steps/s | "
        f"{loop.n * config['batch_size'] / loop.seconds:.0f} examples/s | "
        f"loss {float(np.mean(loop.losses)):.4f}{last_eval}"
        + (f" | about {progress.format_seconds(seconds_left)} left" if seconds_left else "")
    )
