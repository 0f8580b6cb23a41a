"""The gs:// half of the storage layer: objects in a bucket through google-cloud-storage.

Every function takes a `gs://bucket/key` URL (tfplaybook.files.storage decides which store a path
is on and calls these for gs://). The client (`google-cloud-storage`, the `gcs` extra) is imported
on first use, so importing this module costs nothing; without the extra, or without Google
credentials, the first call raises a one-line tfplaybook.config.ConfigError.

The client's NotFound, Forbidden and Unauthorized become FileNotFoundError and PermissionError.
Every call passes the library's default retry policy explicitly: each write replaces a whole
object, so repeating it after a transient error gives the same result. A write is one object
upload, which the store makes visible only once complete; there are no directories, only
prefixes with objects under them.
"""

import contextlib
import fnmatch
import glob as glob_lib
import os
import threading

from tfplaybook.config import ConfigError
from tfplaybook.files.paths import make_url, split_url

INSTALL_HINT = "pip install 'tfplaybook[gcs]'"

# Objects larger than 8 MiB go up as a resumable upload in chunks of this size (a multiple of
# 256 KiB); each chunk is one request that is retried by itself. Still one object, made visible
# only when the last chunk arrives.
UPLOAD_CHUNK_SIZE = 16 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# The Google Cloud client: imported on first use of a gs:// path, one client per thread and process.

_gcs_module = None
_clients = threading.local()
_lock = threading.Lock()
_known_buckets = set()
_epoch = 0  # bumped by reset(): every thread then makes a new client


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


def client():
    """This thread's storage client (a new one after a fork: connection pools are not shared)."""
    current = getattr(_clients, "client", None)
    key = (os.getpid(), _epoch)
    if current is not None and _clients.key == key:
        return current
    module = _gcs()
    import google.auth.exceptions

    try:
        # No project is needed to read and write objects; a default one is used when set.
        current = module.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None)
    except google.auth.exceptions.DefaultCredentialsError as e:
        message = " ".join(str(e).split())
        raise ConfigError(
            "gs:// paths need Google credentials (run `gcloud auth application-default login`, "
            f"or set GOOGLE_APPLICATION_CREDENTIALS): {message}"
        ) from None
    _clients.client, _clients.key = current, key
    return current


def reset():
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
    return client().bucket(name)


def blob(url):
    """The client's Blob for the object `url` (IsADirectoryError for a bucket root)."""
    bucket, key = split_url(url)
    if not key:
        raise IsADirectoryError(f"{url} is a bucket, not an object")
    return _bucket(bucket).blob(key)


def _list(bucket, prefix, delimiter=None):
    """(blobs, prefixes) under `prefix` (all pages)."""
    iterator = client().list_blobs(bucket, prefix=prefix or None, delimiter=delimiter)
    blobs = list(iterator)
    return blobs, sorted(iterator.prefixes)


def _dir_prefix(key):
    return f"{key}/" if key else ""


def _bucket_exists(bucket):
    with _lock:
        if bucket in _known_buckets:
            return True
    with _errors(make_url(bucket, "")):
        found = _bucket(bucket).exists()
    if found:
        with _lock:
            _known_buckets.add(bucket)
    return found


# ---------------------------------------------------------------------------------------------
# Queries.


def exists(url):
    """True if `url` is an object, or a prefix with objects under it."""
    return isfile(url) or isdir(url)


def isfile(url):
    """True if `url` is an object."""
    bucket, key = split_url(url)
    if not key:
        return False
    with _errors(url):
        return _bucket(bucket).blob(key).exists()


def isdir(url):
    """True while an object lies under `url` (GCS has no directories); a bucket root while the
    bucket exists."""
    bucket, key = split_url(url)
    if not key:
        return _bucket_exists(bucket)
    with _errors(url):
        iterator = client().list_blobs(bucket, prefix=_dir_prefix(key), max_results=1)
        return any(True for _ in iterator)


def listdir(url):
    """Sorted names of the objects and sub-prefixes directly under `url` (FileNotFoundError if
    none, unless `url` is the root of an existing bucket)."""
    bucket, key = split_url(url)
    prefix = _dir_prefix(key)
    with _errors(url):
        blobs, prefixes = _list(bucket, prefix, delimiter="/")
    names = {b.name[len(prefix) :] for b in blobs}
    names |= {p[len(prefix) :].rstrip("/") for p in prefixes}
    names.discard("")  # a "directory marker" object some tools write
    if not names:
        is_empty_bucket = not key and _bucket_exists(bucket)
        if not is_empty_bucket:
            raise FileNotFoundError(f"no such directory: {url}")
    return sorted(names)


def getsize(url):
    """Size of an object in bytes."""
    target = blob(url)
    with _errors(url):
        target.reload()
    return target.size


def glob(pattern):
    """Sorted URLs matching `pattern` (see tfplaybook.files.storage.glob): one listing of
    everything under the pattern's literal prefix, filtered here."""
    bucket, key = split_url(pattern)
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
    for item in blobs:
        parts = item.name[len(prefix) :].split("/")
        if len(parts) < len(wild):
            continue
        head = parts[: len(wild)]  # the whole name (a file), or a directory above it
        if all(_match(name, pat) for name, pat in zip(head, wild)):
            found.add(prefix + "/".join(head))
    return sorted(make_url(bucket, name) for name in found)


def _match(name, pattern):
    if not name:
        return False
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def list_files(url):
    """{relative path: Blob} of the objects under the prefix `url` (with their MD5 and CRC32C)."""
    bucket, key = split_url(url)
    prefix = _dir_prefix(key)
    with _errors(url):
        blobs, _ = _list(bucket, prefix)
    return {b.name[len(prefix) :]: b for b in blobs if b.name != prefix}


# ---------------------------------------------------------------------------------------------
# Reading and writing whole objects.


def makedirs(url):
    """There are no directories: checks, once per process, that the bucket exists
    (FileNotFoundError if not)."""
    bucket, _ = split_url(url)
    if not _bucket_exists(bucket):
        raise FileNotFoundError(f"bucket {make_url(bucket, '')} does not exist")


def read_bytes(url):
    """The whole contents of an object."""
    target = blob(url)
    with _errors(url):
        return target.download_as_bytes(retry=_retry())


def write_bytes(url, data):
    """Replaces the object `url` with `data`: one upload, visible only once complete."""
    target = blob(url)
    target.chunk_size = UPLOAD_CHUNK_SIZE
    with _errors(url):
        target.upload_from_string(data, content_type="application/octet-stream", retry=_retry())


def remove(url):
    """Deletes one object (FileNotFoundError if there is none)."""
    target = blob(url)
    with _errors(url):
        target.delete(retry=_retry())


def rmtree(url, missing_ok=False):
    """Deletes every object under the prefix `url`; a bucket root is refused (ValueError)."""
    bucket, key = split_url(url)
    if not key:
        raise ValueError(f"refusing to empty a whole bucket: {url}")
    with _errors(url):
        blobs, _ = _list(bucket, _dir_prefix(key))
    if not blobs and not missing_ok:
        raise FileNotFoundError(f"no such directory: {url}")
    for item in blobs:
        # Another process may have removed it meanwhile: that is the state we want.
        with contextlib.suppress(FileNotFoundError), _errors(url):
            item.delete(retry=_retry())


# ---------------------------------------------------------------------------------------------
# Copies to, from and within the store.


def upload_file(path, url):
    """Uploads the local file `path` to the object `url` (one upload, visible once complete)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    target = blob(url)
    target.chunk_size = UPLOAD_CHUNK_SIZE
    with _errors(url):
        target.upload_from_filename(path, content_type="application/octet-stream", retry=_retry())


def downloader(url):
    """A `fill(f)` that downloads the object `url` into the open file `f`, for
    tfplaybook.files.atomic.write (the client is made, or fails, before anything is written)."""
    source = blob(url)

    def fill(f):
        with _errors(url):
            source.download_to_file(f, retry=_retry())

    return fill


def copy(src, dst):
    """Copies the object `src` to `dst` inside the store (a server-side rewrite)."""
    source, target = blob(src), blob(dst)
    with _errors(src):
        token, _, _ = target.rewrite(source, retry=_retry())
        while token is not None:
            token, _, _ = target.rewrite(source, token=token, retry=_retry())
