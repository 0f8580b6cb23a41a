"""Local files written whole: a reader sees the old contents or all the new ones, never a part.

Every local write of the storage layer goes through `write`: a temporary file in the destination's
directory is filled, flushed and fsynced, renamed over the destination with os.replace, and the
directory is fsynced so the rename itself survives a crash. On any error the temporary file is
removed and the old file is intact. (The gs:// half of the promise is one object upload:
tfplaybook.files.gcs.)
"""

import contextlib
import os
import shutil
import tempfile

# Prefix of the temporary files of a local atomic write; `upload_dir` never mirrors them.
TMP_PREFIX = ".tmp-"


def write(path, fill):
    """Writes `path` through a temporary file in its directory that `fill(f)` fills.

    Missing parent directories are created (as on gs://, where there are none to create).
    """
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


def copy(src, dst):
    """Copies the local file `src` to `dst` atomically, keeping its mode and mtime (copystat)."""
    with open(src, "rb") as source:
        write(dst, lambda f: shutil.copyfileobj(source, f, 1 << 20))
    shutil.copystat(src, dst)


def _fsync_dir(directory):
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
