"""Checkpoints: the N best by the objective, and the latest one to resume from after a kill.

`BestCheckpoints` subclasses Keras' `ModelCheckpoint` (its monitor, mode and file naming) and is
driven by our loop, which calls `on_epoch_end(step, logs)` after every evaluation; it keeps the N
best weight files instead of one (checklist 91). `LatestCheckpoint` wraps `tf.train.Checkpoint`
with model, optimizer and step for resumption (checklist 90). Only the chief writes; other workers
save into a scratch directory that is deleted, as TensorFlow's multi-worker recipe requires.
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from tfplaybook import selection, trial_dir

BEST = "best"
LATEST = "latest"
_INDEX = "index.json"


class BestCheckpoints(keras.callbacks.ModelCheckpoint):
    """Keeps the `keep` best checkpoints by `monitor` (retrospective selection)."""

    def __init__(self, directory, monitor, goal, keep=3, is_chief=True):
        os.makedirs(directory, exist_ok=True) if is_chief else None
        super().__init__(
            filepath=os.path.join(directory, "step-{epoch:08d}.weights.h5"),
            monitor=monitor,
            mode=goal,
            save_best_only=False,
            save_weights_only=True,
            verbose=0,
        )
        self.directory = directory
        self.goal = goal
        self.keep = int(keep)
        self.is_chief = is_chief
        self.kept = self._read_index()

    def _read_index(self):
        path = os.path.join(self.directory, _INDEX)
        if not os.path.exists(path):
            return []
        try:
            kept = trial_dir.read_json(path)["kept"]
        except (trial_dir.DamagedFileError, KeyError, TypeError):
            kept = []
        # Keep only entries whose file survived (a kill can land between save and index write).
        return [k for k in kept if os.path.exists(self.path_for(k["step"]))]

    def path_for(self, step):
        return self.filepath.format(epoch=step)

    def forget_after(self, step):
        """Drops checkpoints newer than `step`: a resume from `step` will redo that work."""
        newer = [k["step"] for k in self.kept if k["step"] > step]
        self.kept = [k for k in self.kept if k["step"] <= step]
        self._write_index(newer)

    def on_epoch_end(self, epoch, logs=None):
        """Called by the loop after an evaluation; `epoch` is the training step."""
        value = (logs or {}).get(self.monitor)
        kept, evicted, save = selection.update_kept(self.kept, epoch, value, self.keep, self.goal)
        if not self.is_chief:
            self.kept = kept
            return
        if save:
            path = self.path_for(epoch)
            tmp = os.path.join(self.directory, f".tmp-{os.getpid()}.weights.h5")
            self.model.save_weights(tmp)
            os.replace(tmp, path)
        self.kept = kept
        if save or evicted:
            self._write_index(evicted)

    def _write_index(self, evicted):
        if not self.is_chief:
            return
        trial_dir.atomic_write_json(
            os.path.join(self.directory, _INDEX),
            {"monitor": self.monitor, "goal": self.goal, "kept": self.kept},
        )
        for step in evicted:
            if os.path.exists(self.path_for(step)):
                os.remove(self.path_for(step))

    def best_path(self):
        return self.path_for(self.kept[0]["step"]) if self.kept else None


class LatestCheckpoint:
    """The periodic checkpoint (model, optimizer, step) to resume from."""

    def __init__(self, directory, is_chief=True, max_to_keep=2, **objects):
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.directory = directory
        self.is_chief = is_chief
        self._scratch = None if is_chief else tempfile.mkdtemp(prefix="tfplaybook-worker-ckpt-")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory if is_chief else self._scratch, max_to_keep=max_to_keep
        )

    def restore(self):
        """Restores the newest checkpoint; returns its path or None when there is none."""
        # Every worker restores from the chief's (shared) directory, so all resume in step.
        path = tf.train.latest_checkpoint(self.directory)
        if path:
            self.checkpoint.restore(path).expect_partial()
        return path

    def save(self, step):
        # Every worker must take part (variables may need cross-worker reads); only the
        # chief's copy is kept.
        self.manager.save(checkpoint_number=step)

    def close(self):
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
