"""`--help` shows tfplaybook's own flags and a table of every mode (pure: no TensorFlow)."""

import re
import subprocess
import sys

from conftest import REPO

from tfplaybook import flags, run


def test_help_lists_the_projects_flags_and_modes():
    out = subprocess.run(
        [sys.executable, "-m", "tfplaybook.run", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout  # absl's --help exits with status 1.
    for flag in ("--mode", "--workdir", "--experiment", "--override", "--strategy"):
        assert f"  {flag}" in out, flag


def test_modes_table_names_every_mode_once():
    table = run.__doc__.split("Modes (--mode):")[1].split("\n\n")[0]
    names = re.findall(r"^  (\w+) ", table, flags=re.M)
    assert sorted(names) == sorted(flags.MODES)
