"""The next round as an experiment file: `render(advice)` and `write_next_experiment(advice)`.

The file (`next_experiment.py` in the study directory) holds the config the study ran, applies
each change with a comment naming its finding in `get_config()`, lists the findings left to a
person in its docstring, and re-exports the study's own `build_model` / `make_dataset`.
"""

import datetime
import os
import pprint

from tfplaybook.files import trial_dir as td

NEXT_EXPERIMENT = "next_experiment.py"


def _wrap(text, prefix, width=99, then=None):
    """`text` wrapped at `width`: the first line after `prefix`, the others after `then`."""
    then = prefix if then is None else then
    lines, line, fresh = [], prefix, True
    for word in text.split():
        if len(line) + len(word) > width and not fresh:
            lines.append(line.rstrip())
            line, fresh = then, True
        line += word + " "
        fresh = False
    lines.append(line.rstrip())
    return "\n".join(lines)


def render(advice, today=None):
    """The next round as the text of an experiment file."""
    today = today or datetime.date.today().isoformat()
    goal = ", ".join(advice.scientific) or "none"
    workdir = advice.study_dir.rstrip("/") + "_next"
    head = [
        f'"""Next round of study {advice.name!r}, written by `--mode=advise` on {today}.',
        "",
        f"From {advice.study_dir}. {advice.summary[0].upper() + advice.summary[1:]}; each one",
        "names the finding that caused it. The round's goal, its scientific hyperparameters",
        f"({goal}), is unchanged: changing it is a person's choice.",
        "",
        "Run it in a new work directory (a study refuses a changed config):",
        "    python -m tfplaybook.run "
        f"--experiment={os.path.join(advice.study_dir, NEXT_EXPERIMENT)} \\",
        f"        --workdir={workdir}",
    ]
    if advice.notes:
        head += ["", "Findings left to you:"]
        head += [_wrap(note, "  - ", then="    ") for note in advice.notes]
    head.append('"""')
    body = ["", "import copy", ""]
    if advice.experiment:
        body += [
            "import importlib.util",
            "",
            "# The study's own experiment: its build_model / make_dataset (if any) run this round",
            "# too.",
            f"BASE_EXPERIMENT = {advice.experiment!r}",
            "_spec = importlib.util.spec_from_file_location('_base_experiment', BASE_EXPERIMENT)",
            "_base = importlib.util.module_from_spec(_spec)",
            "_spec.loader.exec_module(_base)",
            "build_model = getattr(_base, 'build_model', None)",
            "make_dataset = getattr(_base, 'make_dataset', None)",
            "",
        ]
    body += [
        "# The config the study ran (its study.json), as it was.",
        "STUDY_CONFIG = " + pprint.pformat(advice.base_config, sort_dicts=False, width=90),
        "",
        "",
        "def _entry(config, dim_id):",
        "    (entry,) = [e for e in config['study']['search_space'] if _id(e) == dim_id]",
        "    return entry",
        "",
        "",
        "def _id(entry):",
        "    if entry.get('parent') is None:",
        "        return entry['name']",
        "    return entry.get('id') or f\"{entry['parent_value']}/{entry['name']}\"",
        "",
        "",
        "def _remove(config, dim_id):",
        "    config['study']['search_space'].remove(_entry(config, dim_id))",
        "",
        "",
        "def _set(config, dotted, value):",
        "    *parents, last = dotted.split('.')",
        "    node = config",
        "    for part in parents:",
        "        node = node[part]",
        "    node[last] = value",
        "",
        "",
        "def get_config():",
        "    config = copy.deepcopy(STUDY_CONFIG)",
    ]
    if not advice.changes:
        body.append(
            "    # Nothing to change: no finding of the study calls for a change of its design."
        )
    for number, change in enumerate(advice.changes, 1):
        body.append(_wrap(f"{number}. [{change.check}] {change.reason}.", "    # "))
        body.append(f"    {change.statement}")
    body.append("    return config")
    return "\n".join(head + body) + "\n"


def write_next_experiment(advice, path=None):
    """Writes the next round's experiment file (atomically); returns its path."""
    path = path or os.path.join(advice.study_dir, NEXT_EXPERIMENT)
    td.atomic_write_text(path, render(advice))
    return path
