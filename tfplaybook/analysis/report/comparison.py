"""The adoption decision's report (checklist 57-61): `write_comparison_report(out_dir, decision)`.

Renders a decision of `compare.decide` (the two arms' reruns, the gap, the test and the rule)
as report.html, report.md and report_files/, and saves it as decision.json.
"""

import json
import os

from tfplaybook.analysis import plots
from tfplaybook.analysis.report.page import CHECKLIST_NOTE, _fmt, _join, _Page, _paragraph, _table
from tfplaybook.files import trial_dir as td


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
