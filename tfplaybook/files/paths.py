"""Paths and gs:// URLs as strings: which store a path is on, and joining and splitting both kinds.

No I/O and no imports beyond the standard library. A gs:// URL stays a string throughout: `os.path`
and `pathlib` would turn `gs://b/x` into a local path (`$PWD/gs:/b/x`, `gs:/b/x`).
"""

import os
import posixpath
import re

from tfplaybook.config import ConfigError

GCS_SCHEME = "gs://"

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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


def split_url(url):
    """`gs://bucket/a/b/` -> ("bucket", "a/b"). The key has no leading or trailing slash."""
    rest = url[len(GCS_SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"gs:// URL {url!r} names no bucket")
    return bucket, key.strip("/")


def make_url(bucket, key):
    """The gs:// URL of `key` in `bucket` (the bucket root for an empty key)."""
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
    bucket, key = split_url(path)
    return make_url(bucket, posixpath.dirname(key))
