"""One storage layer for every file tfplaybook writes or reads: local paths and gs:// paths.

Every function takes either a local path or a `gs://bucket/key` URL and does the same thing on
both. TensorFlow is never imported (the analysis side runs without it); the Google Cloud client
(`google-cloud-storage`, the `gcs` extra) is imported only when a gs:// path is first used.

This module is the layer's entry point: each function decides which store its path is on and does
the local half itself. The rest lives beside it: `paths` (joining and splitting paths and URLs),
`atomic` (the local atomic write), `gcs` (the gs:// half, through the cloud client) and `staging`
(local copies of remote directories and the mirrors between them). Callers need only this module:
the names they use from the others (`join`, `upload_dir`, `staging_dir`, ...) are re-exported.

Writes are whole and atomic on both stores (a reader sees the old contents or the new, never a
part): a local file is written to a temporary file in the same directory, fsynced, and renamed
over the destination; a gs:// object is one upload, which the store makes visible only complete.

A remote store has no append: `append_text` on a gs:// path reads the object and uploads it again
whole (cost grows with the object; concurrent appenders lose rows). Files that TensorFlow or Keras
write themselves (checkpoints, TensorBoard events) go to a local `staging_dir(remote)` and are
mirrored with `upload_dir` (only changed files) and `download_dir`. See docs/storage.md.

Errors are the ordinary Python ones on both stores: FileNotFoundError, IsADirectoryError,
PermissionError. A gs:// path without the `gcs` extra, an unsupported URL scheme, or missing Google
credentials raise tfplaybook.config.ConfigError (one line).
"""

import glob as glob_lib
import os
import shutil

from tfplaybook.files import atomic, gcs
from tfplaybook.files.atomic import TMP_PREFIX
from tfplaybook.files.paths import basename, dirname, is_remote, join
from tfplaybook.files.staging import STAGING_ENV, download_dir, staging_dir, upload_dir

__all__ = [
    "STAGING_ENV",
    "TMP_PREFIX",
    "append_text",
    "basename",
    "copy_file",
    "dirname",
    "download_dir",
    "exists",
    "getsize",
    "glob",
    "is_remote",
    "isdir",
    "isfile",
    "join",
    "listdir",
    "makedirs",
    "read_bytes",
    "read_text",
    "remove",
    "rmtree",
    "staging_dir",
    "upload_dir",
    "write_bytes",
    "write_text",
]


# ---------------------------------------------------------------------------------------------
# Queries.


def exists(path):
    """True if `path` is a file or a directory (on gs://: an object, or a prefix with objects)."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.exists(path)
    return gcs.exists(path)


def isfile(path):
    """True if `path` is a file (on gs://: an object)."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isfile(path)
    return gcs.isfile(path)


def isdir(path):
    """True if `path` is a directory. On gs:// a directory exists while an object lies under it
    (GCS has no directories), and a bucket root exists while the bucket does."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isdir(path)
    return gcs.isdir(path)


def listdir(path):
    """Sorted names of the files and subdirectories directly in `path` (FileNotFoundError if none
    and `path` is not a directory)."""
    path = os.fspath(path)
    if not is_remote(path):
        return sorted(os.listdir(path))
    return gcs.listdir(path)


def getsize(path):
    """Size of a file in bytes."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.getsize(path)
    return gcs.getsize(path)


def glob(pattern):
    """Sorted paths matching `pattern`: `*`, `?` and `[...]` within one path component (no `**`),
    e.g. `join(study, "trial_*", "status.json")`. Names starting with '.' match only a pattern
    component that starts with '.', as locally."""
    pattern = os.fspath(pattern)
    if not is_remote(pattern):
        return sorted(glob_lib.glob(pattern))
    return gcs.glob(pattern)


# ---------------------------------------------------------------------------------------------
# Reading and writing whole files.


def makedirs(path, exist_ok=True):
    """Creates a local directory and its parents. On gs:// there are no directories: this only
    checks, once per process, that the bucket exists (FileNotFoundError if not)."""
    path = os.fspath(path)
    if not is_remote(path):
        os.makedirs(path, exist_ok=exist_ok)
        return
    gcs.makedirs(path)


def read_bytes(path):
    """The whole contents of a file."""
    path = os.fspath(path)
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    return gcs.read_bytes(path)


def read_text(path, encoding="utf-8"):
    """The whole contents of a text file."""
    return read_bytes(path).decode(encoding)


def write_bytes(path, data):
    """Replaces `path` with `data` atomically: a reader sees the old contents or all the new ones.

    Locally: a temporary file in the same directory, fsync, os.replace, fsync of the directory;
    missing parent directories are created (as on gs://, where there are none to create).
    On gs://: one object upload, made visible by the store only once complete.
    """
    path = os.fspath(path)
    data = bytes(data)
    if not is_remote(path):
        atomic.write(path, lambda f: f.write(data))
        return
    gcs.write_bytes(path, data)


def write_text(path, text, encoding="utf-8"):
    """Replaces `path` with `text` atomically (see write_bytes)."""
    write_bytes(path, text.encode(encoding))


def append_text(path, text, encoding="utf-8"):
    """Adds `text` at the end of a file (creating it).

    Locally: an append and an fsync (a kill can leave a torn last line; readers of line files skip
    it). On gs:// a store has no append: the object is read and uploaded again whole, so each call
    costs the size of the file, and two processes appending to one object lose rows. Give each
    writer its own file.
    """
    path = os.fspath(path)
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return
    try:
        old = read_bytes(path)
    except FileNotFoundError:
        old = b""
    write_bytes(path, old + text.encode(encoding))


def remove(path):
    """Removes a file (FileNotFoundError if there is none)."""
    path = os.fspath(path)
    if not is_remote(path):
        os.remove(path)
        return
    gcs.remove(path)


def rmtree(path, missing_ok=False):
    """Removes a directory and everything in it. On gs://: every object under the prefix; a bucket
    root is refused (ValueError)."""
    path = os.fspath(path)
    if not is_remote(path):
        if missing_ok and not os.path.lexists(path):
            return
        shutil.rmtree(path)
        return
    gcs.rmtree(path, missing_ok)


def copy_file(src, dst):
    """Copies one file between any two stores; the destination appears whole (atomic), and missing
    local parent directories are created."""
    src, dst = os.fspath(src), os.fspath(dst)
    src_remote, dst_remote = is_remote(src), is_remote(dst)
    if not src_remote and not dst_remote:
        atomic.copy(src, dst)
    elif not src_remote:
        gcs.upload_file(src, dst)
    elif not dst_remote:
        atomic.write(dst, gcs.downloader(src))
    else:
        gcs.copy(src, dst)
