"""Procedure directories, report sections and plots (pure Python + matplotlib Agg)."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfplaybook.procedures import (
    batch_sweep,
    clipping,
    instability,
    lr_sweep,
    output,
    rounds,
    warmup,
)

pytestmark = [pytest.mark.pure, pytest.mark.matplotlib]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strict_json(path):
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    with open(path) as f:
        return json.load(f, parse_constant=reject)


def lr_sweep_case():
    steps = list(range(0, 500, 50))
    series = {
        0.1: (steps, [0.0 if s >= 300 else 0.4 for s in steps]),
        0.3: (steps, [0.0 if s >= 150 else 0.4 for s in steps]),
        1.0: (steps, [0.4, 0.5] + [math.nan] * 8),
    }
    return series, lr_sweep.analyze(series)


def test_write_procedure_dir_writes_measurements_plot_and_summary(tmp_path):
    series, res = lr_sweep_case()
    rows = output.series_rows(series, "learning_rate", "train_error")
    paths = output.write_procedure_dir(str(tmp_path), res, rows, lr_sweep.plot(series, res))
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["measurements.json", "measurements.csv", "plot.png", "summary.json"]
    )
    assert set(paths) == set(os.listdir(tmp_path))
    summary = output.read_summary(str(tmp_path))
    assert summary["numbers"]["recommended_max_train_steps"] == 150
    assert summary["overrides"] == ["max_train_steps=150"]
    stored = strict_json(paths["measurements.json"])  # NaN stored as a string, still valid JSON.
    assert len(stored) == 30
    assert stored[-1] == {"learning_rate": 1.0, "step": 450, "train_error": "nan"}
    with open(paths["measurements.csv"]) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["learning_rate", "step", "train_error"]
    assert table[15] == {"learning_rate": "0.3", "step": "250", "train_error": "0.0"}
    with open(paths["plot.png"], "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_rewriting_leaves_no_temporary_files_and_incomplete_dirs_have_no_summary(tmp_path):
    _, res = lr_sweep_case()
    assert output.read_summary(str(tmp_path)) is None
    output.write_procedure_dir(str(tmp_path), res, [{"a": 1}])
    output.write_procedure_dir(str(tmp_path), res, [{"a": 2}])
    assert sorted(os.listdir(tmp_path)) == ["measurements.csv", "measurements.json", "summary.json"]


def test_report_section_shows_recommendation_checklist_table_and_thresholds(tmp_path):
    records = [
        {"batch_size": 32, "status": "ok", "step_times_s": [0.1, 0.1]},
        {"batch_size": 64, "status": "ok", "step_times_s": [0.1, 0.1]},
        {"batch_size": 128, "status": "oom", "reason": "<ResourceExhausted>"},
    ]
    res = batch_sweep.analyze(records, current_batch_size=32)
    output.write_procedure_dir(str(tmp_path), res, batch_sweep.measurement_rows(records))
    section_id, title, html, md = output.report_section(output.read_summary(str(tmp_path)), "p.png")
    assert section_id == "procedure-batch_sweep"
    assert title.startswith("Batch-size sweep")
    assert "Use batch_size=64" in html and "Use batch_size=64" in md
    assert '<li class="warn">' in html  # Checklist 16: the batch size changes.
    assert "&lt;ResourceExhausted&gt;" in html and "<ResourceExhausted>" not in html
    assert '<img src="p.png"' in html and "](p.png)" in md
    # Columns keep the rule's order after the JSON round trip sorted the keys.
    assert "| data | batch_size | status | examples_per_s |" in md
    assert "min_scaling_efficiency = 0.8 (tfplaybook's choice" in md


def test_every_procedure_plot_renders(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.arange(200)
    loss = 2.0 * np.exp(-steps / 40.0) + 0.1
    climbing = loss.copy()
    climbing[120:] = 1.0
    norms = rng.lognormal(size=300)
    records = [{"batch_size": b, "status": "ok", "step_times_s": [0.01, 0.011]} for b in (8, 16)]
    series, lr_res = lr_sweep_case()
    probes = {2.0: (steps, loss), 10.0: (steps, climbing)}
    by_warmup = {10: (steps, climbing), 100: (steps, loss)}
    figures = {
        "batch": batch_sweep.plot(batch_sweep.analyze(records, records)),
        "lr": lr_sweep.plot(series, lr_res),
        "probe": instability.plot(probes, instability.analyze_probes(probes)),
        "warmup": warmup.plot(
            by_warmup,
            3.0,
            warmup.analyze(
                instability.classify(by_warmup), {"max_train_steps": 2000, "schedule": {}}
            ),
        ),
        "clip": clipping.plot(np.arange(300), norms, clipping.analyze(norms, clip_norm=1.0)),
    }
    for name, figure in figures.items():
        path = str(tmp_path / f"{name}.png")
        output.write_png(figure, path)
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC, name


def test_report_section_for_config_transforms_lists_overrides():
    base = {
        "max_train_steps": 1000,
        "eval_every_steps": 100,
        "optimizer": {"learning_rate": 0.1},
        "schedule": {"name": "cosine", "warmup_steps": 0},
    }
    res = rounds.round1_config(base)
    _, title, html, md = output.report_section(res)
    assert title == "Tuning round 1: short runs"
    assert "max_train_steps=100" in html and "eval_every_steps=10" in md


def test_procedure_modules_do_not_import_tensorflow_or_pyplot():
    code = (
        "import sys\n"
        "from tfplaybook.procedures import batch_sweep, clipping, instability, lr_sweep, output\n"
        "from tfplaybook.procedures import rounds, warmup\n"
        "bad = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinities_are_stored_as_strings(tmp_path, value):
    _, res = lr_sweep_case()
    paths = output.write_procedure_dir(str(tmp_path), res, [{"loss": value}])
    assert strict_json(paths["measurements.json"]) == [{"loss": str(value)}]
