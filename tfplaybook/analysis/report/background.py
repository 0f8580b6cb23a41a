"""A study's report written by a second process while the study's own process exports.

The last two steps of a study are its report (matplotlib: about 3 s for the default study) and
the export of its best trial (TensorFlow: about 1.2 s). They read different files and use
different libraries, so `Reporter` starts a process that imports the report's libraries while the
study's process imports TensorFlow and trains, and then waits; `request(study_dir)` has it write
the report, `result()` waits for it. The second process imports no TensorFlow (it runs
`write_report`, which reads trial directories only) and ends when its input closes, so a study
killed at any moment leaves no process behind (a report it was writing is written atomically,
file by file, and a resumed study writes it again).

The second process names the files it wrote, and this one uploads them when the study is in a
bucket (tfplaybook.files.remote). Whenever the second process cannot start, dies or fails,
`result()` writes the report in this process instead: the same files, and the same exception
when writing them fails.
"""

import json
import os
import site
import subprocess
import sys

from tfplaybook.files import remote

_PACKAGE_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


def _installed():
    """True when tfplaybook is imported from site-packages (which must not go on PYTHONPATH,
    ahead of the standard library)."""
    sites = site.getsitepackages() + [site.getusersitepackages()]
    return any(os.path.abspath(d) == _PACKAGE_ROOT for d in sites)


class Reporter:
    """The second process; `request`, then `result`, once per study; `close` at the end."""

    def __init__(self):
        env = dict(os.environ)
        if not _installed():  # A checkout: the same tfplaybook as this process's.
            path = [_PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]
            env["PYTHONPATH"] = os.pathsep.join(path)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
        except OSError:
            self._process = None  # No second process: reports are written here.
        self._study_dir = None

    @property
    def pid(self):
        """The second process's id, or None when reports are written in this process."""
        return self._process.pid if self._process is not None else None

    def request(self, study_dir):
        """Starts writing `study_dir`'s report (in the second process when it is there)."""
        self._study_dir = study_dir
        if self._process is None:
            return
        try:
            self._process.stdin.write(json.dumps({"study_dir": study_dir}) + "\n")
            self._process.stdin.flush()
        except OSError:
            self.close()

    def result(self):
        """The path of the requested report.html, once it is written."""
        study_dir, self._study_dir = self._study_dir, None
        if self._process is not None:
            line = self._process.stdout.readline()
            reply = json.loads(line) if line.strip() else {}
            if reply.get("path"):
                for path in reply["written"]:
                    remote.on_write(path)  # A gs:// study's bucket gets them from here.
                return reply["path"]
            self.close()  # Died or failed: this process writes it, and raises what it raises.
        from tfplaybook.analysis import report

        return report.write_report(study_dir)

    def close(self):
        """Ends the second process (its input closes; it exits after any report it is writing)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
        except OSError:
            pass
        process.stdout.close()
        process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve():
    replies = sys.stdout
    sys.stdout = sys.stderr  # Anything the report prints goes where this process's output goes.
    from tfplaybook.analysis import report

    for line in sys.stdin:
        study_dir = json.loads(line)["study_dir"]
        try:
            with remote.recording() as written:
                path = report.write_report(study_dir)
            reply = {"path": path, "written": written}
        except Exception as e:  # noqa: BLE001  (the study's process writes it and raises)
            reply = {"error": f"{type(e).__name__}: {e}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve()
