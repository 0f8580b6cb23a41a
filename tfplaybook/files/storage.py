"""One storage layer for every file tfplaybook writes or reads: local paths and gs:// paths.

Every function takes either a local path or a `gs://bucket/key` URL and does the same thing on
both. TensorFlow is never imported (the analysis side runs without it); the Google Cloud client
(`google-cloud-storage`, the `gcs` extra) is imported only when a gs:// path is first used.

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

import base64
import contextlib
import fnmatch
import glob as glob_lib
import hashlib
import os
import posixpath
import re
import shutil
import stat as stat_lib
import tempfile
import threading
import time

from tfplaybook.config import ConfigError

GCS_SCHEME = "gs://"
INSTALL_HINT = "pip install 'tfplaybook[gcs]'"

# Objects larger than 8 MiB go up as a resumable upload in chunks of this size (a multiple of
# 256 KiB); each chunk is one request that is retried by itself. Still one object, made visible
# only when the last chunk arrives.
UPLOAD_CHUNK_SIZE = 16 * 1024 * 1024

# Prefix of the temporary files of a local atomic write; `upload_dir` never mirrors them.
TMP_PREFIX = ".tmp-"

# Where `staging_dir` keeps the local copy of a remote directory.
STAGING_ENV = "TFPLAYBOOK_STAGING_DIR"

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


# ---------------------------------------------------------------------------------------------
# Paths.


def is_remote(path):
    """True for a gs:// URL; False for a local path. Other URL schemes raise ConfigError."""
    path = os.fspath(path)
    if path.startswith(GCS_SCHEME):
        return True
    if path.startswith("gs:/"):
        # pathlib.Path("gs://b/x") collapses the double slash: keep URLs as strings.
        raise ConfigError(f"malformed gs:// URL {path!r} (was it passed through pathlib.Path?)")
    match = _URL_SCHEME.match(path)
    if match:
        raise ConfigError(
            f"unsupported storage URL {path!r}: only local paths and gs:// are supported"
        )
    return False


def _split(url):
    """`gs://bucket/a/b/` -> ("bucket", "a/b"). The key has no leading or trailing slash."""
    rest = url[len(GCS_SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"gs:// URL {url!r} names no bucket")
    return bucket, key.strip("/")


def _url(bucket, key):
    return f"{GCS_SCHEME}{bucket}/{key}" if key else f"{GCS_SCHEME}{bucket}"


def join(path, *parts):
    """Joins path components: os.path.join locally, '/' for gs:// URLs."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.join(path, *parts)
    out = path.rstrip("/")
    for part in parts:
        part = os.fspath(part)
        if is_remote(part):
            out = part.rstrip("/")
        elif part:
            out = f"{out}/{part.strip('/')}"
    return out


def basename(path):
    """The last component of a path or URL."""
    path = os.fspath(path)
    if is_remote(path):
        return posixpath.basename(path.rstrip("/"))
    return os.path.basename(path)


def dirname(path):
    """The path or URL without its last component (the bucket root stays the bucket root)."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.dirname(path)
    bucket, key = _split(path)
    return _url(bucket, posixpath.dirname(key))


# ---------------------------------------------------------------------------------------------
# The Google Cloud client: imported on first use of a gs:// path, one client per thread and process.

_gcs_module = None
_clients = threading.local()
_lock = threading.Lock()
_known_buckets = set()
_epoch = 0  # bumped by _reset(): every thread then makes a new client


def _gcs():
    """The google.cloud.storage module, or a one-line ConfigError naming the extra."""
    global _gcs_module
    if _gcs_module is None:
        try:
            from google.cloud import storage as module
        except ImportError as e:
            raise ConfigError(
                f"gs:// paths need the gcs extra: {INSTALL_HINT} "
                f"(google-cloud-storage did not import: {e})"
            ) from None
        _gcs_module = module
    return _gcs_module


def _client():
    """This thread's storage client (a new one after a fork: connection pools are not shared)."""
    client = getattr(_clients, "client", None)
    key = (os.getpid(), _epoch)
    if client is not None and _clients.key == key:
        return client
    module = _gcs()
    import google.auth.exceptions

    try:
        # No project is needed to read and write objects; a default one is used when set.
        client = module.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None)
    except google.auth.exceptions.DefaultCredentialsError as e:
        message = " ".join(str(e).split())
        raise ConfigError(
            "gs:// paths need Google credentials (run `gcloud auth application-default login`, "
            f"or set GOOGLE_APPLICATION_CREDENTIALS): {message}"
        ) from None
    _clients.client, _clients.key = client, key
    return client


def _reset():
    """Forgets the clients and known buckets (tests that change STORAGE_EMULATOR_HOST call it)."""
    global _epoch
    with _lock:
        _epoch += 1
        _known_buckets.clear()


def _retry():
    # Passed to every call, so the policy does not hang on the library's defaults (uploads were
    # retried only with a generation precondition before google-cloud-storage 3.0; a rewrite still
    # is). Every write here replaces a whole object, so repeating it after a transient error is
    # safe.
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


@contextlib.contextmanager
def _errors(url):
    """Turns the client's NotFound/Forbidden into FileNotFoundError/PermissionError for `url`."""
    _gcs()
    import google.auth.exceptions
    from google.api_core import exceptions

    try:
        yield
    except exceptions.NotFound:
        raise FileNotFoundError(f"no such object: {url}") from None
    except (exceptions.Forbidden, exceptions.Unauthorized) as e:
        raise PermissionError(f"access to {url} refused: {e.message}") from None
    except google.auth.exceptions.RefreshError as e:
        # Credentials were found but not accepted (expired login, revoked key): bad setup.
        message = " ".join(str(e).split())
        raise ConfigError(f"Google credentials were refused for {url}: {message}") from None


def _bucket(name):
    return _client().bucket(name)


def _blob(url):
    bucket, key = _split(url)
    if not key:
        raise IsADirectoryError(f"{url} is a bucket, not an object")
    return _bucket(bucket).blob(key)


def _list(bucket, prefix, delimiter=None):
    """(blobs, prefixes) under `prefix` (all pages)."""
    iterator = _client().list_blobs(bucket, prefix=prefix or None, delimiter=delimiter)
    blobs = list(iterator)
    return blobs, sorted(iterator.prefixes)


def _dir_prefix(key):
    return f"{key}/" if key else ""


def _bucket_exists(bucket):
    with _lock:
        if bucket in _known_buckets:
            return True
    with _errors(_url(bucket, "")):
        found = _bucket(bucket).exists()
    if found:
        with _lock:
            _known_buckets.add(bucket)
    return found


# ---------------------------------------------------------------------------------------------
# Queries.


def exists(path):
    """True if `path` is a file or a directory (on gs://: an object, or a prefix with objects)."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.exists(path)
    return isfile(path) or isdir(path)


def isfile(path):
    """True if `path` is a file (on gs://: an object)."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isfile(path)
    bucket, key = _split(path)
    if not key:
        return False
    with _errors(path):
        return _bucket(bucket).blob(key).exists()


def isdir(path):
    """True if `path` is a directory. On gs:// a directory exists while an object lies under it
    (GCS has no directories), and a bucket root exists while the bucket does."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isdir(path)
    bucket, key = _split(path)
    if not key:
        return _bucket_exists(bucket)
    with _errors(path):
        iterator = _client().list_blobs(bucket, prefix=_dir_prefix(key), max_results=1)
        return any(True for _ in iterator)


def listdir(path):
    """Sorted names of the files and subdirectories directly in `path` (FileNotFoundError if none
    and `path` is not a directory)."""
    path = os.fspath(path)
    if not is_remote(path):
        return sorted(os.listdir(path))
    bucket, key = _split(path)
    prefix = _dir_prefix(key)
    with _errors(path):
        blobs, prefixes = _list(bucket, prefix, delimiter="/")
    names = {b.name[len(prefix) :] for b in blobs}
    names |= {p[len(prefix) :].rstrip("/") for p in prefixes}
    names.discard("")  # a "directory marker" object some tools write
    if not names:
        is_empty_bucket = not key and _bucket_exists(bucket)
        if not is_empty_bucket:
            raise FileNotFoundError(f"no such directory: {path}")
    return sorted(names)


def getsize(path):
    """Size of a file in bytes."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.getsize(path)
    blob = _blob(path)
    with _errors(path):
        blob.reload()
    return blob.size


def glob(pattern):
    """Sorted paths matching `pattern`: `*`, `?` and `[...]` within one path component (no `**`),
    e.g. `join(study, "trial_*", "status.json")`. Names starting with '.' match only a pattern
    component that starts with '.', as locally."""
    pattern = os.fspath(pattern)
    if not is_remote(pattern):
        return sorted(glob_lib.glob(pattern))
    bucket, key = _split(pattern)
    components = key.split("/") if key else []
    literal = []
    for component in components:
        if glob_lib.has_magic(component):
            break
        literal.append(component)
    if len(literal) == len(components):
        return [pattern.rstrip("/")] if exists(pattern) else []
    # One listing of everything under the literal part; each object name matches the pattern as a
    # file (all its components match) or implies a matching directory (its first components do).
    prefix = _dir_prefix("/".join(literal))
    wild = components[len(literal) :]
    with _errors(pattern):
        blobs, _ = _list(bucket, prefix)
    found = set()
    for blob in blobs:
        parts = blob.name[len(prefix) :].split("/")
        if len(parts) < len(wild):
            continue
        head = parts[: len(wild)]  # the whole name (a file), or a directory above it
        if all(_match(name, pat) for name, pat in zip(head, wild)):
            found.add(prefix + "/".join(head))
    return sorted(_url(bucket, name) for name in found)


def _match(name, pattern):
    if not name:
        return False
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


# ---------------------------------------------------------------------------------------------
# Reading and writing whole files.


def makedirs(path, exist_ok=True):
    """Creates a local directory and its parents. On gs:// there are no directories: this only
    checks, once per process, that the bucket exists (FileNotFoundError if not)."""
    path = os.fspath(path)
    if not is_remote(path):
        os.makedirs(path, exist_ok=exist_ok)
        return
    bucket, _ = _split(path)
    if not _bucket_exists(bucket):
        raise FileNotFoundError(f"bucket {_url(bucket, '')} does not exist")


def read_bytes(path):
    """The whole contents of a file."""
    path = os.fspath(path)
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    blob = _blob(path)
    with _errors(path):
        return blob.download_as_bytes(retry=_retry())


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
        _local_atomic_write(path, lambda f: f.write(data))
        return
    blob = _blob(path)
    blob.chunk_size = UPLOAD_CHUNK_SIZE
    with _errors(path):
        blob.upload_from_string(data, content_type="application/octet-stream", retry=_retry())


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


def _local_atomic_write(path, fill):
    """Writes `path` through a temporary file in its directory that `fill(f)` fills."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    try:
        # mkstemp creates 0600 files; give the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory):
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove(path):
    """Removes a file (FileNotFoundError if there is none)."""
    path = os.fspath(path)
    if not is_remote(path):
        os.remove(path)
        return
    blob = _blob(path)
    with _errors(path):
        blob.delete(retry=_retry())


def rmtree(path, missing_ok=False):
    """Removes a directory and everything in it. On gs://: every object under the prefix; a bucket
    root is refused (ValueError)."""
    path = os.fspath(path)
    if not is_remote(path):
        if missing_ok and not os.path.lexists(path):
            return
        shutil.rmtree(path)
        return
    bucket, key = _split(path)
    if not key:
        raise ValueError(f"refusing to empty a whole bucket: {path}")
    with _errors(path):
        blobs, _ = _list(bucket, _dir_prefix(key))
    if not blobs and not missing_ok:
        raise FileNotFoundError(f"no such directory: {path}")
    for blob in blobs:
        # Another process may have removed it meanwhile: that is the state we want.
        with contextlib.suppress(FileNotFoundError), _errors(path):
            blob.delete(retry=_retry())


# ---------------------------------------------------------------------------------------------
# Copies and mirrors.


def copy_file(src, dst):
    """Copies one file between any two stores; the destination appears whole (atomic), and missing
    local parent directories are created."""
    src, dst = os.fspath(src), os.fspath(dst)
    src_remote, dst_remote = is_remote(src), is_remote(dst)
    if not src_remote and not dst_remote:
        with open(src, "rb") as source:
            _local_atomic_write(dst, lambda f: shutil.copyfileobj(source, f, 1 << 20))
        shutil.copystat(src, dst)
    elif not src_remote:
        if os.path.isdir(src):
            raise IsADirectoryError(f"{src} is a directory")
        blob = _blob(dst)
        blob.chunk_size = UPLOAD_CHUNK_SIZE
        with _errors(dst):
            blob.upload_from_filename(src, content_type="application/octet-stream", retry=_retry())
    elif not dst_remote:
        blob = _blob(src)
        with _errors(src):
            _local_atomic_write(dst, lambda f: blob.download_to_file(f, retry=_retry()))
    else:
        source, target = _blob(src), _blob(dst)
        with _errors(src):
            token, _, _ = target.rewrite(source, retry=_retry())
            while token is not None:
                token, _, _ = target.rewrite(source, token=token, retry=_retry())


_hash_cache = {}
_SETTLED_NS = 2 * 10**9


def _local_md5(path, st):
    """Base64 MD5 of a local file, as GCS reports it; cached by (size, mtime) per process."""
    key = os.path.abspath(path)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    with _lock:
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
        with _lock:
            _hash_cache[key] = (stamp, value)
    return value


def _local_crc32c(path):
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


def _local_files(local_dir, exclude):
    """{relative posix path: stat} of the regular files under `local_dir`."""
    files = {}
    for root, dirs, names in os.walk(local_dir):
        dirs.sort()
        for name in names:
            if name.startswith(TMP_PREFIX):
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


def _remote_files(remote_dir):
    """{relative path: blob} of the objects under `remote_dir`."""
    bucket, key = _split(remote_dir)
    prefix = _dir_prefix(key)
    with _errors(remote_dir):
        blobs, _ = _list(bucket, prefix)
    return {b.name[len(prefix) :]: b for b in blobs if b.name != prefix}


def _same(local_path, st, blob):
    """True if the local file has the object's contents (size, then MD5 or CRC32C)."""
    if blob.size != st.st_size:
        return False
    if blob.md5_hash:
        return _local_md5(local_path, st) == blob.md5_hash
    if blob.crc32c:  # composite objects have no MD5
        return _local_crc32c(local_path) == blob.crc32c
    return False


def _ordered(rels, last):
    """`rels` sorted, those matching a `last` pattern after the others (in the patterns' order)."""
    rank = {}
    for rel in rels:
        rank[rel] = next((i + 1 for i, p in enumerate(last) if fnmatch.fnmatchcase(rel, p)), 0)
    return sorted(rels, key=lambda rel: (rank[rel], rel))


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
    makedirs(remote_dir)
    existing = _remote_files(remote_dir)
    sent = []
    for rel in _ordered(files, last):
        full = os.path.join(local_dir, *rel.split("/"))
        blob = existing.get(rel)
        try:
            if blob is not None and _same(full, files[rel], blob):
                continue
            copy_file(full, join(remote_dir, rel))
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
                remove(join(remote_dir, rel))
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
    objects = _remote_files(remote_dir)
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
        copy_file(join(remote_dir, rel), full)
        fetched.append(rel)
    if delete:
        _delete_extra_local(local_dir, set(objects), exclude)
    return fetched


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
            copy_file(source, target)
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
    bucket, key = _split(remote_dir)
    parts = [p for p in key.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"gs:// URL {remote_dir!r} has a '.' or '..' component")
    base = os.environ.get(STAGING_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "tfplaybook", "staging"
    )
    path = os.path.join(os.path.abspath(base), "gs", bucket, *parts)
    os.makedirs(path, exist_ok=True)
    return path
