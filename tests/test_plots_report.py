"""Figures and the self-contained report, including a render in headless Chromium."""

import base64
import html
import os
import re
import subprocess

import fixtures_analysis as fx
import numpy as np
import pytest
from matplotlib.figure import Figure

from tfplaybook.analysis import compare, plots, report, study_data
from tfplaybook.files import trial_dir as td

pytestmark = [pytest.mark.pure, pytest.mark.matplotlib]

CHROMIUM = "/usr/bin/chromium"
EXTRA = ("warmup", "Warmup sweep (checklist 110-114)", "<p>extra html</p>", "extra md")


def _extra_with_figure():
    figure = Figure()
    figure.add_subplot().plot([1, 10, 100], [0.9, 0.95, 0.93])
    return EXTRA + ([("sweep", figure, "warmup sweep")],)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("study"))
    fx.realistic_study(path)
    # A stale figure from an earlier report must not survive the next one.
    os.makedirs(os.path.join(path, report.FILES_DIR))
    with open(os.path.join(path, report.FILES_DIR, "stale.png"), "wb") as f:
        f.write(b"old")
    report.write_report(path, extra_sections=[_extra_with_figure()])
    return path


@pytest.fixture(scope="module")
def study(study_dir):
    return study_data.load_study(study_dir)


def _html(study_dir):
    with open(os.path.join(study_dir, "report.html")) as f:
        return f.read()


def _pngs(directory):
    files_dir = os.path.join(directory, report.FILES_DIR)
    return sorted(n for n in os.listdir(files_dir) if n.endswith(".png"))


def test_report_writes_every_file(study_dir):
    for name in ("report.html", "report.md", "trials.csv", "checks.json"):
        assert os.path.getsize(os.path.join(study_dir, name)) > 0, name
    assert _pngs(study_dir) == sorted(
        [
            "axis_model.width.png",
            "axis_optimizer.learning_rate.png",
            "axis_optimizer.momentum.png",
            "best_step.png",
            "gradient_norms.png",
            "isolation_model.width.png",
            "training_curves.png",
            "trial_budget.png",
            "warmup_sweep.png",
        ]
    )
    for name in _pngs(study_dir):
        with open(os.path.join(study_dir, report.FILES_DIR, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name


def test_html_is_self_contained_and_embeds_the_written_pngs(study_dir):
    page = _html(study_dir)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "<script src" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = sorted(base64.b64decode(s.split(",", 1)[1]) for s in sources)
    on_disk = []
    for name in _pngs(study_dir):
        with open(os.path.join(study_dir, report.FILES_DIR, name), "rb") as f:
            on_disk.append(f.read())
    assert embedded == sorted(on_disk)


def test_sections_in_order_and_checklist_cited(study_dir):
    page = _html(study_dir)
    ids = re.findall(r'<section id="([^"]+)"', page)
    expected = list(report.STANDARD_SECTIONS[:-1]) + ["warmup", "trials"]
    assert ids == expected
    for item in (
        "checklist 40",
        "checklist 56",
        "checklist 53-54",
        "checklist 69",
        "checklist 116-119",
        "checklist 43",
    ):
        assert item in page, item
    # Every check appears in the table, in order, with the verdict checks.json records.
    rows = re.findall(r'<tr class="(ok|warning|na)"><td>([^<]+)</td><td>([^<]+)', page)
    results = td.read_json(os.path.join(study_dir, "checks.json"))
    assert [(r["verdict"], html.unescape(r["title"])) for r in results] == [
        (verdict, html.unescape(title)) for _, verdict, title in rows
    ]
    assert any(r["verdict"] == "warning" for r in results)


def test_markdown_links_existing_images_and_has_anchors(study_dir):
    with open(os.path.join(study_dir, "report.md")) as f:
        text = f.read()
    for section_id in list(report.STANDARD_SECTIONS) + ["warmup"]:
        assert f'<a id="{section_id}"></a>' in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(_pngs(study_dir))
    assert all(os.path.exists(os.path.join(study_dir, link)) for link in links)
    assert "extra md" in text


def test_section_ids_must_be_unique(tmp_path):
    fx.realistic_study(str(tmp_path), num_trials=2)
    with pytest.raises(ValueError, match="must be unique and differ from the standard"):
        report.write_report(str(tmp_path), extra_sections=[("checks", "x", "", "")])
    with pytest.raises(ValueError, match="must be unique"):
        report.write_report(str(tmp_path), extra_sections=[EXTRA, EXTRA])
    assert not os.path.exists(os.path.join(str(tmp_path), "report.html"))


def _offsets(ax, marker_count):
    return [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == marker_count]


def test_axis_plot_scales_infeasible_and_top_three(study):
    lr = study.dimension("optimizer.learning_rate")
    ax = plots.axis_plot(study, lr).axes[0]
    assert ax.get_xscale() == "log"
    infeasible = [t for t in study.trials if not t.feasible]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["feasible (13)", "infeasible (1), drawn beyond the worst", "top 3 trials"]
    feasible_pts, infeasible_pts, top_pts = (c.get_offsets() for c in ax.collections)
    assert len(infeasible_pts) == len(infeasible) == 1
    low = ax.get_ylim()[0]
    assert low < infeasible_pts[0][1] < min(feasible_pts[:, 1])  # Visible, below the worst.
    best3 = study.best(3)
    assert sorted(top_pts[:, 1]) == sorted(t.objective for t in best3)
    momentum = plots.axis_plot(study, study.dimension("optimizer.momentum")).axes[0]
    assert momentum.get_xscale() == "function"  # Reverse-log axis.


def test_isolation_plot_shows_the_best_trial_per_value(study):
    width = study.dimension("model.width")
    ax = plots.isolation_plot(study, width).axes[0]
    line = ax.get_lines()[0]
    expected = []
    for value in (16, 32, 64):
        expected.append(
            max(t.objective for t in study.ranked() if t.values["model.width"] == value)
        )
    assert list(line.get_xdata()) == [16.0, 32.0, 64.0]
    assert list(line.get_ydata()) == expected


def test_training_curves_draw_every_trial(study):
    loss_ax, val_ax = plots.training_curves(study).axes
    assert len(loss_ax.get_lines()) == len(study.trials)
    assert len(val_ax.get_lines()) == len(study.trials)
    assert loss_ax.get_yscale() == "log"
    labels = [t.get_text() for t in val_ax.get_legend().get_texts()]
    assert [label.split()[1] for label in labels] == [t.id for t in study.best(3)]


def test_a_diverged_trials_blow_up_is_clipped_at_the_top_of_the_loss_panel(tmp_path):
    space = [fx.LR_DIM]
    fx.make_study(
        str(tmp_path),
        space,
        [{"values": {"optimizer.learning_rate": 0.01 * (i + 1)}} for i in range(3)]
        + [{"values": {"optimizer.learning_rate": 0.9}, "status": td.DIVERGED, "diverge_at": 60}],
    )
    td.append_measurements(str(tmp_path / "trial_003"), [(61, td.TRAIN, "loss", 1e30)])
    study = study_data.load_study(str(tmp_path))
    loss_ax = plots.training_curves(study).axes[0]
    feasible = np.concatenate([t.curve(td.TRAIN, "loss")[1] for t in study.trials if t.feasible])
    low, high = loss_ax.get_ylim()
    assert low <= feasible.min() and feasible.max() <= high < 10 * feasible.max()
    diverged = [line for line in loss_ax.get_lines() if line.get_linestyle() == "--"]
    assert len(diverged) == 1 and np.nanmax(diverged[0].get_ydata()) == pytest.approx(high)
    markers = [c for c in loss_ax.collections if len(c.get_offsets())]
    # The curve leaves the axis at its first non-finite or too-large loss (NaN at step 60).
    assert [tuple(c.get_offsets()[0]) for c in markers] == [(60.0, pytest.approx(high))]


def test_gradient_norm_plot_marks_clip_and_90th_percentile(study):
    best = study.best(1)[0]
    _, norms = best.curve(td.TRAIN, "grad_norm")
    line_ax, hist_ax = plots.gradient_norm_plot(study).axes
    levels = sorted(line.get_ydata()[0] for line in line_ax.get_lines()[1:])
    assert levels == pytest.approx(sorted([np.percentile(norms, 90), best.clip_norm]))
    assert sum(p.get_height() for p in hist_ax.patches) == len(norms)


def _render(html_path, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--dump-dom",
        "file://" + os.path.abspath(html_path),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False).stdout
    marker = re.search(r'<div id="render-check"[^>]*>', dom)
    assert marker, dom[-2000:]
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', marker.group(0)))
    return attributes


def test_report_renders_in_chromium(study_dir, tmp_path):
    rendered = _render(os.path.join(study_dir, "report.html"), tmp_path)
    assert int(rendered["images-total"]) == len(_pngs(study_dir)) == 9
    assert rendered["images-loaded"] == rendered["images-total"]
    assert rendered["sections"].split() == list(report.STANDARD_SECTIONS[:-1]) + [
        "warmup",
        "trials",
    ]


def test_comparison_report(tmp_path):
    decision = compare.decide([0.90, 0.91, 0.905], [0.93, 0.935, 0.94], goal="max")
    out_dir = str(tmp_path / "compare")
    path = report.write_comparison_report(out_dir, decision, {"candidate": "warmup=1000"})
    page = _html(out_dir)
    assert path == os.path.join(out_dir, "report.html")
    assert "Adoption decision: adopt" in page and "warmup=1000" in page
    assert td.read_json(os.path.join(out_dir, "decision.json"))["decision"] == "adopt"
    assert _pngs(out_dir) == ["comparison.png"]
    rendered = _render(path, tmp_path)
    assert rendered["images-loaded"] == rendered["images-total"] == "1"
    assert rendered["sections"] == "decision"


def test_report_of_an_empty_study_says_why_figures_are_missing(tmp_path):
    path = report.write_report(str(tmp_path))
    page = _html(str(tmp_path))
    assert re.findall(r'<section id="([^"]+)"', page) == list(report.STANDARD_SECTIONS)
    assert "<img" not in page and "The study varied no hyperparameter." in page
    assert path == os.path.join(str(tmp_path), "report.html")


def test_minimised_objective_with_categorical_and_conditional_dimensions(tmp_path):
    space = [
        {
            "name": "optimizer.name",
            "role": "scientific",
            "scale": "categorical",
            "values": ["adam", "nesterov"],
        },
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "log",
            "min": 1e-4,
            "max": 1e-1,
            "parent": "optimizer.name",
            "parent_value": "adam",
        },
    ]
    trials = [
        {
            "values": {"optimizer.name": "adam", "adam/optimizer.learning_rate": lr},
            "final_accuracy": accuracy,
            "status": td.DIVERGED if lr > 0.05 else td.COMPLETED,
        }
        for lr, accuracy in ((1e-3, 0.9), (1e-2, 0.95), (0.08, 0.5))
    ] + [{"values": {"optimizer.name": "nesterov"}, "final_accuracy": 0.93}]
    fx.make_study(str(tmp_path), space, trials, goal="min", metric="loss")
    study = study_data.load_study(str(tmp_path))
    ax = plots.axis_plot(study, study.dimension("optimizer.name")).axes[0]
    feasible_pts, infeasible_pts, top_pts = (c.get_offsets() for c in ax.collections)
    assert infeasible_pts[0][1] > max(feasible_pts[:, 1])  # Goal min: worse is higher.
    assert min(top_pts[:, 1]) == study.best(1)[0].objective == min(feasible_pts[:, 1])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "nesterov"]
    report.write_report(str(tmp_path))
    assert _pngs(str(tmp_path)) == sorted(
        [
            "axis_adam_optimizer.learning_rate.png",
            "axis_optimizer.name.png",
            "best_step.png",
            "gradient_norms.png",
            "isolation_optimizer.name.png",
            "training_curves.png",
            "trial_budget.png",
        ]
    )
