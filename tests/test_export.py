"""trials.csv: one row per trial, hyperparameters, roles, objective and final metrics."""

import csv
import os

import fixtures_analysis as fx
import pytest

from tfplaybook.analysis import export, study_data
from tfplaybook.files import trial_dir as td

pytestmark = pytest.mark.pure

SPACE = [
    {
        "name": "optimizer.name",
        "role": "scientific",
        "scale": "categorical",
        "values": ["nesterov", "adam"],
    },
    {
        "name": "optimizer.learning_rate",
        "role": "nuisance",
        "scale": "log",
        "min": 1e-3,
        "max": 1.0,
    },
    {
        "name": "optimizer.beta1",
        "role": "nuisance",
        "scale": "reverse_log",
        "min": 0.5,
        "max": 0.99,
        "parent": "optimizer.name",
        "parent_value": "adam",
    },
]
TRIALS = [
    {"values": {"optimizer.name": "nesterov", "optimizer.learning_rate": 0.0123456789}},
    {
        "values": {
            "optimizer.name": "adam",
            "optimizer.learning_rate": 0.003,
            "adam/optimizer.beta1": 0.9,
        },
        "status": td.DIVERGED,
    },
    {
        "values": {
            "optimizer.name": "adam",
            "optimizer.learning_rate": 0.001,
            "adam/optimizer.beta1": 0.95,
        },
        "shape": "overfit",
    },
]


@pytest.fixture
def study(tmp_path):
    fx.make_study(str(tmp_path), SPACE, TRIALS)
    return study_data.load_study(str(tmp_path))


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_trial_with_values_roles_and_objective(study):
    path = export.write_trials_csv(study)
    assert path == os.path.join(study.path, "trials.csv")
    rows = _read(path)
    assert [r["trial_id"] for r in rows] == ["trial_000", "trial_001", "trial_002"]
    assert [r["status"] for r in rows] == ["completed", "diverged", "completed"]
    assert [r["feasible"] for r in rows] == ["True", "False", "True"]
    # Floats survive the round trip exactly.
    assert float(rows[0]["hp:optimizer.learning_rate"]) == 0.0123456789
    for row, trial in zip(rows, study.trials):
        assert float(row["objective"]) == trial.objective
        assert int(row["best_step"]) == trial.best_step
    assert rows[2]["role:optimizer.name"] == "scientific"
    assert rows[2]["role:adam/optimizer.beta1"] == "nuisance"
    # An inactive conditional hyperparameter is an empty cell.
    assert rows[0]["hp:adam/optimizer.beta1"] == ""
    assert rows[2]["hp:adam/optimizer.beta1"] == "0.95"


def test_final_metrics_are_the_last_logged_values(study):
    rows = _read(export.write_trials_csv(study))
    _, values = td.series(td.read_measurements(study.trials[2].path), "validation", "accuracy")
    assert float(rows[2]["final:validation/accuracy"]) == values[-1]
    # Overfitting trial: the objective (best over training) beats the final value (checklist 43).
    assert float(rows[2]["objective"]) > values[-1]
    # The diverged trial's last loss was NaN; it is kept as such, not dropped.
    assert rows[1]["final:train/loss"] == "nan"


def test_header_is_stable(study):
    header = export.trials_csv_text(study).splitlines()[0].split(",")
    assert header[: len(export.BASE_COLUMNS)] == list(export.BASE_COLUMNS)
    dims = ["optimizer.name", "optimizer.learning_rate", "adam/optimizer.beta1"]
    assert [h for h in header if h.startswith("hp:")] == [f"hp:{d}" for d in dims]
    assert [h for h in header if h.startswith("role:")] == [f"role:{d}" for d in dims]


def test_pandas_reads_numeric_columns(study):
    pandas = pytest.importorskip(
        "pandas", reason="pandas is not installed (setup.py's test extra installs it)"
    )
    frame = pandas.read_csv(export.write_trials_csv(study))
    assert len(frame) == 3
    assert frame["hp:optimizer.learning_rate"].dtype.kind == "f"
    assert frame["best_step"].dtype.kind in "if"
    assert frame["feasible"].dtype.kind == "b"
