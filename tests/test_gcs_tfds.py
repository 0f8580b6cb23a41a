"""`--data_dir=gs://BUCKET/tfds` for TFDS datasets, read by TensorFlow's own GCS filesystem.

TFDS reads a gs:// data_dir through TensorFlow's C++ GCS filesystem, whose endpoints are fixed
https URLs: every process here reaches gcp-storage-emulator only through tests/tls_proxy.py (an
HTTPS proxy with a throwaway CA), and has no STORAGE_EMULATOR_HOST. The embedded digits are
prepared locally by the project's own code, uploaded with tfplaybook.files.storage
(google-cloud-storage, independent of the reader under test), then read back from the bucket
by `tfds.load` and by a training run of the CLI. An unprepared or unreadable gs:// data_dir is
checked too.

No test process imports TensorFlow; each reader is a subprocess with a HOME of its own, so no
~/tensorflow_datasets copy can stand in for the bucket.
"""

import base64
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.parse

import gcs_emulator
import pytest
import tls_proxy
from conftest import REPO

from tfplaybook.files import gcs as gcs_lib
from tfplaybook.files import storage
from tfplaybook.files import trial_dir as td

BUCKET = "tfplaybook-tfds"
DATA_DIR = f"gs://{BUCKET}/tfds"
DIGITS = "tfplaybook_digits"
TIMEOUT = 600
MLP = os.path.join(REPO, "experiments", "digits_mlp.py")
SHORT = [
    "--override=max_train_steps=20",
    "--override=eval_every_steps=10",
    "--override=checkpoint_every_steps=10",
    "--steps_per_loop=10",
]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

# Prepares the digits into argv[1] with the project's code if argv[2] == "prepare", then prints
# each split's example count and SHA-256 over (image bytes, label) in file order, as read by
# tfds.load with download=False (a missing dataset fails instead of being made).
DIGEST = """
import hashlib, json, sys
import tensorflow_datasets as tfds
from tfplaybook.training import datasets, digits_builder  # noqa: F401 (registers the builder)

data_dir = sys.argv[1]
if sys.argv[2] == "prepare":
    datasets._tfds_builder({"data": {"dataset": "digits", "data_dir": data_dir}})
result = {}
for split in ("train", "test"):
    ds = tfds.load(datasets.EMBEDDED_DIGITS, split=split, data_dir=data_dir, try_gcs=False,
                   download=False, shuffle_files=False)
    digest, count = hashlib.sha256(), 0
    for example in tfds.as_numpy(ds):
        digest.update(example["image"].tobytes() + bytes([int(example["label"])]))
        count += 1
    result[split] = [count, digest.hexdigest()]
print(json.dumps(result))
"""


@dataclasses.dataclass
class Served:
    """The running emulator and proxy, the module's temporary root, the local copy, its digest."""

    emulator: gcs_emulator.GcsEmulator
    proxy: tls_proxy.TlsProxy
    root: pathlib.Path
    local: pathlib.Path
    digest: dict

    def env(self, name):
        """A reader process's environment: the proxy's variables, a fresh HOME, no emulator host."""
        home = self.root / f"home-{name}"
        home.mkdir()
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", HOME=str(home))
        for key in ("STORAGE_EMULATOR_HOST", "TFDS_DATA_DIR", "GOOGLE_APPLICATION_CREDENTIALS"):
            env.pop(key, None)
        env.update(self.proxy.env())
        return env


def _run(args, env, cwd=REPO):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=cwd
    )


def _objects(url):
    """{path relative to `url`: MD5 (hex)} of the objects under `url`, via google-cloud-storage."""
    bucket, prefix = url[len("gs://") :].split("/", 1)
    return {
        blob.name[len(prefix) + 1 :]: base64.b64decode(blob.md5_hash).hex()
        for blob in gcs_lib.client().list_blobs(bucket, prefix=prefix + "/")
    }


def _md5s(local_dir):
    """{relative path: MD5 (hex)} of the files under `local_dir`."""
    return {
        str(path.relative_to(local_dir)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in pathlib.Path(local_dir).rglob("*")
        if path.is_file()
    }


def _reads(requests, prefix):
    """The object names read through storage.googleapis.com (block reads) under `prefix`."""
    return {
        urllib.parse.unquote(path.split("?")[0][len(f"/{BUCKET}/") :])
        for method, host, path, status in requests
        if method == "GET" and host == "storage.googleapis.com" and status in (200, 206)
        and path.startswith(f"/{BUCKET}/{prefix.replace('/', '%2F')}")
    }  # fmt: skip


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Emulator and proxy; the digits prepared in a local directory and uploaded to DATA_DIR."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line tool is needed for the proxy's certificates")
    for emulator in gcs_emulator.serving(BUCKET):  # Yields once; its teardown runs after ours.
        with tls_proxy.TlsProxy(emulator.endpoint) as proxy:
            root = tmp_path_factory.mktemp("gcs-tfds")
            local = root / "local"
            env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", HOME=str(root))
            env.pop("TFDS_DATA_DIR", None)
            prepared = _run(["-c", DIGEST, str(local), "prepare"], env)
            assert prepared.returncode == 0, prepared.stderr[-3000:]
            digest = json.loads(prepared.stdout.splitlines()[-1])
            storage.upload_dir(str(local), DATA_DIR)
            yield Served(emulator, proxy, root, local, digest)


def test_the_uploaded_copy_is_in_the_bucket(served):
    assert _objects(DATA_DIR) == _md5s(served.local)
    assert any(name.endswith(".tfrecord-00000-of-00001") for name in _objects(DATA_DIR))


def test_tfds_load_reads_the_same_examples_from_the_bucket(served):
    before = len(served.proxy.snapshot())
    out = _run(["-c", DIGEST, DATA_DIR, "read"], served.env("load"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == served.digest
    assert served.digest["train"][0] == 1438 and served.digest["test"][0] == 359
    requests = served.proxy.snapshot()[before:]
    assert _reads(requests, f"tfds/{DIGITS}/") >= {
        f"tfds/{DIGITS}/1.0.0/{DIGITS}-{split}.tfrecord-00000-of-00001"
        for split in ("train", "test")
    }
    assert not [r for r in requests if r[0] in WRITES], "reading wrote to the bucket"


def test_the_cli_trains_on_the_bucket_data(served):
    workdir = served.root / "run"
    env = served.env("train")
    before, objects = len(served.proxy.snapshot()), _objects(DATA_DIR)
    out = _run(
        ["-m", "tfplaybook.run", "--mode=train", f"--experiment={MLP}", f"--data_dir={DATA_DIR}",
         f"--workdir={workdir}", *SHORT],
        env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "evaluate every 10 steps on 359 examples" in out.stdout
    assert "completed: best validation accuracy" in out.stdout
    status = td.read_status(workdir)
    assert status["status"] == "completed" and status["step"] == 20
    assert td.read_config(workdir)["data"]["data_dir"] == DATA_DIR
    requests = served.proxy.snapshot()[before:]
    assert _reads(requests, f"tfds/{DIGITS}/") >= {
        f"tfds/{DIGITS}/1.0.0/{DIGITS}-{split}.tfrecord-00000-of-00001"
        for split in ("train", "test")
    }
    assert not [r for r in requests if r[0] in WRITES], "training wrote to the data bucket"
    assert _objects(DATA_DIR) == objects
    # No local copy was made or used: no TFDS directory in the run's HOME or work directory.
    home = env["HOME"]
    assert not os.path.exists(os.path.join(home, "tensorflow_datasets"))
    assert not [f for _, _, files in os.walk(workdir) for f in files if ".tfrecord" in f]


def test_the_embedded_digits_prepare_themselves_into_an_empty_bucket_path(served):
    """As in a local data_dir, the digits are made on first use by the project's code (the call
    a trial makes), here into the bucket through TF's filesystem, and read back the same."""
    url = f"gs://{BUCKET}/fresh"
    out = _run(["-c", DIGEST, url, "prepare"], served.env("fresh"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == served.digest
    # Same examples in the same order, but not always the same bytes: a tf.train.Example's feature
    # map is serialized in an order that follows the process's string hash seed (PYTHONHASHSEED).
    objects = _objects(url)
    assert set(_md5s(served.local)) <= set(objects)  # Every file of a local preparation.
    assert not [k for k in objects if "incomplete" in k]  # The temporary directory was renamed.


def test_an_unprepared_or_unreadable_bucket_data_dir_is_one_line_exit_2(served):
    """A TFDS dataset missing from the bucket, and a bucket that does not exist."""
    cases = [
        (["--dataset=tfds:mnist", f"--data_dir=gs://{BUCKET}/empty"], "not prepared"),
        (["--data_dir=gs://no-such-bucket-tfds/tfds"], "no-such-bucket-tfds"),
    ]

    def attempt(index_case):
        index, (args, _) = index_case
        workdir = served.root / f"bad-{index}"
        args = ["-m", "tfplaybook.run", "--mode=train", f"--experiment={MLP}", *args, *SHORT]
        return workdir, _run([*args, f"--workdir={workdir}"], served.env(f"bad-{index}"))

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, enumerate(cases)))
    for (args, fragment), (workdir, out) in zip(cases, results):
        errors = _error_lines(out.stderr)
        assert out.returncode == 2, (args, out.stderr[-2000:])
        assert len(errors) == 1 and fragment in errors[0], (args, out.stderr[-2000:])
        assert "Traceback" not in out.stderr, args
        assert not workdir.exists(), args
    assert not _objects(f"gs://{BUCKET}/empty")  # Nothing was written for the missing dataset.
