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

This package assembles the page (`write_report`); `page` renders it (the HTML and Markdown page,
its tables and figures), `sections` holds the study report's sections and `comparison` the
adoption decision's report; `background` writes a study's report in a second process while the
study's own exports its best trial.
"""

import os

from tfplaybook.analysis import budget
from tfplaybook.analysis import checks as checks_lib
from tfplaybook.analysis import export, study_data
from tfplaybook.analysis.report.comparison import write_comparison_report
from tfplaybook.analysis.report.page import (
    CHECKLIST_NOTE,
    FILES_DIR,
    _figures,
    _join,
    _Page,
    _safe_name,
)
from tfplaybook.analysis.report.sections import (
    _checks,
    _figure_sections,
    _next_round,
    _question,
    _summary,
    _trials_table,
)
from tfplaybook.files import trial_dir as td

__all__ = [
    "CHECKLIST_NOTE",
    "FILES_DIR",
    "STANDARD_SECTIONS",
    "write_comparison_report",
    "write_report",
]

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
