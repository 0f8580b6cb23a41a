"""Local staging of remote directories, and mirrors that send only the files that changed.

TensorFlow, Keras and keras-tuner write checkpoints and TensorBoard events themselves, through
their own file layer, so they get a local directory, `staging_dir(remote)`, and the storage layer
mirrors it: `upload_dir` sends the files that changed, `download_dir` fetches the files that
differ (a run resumed on a fresh machine). A file is compared by size, then by MD5, which GCS keeps
for each object (CRC32C for composite objects, which have none); the local MD5 is cached by size,
mtime and inode, so an unchanged file is not read again. Each file is one atomic write; the
directory as a whole is not atomic, hence `last=`. See docs/storage.md.

All three are re-exported by tfplaybook.files.storage, the layer's public entry point.
"""

import base64
import contextlib
import fnmatch
import hashlib
import os
import stat as stat_lib
import threading
import time

from tfplaybook.config import ConfigError
from tfplaybook.files import atomic, gcs
from tfplaybook.files.paths import is_remote, join, split_url

# Where `staging_dir` keeps the local copy of a remote directory.
STAGING_ENV = "TFPLAYBOOK_STAGING_DIR"

_hash_cache = {}
_hash_lock = threading.Lock()
_SETTLED_NS = 2 * 10**9


def upload_dir(local_dir, remote_dir, *, delete=False, last=(), exclude=()):
    """Mirrors the files of `local_dir` to `remote_dir`, sending only those that changed.

    A file is sent when the destination has no file of that name, or one of another size or other
    contents (compared by MD5, which GCS keeps for each object; a local file's MD5 is cached by
    size and mtime, so an unchanged file is not read again). Each file is one atomic upload.

    Args:
      local_dir: a local directory (e.g. one that TensorFlow or Keras writes into).
      remote_dir: a gs:// URL, or a local directory (then files are copied; same path: nothing).
      delete: also remove destination files that no longer exist locally (e.g. rotated
        checkpoints).
      last: fnmatch patterns of relative paths sent after all the others, in this order, such as
        ("status.json",): a reader that finds them knows the rest is there.
      exclude: fnmatch patterns of relative paths never sent (temporary files of a writer). Our own
        atomic-write temporaries are always skipped.

    Call it when the writer is quiescent (after a save returned): a file caught mid-write is sent
    as it is and sent again by the next call, once its contents differ.

    Returns:
      the relative paths sent, in the order sent.
    """
    local_dir, remote_dir = os.fspath(local_dir), os.fspath(remote_dir)
    files = _local_files(local_dir, exclude)
    if not is_remote(remote_dir):
        return _local_mirror(local_dir, remote_dir, files, delete, last, exclude)
    gcs.makedirs(remote_dir)
    existing = gcs.list_files(remote_dir)
    sent = []
    for rel in _ordered(files, last):
        full = os.path.join(local_dir, *rel.split("/"))
        blob = existing.get(rel)
        try:
            if blob is not None and _same(full, files[rel], blob):
                continue
            gcs.upload_file(full, join(remote_dir, rel))
        except FileNotFoundError:
            if os.path.exists(full):
                raise
            continue  # removed locally while we were mirroring
        sent.append(rel)
    if delete:
        for rel in sorted(set(existing) - set(files)):
            if any(fnmatch.fnmatchcase(rel, p) for p in exclude):
                continue
            with contextlib.suppress(FileNotFoundError):
                gcs.remove(join(remote_dir, rel))
    return sent


def download_dir(remote_dir, local_dir, *, delete=False, exclude=()):
    """Mirrors the files of `remote_dir` into `local_dir`, fetching only those that differ.

    The counterpart of `upload_dir`, e.g. to resume from a bucket on a fresh machine. Each file is
    written atomically. A missing `remote_dir` is an empty one.

    Args:
      remote_dir: a gs:// URL, or a local directory.
      local_dir: a local directory, created if needed.
      delete: also remove local files that the source does not have.
      exclude: fnmatch patterns of relative paths never fetched (nor deleted).

    Returns:
      the relative paths fetched, sorted.
    """
    remote_dir, local_dir = os.fspath(remote_dir), os.fspath(local_dir)
    os.makedirs(local_dir, exist_ok=True)
    if not is_remote(remote_dir):
        if not os.path.isdir(remote_dir):
            return []
        files = _local_files(remote_dir, exclude)
        return _local_mirror(remote_dir, local_dir, files, delete, (), exclude)
    objects = gcs.list_files(remote_dir)
    fetched = []
    for rel in sorted(objects):
        if any(fnmatch.fnmatchcase(rel, p) for p in exclude) or rel.endswith("/"):
            continue
        full = os.path.join(local_dir, *rel.split("/"))
        try:
            st = os.stat(full)
        except FileNotFoundError:
            st = None
        if st is not None and stat_lib.S_ISREG(st.st_mode) and _same(full, st, objects[rel]):
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        atomic.write(full, gcs.downloader(join(remote_dir, rel)))
        fetched.append(rel)
    if delete:
        _delete_extra_local(local_dir, set(objects), exclude)
    return fetched


def staging_dir(remote_dir):
    """A stable local directory for `remote_dir`, created if needed: the same path in every process
    of this machine, so a restarted run finds what it had written before.

    For a local path this is the path itself (nothing to mirror). For gs://bucket/key it is
    `$TFPLAYBOOK_STAGING_DIR/gs/bucket/key` (default `~/.cache/tfplaybook/staging`).
    """
    remote_dir = os.fspath(remote_dir)
    if not is_remote(remote_dir):
        path = os.path.abspath(remote_dir)
        os.makedirs(path, exist_ok=True)
        return path
    bucket, key = split_url(remote_dir)
    parts = [p for p in key.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"gs:// URL {remote_dir!r} has a '.' or '..' component")
    base = os.environ.get(STAGING_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "tfplaybook", "staging"
    )
    path = os.path.join(os.path.abspath(base), "gs", bucket, *parts)
    os.makedirs(path, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------
# Which files to send: listings and contents compared.


def _local_files(local_dir, exclude):
    """{relative posix path: stat} of the regular files under `local_dir`."""
    files = {}
    for root, dirs, names in os.walk(local_dir):
        dirs.sort()
        for name in names:
            if name.startswith(atomic.TMP_PREFIX):
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, local_dir).replace(os.sep, "/")
            if any(fnmatch.fnmatchcase(rel, p) for p in exclude):
                continue
            try:
                st = os.stat(full)
            except FileNotFoundError:  # removed while we walked
                continue
            if stat_lib.S_ISREG(st.st_mode):
                files[rel] = st
    return files


def _ordered(rels, last):
    """`rels` sorted, those matching a `last` pattern after the others (in the patterns' order)."""
    rank = {}
    for rel in rels:
        rank[rel] = next((i + 1 for i, p in enumerate(last) if fnmatch.fnmatchcase(rel, p)), 0)
    return sorted(rels, key=lambda rel: (rank[rel], rel))


def _same(local_path, st, blob):
    """True if the local file has the object's contents (size, then MD5 or CRC32C)."""
    if blob.size != st.st_size:
        return False
    if blob.md5_hash:
        return _local_md5(local_path, st) == blob.md5_hash
    if blob.crc32c:  # composite objects have no MD5
        return _local_crc32c(local_path) == blob.crc32c
    return False


def _local_md5(path, st):
    """Base64 MD5 of a local file, as GCS reports it; cached by (size, mtime) per process."""
    key = os.path.abspath(path)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached and cached[0] == stamp:
        return cached[1]
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    value = base64.b64encode(digest.digest()).decode()
    # A file changed again within one mtime tick could keep its stamp: cache only settled files.
    if time.time_ns() - st.st_mtime_ns > _SETTLED_NS:
        with _hash_lock:
            _hash_cache[key] = (stamp, value)
    return value


def _local_crc32c(path):
    """Base64 CRC32C of a local file, as GCS reports it (google-crc32c comes with the gcs extra)."""
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


# ---------------------------------------------------------------------------------------------
# Local-to-local mirrors (a local study: the staging directory is the study itself).


def _local_mirror(src_dir, dst_dir, files, delete, last, exclude):
    """Local-to-local mirror: copies files whose contents differ (same size and mtime: same
    contents; else compared by MD5). Copies keep the source's mtime."""
    os.makedirs(dst_dir, exist_ok=True)
    if os.path.samefile(src_dir, dst_dir):
        return []
    copied = []
    for rel in _ordered(files, last):
        source = os.path.join(src_dir, *rel.split("/"))
        target = os.path.join(dst_dir, *rel.split("/"))
        try:
            if _same_local(source, files[rel], target):
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            atomic.copy(source, target)
        except FileNotFoundError:
            if os.path.exists(source):
                raise
            continue  # removed at the source while we were mirroring
        copied.append(rel)
    if delete:
        _delete_extra_local(dst_dir, set(files), exclude)
    return copied


def _same_local(source, st, target):
    try:
        other = os.stat(target)
    except FileNotFoundError:
        return False
    if not stat_lib.S_ISREG(other.st_mode) or other.st_size != st.st_size:
        return False
    if other.st_mtime_ns == st.st_mtime_ns and time.time_ns() - st.st_mtime_ns > _SETTLED_NS:
        return True
    return _local_md5(source, st) == _local_md5(target, other)


def _delete_extra_local(local_dir, keep, exclude):
    for rel in _local_files(local_dir, exclude):
        if rel not in keep:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(local_dir, *rel.split("/")))
