"""The trial directory: the one interface between training and analysis.

Pure Python (no TensorFlow), so analysis, the tuner bookkeeping and their tests can read a trial
without a live model. Layout of one trial directory::

    config.json           the merged experiment config the trial ran with
    status.json           {"status": running|completed|diverged|failed, "reason": str, "step": int,
                           "best_step": int|None, "best_value": float|None,
                           "objective": {"metric": str, "goal": "max"|"min"}, "seeds": {...},
                           "updated": unix time}
    measurements.jsonl    one JSON object per line: {"step": int, "split": "train"|"validation",
                           "metric": str, "value": float}
    hparams.json          (studies only) {"values": {...}, "roles": {...}, "scales": {...}}
    checkpoints/latest/   periodic checkpoint to resume from after a kill
    checkpoints/best/     the N best checkpoints by the objective, plus index.json
    tensorboard/          TensorBoard event files

Every state file is written atomically (temporary file in the same directory, then rename), so a
kill at any moment leaves either the old or the new version, never a torn one. The measurements
file is append-only; a torn final line (a kill during append) is ignored by the reader and removed
by `truncate_measurements` on resume.
"""

import functools
import json
import math
import os
import sys
import tempfile
import time

from tfplaybook.files import remote

CONFIG = "config.json"
STATUS = "status.json"
MEASUREMENTS = "measurements.jsonl"
HPARAMS = "hparams.json"
CHECKPOINTS = "checkpoints"
BEST = "best"  # CHECKPOINTS/BEST: the N best weight files and their index.json.
BEST_EMA = "best_ema"  # CHECKPOINTS/BEST_EMA: the same for the averaged weights (ema_decay).
LATEST = "latest"  # CHECKPOINTS/LATEST: the checkpoint a run resumes from.
BEST_INDEX = "index.json"
TENSORBOARD = "tensorboard"

RUNNING = "running"
COMPLETED = "completed"
DIVERGED = "diverged"
FAILED = "failed"
STATUSES = (RUNNING, COMPLETED, DIVERGED, FAILED)
FINISHED = (COMPLETED, DIVERGED, FAILED)

TRAIN = "train"
VALIDATION = "validation"


class DamagedFileError(ValueError):
    """A trial file exists but cannot be parsed."""


def warn(message):
    """One `warning: ...` line on stderr: a damaged file was found and is being recovered from."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def atomic_write_bytes(path, data):
    """Writes `data` to `path` through a temporary file and a rename (readable like any file).

    Args:
      path: destination file. Under a gs:// work directory's staging copy it is also uploaded.
      data: the full new contents, bytes.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        # mkstemp creates 0600 files; give the usual permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    remote.on_write(path)  # A gs:// work directory's copy in the bucket (tfplaybook.files.remote).


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode())


def _json_default(value):
    # NumPy scalars and arrays reach us from metrics; store them as plain numbers and lists.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {value!r}")


def atomic_write_json(path, obj):
    """Writes `obj` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path):
    """Reads a JSON file; raises DamagedFileError naming the file when it does not parse."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:  # Binary garbage (a disk error, a wrong file).
        raise DamagedFileError(f"{path} is damaged (not UTF-8 text at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedFileError(f"{path} is damaged ({e.msg} at line {e.lineno})") from None


def write_config(trial_dir, config):
    atomic_write_json(os.path.join(trial_dir, CONFIG), config)


def read_config(trial_dir):
    return read_json(os.path.join(trial_dir, CONFIG))


def write_status(trial_dir, status, reason="", **fields):
    """Writes status.json atomically, keeping fields of the previous status not given now."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    path = os.path.join(trial_dir, STATUS)
    previous = {}
    if os.path.exists(path):
        try:
            previous = read_json(path)
        except DamagedFileError:
            previous = {}
    previous.update(fields)
    previous.update(status=status, reason=reason, updated=time.time())
    atomic_write_json(path, previous)
    return previous


def read_status(trial_dir):
    """Returns the parsed status.json, or None when the trial has not started."""
    path = os.path.join(trial_dir, STATUS)
    if not os.path.exists(path):
        return None
    status = read_json(path)
    if status.get("status") not in STATUSES:
        raise DamagedFileError(
            f"{path} has status {status.get('status')!r}, not one of " f"{', '.join(STATUSES)}"
        )
    return status


def _measurement_line(step, split, metric, value):
    """One measurements.jsonl line, byte for byte what json.dumps of the row dict gives."""
    value = float(value)
    # JSON has no NaN or Inf; keep them as strings so a diverged trial's last values survive.
    stored = repr(value) if math.isfinite(value) else f'"{value}"'
    return (
        f'{{"step": {int(step)}, "split": {_json_string(split)}, '
        f'"metric": {_json_string(metric)}, "value": {stored}}}'
    )


@functools.lru_cache(maxsize=1024)
def _json_string(text):
    return json.dumps(text)  # Splits and metric names repeat on every row: encode each once.


def append_measurements(trial_dir, rows):
    """Appends measurement rows `(step, split, metric, value)` and flushes them to disk."""
    lines = [_measurement_line(*row) for row in rows]
    if not lines:
        return
    with open(os.path.join(trial_dir, MEASUREMENTS), "a") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_measurements(trial_dir):
    """Returns the list of measurement dicts; a torn last line (from a kill) is skipped."""
    path = os.path.join(trial_dir, MEASUREMENTS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")[:-1]  # A torn final line (the writer was killed) has no newline.
    try:
        rows = json.loads("[" + ",".join(lines) + "]")  # One parse for the whole file.
    except json.JSONDecodeError:
        rows = []  # Some line is damaged: parse line by line and skip what does not parse.
        for line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    for row in rows:
        row["value"] = float(row["value"])
    return rows


def truncate_measurements(trial_dir, last_step):
    """Drops rows after `last_step` (work that a resume will redo), atomically."""
    rows = [r for r in read_measurements(trial_dir) if r["step"] <= last_step]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write_text(os.path.join(trial_dir, MEASUREMENTS), text)


def series(rows, split, metric):
    """Returns (steps, values) for one split and metric, in step order."""
    pairs = sorted(
        (r["step"], r["value"]) for r in rows if r["split"] == split and r["metric"] == metric
    )
    return [p[0] for p in pairs], [p[1] for p in pairs]
