"""The study report written by a second process while the study's own process exports its best
trial (tfplaybook.analysis.report.background), and written here whenever that process is not."""

import os
import shutil
import sys

import fixtures_analysis as fx
import pytest
from conftest import snapshot, without_tensorflow

from tfplaybook.analysis import report
from tfplaybook.analysis.report import background


def _study(tmp_path, name):
    path = str(tmp_path / name)
    fx.realistic_study(path, num_trials=4)
    return path


def test_the_second_process_writes_what_this_process_writes_and_imports_no_tensorflow(
    tmp_path, monkeypatch
):
    here = _study(tmp_path, "here")
    there = str(tmp_path / "there")
    shutil.copytree(here, there)
    report.write_report(here)
    # TensorFlow, Keras and keras-tuner raise on import in the second process.
    monkeypatch.setenv("PYTHONPATH", without_tensorflow(str(tmp_path / "poison"))["PYTHONPATH"])
    with background.Reporter() as reporter:
        pid = reporter.pid
        reporter.request(there)
        assert reporter.result() == os.path.join(there, "report.html")
        assert reporter.pid == pid is not None  # Still the second process: it wrote the report.
    pages = ("report.md", "report.html")  # They name their own directory.
    assert {k: v for k, v in snapshot(there).items() if k not in pages} == {
        k: v for k, v in snapshot(here).items() if k not in pages
    }
    for page in pages:
        with open(os.path.join(here, page)) as a, open(os.path.join(there, page)) as b:
            assert b.read() == a.read().replace(here, there)


def test_a_report_is_written_here_when_the_second_process_has_died(tmp_path):
    study = _study(tmp_path, "study")
    with background.Reporter() as reporter:
        os.kill(reporter.pid, 9)
        reporter.request(study)
        assert reporter.result() == os.path.join(study, "report.html")
        assert reporter.pid is None
    assert os.path.exists(os.path.join(study, "report.md"))


def test_a_report_that_fails_there_raises_here_what_it_raises_without_a_second_process(tmp_path):
    with background.Reporter() as reporter:
        reporter.request(str(tmp_path / "missing"))
        with pytest.raises(FileNotFoundError):
            reporter.result()


def test_reports_are_written_here_when_no_second_process_can_start(tmp_path, monkeypatch):
    study = _study(tmp_path, "study")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with background.Reporter() as reporter:
        assert reporter.pid is None
        reporter.request(study)
        assert reporter.result() == os.path.join(study, "report.html")
