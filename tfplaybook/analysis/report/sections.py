"""The study report's sections: question (the scientific comparison), summary, checks (with
their thresholds), next-round (the advice of `--mode=advise`), the figure sections and trials.

Each renderer returns an (html, md) pair; `_figure_sections` returns, instead, the figures of
axis plots, isolation plots, training curves, best step, gradient norms and trial budget with
their intros, for `write_report` to embed in the page.
"""

import json

from tfplaybook.analysis import advise as advise_lib
from tfplaybook.analysis import budget
from tfplaybook.analysis import checks as checks_lib
from tfplaybook.analysis import export, plots, question
from tfplaybook.analysis.report.page import (
    CHECKLIST_NOTE,
    _esc,
    _fmt,
    _join,
    _paragraph,
    _safe_name,
    _table,
)
from tfplaybook.config import ConfigError

_TRIAL_COLUMNS = ("trial_id", "status", "objective", "best_step")


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
