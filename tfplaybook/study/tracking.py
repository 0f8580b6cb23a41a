"""Experiment tracking (checklist 93): an SQLite index of studies in the runs root.

One row per study: name, experiment file, notes, trials run, best validation value, the exact
command that reproduces it, and status. "Untracked experiments might as well not exist." Pure
Python (sqlite3 from the standard library); SQLite transactions make every update atomic.
"""

import contextlib
import os
import sqlite3
import time

from tfplaybook import config as config_lib
from tfplaybook.config import SAFE_CHANGES
from tfplaybook.files import trial_dir as td
from tfplaybook.training import selection

INDEX = "index.sqlite"
COLUMNS = ("name", "experiment", "notes", "trials", "best_value", "command", "status", "workdir")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
  workdir TEXT PRIMARY KEY, name TEXT, experiment TEXT, notes TEXT, trials INTEGER,
  best_value REAL, command TEXT, status TEXT, updated REAL
)"""


class StudyIndex:
    """The study index of one runs root.

    Every SQLite error (a damaged, locked or read-only index) is a ConfigError of one line naming
    the file; `check` finds the same before a study writes anything.
    """

    def __init__(self, root, create=True):
        self.path = os.path.join(root, INDEX)
        if not create and not os.path.exists(self.path):
            raise config_lib.ConfigError(
                f"no study index at {self.path}; run --mode=tune first or pass --runs_root"
            )
        if create:
            os.makedirs(root, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    @classmethod
    def check(cls, root):
        """Raises ConfigError unless the index of `root` can be read and written (writes nothing).

        A missing index only needs a writable place to be created in.
        """
        from tfplaybook.training import workdir as workdir_lib

        path = os.path.join(root, INDEX)
        if not os.path.exists(path):
            try:
                workdir_lib.check_writable(root)
            except config_lib.ConfigError as e:
                raise config_lib.ConfigError(f"the study index cannot be created: {e}") from None
            return
        if not os.access(path, os.W_OK) or not os.access(root, os.W_OK):
            raise config_lib.ConfigError(
                f"study index {path} is read-only; make it writable or pass --runs_root"
            )
        with _sqlite_errors(path), contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        ) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "studies" in tables:
                db.execute(f"SELECT {', '.join(COLUMNS)} FROM studies LIMIT 1").fetchall()

    @contextlib.contextmanager
    def _connect(self):
        with _sqlite_errors(self.path), contextlib.closing(
            sqlite3.connect(self.path, timeout=30)
        ) as db:
            with db:  # One transaction: committed on success, rolled back on an error.
                yield db

    def record(self, workdir, config, experiment, notes, command, status, trials=0, best=None):
        """Inserts or updates the study's row; notes given earlier are kept when none is given.

        A gs:// study's staging copy is recorded by its URL (tfplaybook.files.remote).
        """
        from tfplaybook.files import remote

        workdir = remote.remote_url(workdir) or os.path.abspath(workdir)
        with self._connect() as db:
            row = db.execute("SELECT notes FROM studies WHERE workdir = ?", (workdir,)).fetchone()
            notes = notes or (row[0] if row else "")
            db.execute(
                "INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    workdir,
                    config.get("study", {}).get("name", os.path.basename(workdir)),
                    experiment,
                    notes,
                    trials,
                    best,
                    command,
                    status,
                    time.time(),
                ),
            )

    def rows(self):
        with self._connect() as db:
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM studies ORDER BY updated")
            return [dict(zip(COLUMNS, r)) for r in cursor.fetchall()]

    def table(self):
        """The index as a plain-text table."""
        rows = [
            {
                k: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
                for k, v in row.items()
            }
            for row in self.rows()
        ]
        if not rows:
            return "(no studies yet)"
        widths = {c: min(60, max(len(c), *(len(r[c]) for r in rows))) for c in COLUMNS}
        lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
        lines += ["  ".join(r[c][: widths[c]].ljust(widths[c]) for c in COLUMNS) for r in rows]
        return "\n".join(lines)


@contextlib.contextmanager
def _sqlite_errors(path):
    try:
        yield
    except sqlite3.Error as e:
        raise config_lib.ConfigError(
            f"study index {path} cannot be used ({e}); move it aside (a new index is started) "
            "or pass --runs_root"
        ) from None


def trial_dirs(study_dir):
    """Every trial directory of a study (sub-directories holding status.json), sorted."""
    if not os.path.isdir(study_dir):
        return []
    return sorted(
        os.path.join(study_dir, name)
        for name in os.listdir(study_dir)
        if os.path.exists(os.path.join(study_dir, name, td.STATUS))
    )


def summarize(study_dir, config, known=None):
    """Trials finished, best completed value and study status, from the trial directories.

    `known` (a dict the caller keeps between calls) remembers finished trials, whose status no
    longer changes: a study that summarizes after every trial then reads only the unfinished
    trials' status files, not all of them (flat per-trial cost in a 1,000-trial study).
    """
    known = {} if known is None else known
    finished, points = 0, []
    for directory in trial_dirs(study_dir):
        status = known.get(directory)
        if status is None:
            try:
                status = td.read_status(directory)
            except td.DamagedFileError:
                continue
            if status["status"] in td.FINISHED:
                known[directory] = status
        if status["status"] in td.FINISHED:
            finished += 1
        if status["status"] == td.COMPLETED and status.get("best_value") is not None:
            points.append((0, status["best_value"]))
    best = selection.best_of(points, config["objective"]["goal"])
    complete = finished >= config["study"]["max_trials"]
    return {
        "trials": finished,
        "best_value": best[1] if best else None,
        "status": "completed" if complete else "incomplete",
    }


STUDY = "study.json"
# Config changes a live study accepts: more trials, a worker timeout, the study's label.
NEW, UNFINISHED, FINISHED = "new", "unfinished", "finished"


def check_study_dir(study_dir, config):
    """The state of `study_dir` for `config`: NEW, UNFINISHED or FINISHED (pure, writes nothing).

    A study remembers the config it started with (study.json "config"); a rerun with another
    config is refused, naming the keys that differ, except for SAFE_CHANGES (and study.max_trials
    only upwards: finished trials are never undone).

    Raises:
      ConfigError: on a changed config, a lowered max_trials, or a damaged study.json that
        cannot tell which config the study ran.
    """
    path = os.path.join(study_dir, STUDY)
    if not os.path.exists(path):
        return NEW if not trial_dirs(study_dir) else _state(study_dir, config)
    ignored = set(SAFE_CHANGES)
    try:
        saved = td.read_json(path).get("config")
    except td.DamagedFileError as e:
        saved = _first_trial_config(study_dir)
        if saved is None:
            raise config_lib.ConfigError(
                f"{e}, and no trial config tells which study this is; move it away or use a new "
                "--workdir"
            ) from None
        td.warn(f"{e}; the study's config is taken from its trials, and study.json rewritten")
        # A trial's config holds its own values of the searched keys: those may differ.
        ignored |= {entry.get("name") for entry in config["study"].get("search_space", ())}
    if saved is not None:
        differ = [
            k
            for k in config_lib.differing_keys(saved, config)
            if k not in ignored and not _added_at_default(saved, config, k)
        ]
        if differ:
            raise config_lib.ConfigError(
                f"--workdir={study_dir!r} holds a study of a different config (differs at: "
                f"{', '.join(differ[:8])}); use a new --workdir for it (a live study accepts "
                f"only changes of {', '.join(SAFE_CHANGES)})"
            )
        before = saved.get("study", {}).get("max_trials", 0)
        if config["study"]["max_trials"] < before:
            raise config_lib.ConfigError(
                f"study.max_trials={config['study']['max_trials']} is below the "
                f"{before} this study was started with; it can only grow"
            )
    return _state(study_dir, config)


def _added_at_default(saved, config, key):
    """True for a key the study's config lacks (a setting added by a newer tfplaybook) whose
    value is its base default: the trials ran with that behaviour, so it is no change."""
    from tfplaybook.training import task as task_lib

    try:
        config_lib.get_path(saved, key)
        return False
    except KeyError:
        pass
    try:
        return config_lib.get_path(task_lib.BASE_DEFAULTS, key) == config_lib.get_path(config, key)
    except KeyError:
        return False


def _first_trial_config(study_dir):
    for directory in trial_dirs(study_dir):
        try:
            return td.read_config(directory)
        except (OSError, td.DamagedFileError):
            continue
    return None


def _state(study_dir, config):
    """FINISHED when max_trials trials ended and no state file needs repair, else UNFINISHED."""
    if summarize(study_dir, config)["status"] != "completed":
        return UNFINISHED
    for directory in trial_dirs(study_dir):
        # A damaged best-checkpoint index is repaired by a full run (tfplaybook.study.resilience).
        index = os.path.join(directory, td.CHECKPOINTS, td.BEST, td.BEST_INDEX)
        if os.path.exists(index):
            try:
                td.read_json(index)
            except td.DamagedFileError:
                return UNFINISHED
    return FINISHED
