"""The post-study report: STUDY/report.html (self-contained), STUDY/report.md and the PNGs.

`write_report(study_dir)` loads the study from its files, runs the checks, draws the figures and
writes, each atomically:

  report.html         images embedded as base64 data URIs; no external scripts, styles or fonts
  report.md           the same content, images linked from report_files/
  report_files/*.png  every figure, also on its own
  trials.csv          one row per trial (see `export`)
  checks.json         the check results as data

Sections have stable ids: question (the scientific comparison, `question`), summary, checks,
next-round (the advice of `--mode=advise`), axis-plots, isolation-plots, training-curves,
best-step, gradient-norms, trial-budget, then any `extra_sections` a procedure adds (id, title,
html, md and optionally figures), then trials.
A tiny inline script records, on load, how many images decoded and which sections exist in a
hidden `#render-check` element, so a headless browser can verify the page.

`write_comparison_report(out_dir, decision, details)` renders an adoption decision
(`compare.decide`) the same way.
"""

import base64
import html
import json
import os

from tfplaybook.analysis import advise as advise_lib
from tfplaybook.analysis import budget
from tfplaybook.analysis import checks as checks_lib
from tfplaybook.analysis import export, plots, question, study_data
from tfplaybook.config import ConfigError
from tfplaybook.files import trial_dir as td

FILES_DIR = "report_files"
_TRIAL_COLUMNS = ("trial_id", "status", "objective", "best_step")
# Said near the top of every report: the numbers it cites are items of the project's checklist.
CHECKLIST_NOTE = (
    'Numbers such as "checklist 43" refer to the items of docs/checklist.md in the tfplaybook '
    "repository, which says what each playbook item asks for and where tfplaybook implements "
    "it; figure ids P1-P12 refer to docs/plots.md there."
)
STANDARD_SECTIONS = (
    "question",
    "summary",
    "checks",
    "next-round",
    "axis-plots",
    "isolation-plots",
    "training-curves",
    "best-step",
    "gradient-norms",
    "trial-budget",
    "trials",
)

_CSS = """
body{font-family:sans-serif;max-width:1250px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.ok{background:#dff3df}.warning{background:#fde2c8;font-weight:bold}.na{background:#eee;color:#666}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}
nav a{margin-right:1em}
section{margin-bottom:2em}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.8em}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) loaded++;
  }
  var ids = [];
  document.querySelectorAll("section[id]").forEach(function (s) { ids.push(s.id); });
  var marker = document.getElementById("render-check");
  marker.setAttribute("data-images-loaded", loaded);
  marker.setAttribute("data-images-total", images.length);
  marker.setAttribute("data-sections", ids.join(" "));
});
"""


def _esc(value):
    return html.escape(str(value))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class _Page:
    """Collects sections and figures; renders them as HTML and Markdown."""

    def __init__(self, out_dir, title):
        self.out_dir, self.title = out_dir, title
        self.sections, self.pngs = [], []
        os.makedirs(os.path.join(out_dir, FILES_DIR), exist_ok=True)

    def figure(self, name, figure, alt):
        """Saves a figure as report_files/NAME.png; returns (html, md) that show it."""
        data = plots.to_png(figure)
        filename = f"{name}.png"
        td.atomic_write_bytes(os.path.join(self.out_dir, FILES_DIR, filename), data)
        self.pngs.append(filename)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        link = f"{FILES_DIR}/{filename}"
        caption = f'<figcaption><a href="{link}">{_esc(filename)}</a></figcaption>'
        image = f'<figure><img src="{uri}" alt="{_esc(alt)}">{caption}</figure>'
        return image, f"![{alt}]({link})"

    def add(self, section_id, title, body_html, body_md):
        if any(s[0] == section_id for s in self.sections):
            raise ValueError(
                f"report section id {section_id!r} is used twice; ids in use: "
                f"{', '.join(s[0] for s in self.sections)}"
            )
        self.sections.append((section_id, title, body_html, body_md))

    def html(self):
        nav = " ".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title, _, _ in self.sections)
        body = "\n".join(
            f'<section id="{sid}"><h2>{_esc(title)}</h2>\n{content}\n</section>'
            for sid, title, content, _ in self.sections
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            f"<h1>{_esc(self.title)}</h1>\n<nav>{nav}</nav>\n{body}\n"
            f'<div id="render-check" hidden></div>\n<script>{_SCRIPT}</script>\n'
            "</body></html>\n"
        )

    def markdown(self):
        parts = [f"# {self.title}\n"]
        for sid, title, _, content in self.sections:
            parts.append(f'<a id="{sid}"></a>\n\n## {title}\n\n{content}\n')
        return "\n".join(parts)

    def write(self):
        # Drop figures left over from an earlier report of the same directory.
        files_dir = os.path.join(self.out_dir, FILES_DIR)
        for name in os.listdir(files_dir):
            if name.endswith(".png") and name not in self.pngs:
                os.unlink(os.path.join(files_dir, name))
        td.atomic_write_text(os.path.join(self.out_dir, "report.md"), self.markdown())
        path = os.path.join(self.out_dir, "report.html")
        td.atomic_write_text(path, self.html())
        return path


def _table(header, rows, row_classes=None):
    """Returns (html, md) for a table of already formatted cells."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>")
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += [
        "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
        for row in rows
    ]
    return f"<table><tr>{head}</tr>{''.join(body)}</table>", "\n".join(md)


def _paragraph(text):
    return f"<p>{_esc(text)}</p>", text + "\n"


def _join(*parts):
    return "\n".join(p[0] for p in parts), "\n\n".join(p[1] for p in parts)


def _summary(study, results):
    counts = {}
    for trial in study.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    best = study.best(1)
    rows = [
        ("study", study.name),
        ("experiment", study.experiment),
        ("objective", f"{study.metric} ({study.goal}), best validation value (checklist 43)"),
        ("oracle", study.oracle),
        ("trial budget", _fmt(study.max_trials)),
        ("trials", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"),
    ]
    if best:
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(best[0].values.items()))
        trial = best[0]
        rows.append(("best trial", f"{trial.id}: {trial.objective:.4g} at step {trial.best_step}"))
        rows.append(("best hyperparameters", values))
    warnings = [r.title for r in results if r.verdict == checks_lib.WARNING]
    rows.append(
        ("check warnings", f"{len(warnings)}: " + "; ".join(warnings) if warnings else "none")
    )
    parts = [
        _paragraph(CHECKLIST_NOTE),
        _table(("item", "value"), rows),
        _paragraph(
            "Checklist 40: before judging the study's goal, ask whether the search "
            "space is large enough, enough points were sampled, how many trials were "
            "infeasible, and what the best trials' training curves show. The checks "
            "below answer what a script can; trials.csv and checks.json hold the "
            "data."
        ),
    ]
    for warning in study.warnings:
        parts.append(_paragraph(f"Loading: {warning}"))
    return _join(*parts)


def _checks(results, thresholds):
    header = ("verdict", "check", "checklist", "finding", "advice")
    rows = [
        (
            r.verdict,
            r.title,
            ", ".join(map(str, r.checklist)),
            r.finding,
            r.advice if r.verdict == checks_lib.WARNING else "",
        )
        for r in results
    ]
    classes = [r.verdict.replace("n/a", "na") for r in results]
    table = _table(header, rows, classes)
    numbers = "".join(
        f"<details><summary>{_esc(r.id)}: numbers</summary><pre>"
        f"{_esc(json.dumps(r.numbers, indent=1, default=str))}</pre></details>"
        for r in results
    )
    threshold_rows = [
        (k, _fmt(v), checks_lib.THRESHOLD_DOCS.get(k, "")) for k, v in sorted(thresholds.items())
    ]
    th_html, th_md = _table(("threshold", "value", "meaning"), threshold_rows)
    note = (
        'Thresholds marked "tfplaybook\'s choice" are not given by the playbook; pass '
        "thresholds={...} to write_report or run_checks to change them."
    )
    thresholds_html = (
        f"<details><summary>Thresholds</summary><p>{_esc(note)}</p>{th_html}</details>"
    )
    return (
        f"{table[0]}\n{numbers}\n{thresholds_html}",
        f"{table[1]}\n\nThresholds ({note})\n\n{th_md}\n",
    )


def _next_round(study_dir, study, thresholds, results, bootstrap):
    """The next round's design, as `--mode=advise` writes it (analysis.advise)."""
    try:
        advice = advise_lib.advise(
            study_dir, thresholds, study=study, results=results, bootstrap=bootstrap
        )
    except ConfigError as e:
        return _paragraph(f"No advice: {e}.")
    command = (
        f"python -m tfplaybook.run --mode=advise --workdir={study_dir} writes it as "
        f"{advise_lib.NEXT_EXPERIMENT}, an experiment file with one commented change per finding."
    )
    parts = [_paragraph(f"{advice.summary[0].upper()}{advice.summary[1:]}. {command}")]
    if advice.changes:
        parts.append(_table(("finding", "change"), [(c.check, c.reason) for c in advice.changes]))
    if advice.notes:
        parts.append(_table(("left to you",), [(n,) for n in advice.notes]))
    return _join(*parts)


def _figures(page, items, empty_text, intro):
    """items: (name, figure-or-None, alt). Returns (html, md)."""
    parts = [_paragraph(intro)]
    shown = [page.figure(name, fig, alt) for name, fig, alt in items if fig is not None]
    parts.extend(shown)
    if not shown:
        parts.append(_paragraph(empty_text))
    return _join(*parts)


def _safe_name(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _trials_table(study):
    header, rows = export.trial_table(study)
    keep = [i for i, h in enumerate(header) if h in _TRIAL_COLUMNS or h.startswith("hp:")]
    rank = {t.id: i for i, t in enumerate(study.ranked(), start=1)}
    rows = sorted(rows, key=lambda row: (rank.get(row[0], len(rows) + 1), row[0]))
    cells = [[rank.get(row[0], "")] + [_fmt(row[i]) for i in keep] for row in rows]
    note = _paragraph("All columns, including final metrics and roles: trials.csv.")
    return _join(_table(["rank"] + [header[i] for i in keep], cells), note)


_INTROS = {
    "axis-plots": (
        "One point per trial: the best validation value over training against the "
        "hyperparameter. Stars: top 3 trials; red x: infeasible trials; shaded: the outer "
        "{boundary:.0%} of the range where checklist 42 flags best trials."
    ),
    "isolation-plots": (
        "Best trial over the nuisance hyperparameters for each scientific value (continuous "
        "values in {buckets} buckets); gray: every feasible trial."
    ),
    "training-curves": (
        "Training loss and validation objective of every trial; best three in color."
    ),
    "best-step": "Step chosen by retrospective checkpoint selection in each trial.",
    "trial-budget": (
        "The study's trials resampled with replacement (2000 draws per budget k): the median "
        "and interquartile range of the best objective of k trials."
    ),
    "gradient-norms": (
        "Unclipped gradient norm of the best trial. A good first clipping threshold is about "
        "the 90th percentile (checklist 117); clipping more than half of the steps (checklist "
        "119) is effectively a learning-rate cut."
    ),
}


def _question(study, variance):
    result = question.answer(study, variance)
    if not study.scientific_dimensions():
        text = (
            "This study has no scientific hyperparameter: it tunes nuisance ones only, so it "
            "answers no comparison (checklist 20-22). Give a search-space dimension "
            'role="scientific" to compare its values with the others tuned for each.'
        )
        return _paragraph(text)
    if not result["dimensions"]:
        return _paragraph(
            "Fewer than two values of the scientific hyperparameters have a feasible trial: "
            "the study cannot compare them yet."
        )
    rows = []
    for entry in result["dimensions"]:
        for group in entry["groups"]:
            rows.append(
                (
                    entry["name"],
                    group["label"],
                    _fmt(group["best"]),
                    group["trial"],
                    ", ".join(f"{v:.4g}" for v in group["top"]),
                    _fmt(group["spread"]),
                    str(group["n"]),
                )
            )
    header = (
        "scientific hyperparameter",
        "value",
        f"best {study.metric}",
        "trial",
        f"top {question.TOP_NUISANCE} trials (nuisance settings)",
        "their spread",
        "feasible trials",
    )
    return _join(*(_paragraph(v) for v in result["verdicts"]), _table(header, rows))


def _figure_sections(study, th, bootstrap, variance):
    """(id, title, intro, text when empty, [(png name, figure or None, alt text)]) per section."""
    varied = study.varied_dimensions()
    scientific = [d for d in varied if d.role == "scientific"]
    boundary, buckets = th["boundary_fraction"], th["isolation_buckets"]
    early, late = th["best_step_early_fraction"], th["best_step_late_fraction"]
    intro = {k: v.format(boundary=boundary, buckets=buckets) for k, v in _INTROS.items()}
    axis = [
        (f"axis_{_safe_name(d.id)}", plots.axis_plot(study, d, 3, boundary), f"axis plot of {d.id}")
        for d in varied
    ]
    isolation = [
        (f"isolation_{_safe_name(d.id)}", plots.isolation_plot(study, d, buckets), d.id)
        for d in scientific
    ]
    curves = [("training_curves", plots.training_curves(study, 3), "training curves")]
    best_step = [("best_step", plots.best_step_plot(study, early, late), "best step per trial")]
    grad = [("gradient_norms", plots.gradient_norm_plot(study), "gradient norms")]
    intro["trial-budget"] = " ".join(
        part
        for part in (
            _INTROS["trial-budget"],
            budget.verdict(bootstrap, study.metric),
            budget.variance_sentence(variance, study.metric),
        )
        if part
    )
    trial_budget = [
        ("trial_budget", plots.budget_plot(study, bootstrap, variance), "best-of-k against k")
    ]
    empty_axis = "The study varied no hyperparameter."
    empty_isolation = "No varied scientific hyperparameter: nothing to isolate."
    return [
        ("axis-plots", "Axis plots (checklist 56, 42; docs/plots.md P1)", empty_axis, axis),
        (
            "isolation-plots",
            "Isolation plots (checklist 53-54; docs/plots.md P2)",
            empty_isolation,
            isolation,
        ),
        (
            "training-curves",
            "Training curves (checklist 46-52, 56; docs/plots.md P3)",
            "No trial logged measurements.",
            curves,
        ),
        (
            "best-step",
            "Retrospective best step (checklist 69; docs/plots.md P4)",
            "No trial has a best step.",
            best_step,
        ),
        (
            "gradient-norms",
            "Gradient norms (checklist 116-119; docs/plots.md P12)",
            "No feasible trial logged grad_norm.",
            grad,
        ),
        (
            "trial-budget",
            "How many trials (checklist 103; docs/plots.md P5)",
            "Too few trials to bootstrap the budget.",
            trial_budget,
        ),
    ], intro


def write_report(study_dir, thresholds=None, extra_sections=None, baseline_study_dir=None):
    """Writes the post-study report of a study directory.

    Args:
      study_dir: the study folder (study.json and one subdirectory per trial).
      thresholds: overrides of `checks.DEFAULT_THRESHOLDS`.
      extra_sections: sections a procedure adds before the trials table, each
        (id, title, html, md) or (id, title, html, md, [(name, matplotlib Figure, alt), ...]);
        figures are embedded and written as report_files/ID_NAME.png.
      baseline_study_dir: optional study whose batch size the optimizer values were tuned at
        (checklist 16).

    Returns:
      The path of report.html.

    Raises:
      FileNotFoundError: when `study_dir` does not exist.
      ValueError: on an unknown threshold or a section id that is used twice.
    """
    extra_ids = [section[0] for section in extra_sections or ()]
    clash = sorted(set(extra_ids) & set(STANDARD_SECTIONS))
    if clash or len(set(extra_ids)) != len(extra_ids):
        raise ValueError(
            f"extra section ids {extra_ids} must be unique and differ from the "
            f"standard ids {', '.join(STANDARD_SECTIONS)}"
        )
    study = study_data.load_study(study_dir)
    th = checks_lib.resolve_thresholds(thresholds)
    baseline = study_data.load_study(baseline_study_dir) if baseline_study_dir else None
    results = checks_lib.run_checks(study, th, baseline_study=baseline)
    bootstrap = budget.best_of_k(study)  # For the budget figure and the next round's advice.
    variance = budget.study_variance(study) if bootstrap else None
    export.write_trials_csv(study)
    td.atomic_write_json(os.path.join(study_dir, "checks.json"), [r.to_dict() for r in results])
    page = _Page(study_dir, f"Study report: {study.name}")
    page.add("question", "The study's question", *_question(study, variance))
    page.add("summary", "Summary", *_summary(study, results))
    page.add("checks", "Post-study checks (checklist 40-52, 69, 98, 119)", *_checks(results, th))
    page.add(
        "next-round",
        "Next round (checklist 23-27)",
        *_next_round(study_dir, study, th, results, bootstrap),
    )
    sections, intros = _figure_sections(study, th, bootstrap, variance)
    for section_id, title, empty, figures in sections:
        page.add(section_id, title, *_figures(page, figures, empty, intros[section_id]))
    for section_id, title, body_html, body_md, *figures in extra_sections or ():
        shown = [
            page.figure(f"{section_id}_{_safe_name(name)}", figure, alt)
            for name, figure, alt in (figures[0] if figures else ())
        ]
        page.add(section_id, title, *_join((body_html, body_md), *shown))
    page.add("trials", "Trials (best first)", *_trials_table(study))
    return page.write()


def _comparison_section(page, decision, details=None):
    """Returns (html, md) describing an adoption decision (checklist 57-61)."""
    rows = []
    for name in ("baseline", "candidate"):
        s = decision[name]
        rows.append(
            (
                name,
                s["n"],
                s.get("n_nonfinite", 0),
                ", ".join(_fmt(v) for v in s["values"]),
                _fmt(s.get("mean")),
                _fmt(s.get("std")),
                _fmt(s.get("spread")),
                _fmt(s.get("best")),
            )
        )
    table = _table(
        ("arm", "reruns", "diverged", "values", "mean", "std", "spread (max-min)", "best"), rows
    )
    gaps = _table(
        ("quantity", "value"),
        [
            ("decision", decision["decision"]),
            ("reason", decision["reason"]),
            ("mean improvement (goal-aware)", _fmt(decision["mean_improvement"])),
            ("best improvement (goal-aware)", _fmt(decision["best_improvement"])),
            (
                "Welch t, degrees of freedom",
                f"{_fmt(decision.get('t'))}, {_fmt(decision.get('df'))}",
            ),
            ("one-sided p-value", _fmt(decision.get("p_value"))),
            ("lower 95% bound of the gain", _fmt(decision.get("gain_lower_bound"))),
            ("rule", decision["rule"]),
            (
                "range rule (gain > largest spread "
                f"{_fmt(decision['required_improvement'])}), for reference",
                decision.get("range_rule") or "",
            ),
        ],
    )
    parts = [
        _paragraph(CHECKLIST_NOTE),
        gaps,
        table,
        page.figure(
            "comparison", plots.comparison_plot(decision), "rerun values of baseline and candidate"
        ),
        _paragraph(
            "Checklist 57-60: reruns with different seeds measure trial variance; a "
            "candidate is adopted only if it beats the baseline by more than that "
            "variance. Adopt it only if the gain also outweighs the complexity it "
            "adds (a person's call)."
        ),
    ]
    if details:
        parts.append(
            _table(
                ("detail", "value"),
                [
                    (k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else _fmt(v))
                    for k, v in details.items()
                ],
            )
        )
    return _join(*parts)


def write_comparison_report(out_dir, decision, details=None):
    """Writes report.html, report.md and report_files/ for an adoption decision.

    Args:
      out_dir: the comparison directory (created if needed).
      decision: the dict `compare.decide` returns.
      details: optional {name: value} context (config paths, seeds, trial directories).

    Returns:
      The path of report.html.
    """
    os.makedirs(out_dir, exist_ok=True)
    page = _Page(out_dir, f"Adoption decision: {decision['decision']}")
    page.add(
        "decision",
        "Adopt the candidate? (checklist 57-61)",
        *_comparison_section(page, decision, details),
    )
    td.atomic_write_json(
        os.path.join(out_dir, "decision.json"), dict(decision, details=details or {})
    )
    return page.write()
