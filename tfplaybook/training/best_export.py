"""The best checkpoint, kept for later analysis and for use (checklist 87).

`export_best(trial_dir, config)` rebuilds the trial's model, loads its best checkpoint (the
retrospective best by the objective, `checkpoints/best/`), and writes into TRIAL/export/:

  predictions.jsonl   one line per example of a fixed sample of the evaluation split (its first
                      PREDICTION_EXAMPLES examples, in the split's order): index, label, the
                      model's output, and for classification the predicted class and its
                      probability. The same examples every time, so trials and rounds compare
                      example by example.
  best.keras          the model with the best weights, Keras' own format (keras.models.load_model;
                      the optimizer state is not included: this is the model to use).
  saved_model/        the same model as a TensorFlow SavedModel (`Model.export`), for serving:
                      `tf.saved_model.load(path).serve(features)`.
  export.json         the step and validation value of the exported checkpoint.

Each file is written to a temporary name and renamed, so a kill leaves the previous export or
none. `--mode=train` exports its run; a study exports its best trial once it has finished (not
every trial: building the SavedModel traces the model again, a cost of seconds).
"""

import json
import math
import os
import shutil
import tempfile

from tfplaybook.files import trial_dir as td
from tfplaybook.training import checkpoints
from tfplaybook.training import data as data_lib
from tfplaybook.training import metrics as metrics_lib
from tfplaybook.training import task as task_lib

EXPORT = "export"
PREDICTIONS = "predictions.jsonl"
KERAS_FILE = "best.keras"
SAVED_MODEL = "saved_model"
SUMMARY = "export.json"
PREDICTION_EXAMPLES = 64


def _best_checkpoint(trial_dir):
    index = os.path.join(trial_dir, td.CHECKPOINTS, checkpoints.BEST, td.BEST_INDEX)
    try:
        kept = td.read_json(index)["kept"]
    except (OSError, td.DamagedFileError, KeyError):
        return None
    if not kept:
        return None
    best = kept[0]
    path = os.path.join(os.path.dirname(index), checkpoints.weights_name(best["step"]))
    return (int(best["step"]), float(best["value"]), path) if os.path.exists(path) else None


def _number(value):
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _records(model, config, spec):
    import numpy as np

    dataset = data_lib.eval_dataset(spec, config, PREDICTION_EXAMPLES, steps=1)
    features, labels, weights = next(iter(dataset))
    outputs = np.asarray(model(features, training=False), dtype=np.float64)
    labels, weights = np.asarray(labels), np.asarray(weights)
    kind = metrics_lib.count_kind(config)
    records = []
    for i in range(len(weights)):
        if weights[i] <= 0:
            continue  # Padding: the split has fewer examples than the sample.
        record = {
            "index": i,
            "label": labels[i].tolist(),
            "output": [_number(v) for v in outputs[i].reshape(-1)],
        }
        if kind == "binary":
            logit = outputs[i].reshape(-1)[0]
            p = 1 / (1 + math.exp(-logit)) if config["from_logits"] else logit
            record.update(predicted=int(p > 0.5), probability=_number(max(p, 1 - p)))
        elif kind is not None:
            row = outputs[i].reshape(-1)
            if config["from_logits"]:
                row = np.exp(row - row.max())
                row = row / row.sum()
            record.update(predicted=int(np.argmax(row)), probability=_number(row.max()))
        records.append(record)
    return records


def exported(trial_dir):
    """True when TRIAL/export/ holds a finished export of the trial's current best checkpoint."""
    best = _best_checkpoint(trial_dir)
    try:
        summary = td.read_json(os.path.join(trial_dir, EXPORT, SUMMARY))
    except (OSError, td.DamagedFileError):
        return False
    return best is not None and summary.get("step") == best[0]


def export_best(trial_dir, config, task=None, download=False):
    """Writes TRIAL/export/ from the trial's best checkpoint; returns its path (None: no best).

    Runs on the default strategy, in float32 (mixed-precision variables are float32 already).
    """
    import keras

    best = _best_checkpoint(trial_dir)
    if best is None:
        return None
    step, value, weights_path = best
    task = task or task_lib.Task()
    spec = data_lib.get_data_spec(config, task, download)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = task.model_builder(config)(config, spec)
        model.load_weights(weights_path)
        records = _records(model, config, spec)
        out = os.path.join(trial_dir, EXPORT)
        os.makedirs(out, exist_ok=True)
        td.atomic_write_text(
            os.path.join(out, PREDICTIONS), "".join(json.dumps(r) + "\n" for r in records)
        )
        _save_atomically(lambda path: model.save(path), os.path.join(out, KERAS_FILE), ".keras")
        _save_atomically(
            lambda path: model.export(path, format="tf_saved_model", verbose=False),
            os.path.join(out, SAVED_MODEL),
            "",
        )
        td.atomic_write_json(
            os.path.join(out, SUMMARY),
            {
                "step": step,
                "metric": config["objective"]["metric"],
                "value": value,
                "prediction_examples": len(records),
                "files": [PREDICTIONS, KERAS_FILE, SAVED_MODEL],
            },
        )
    finally:
        keras.config.set_dtype_policy(policy)
    return out


def _save_atomically(save, path, suffix):
    """`save(temporary path)` beside `path`, then the temporary replaces `path` (file or dir)."""
    parent = os.path.dirname(path)
    scratch = tempfile.mkdtemp(dir=parent, prefix=".export-")
    try:
        temporary = os.path.join(scratch, "new" + suffix)
        save(temporary)
        if os.path.isdir(path) and not os.path.islink(path):
            old = os.path.join(scratch, "old")
            os.replace(path, old)  # A directory cannot be replaced by a rename in one step.
        os.replace(temporary, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
