"""gs:// work directories: the run works in a local staging copy that is mirrored to the bucket.

TensorFlow's own gs:// filesystem cannot be tested against an emulator, renames by copying and
caches file status for seconds (docs/storage.md), so nothing here hands a gs:// path to
TensorFlow, Keras or keras-tuner. Instead `open_workdir("gs://bucket/study")`:

1. checks the bucket can be used (one line when it cannot),
2. downloads what the bucket already holds into `storage.staging_dir(url)` (a run resumed on a
   fresh VM continues from the bucket),
3. registers the pair, and returns the local directory, which every other module uses as the
   work directory.

From then on the bucket is kept current at the points where the local state is consistent:

* every state file written through `trial_dir.atomic_write_bytes` (status.json, config.json,
  hparams.json, study.json, heartbeats, keras-tuner's oracle.json / trial.json / tuner*.json,
  the report's files) is uploaded as soon as it is written (`on_write`): one object upload each,
  atomic;
* `sync(directory)` uploads the rest of a directory that changed (measurements.jsonl,
  checkpoints, TensorBoard events) with status.json last, so a reader that finds a status finds
  what it describes; the trainer calls it after every checkpoint and at the end of a run;
* `pull(directory)` fetches what other hosts wrote (a chief before its report; a worker before
  it continues a trial another host started) and `read_text(path)` reads a file from the bucket
  first (a chief reading a worker's heartbeat).

Only what a process writes goes up: its state files as written, and the directories it trains
in. Its copy of everything else may be older than the bucket and is never uploaded.

A kill loses at most the work since the last checkpoint, as on a local disk. Local work
directories are untouched by all of this.
"""

import contextlib
import os
import threading

from tfplaybook.config import ConfigError
from tfplaybook.files import storage

_ACTIVE = {}  # Local staging root -> its gs:// URL.
_LOCK = threading.Lock()
# Never mirrored: temporaries of our atomic writes, of Keras' weight saves, of TF checkpoints.
EXCLUDE = ("*.tmp-*", ".tmp-*", "*/.tmp-*", "*_temp/*", "*/.export-*")
# Not fetched for analysis: what a report does not read.
ANALYSIS_EXCLUDE = ("*/checkpoints/*", "*/tensorboard/*", "*/export/*")


def is_remote(path):
    return storage.is_remote(path)


def open_workdir(workdir, download=True, exclude=()):
    """The local directory to run in for `workdir` (itself when local; see the module docstring).

    Raises:
      ConfigError: when the bucket does not exist, cannot be reached, or the gcs extra is missing.
    """
    if not storage.is_remote(workdir):
        return workdir
    url = workdir.rstrip("/")
    try:
        storage.makedirs(url)  # Checks the bucket; a bucket has no directories to create.
    except (FileNotFoundError, PermissionError) as e:
        raise ConfigError(f"--workdir={workdir!r} cannot be used: {e}") from None
    local = storage.staging_dir(url)
    if download:
        storage.download_dir(url, local, exclude=tuple(exclude) + EXCLUDE)
    with _LOCK:
        _ACTIVE[os.path.abspath(local)] = url
    return local


def close(local):
    """Forgets the pair. There is no final sync of the whole copy: every file this process wrote
    is in the bucket already (`on_write`, `sync` of the directories it trained in), and the rest
    of the copy may be older than the bucket (another host's trials, the chief's oracle.json)."""
    with _LOCK:
        _ACTIVE.pop(os.path.abspath(local), None)


def remote_url(path):
    """The gs:// URL that mirrors local `path`, or None when it is not under a staged directory."""
    path = os.path.abspath(path)
    with _LOCK:
        roots = sorted(_ACTIVE, key=len, reverse=True)
        for root in roots:
            if path == root or path.startswith(root + os.sep):
                rel = os.path.relpath(path, root)
                url = _ACTIVE[root]
                return url if rel == "." else storage.join(url, *rel.split(os.sep))
    return None


_RECORDERS = []  # Lists that `recording` is filling.


@contextlib.contextmanager
def recording():
    """A list of every path `on_write` is given meanwhile: the report's second process
    (tfplaybook.analysis.report.background) names what it wrote for this one to upload."""
    written = []
    with _LOCK:
        _RECORDERS.append(written)
    try:
        yield written
    finally:
        with _LOCK:
            _RECORDERS.remove(written)


def on_write(path):
    """Uploads the file just written at `path` when it is mirrored (one atomic object upload)."""
    with _LOCK:
        for written in _RECORDERS:
            written.append(os.path.abspath(path))
    url = remote_url(path)
    if url is not None:
        storage.copy_file(path, url)


def sync(directory):
    """Uploads the files of `directory` that changed since the last sync (status.json last)."""
    url = remote_url(directory)
    if url is None or not os.path.isdir(directory):
        return []
    return storage.upload_dir(
        directory, url, last=("status.json", "*/status.json"), exclude=EXCLUDE
    )


def pull(directory, exclude=()):
    """Fetches what the bucket holds under `directory` and the local copy lacks or differs in."""
    url = remote_url(directory)
    if url is None:
        return []
    return storage.download_dir(url, directory, exclude=tuple(exclude) + EXCLUDE)


def read_text(path):
    """`path`'s text, from the bucket when it is mirrored (another host may have written it)."""
    url = remote_url(path)
    if url is None:
        with open(path) as f:
            return f.read()
    return storage.read_text(url)


@contextlib.contextmanager
def workdir(path, download=True, exclude=()):
    """`open_workdir` for the duration of a run, released afterwards."""
    local = open_workdir(path, download, exclude)
    try:
        yield local
    finally:
        close(local)
