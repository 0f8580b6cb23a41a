"""A procedure's directory on disk and its section of the report.

Layout written by `write_procedure_dir`::

    measurements.json   the recorded measurements the rule read, as a list of flat rows
    measurements.csv    the same rows, for a spreadsheet
    plot.png            the procedure's figure (matplotlib, Agg)
    summary.json        the rule's result: recommendation, numbers, checklist, thresholds

Every file is written atomically, and summary.json last, so a directory with a summary is
complete. The report is re-made from these files alone (`read_summary`, `report_section`).
"""

import csv
import html
import io
import math
import os

from tfplaybook.files import trial_dir

MEASUREMENTS_JSON = "measurements.json"
MEASUREMENTS_CSV = "measurements.csv"
PLOT = "plot.png"
SUMMARY = "summary.json"

TITLES = {
    "batch_sweep": "Batch-size sweep: throughput and feasible batch sizes",
    "critical_batch": "Critical batch size: steps to a target per batch size",
    "lr_sweep": "Constant-LR sweep: initial max_train_steps",
    "warmup_plan": "Warmup: the unstable learning rate",
    "warmup_sweep": "Warmup sweep: shortest stable warmup",
    "instability_probe": "Instability probes above the best learning rate",
    "clipping": "Gradient clipping threshold",
    "round1": "Tuning round 1: short runs",
    "round2": "Tuning round 2: the full budget",
}


def _json_safe(value):
    # JSON has no NaN or Inf: store them as strings, as trial_dir does for measurements.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy scalars and arrays.
        return _json_safe(value.tolist())
    return value


def series_rows(series_by_key, key_name, value_name):
    """Long-format rows {key_name: key, "step": s, value_name: v} from {key: (steps, values)}."""
    rows = []
    for key in sorted(series_by_key):
        steps, values = series_by_key[key]
        rows.extend(
            {key_name: key, "step": int(s), value_name: float(v)} for s, v in zip(steps, values)
        )
    return rows


def csv_text(rows):
    """CSV of flat dict rows; the columns are every key, in order of first appearance."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_png(figure, path):
    """Saves a matplotlib figure as PNG, atomically."""
    from tfplaybook.analysis import plots

    trial_dir.atomic_write_bytes(path, plots.to_png(figure))


def write_procedure_dir(directory, res, measurements, figure=None):
    """Writes a procedure's measurements, plot and summary (see the module docstring).

    Args:
      directory: created when missing.
      res: the rule's result dict.
      measurements: list of flat dict rows (e.g. from `series_rows` or a module's
        `measurement_rows`).
      figure: a matplotlib Figure, or None for no plot.

    Returns:
      {file name: path} of the files written.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name) for name in (MEASUREMENTS_JSON, MEASUREMENTS_CSV)}
    rows = _json_safe(list(measurements))
    trial_dir.atomic_write_json(paths[MEASUREMENTS_JSON], rows)
    trial_dir.atomic_write_text(paths[MEASUREMENTS_CSV], csv_text(rows))
    if figure is not None:
        paths[PLOT] = os.path.join(directory, PLOT)
        write_png(figure, paths[PLOT])
    paths[SUMMARY] = os.path.join(directory, SUMMARY)
    trial_dir.atomic_write_json(paths[SUMMARY], _json_safe(res))  # Last: marks completion.
    return paths


def read_summary(directory):
    """The summary.json of a procedure directory, or None when it is not complete."""
    path = os.path.join(directory, SUMMARY)
    return trial_dir.read_json(path) if os.path.exists(path) else None


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _table_columns(rows):
    return list(dict.fromkeys(k for row in rows for k in row))


def report_section(res, image=None):
    """The report section of a procedure result: (id, title, html, markdown).

    Args:
      res: a rule's result dict (or a summary.json read back).
      image: path of the plot relative to the report, or None.
    """
    procedure = res["procedure"]
    section_id = f"procedure-{procedure}"
    title = TITLES.get(procedure, procedure)
    e = html.escape
    h = [f"<p>{e(res['recommendation'])}</p>"]
    md = [res["recommendation"], ""]
    if res.get("overrides"):
        h.append(f"<pre>{e(' '.join(res['overrides']))}</pre>")
        md += ["```", " ".join(res["overrides"]), "```", ""]
    if image:
        h.append(f'<img src="{e(image)}" alt="{e(title)}">')
        md += [f"![{title}]({image})", ""]
    h.append("<ul>")
    for c in res["checklist"]:
        line = f"[{c['verdict']}] checklist {c['item']}: {c['message']}"
        h.append(f'<li class="{e(c["verdict"])}">{e(line)}</li>')
        md.append(f"- {line}")
    h.append("</ul>")
    md.append("")
    table = res.get("table") or []
    if table:
        # summary.json sorts keys; "columns", when the rule gives it, restores a readable order.
        columns = res.get("columns") or _table_columns(table)
        h.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>")
        for row in table:
            cells = "".join(f"<td>{e(_cell(row.get(c)))}</td>" for c in columns)
            h.append(f"<tr>{cells}</tr>")
        h.append("</table>")
        md.append("| " + " | ".join(columns) + " |")
        md.append("|" + "---|" * len(columns))
        md += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in table]
        md.append("")
    if res.get("thresholds"):
        h.append("<p>Thresholds:</p><ul>")
        md.append("Thresholds:")
        for name, t in sorted(res["thresholds"].items()):
            line = f"{name} = {_cell(t['value'])} ({t['source']})"
            h.append(f"<li>{e(line)}</li>")
            md.append(f"- {line}")
        h.append("</ul>")
    return section_id, title, "\n".join(h), "\n".join(md).rstrip() + "\n"
