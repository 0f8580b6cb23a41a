"""tfplaybook.files.storage on both stores: a local tmp dir and a real GCS JSON API on loopback.

The gs:// side runs against gcp-storage-emulator, started once for this module in a subprocess
(tests/gcs_emulator.py). Those tests are skipped only when the emulator package is not installed
(`pip install -e '.[test]'` installs it). No test imports TensorFlow.

Tests assert what must always hold (a reader never sees part of a write, a mirror sends only what
changed), never how fast anything happens, so machine load only makes them slower.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import uuid

import gcs_emulator
import pytest

from tfplaybook.config import ConfigError
from tfplaybook.files import gcs as gcs_lib
from tfplaybook.files import storage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "tfplaybook-test"
SUBPROCESS_TIMEOUT = 300


@pytest.fixture(scope="module")
def gcs():
    """The running emulator (tests/gcs_emulator.py)."""
    yield from gcs_emulator.serving(BUCKET)


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
    """A fresh, empty directory on each store: a local path, or a gs:// prefix of its own."""
    if request.param == "local":
        path = str(tmp_path / "root")
        os.makedirs(path)
        return path
    request.getfixturevalue("gcs")
    return f"gs://{BUCKET}/{request.node.name.split('[')[0]}-{uuid.uuid4().hex[:8]}"


def _env():
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")


def _python(code, env=None):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=env or _env(),
        cwd=REPO,
    )


def _version(path):
    """Something that changes whenever the file is written again (not when only read)."""
    if storage.is_remote(path):
        blob = gcs_lib.blob(path)
        blob.reload()
        return blob.generation
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns)


# ---------------------------------------------------------------------------------------------
# Paths (no store needed).


def test_paths():
    assert storage.is_remote("gs://b/x") and not storage.is_remote("/tmp/x")
    assert not storage.is_remote("relative/dir")
    assert storage.join("gs://b", "study", "trial_1/", "status.json") == (
        "gs://b/study/trial_1/status.json"
    )
    assert storage.join("gs://b/study/", "x") == "gs://b/study/x"
    assert storage.join("/tmp", "a", "b") == os.path.join("/tmp", "a", "b")
    assert storage.basename("gs://b/study/x.json") == "x.json"
    assert storage.dirname("gs://b/study/x.json") == "gs://b/study"
    assert storage.dirname("gs://b/x") == "gs://b"
    with pytest.raises(ConfigError, match="only local paths and gs://"):
        storage.exists("s3://bucket/x")
    with pytest.raises(ConfigError, match="pathlib"):
        storage.exists("gs:/b/x")


# ---------------------------------------------------------------------------------------------
# Every function on both stores.


def test_write_and_read(root):
    path = storage.join(root, "a.bin")
    assert not storage.exists(path) and not storage.isfile(path)
    storage.write_bytes(path, b"\x00\x01hello")
    assert storage.read_bytes(path) == b"\x00\x01hello"
    assert storage.isfile(path) and storage.exists(path) and not storage.isdir(path)
    assert storage.getsize(path) == 7
    storage.write_bytes(path, b"shorter")  # a rewrite replaces the whole file
    assert storage.read_bytes(path) == b"shorter"
    text = storage.join(root, "t.json")
    storage.write_text(text, '{"lr": "3e-4", "note": "état ✓"}\n')
    assert json.loads(storage.read_text(text))["note"] == "état ✓"
    storage.write_bytes(storage.join(root, "empty"), b"")
    assert storage.read_bytes(storage.join(root, "empty")) == b""
    # No makedirs needed first, on either store.
    deep = storage.join(root, "new", "deeper", "x.txt")
    storage.write_text(deep, "x")
    assert storage.read_text(deep) == "x" and storage.isdir(storage.join(root, "new"))


def test_missing_files_raise_file_not_found(root):
    missing = storage.join(root, "nope", "x.json")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(missing)
    with pytest.raises(FileNotFoundError):
        storage.remove(missing)
    with pytest.raises(FileNotFoundError):
        storage.listdir(storage.join(root, "nope"))
    with pytest.raises(FileNotFoundError):
        storage.rmtree(storage.join(root, "nope"))
    storage.rmtree(storage.join(root, "nope"), missing_ok=True)
    assert not storage.exists(missing) and not storage.isdir(storage.join(root, "nope"))


def test_directories_listdir_and_glob(root):
    study = storage.join(root, "study")
    storage.makedirs(study)
    for trial in ("trial_0001", "trial_0002", "trial_0010"):
        storage.makedirs(storage.join(study, trial))
        storage.write_text(storage.join(study, trial, "status.json"), '{"state": "done"}')
    storage.write_text(storage.join(study, "trial_0002", "measurements.jsonl"), "")
    storage.makedirs(storage.join(study, "other", "deep"))
    storage.write_text(storage.join(study, "other", "deep", "status.json"), "{}")
    storage.write_text(storage.join(study, ".hidden_1"), "x")
    storage.write_text(storage.join(study, "study.json"), "{}")

    assert storage.isdir(study) and storage.exists(study) and not storage.isfile(study)
    assert storage.listdir(study) == [
        ".hidden_1",
        "other",
        "study.json",
        "trial_0001",
        "trial_0002",
        "trial_0010",
    ]
    assert storage.listdir(storage.join(study, "trial_0002")) == [
        "measurements.jsonl",
        "status.json",
    ]
    trials = ["trial_0001", "trial_0002", "trial_0010"]
    assert storage.glob(storage.join(study, "trial_*", "status.json")) == [
        storage.join(study, t, "status.json") for t in trials
    ]
    assert storage.glob(storage.join(study, "trial_*")) == [storage.join(study, t) for t in trials]
    assert storage.glob(storage.join(study, "trial_000?", "*.jsonl")) == [
        storage.join(study, "trial_0002", "measurements.jsonl")
    ]
    # `*` stays within one component, skips hidden names, and matches files and directories.
    assert storage.glob(storage.join(study, "*", "status.json")) == [
        storage.join(study, t, "status.json") for t in trials
    ]
    assert storage.glob(storage.join(study, "*")) == [
        storage.join(study, n) for n in ["other", "study.json", *trials]
    ]
    assert storage.glob(storage.join(study, ".hid*")) == [storage.join(study, ".hidden_1")]
    assert storage.glob(storage.join(study, "trial_[0-9]*1", "status.json")) == [
        storage.join(study, "trial_0001", "status.json")
    ]
    assert storage.glob(storage.join(study, "study.json")) == [storage.join(study, "study.json")]
    assert storage.glob(storage.join(study, "none_*")) == []
    assert storage.glob(storage.join(root, "absent", "*")) == []


def test_remove_and_rmtree(root):
    keep = storage.join(root, "keep.txt")
    storage.write_text(keep, "k")
    tree = storage.join(root, "tree")
    storage.makedirs(storage.join(tree, "sub"))
    for name in ("a", "sub/b", "sub/c"):
        storage.write_text(storage.join(tree, name), name)
    storage.remove(storage.join(tree, "a"))
    assert not storage.exists(storage.join(tree, "a"))
    assert storage.listdir(tree) == ["sub"]
    storage.rmtree(tree)
    assert not storage.exists(tree) and not storage.isdir(tree)
    assert storage.listdir(root) == ["keep.txt"]


def test_rmtree_refuses_a_bucket_root(gcs):
    with pytest.raises(ValueError, match="whole bucket"):
        storage.rmtree(f"gs://{BUCKET}")


def test_makedirs_names_a_missing_bucket(gcs):
    with pytest.raises(FileNotFoundError, match="gs://no-such-bucket"):
        storage.makedirs("gs://no-such-bucket/study")
    assert storage.isdir(f"gs://{BUCKET}") and not storage.isdir("gs://no-such-bucket")


def test_append_text(root):
    path = storage.join(root, "measurements.jsonl")
    storage.append_text(path, '{"step": 1}\n')
    storage.append_text(path, '{"step": 2}\n')
    assert storage.read_text(path).splitlines() == ['{"step": 1}', '{"step": 2}']


def test_copy_file_between_stores(root, tmp_path):
    local = tmp_path / "src.bin"
    data = os.urandom(300_000)
    local.write_bytes(data)
    up = storage.join(root, "up.bin")
    storage.copy_file(str(local), up)
    assert storage.read_bytes(up) == data
    same_store = storage.join(root, "copy", "up2.bin")
    storage.makedirs(storage.dirname(same_store))
    storage.copy_file(up, same_store)
    assert storage.read_bytes(same_store) == data
    down = tmp_path / "down" / "back.bin"
    down.parent.mkdir()
    storage.copy_file(same_store, str(down))
    assert down.read_bytes() == data
    assert [p for p in os.listdir(down.parent) if p.startswith(storage.TMP_PREFIX)] == []
    with pytest.raises(FileNotFoundError):
        storage.copy_file(storage.join(root, "missing"), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# Atomic writes: a reader sees the old contents or all the new ones, never a part.

BIG = 12 * 1024 * 1024  # over the client's 8 MiB one-request limit: a resumable upload


def _versions(n, size=BIG):
    # Distinct, cheap-to-make contents of one size (a partial one would differ from both).
    return [bytes([65 + i]) * (size // 2) + bytes([97 + i]) * (size - size // 2) for i in range(n)]


def test_reader_mid_write_sees_the_old_contents(root, monkeypatch):
    """Reads from another thread at the last moment before the write commits (between the chunks
    of a resumable upload; just before the local rename): always the complete old version."""
    old, new = _versions(2)
    path = storage.join(root, "big.bin")
    storage.write_bytes(path, old)
    seen = []
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def read_from_another_thread():
        seen.append(pool.submit(storage.read_bytes, path).result())

    if storage.is_remote(path):
        from google.cloud.storage._media.requests import upload

        monkeypatch.setattr(gcs_lib, "UPLOAD_CHUNK_SIZE", 1024 * 1024)
        transmit = upload.ResumableUpload.transmit_next_chunk

        def transmit_then_read(self, *args, **kwargs):
            response = transmit(self, *args, **kwargs)
            if not self.finished:
                read_from_another_thread()
            return response

        monkeypatch.setattr(upload.ResumableUpload, "transmit_next_chunk", transmit_then_read)
    else:
        replace = os.replace

        def read_then_replace(src, dst, *args, **kwargs):
            assert open(src, "rb").read() == new  # the temporary file is complete (fsynced)
            read_from_another_thread()
            return replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", read_then_replace)

    storage.write_bytes(path, new)
    pool.shutdown()
    monkeypatch.undo()
    expected_reads = BIG // (1024 * 1024) - 1 if storage.is_remote(path) else 1
    assert len(seen) == expected_reads  # the write really was in progress that many times
    assert all(s == old for s in seen)
    assert storage.read_bytes(path) == new


def test_concurrent_reader_never_sees_a_partial_write(root, monkeypatch):
    """A reader thread polls while a writer replaces the object several times."""
    monkeypatch.setattr(gcs_lib, "UPLOAD_CHUNK_SIZE", 1024 * 1024)
    versions = _versions(3)
    path = storage.join(root, "polled.bin")
    done = threading.Event()
    observed, errors = [], []  # the index of each version read (-1: none yet), or its size

    def classify(data):
        return versions.index(data) if data in versions else f"{len(data)} bytes"

    def poll():
        while True:
            finished = done.is_set()  # read once more after the writer ended
            try:
                observed.append(classify(storage.read_bytes(path)))
            except FileNotFoundError:
                observed.append(-1)
            except Exception as e:  # reported below
                errors.append(e)
                return
            if finished:
                return

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for version in versions + versions[:1]:
            storage.write_bytes(path, version)
    finally:
        done.set()
        reader.join(timeout=SUBPROCESS_TIMEOUT)
    assert not reader.is_alive() and not errors
    bad = [o for o in observed if isinstance(o, str)]
    assert bad == [], f"partial or mixed contents seen: {bad}"
    assert observed[-1] == 0


# ---------------------------------------------------------------------------------------------
# Another process sees what this one wrote, and the other way round.


def test_second_process_reads_what_the_first_wrote(root):
    study = storage.join(root, "study")
    storage.makedirs(study)
    storage.write_text(storage.join(study, "trial_1", "status.json"), '{"state": "done"}')
    storage.write_bytes(storage.join(study, "trial_2", "weights.bin"), b"\x00" * 100_000)
    code = f"""
import json, sys
from tfplaybook.files import storage

study = {study!r}
out = {{
    "status": json.loads(storage.read_text(storage.join(study, "trial_1", "status.json"))),
    "listing": storage.listdir(study),
    "glob": storage.glob(storage.join(study, "trial_*", "status.json")),
    "size": len(storage.read_bytes(storage.join(study, "trial_2", "weights.bin"))),
    "tf": "tensorflow" in sys.modules,
}}
storage.write_text(storage.join(study, "reply.json"), json.dumps(out))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    reply = json.loads(storage.read_text(storage.join(study, "reply.json")))
    assert reply == {
        "status": {"state": "done"},
        "listing": ["trial_1", "trial_2"],
        "glob": [storage.join(study, "trial_1", "status.json")],
        "size": 100_000,
        "tf": False,
    }


# ---------------------------------------------------------------------------------------------
# The mirror of a local directory that TensorFlow/Keras write into.


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_upload_dir_sends_only_changed_files(root, tmp_path):
    local = str(tmp_path / "staging")
    _write(os.path.join(local, "ckpt", "ckpt-1.index"), b"index-1")
    _write(os.path.join(local, "ckpt", "ckpt-1.data"), os.urandom(200_000))
    _write(os.path.join(local, "tb", "events.out.tfevents.1"), b"event-1")
    _write(os.path.join(local, "status.json"), b'{"state": "running"}')
    _write(os.path.join(local, storage.TMP_PREFIX + "half-written"), b"partial")
    _write(os.path.join(local, "ckpt", "ckpt-2_temp", "part"), b"tf temp")
    remote = storage.join(root, "trial_0001")
    kwargs = dict(last=("status.json",), exclude=("*_temp/*",))

    sent = storage.upload_dir(local, remote, **kwargs)
    assert sent == ["ckpt/ckpt-1.data", "ckpt/ckpt-1.index", "tb/events.out.tfevents.1"] + [
        "status.json"
    ]  # the status last: a reader that finds it finds the rest
    assert storage.listdir(remote) == ["ckpt", "status.json", "tb"]
    versions = {rel: _version(storage.join(remote, rel)) for rel in sent}

    assert storage.upload_dir(local, remote, **kwargs) == []
    # Same size, other contents: sent. Only a newer mtime, same contents: not sent.
    _write(os.path.join(local, "ckpt", "ckpt-1.index"), b"index-2")
    os.utime(os.path.join(local, "status.json"), ns=(0, 10**18))
    with open(os.path.join(local, "tb", "events.out.tfevents.1"), "ab") as f:
        f.write(b"event-2")  # TensorBoard appends to its events file
    _write(os.path.join(local, "ckpt", "ckpt-2.index"), b"index-2")
    sent = storage.upload_dir(local, remote, **kwargs)
    assert sent == ["ckpt/ckpt-1.index", "ckpt/ckpt-2.index", "tb/events.out.tfevents.1"]
    assert _version(storage.join(remote, "ckpt", "ckpt-1.data")) == versions["ckpt/ckpt-1.data"]
    assert _version(storage.join(remote, "status.json")) == versions["status.json"]
    assert storage.read_bytes(storage.join(remote, "tb", "events.out.tfevents.1")) == (
        b"event-1event-2"
    )
    assert storage.upload_dir(local, remote, **kwargs) == []

    # A rotated-away checkpoint disappears from the mirror only with delete=True.
    os.remove(os.path.join(local, "ckpt", "ckpt-1.index"))
    os.remove(os.path.join(local, "ckpt", "ckpt-1.data"))
    assert storage.upload_dir(local, remote, **kwargs) == []
    assert storage.isfile(storage.join(remote, "ckpt", "ckpt-1.data"))
    assert storage.upload_dir(local, remote, delete=True, **kwargs) == []
    assert storage.listdir(storage.join(remote, "ckpt")) == ["ckpt-2.index"]
    assert not storage.exists(storage.join(remote, storage.TMP_PREFIX + "half-written"))


def test_download_dir_fetches_only_what_differs(root, tmp_path):
    remote = storage.join(root, "trial_0001")
    storage.makedirs(storage.join(remote, "ckpt"))
    storage.write_bytes(storage.join(remote, "ckpt", "ckpt-1.data"), b"d" * 50_000)
    storage.write_text(storage.join(remote, "status.json"), "{}")
    local = str(tmp_path / "fresh_machine")
    assert storage.download_dir(remote, local) == ["ckpt/ckpt-1.data", "status.json"]
    with open(os.path.join(local, "ckpt", "ckpt-1.data"), "rb") as f:
        assert f.read() == b"d" * 50_000
    assert storage.download_dir(remote, local) == []
    storage.write_text(storage.join(remote, "status.json"), '{"state": "done"}')
    _write(os.path.join(local, "stray"), b"only here")
    assert storage.download_dir(remote, local) == ["status.json"]
    assert os.path.exists(os.path.join(local, "stray"))
    assert storage.download_dir(remote, local, delete=True) == []
    assert sorted(os.listdir(local)) == ["ckpt", "status.json"]
    # What was downloaded is not sent back up.
    assert storage.upload_dir(local, remote) == []
    assert storage.download_dir(storage.join(root, "absent"), str(tmp_path / "empty")) == []


def test_staging_dir(root, tmp_path, monkeypatch):
    monkeypatch.setenv(storage.STAGING_ENV, str(tmp_path / "cache"))
    remote = storage.join(root, "study")
    staged = storage.staging_dir(remote)
    assert os.path.isdir(staged) and staged == storage.staging_dir(remote + "/")
    if storage.is_remote(remote):
        assert staged == str(tmp_path / "cache" / "gs" / BUCKET / remote.split("/", 3)[3])
        # The same directory in another process.
        result = _python(
            f"from tfplaybook.files import storage; print(storage.staging_dir({remote!r}))"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == staged
        # The usual round trip: TF writes locally, the mirror sends it up.
        _write(os.path.join(staged, "trial_1", "w.h5"), b"weights")
        assert storage.upload_dir(staged, remote) == ["trial_1/w.h5"]
        assert storage.read_bytes(storage.join(remote, "trial_1", "w.h5")) == b"weights"
        with pytest.raises(ConfigError, match=r"'\.\.'"):
            storage.staging_dir(storage.join(root, "..", "escape"))
    else:
        assert staged == os.path.abspath(remote)  # a local study needs no staging
        _write(os.path.join(staged, "w.h5"), b"weights")
        assert storage.upload_dir(staged, remote) == []


# ---------------------------------------------------------------------------------------------
# Without the extra, without credentials, without TensorFlow.


def test_missing_gcs_extra_is_one_line_config_error():
    code = """
import sys
sys.modules["google.cloud.storage"] = None  # as if google-cloud-storage were not installed
from tfplaybook.files import storage

print(storage.join("gs://b", "x"), storage.is_remote("gs://b/x"))  # no library needed
try:
    storage.exists("gs://b/x")
except Exception as e:
    print(type(e).__name__)
    print(str(e))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["gs://b/x True", "ConfigError"]
    assert len(lines) == 3, lines  # the message is one line
    assert "pip install 'tfplaybook[gcs]'" in lines[2]


def test_missing_credentials_are_one_line_config_error(tmp_path):
    pytest.importorskip("google.cloud.storage")
    env = {k: v for k, v in _env().items() if k != "STORAGE_EMULATOR_HOST"}
    env.update(
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "no-such-key.json"),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        NO_GCE_CHECK="true",
    )
    code = """
from tfplaybook.files import storage

try:
    storage.read_text("gs://b/x")
except Exception as e:
    print(type(e).__name__)
    print(str(e))
"""
    result = _python(code, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ConfigError" and len(lines) == 2, lines
    assert "credentials" in lines[1] and "GOOGLE_APPLICATION_CREDENTIALS" in lines[1]


def test_import_loads_neither_tensorflow_nor_the_cloud_client(tmp_path):
    code = f"""
import sys
from tfplaybook.files import storage

storage.write_text(storage.join({str(tmp_path)!r}, "x"), "local only")
print(storage.read_text(storage.join({str(tmp_path)!r}, "x")))
print(sorted(m for m in ("tensorflow", "keras", "google.cloud.storage") if m in sys.modules))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["local only", "[]"]


def test_local_write_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / "x.json")
    storage.write_text(path, "old")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        storage.write_text(path, "new")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x.json"] and storage.read_text(path) == "old"
