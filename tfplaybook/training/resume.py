"""Resuming a trial: what an interrupted run restores, and the state a run carries between loops.

A trial killed at any point resumes from its latest readable checkpoint (checklist 90): model,
optimizer, step and weight average come from the checkpoint. From the trial directory come the
first training loss (the base of the divergence loss-factor rule), the objective of every
evaluation up to the checkpoint's step (which rebuilds a damaged best-checkpoint index and gives
the retrospective best at the end, checklist 43 and 91) and the steps the loss scale skipped.
What was recorded after that step, measurements and best checkpoints, is dropped: the resumed run
redoes that work, with fresh data shuffling.
"""

import os
import time

from tfplaybook import progress
from tfplaybook.files import trial_dir as td
from tfplaybook.training import checkpoints as ckpt_lib
from tfplaybook.training import ema as ema_lib
from tfplaybook.training import strategy as strategy_lib


def host_shuffle_seed(base_seed, host_index):
    """The data-shuffle seed of one host: differs per host (checklist 95)."""
    return base_seed + 7919 * host_index


class RunState:
    """A run so far: restored by `resume`, then advanced by every loop of `Trainer.run`."""

    def __init__(
        self,
        *,
        step,
        shuffle_seed,
        first_loss,
        evaluations,
        ema_evaluations,
        skipped_steps,
        best,
        best_ema,
    ):
        self.step = step
        self.shuffle_seed = shuffle_seed  # Of the data: a resumed run shuffles afresh.
        self.first_loss = first_loss  # The run's first training loss, or None before the first.
        self.evaluations = evaluations  # {step: objective}, and of the averaged weights:
        self.ema_evaluations = ema_evaluations
        self.skipped_steps = skipped_steps  # Skipped by the loss scale, resumes included.
        self.best, self.best_ema = best, best_ema  # BestCheckpoints (best_ema: with EMA only).
        self.skip_run = 0  # Steps in a row the loss scale skipped, across loops.
        self.train_seconds = 0.0
        self.last_eval = ""  # The latest evaluation, as the progress line shows it.
        self.wall_start = self.eta = None

    def start_clock(self, max_train_steps):
        """Starts the wall clock and the time-left estimate (just before the first loop)."""
        self.wall_start = time.time()
        self.eta = progress.Progress(max_train_steps, "step", done=self.step, enabled=False)


def latest_checkpoint(trainer):
    """The periodic checkpoint of `trainer`: model, optimizer, step and weight average."""
    return ckpt_lib.LatestCheckpoint(
        os.path.join(trainer.workdir, td.CHECKPOINTS, ckpt_lib.LATEST),
        trainer.is_chief,
        model=trainer.model,
        optimizer=trainer.optimizer,
        step=trainer.step,
        **({"ema": trainer.ema.checkpointable} if trainer.ema else {}),
    )


def resume(trainer, latest):
    """Restores `latest` if it has a usable checkpoint, else starts at step 0.

    The chief then drops the measurements and best checkpoints newer than the start step and
    writes the running status with the run's seeds.

    Returns:
      The RunState at the start step.
    """
    config, workdir, chief = trainer.config, trainer.workdir, trainer.is_chief
    restored = latest.restore()
    start = int(trainer.step.numpy())
    previous = _previous_status(workdir, restored)
    first_loss = (previous or {}).get("first_loss") if restored else None
    evaluations, ema_evaluations, skipped_steps = _history(trainer, start)
    best = _best_checkpoints(trainer, ckpt_lib.BEST, trainer.objective["metric"], evaluations)
    best_ema = None
    if trainer.ema is not None:
        ema_metric = ema_lib.PREFIX + trainer.objective["metric"]
        best_ema = _best_checkpoints(trainer, ckpt_lib.BEST_EMA, ema_metric, ema_evaluations)
    # The data order follows `data_seed` when set, else `seed` (initialisation and dropout):
    # reruns can then vary one source of trial variance at a time (checklist 59).
    data_seed = config.get("data_seed")
    base_seed = config["seed"] if data_seed is None else data_seed
    shuffle_seed = base_seed + start  # A resumed run continues with fresh shuffling.
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
            seeds=_seeds(config, shuffle_seed, trainer.strategy),
            objective=trainer.objective,
            replicas=trainer.replicas,
            resumed_from=start if restored else None,
        )
    return RunState(
        step=start,
        shuffle_seed=shuffle_seed,
        first_loss=first_loss,
        evaluations=evaluations,
        ema_evaluations=ema_evaluations,
        skipped_steps=skipped_steps,
        best=best,
        best_ema=best_ema,
    )


def _previous_status(workdir, restored):
    """The status the interrupted run left (None if unreadable), warning if it is lost work."""
    try:
        previous = td.read_status(workdir)
    except td.DamagedFileError:
        previous = None  # train() has already warned and decided to resume.
    if not restored and (previous or {}).get("step"):
        td.warn(
            f"{workdir} had reached step {previous['step']} but has no usable checkpoint; "
            "restarting this trial from step 0"
        )
    return previous


def _history(trainer, start):
    """From the chief's measurements up to `start`: ({step: objective}, the same for the
    averaged weights, steps skipped by the loss scale). Other workers start empty."""
    if not trainer.is_chief:
        return {}, {}, 0
    rows = td.read_measurements(trainer.workdir)
    metric = trainer.objective["metric"]
    steps, values = td.series(rows, td.VALIDATION, metric)
    evaluations = {s: v for s, v in zip(steps, values) if s <= start}
    steps, counts = td.series(rows, td.TRAIN, "skipped_steps")
    skipped_steps = int(sum(c for s, c in zip(steps, counts) if s <= start))
    ema_evaluations = {}
    if trainer.ema is not None:
        steps, values = td.series(rows, td.VALIDATION, ema_lib.PREFIX + metric)
        ema_evaluations = {s: v for s, v in zip(steps, values) if s <= start}
    return evaluations, ema_evaluations, skipped_steps


def _best_checkpoints(trainer, name, metric, evaluations):
    """The N best checkpoints by `metric` in checkpoints/`name`/, saving `trainer.model`."""
    best = ckpt_lib.BestCheckpoints(
        os.path.join(trainer.workdir, td.CHECKPOINTS, name),
        metric,
        trainer.objective["goal"],
        trainer.config.get("keep_best_checkpoints", 3),
        trainer.is_chief,
        evaluations=evaluations,
    )
    best.set_model(trainer.model)
    return best


def _seeds(config, shuffle_seed, strategy):
    """The run's seeds as status.json records them."""
    return {
        "model_init": config["seed"],
        "data_shuffle_base": shuffle_seed,
        # Checklist 95: the same init seed everywhere, a different shuffle seed per host.
        "data_shuffle_per_host": [
            host_shuffle_seed(shuffle_seed, host)
            for host in range(strategy_lib.num_hosts(strategy))
        ],
    }
