"""The work directory of one training: new, the same run to resume, or refused.

Checks that a work directory can be written (and is not full), that it does not hold a run of a
different config, recovers a damaged status.json, and turns disk errors during a run into one-line
errors. Runs before anything is written, so bad input leaves the disk untouched.
"""

import errno
import math
import os
import shutil
import tempfile

from tfplaybook import config as config_lib
from tfplaybook.config import SAFE_CHANGES
from tfplaybook.files import trial_dir as td
from tfplaybook.training import metrics, selection


def prepare(workdir, config):
    """Checks that `workdir` is new or holds a run of the same config; returns its status or None.

    Raises:
      ConfigError: when the directory holds a different config, or cannot be written.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise config_lib.ConfigError(f"--workdir={workdir!r} exists and is not a directory")
    existing = os.path.join(workdir, td.CONFIG)
    if os.path.exists(existing):
        try:
            saved = td.read_json(existing)
        except td.DamagedFileError as e:
            td.warn(f"{e}; it will be rewritten from the current config")
            saved = None
        # A study's safe changes (e.g. a raised study.max_trials) reach its trials' configs too.
        keys = [k for k in config_lib.differing_keys(saved or {}, config) if k not in SAFE_CHANGES]
        if saved is not None and keys:
            raise config_lib.ConfigError(
                f"--workdir={workdir!r} holds a run of a different config (differs at: "
                f"{', '.join(keys[:8]) or 'structure'}); use a new --workdir to train it"
            )
        return td.read_status(workdir) if os.path.exists(os.path.join(workdir, td.STATUS)) else None
    check_writable(workdir)
    return None


MIN_FREE_BYTES = 16 * 2**20  # Below this a trial cannot even write its first checkpoints.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def check_writable(directory):
    """Raises ConfigError unless `directory` (or its nearest existing ancestor) can take files.

    Probes with a temporary file that is deleted at once: permission bits say nothing for root,
    and /proc or a path under a regular file only fail on an actual write.
    """
    probe = os.path.abspath(directory)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise config_lib.ConfigError(
            f"--workdir={directory!r} is not writable: {probe!r} is not a directory"
        )
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
        free = shutil.disk_usage(probe).free
    except OSError as e:
        raise config_lib.ConfigError(
            f"--workdir={directory!r} is not writable ({e.strerror} in {probe!r})"
        ) from None
    if free < MIN_FREE_BYTES:
        raise config_lib.ConfigError(
            f"--workdir={directory!r} is on a full file system ({free} bytes free in {probe!r}, "
            f"need at least {MIN_FREE_BYTES})"
        )


def disk_error(error, workdir):
    """A ConfigError for an OSError or TensorFlow error caused by the disk, else None."""
    import tensorflow as tf

    text = str(error)
    if isinstance(error, OSError) and error.errno in _DISK_ERRNOS:
        what = error.strerror
    elif isinstance(error, tf.errors.OpError) and any(
        s in text for s in ("No space left", "Disk quota", "File too large", "Read-only file")
    ):
        what = text.splitlines()[0][:160]
    else:
        return None
    return config_lib.ConfigError(
        f"writing to --workdir={workdir!r} failed ({what}); free space and re-run the same "
        "command to resume from the last checkpoint"
    )


def recover_status(workdir, config):
    """Recovers a trial whose status.json does not parse; returns its status or None to resume.

    A trial whose latest checkpoint is at `max_train_steps` had finished: its status is rebuilt
    from measurements.jsonl (diverged if a logged quantity is non-finite). Otherwise the damaged
    file is removed and the trial resumes from its checkpoint like any interrupted run.
    """
    import tensorflow as tf

    from tfplaybook.training import checkpoints as ckpt_lib

    directory = os.path.join(workdir, td.CHECKPOINTS, ckpt_lib.LATEST)
    path = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    step = int(path.rsplit("-", 1)[1]) if path else 0
    if step < config["max_train_steps"]:
        os.remove(os.path.join(workdir, td.STATUS))
        td.warn(f"{workdir}: resuming the trial from its checkpoint at step {step}")
        return None
    rows = td.read_measurements(workdir)
    watched = {"loss", "grad_norm", *(metrics.metric_name(m) for m in config.get("metrics", ()))}
    bad = [
        r
        for r in rows
        if r["split"] in (td.TRAIN, td.VALIDATION)
        and r["metric"] in watched
        and not math.isfinite(r["value"])
    ]
    objective = config["objective"]
    points = list(zip(*td.series(rows, td.VALIDATION, objective["metric"])))
    best = selection.best_of(points, objective["goal"])
    status, reason = td.COMPLETED, "status.json was damaged; rebuilt from measurements.jsonl"
    if bad:
        status = td.DIVERGED
        reason = (
            f"{bad[0]['split']} {bad[0]['metric']} is {bad[0]['value']} at step "
            f"{bad[0]['step']} ({reason})"
        )
    os.remove(os.path.join(workdir, td.STATUS))
    fields = dict(
        step=step,
        best_step=best[0] if best else None,
        best_value=best[1] if best else None,
        objective=objective,
        rebuilt=True,
    )
    td.warn(f"{workdir}: rebuilt status.json as {status} from measurements.jsonl")
    return td.write_status(workdir, status, reason, **fields)
