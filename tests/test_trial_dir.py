"""The trial directory format: atomic state files, append-only measurements (pure)."""

import json
import os

import pytest

from tfplaybook.files import trial_dir as td

pytestmark = pytest.mark.pure


def test_status_round_trip_keeps_previous_fields(tmp_path):
    td.write_status(tmp_path, td.RUNNING, step=5, seeds={"model_init": 1})
    td.write_status(tmp_path, td.COMPLETED, step=10, best_step=8)
    status = td.read_status(tmp_path)
    assert status["status"] == "completed" and status["step"] == 10
    assert status["seeds"] == {"model_init": 1} and status["best_step"] == 8


def test_bad_status_value_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not one of"):
        td.write_status(tmp_path, "paused")


def test_truncated_status_is_reported_as_damaged(tmp_path):
    (tmp_path / td.STATUS).write_text('{"status": "compl')
    with pytest.raises(td.DamagedFileError, match="status.json"):
        td.read_status(tmp_path)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    td.atomic_write_json(tmp_path / "x.json", {"a": 1})
    td.atomic_write_json(tmp_path / "x.json", {"a": 2})
    assert os.listdir(tmp_path) == ["x.json"]
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 2}


def test_measurements_skip_torn_line_and_keep_non_finite(tmp_path):
    td.append_measurements(
        tmp_path, [(1, "train", "loss", 2.0), (2, "train", "loss", float("nan"))]
    )
    with open(tmp_path / td.MEASUREMENTS, "a") as f:
        f.write('{"step": 3, "split": "tr')  # A kill during append.
    rows = td.read_measurements(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["value"] != rows[1]["value"]  # NaN survives the round trip.


def test_measurements_lines_are_json_and_a_damaged_line_costs_only_itself(tmp_path):
    rows = [(1, "train", "loss", 0.1), (2, "validation", 'top"k', float("-inf")), (3, "t", "m", 7)]
    td.append_measurements(tmp_path, rows)
    lines = (tmp_path / td.MEASUREMENTS).read_text().splitlines()
    stored = [json.loads(line) for line in lines]
    assert stored[1] == {"step": 2, "split": "validation", "metric": 'top"k', "value": "-inf"}
    assert lines[0] == json.dumps({"step": 1, "split": "train", "metric": "loss", "value": 0.1})
    with open(tmp_path / td.MEASUREMENTS, "a") as f:
        f.write("\x00garbage\n")  # A damaged line in the middle (a disk fault), then more rows.
    td.append_measurements(tmp_path, [(4, "train", "loss", 0.05)])
    read = td.read_measurements(tmp_path)
    assert [(r["step"], r["metric"], r["value"]) for r in read] == [
        (1, "loss", 0.1),
        (2, 'top"k', float("-inf")),
        (3, "m", 7.0),
        (4, "loss", 0.05),
    ]


def test_truncate_drops_work_after_the_checkpoint(tmp_path):
    td.append_measurements(tmp_path, [(s, "train", "loss", s) for s in range(1, 11)])
    td.truncate_measurements(tmp_path, 6)
    steps, values = td.series(td.read_measurements(tmp_path), "train", "loss")
    assert steps == list(range(1, 7)) and values == [float(s) for s in range(1, 7)]
