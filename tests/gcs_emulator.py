"""A real GCS JSON API on loopback for tests: gcp-storage-emulator in a subprocess.

    with GcsEmulator() as emulator:
        emulator.create_bucket("b")
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.endpoint

The emulator keeps objects in memory and stops with the context. Readiness is polled on its HTTP
port (no fixed sleeps); the overall wait is generous so a loaded machine only makes it slower.
"""

import importlib.util
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

START_TIMEOUT = 120.0  # seconds; the emulator answers within about a second on an idle machine
POLL_INTERVAL = 0.05


def available():
    """True if the gcp-storage-emulator package is installed."""
    return importlib.util.find_spec("gcp_storage_emulator") is not None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsEmulator:
    """gcp-storage-emulator on 127.0.0.1:<free port>, in memory."""

    def __init__(self, start_timeout=START_TIMEOUT):
        self.start_timeout = start_timeout
        self.process = None
        self.port = None
        self._log = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        # A port found free can be taken before the emulator binds it: then try another one.
        deadline = time.monotonic() + self.start_timeout
        last_error = None
        for _ in range(3):
            self.port = _free_port()
            self._log = tempfile.TemporaryFile()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gcp_storage_emulator",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--in-memory",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                self._wait_ready(deadline)
                return self
            except _Exited as e:
                last_error = e
                self._log.close()
        raise RuntimeError(f"gcp-storage-emulator did not start: {last_error}")

    def _wait_ready(self, deadline):
        while True:
            if self.process.poll() is not None:
                raise _Exited(f"exit status {self.process.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"gcp-storage-emulator did not answer on {self.endpoint} within "
                    f"{self.start_timeout:.0f} s: {self.log()[-2000:]}"
                )
            time.sleep(POLL_INTERVAL)

    def log(self):
        """What the emulator printed so far."""
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def create_bucket(self, name, project="test"):
        """Creates a bucket through the JSON API (independent of the client under test)."""
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project={project}",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise RuntimeError(f"bucket {name} not created: HTTP {response.status}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        if self._log is not None:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Exited(RuntimeError):
    pass


def emulator_env(endpoint):
    """Environment variables that point google-cloud-storage at the emulator (anonymous access).

    gcsfs reads STORAGE_EMULATOR_HOST too, but would also need
    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before its import; tfplaybook does not use it."""
    return {"STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "test"}


def serving(bucket):
    """A module fixture's body: the running emulator with `bucket`, STORAGE_EMULATOR_HOST set
    while the module's tests run and unset after (no later test of the same worker sees it).

        @pytest.fixture(scope="module")
        def gcs():
            yield from gcs_emulator.serving(BUCKET)
    """
    import pytest

    from tfplaybook.files import gcs

    if not available():
        pytest.skip("gcp-storage-emulator is not installed (pip install -e '.[test]')")
    with GcsEmulator() as emulator, pytest.MonkeyPatch.context() as mp:
        emulator.create_bucket(bucket)
        for name, value in emulator_env(emulator.endpoint).items():
            mp.setenv(name, value)
        gcs.reset()
        yield emulator
        gcs.reset()


if __name__ == "__main__":  # manual use: prints the endpoint and serves until interrupted
    with GcsEmulator() as emulator:
        emulator.create_bucket(sys.argv[1] if len(sys.argv) > 1 else "test-bucket")
        print(f"STORAGE_EMULATOR_HOST={emulator.endpoint}", flush=True)
        try:
            emulator.process.wait()
        except KeyboardInterrupt:
            pass
