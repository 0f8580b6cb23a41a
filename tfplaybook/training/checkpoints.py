"""Checkpoints: the N best by the objective, and the latest one to resume from after a kill.

`BestCheckpoints` is driven by our loop, which calls `on_epoch_end(step, logs)` after every
evaluation, like a Keras callback; it keeps the N best weight files (Keras `.weights.h5`) instead
of one (checklist 91). It is not a Keras `ModelCheckpoint`: it used none of that class (the loop
is not `fit`), and inheriting it could only break on a Keras upgrade. `LatestCheckpoint` wraps
`tf.train.Checkpoint` with model, optimizer and step for resumption (checklist 90). Only the chief
writes; other workers save into a scratch directory that is deleted, as TensorFlow's multi-worker
recipe requires.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from tfplaybook import internals
from tfplaybook.files import trial_dir
from tfplaybook.training import selection

BEST = trial_dir.BEST
BEST_EMA = trial_dir.BEST_EMA
LATEST = trial_dir.LATEST
_INDEX = trial_dir.BEST_INDEX
WEIGHTS_SUFFIX = ".weights.h5"


def weights_name(step):
    """The file name of the best checkpoint of `step` in checkpoints/best/ (or best_ema/)."""
    return f"step-{int(step):08d}{WEIGHTS_SUFFIX}"


class BestCheckpoints:
    """Keeps the `keep` best checkpoints by `monitor` (retrospective selection)."""

    def __init__(self, directory, monitor, goal, keep=3, is_chief=True, evaluations=None):
        """See the class docstring; `evaluations` ({step: value} of the monitored metric, from
        the measurements) lets a damaged index.json be rebuilt."""
        os.makedirs(directory, exist_ok=True) if is_chief else None
        self.model = None
        self.monitor = monitor
        self.directory = directory
        self.goal = goal
        self.keep = int(keep)
        self.is_chief = is_chief
        self.kept = self._read_index(evaluations)
        if is_chief:
            self._remove_strays()

    def _read_index(self, evaluations):
        path = os.path.join(self.directory, _INDEX)
        if not os.path.exists(path):
            return []
        try:
            kept = trial_dir.read_json(path)["kept"]
            kept = [{"step": int(k["step"]), "value": float(k["value"])} for k in kept]
        except (trial_dir.DamagedFileError, KeyError, TypeError, ValueError) as e:
            kept = self._rebuild_index(evaluations)
            trial_dir.warn(
                f"{path} is damaged ({str(e)[:120]}); rebuilt from the weight files and the "
                f"measurements: keeping steps {[k['step'] for k in kept]}"
            )
        # Keep only entries whose file survived (a kill can land between save and index write).
        return [k for k in kept if os.path.exists(self.path_for(k["step"]))]

    def _steps_on_disk(self):
        steps = []
        for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
            if name.startswith("step-") and name.endswith(WEIGHTS_SUFFIX):
                try:
                    steps.append(int(name[len("step-") : -len(WEIGHTS_SUFFIX)]))
                except ValueError:
                    continue
        return steps

    def _rebuild_index(self, evaluations):
        """The kept list from the weight files present and `evaluations` {step: value}."""
        kept = []
        for step in self._steps_on_disk():
            value = (evaluations or {}).get(step)
            kept, _, _ = selection.update_kept(kept, step, value, max(self.keep, 1), self.goal)
        return kept

    def _remove_strays(self):
        """Deletes weight files the index does not list: a kill between a save and the index
        write, or during a save (a temporary file), leaves them behind."""
        listed = {k["step"] for k in self.kept}
        for name in os.listdir(self.directory):
            stray_tmp = name.startswith(".tmp-")
            step_file = name.startswith("step-") and name.endswith(WEIGHTS_SUFFIX)
            if stray_tmp or (step_file and name not in {self._name(s) for s in listed}):
                os.remove(os.path.join(self.directory, name))

    def set_model(self, model):
        """The Keras model whose weights `on_epoch_end` saves."""
        self.model = model
        self._writer = WeightsWriter(model)

    @staticmethod
    def _name(step):
        return weights_name(step)

    def path_for(self, step):
        return os.path.join(self.directory, self._name(step))

    def forget_after(self, step):
        """Drops checkpoints newer than `step`: a resume from `step` will redo that work."""
        newer = [k["step"] for k in self.kept if k["step"] > step]
        self.kept = [k for k in self.kept if k["step"] <= step]
        self.write_index(newer)

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
            self._writer.write(tmp)
            os.replace(tmp, path)
        self.kept = kept
        if save or evicted:
            self.write_index(evicted)

    def write_index(self, evicted):
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


class WeightsWriter:
    """Writes a model's `.weights.h5` file, the file `model.save_weights` writes, in a fraction
    of its time.

    Keras' `save_weights` walks the model's attributes to find its layers on every save (68 ms a
    save for the default CNN here, 48 saves in the default study). The walk gives the same file
    layout every time, so it is done once, by Keras' own saving code against a store that
    records what it is given instead of writing it: the groups with their attributes and, for
    each dataset, the variable it holds. Each save then writes those groups and the variables'
    current values with h5py. A model whose saving stores anything but variables (a layer that
    computes what it saves), or whose variables change, is saved by Keras itself.
    """

    def __init__(self, model):
        self.model = model
        self._plan, self._variables = None, None

    def write(self, path):
        plan = self._current_plan()
        if plan is None:
            self.model.save_weights(path)
            return
        import h5py
        from keras import ops

        with h5py.File(path, "w") as f:
            groups = {}
            for group_path, metadata, key, variable in plan:
                group = groups.get(group_path)
                if group is None:
                    parent = f.create_group(group_path) if group_path else f
                    group = parent.create_group("vars")
                    for name, value in (metadata or {}).items():
                        group.attrs[name] = value
                    groups[group_path] = group
                if key is None:
                    continue
                value = ops.convert_to_numpy(variable)
                if str(value.dtype) == "bfloat16":
                    group.create_dataset(key, data=value).attrs["dtype"] = "bfloat16"
                else:
                    group[key] = value

    def _current_plan(self):
        count = len(self.model.variables)
        if self._variables != count:
            self._plan, self._variables = internals.weights_file_layout(self.model), count
        return self._plan


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

    def candidates(self):
        """Checkpoint paths listed in the state file, newest first (none if it is unreadable)."""
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except (tf.errors.OpError, ValueError) as e:  # A damaged `checkpoint` text proto.
            trial_dir.warn(f"{self.directory}/checkpoint is damaged ({str(e)[:120]})")
            state = None
        paths = list(state.all_model_checkpoint_paths) if state else []
        if state and state.model_checkpoint_path and state.model_checkpoint_path not in paths:
            paths.append(state.model_checkpoint_path)
        paths = [p if os.path.isabs(p) else os.path.join(self.directory, p) for p in paths]
        return sorted(set(paths), key=_checkpoint_number, reverse=True)

    def restore(self):
        """Restores the newest readable checkpoint; returns its path or None when there is none.

        A checkpoint whose files are missing or fail their checksums is skipped with a warning
        and the previous one is used (at most `max_to_keep` - 1 more intervals of work redone);
        with none readable the run starts from step 0. Every tensor is read once before
        restoring, so a damaged file can never leave the model half-restored.
        """
        # Every worker restores from the chief's (shared) directory, so all resume in step.
        for path in self.candidates():
            problem = _unreadable(path)
            if problem is None:
                self.checkpoint.restore(path).expect_partial()
                return path
            trial_dir.warn(f"checkpoint {path} is unusable ({problem}); trying the previous one")
        if os.path.isdir(self.directory) and os.listdir(self.directory):
            trial_dir.warn(f"no usable checkpoint in {self.directory}; starting from step 0")
        return None

    def save(self, step):
        # Every worker must take part (variables may need cross-worker reads); only the
        # chief's copy is kept.
        self.manager.save(checkpoint_number=step)

    def close(self):
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _checkpoint_number(path):
    try:
        return int(path.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _unreadable(path):
    """None when every tensor of checkpoint `path` reads back (checksums verified), else why."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return None
