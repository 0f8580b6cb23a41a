"""Experiment tracking (checklist 93): an SQLite index of studies in the runs root.

One row per study: name, experiment file, notes, trials run, best validation value, the exact
command that reproduces it, and status. "Untracked experiments might as well not exist." Pure
Python (sqlite3 from the standard library); SQLite transactions make every update atomic.
"""

import os
import sqlite3
import time

from tfplaybook import config as config_lib
from tfplaybook import selection
from tfplaybook import trial_dir as td

INDEX = "index.sqlite"
COLUMNS = ("name", "experiment", "notes", "trials", "best_value", "command", "status", "workdir")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
  workdir TEXT PRIMARY KEY, name TEXT, experiment TEXT, notes TEXT, trials INTEGER,
  best_value REAL, command TEXT, status TEXT, updated REAL
)"""


class StudyIndex:
    """The study index of one runs root."""

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

    def _connect(self):
        return sqlite3.connect(self.path, timeout=30)

    def record(self, workdir, config, experiment, notes, command, status, trials=0, best=None):
        """Inserts or updates the study's row; notes given earlier are kept when none is given."""
        workdir = os.path.abspath(workdir)
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


def trial_dirs(study_dir):
    """Every trial directory of a study (sub-directories holding status.json), sorted."""
    if not os.path.isdir(study_dir):
        return []
    return sorted(
        os.path.join(study_dir, name)
        for name in os.listdir(study_dir)
        if os.path.exists(os.path.join(study_dir, name, td.STATUS))
    )


def summarize(study_dir, config):
    """Trials finished, best completed value and study status, from the trial directories."""
    finished, points = 0, []
    for directory in trial_dirs(study_dir):
        try:
            status = td.read_status(directory)
        except td.DamagedFileError:
            continue
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
