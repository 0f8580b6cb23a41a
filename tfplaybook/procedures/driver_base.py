"""What every procedure driver shares: input checks, the plan, training runs, the written result.

The drivers (batch_drivers, lr_drivers, check_drivers) train or time what the rules need, then
`finish` writes one procedure directory under the workdir (output.write_procedure_dir), prints a
short table and the recommendation, and adds a section to a study's report. Every input is
checked before anything is written or trained: a bad value is a config.ConfigError, and
`call_rule` turns a rule's ValueError into one.
"""

import dataclasses
import math
import os

from tfplaybook import config as config_lib
from tfplaybook import progress
from tfplaybook.procedures import output

# A log grid around the config's learning rate, half a decade apart (checklist 71c).
DEFAULT_LR_FACTORS = (0.1, 0.316, 1.0, 3.16, 10.0)
REPORT_FILE = "report.html"


def parse_learning_rates(text, config):
    """The comma-separated --learning_rates, or the default grid around the config's LR."""
    if not text:
        base = float(config["optimizer"]["learning_rate"])
        return [float(f"{base * f:.4g}") for f in DEFAULT_LR_FACTORS]
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise config_lib.ConfigError(
            f"--learning_rates={text!r} must be comma-separated positive numbers, e.g. 0.01,0.1,1"
        ) from None
    if not all(math.isfinite(r) and r > 0 for r in rates) or len(set(rates)) != len(rates):
        raise config_lib.ConfigError(
            f"--learning_rates={text!r} must be distinct positive finite numbers"
        )
    return sorted(rates)


def positive(name, value):
    """`value` as a float, or a ConfigError naming --`name` when it is not a positive number."""
    if value is None or not value > 0 or not math.isfinite(value):
        raise config_lib.ConfigError(f"--{name}={value!r} must be a positive number")
    return float(value)


def call_rule(fn, *args, **kwargs):
    """fn(*args, **kwargs), where a rule's ValueError (bad input) becomes a usage error."""
    try:
        return fn(*args, **kwargs)
    except config_lib.ConfigError:
        raise
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None


def strategy_of(runtime):
    """The distribution strategy of the runtime's flags."""
    from tfplaybook.training import strategy as strategy_lib

    return strategy_lib.get_strategy(runtime.strategy, runtime.tpu, runtime.num_cpu_replicas)


def report_study_dir(workdir, report_study):
    """The study whose report gets the section: --report_study, else a reported parent study."""
    if report_study:
        if not os.path.isdir(report_study):
            raise config_lib.ConfigError(f"--report_study={report_study!r} is not a directory")
        return report_study
    parent = os.path.dirname(os.path.abspath(workdir))
    return parent if os.path.exists(os.path.join(parent, REPORT_FILE)) else None


def plan(runtime, title, items):
    """Prints what a driver is about to do (items that are None are left out), when verbose."""
    if runtime.verbose:
        progress.plan(title, [item for item in items if item])


def bound_line(max_minutes):
    """The plan's line about --max_minutes, or None without a bound."""
    if not max_minutes:
        return None
    return f"bounded to {max_minutes:g} min (--max_minutes): stops after the current measurement"


def train_all(configs, dirs, runtime, strategy, task, what, label, deadline=None):
    """Trains each config into its directory, with progress; returns the directories trained.

    `label(config)` names one run in the progress line. With an expired `deadline`, stops after
    the run in progress (at least one run is always trained).
    """
    from tfplaybook.training import trainer as train

    if runtime.verbose:
        steps = configs[0]["max_train_steps"] if configs else 0
        progress.plan(
            (
                f"{len(configs)} {what}s of {steps} steps at batch {configs[0]['batch_size']}"
                if configs
                else f"no {what}s"
            ),
            [f"{label(c)} -> {d}" for c, d in zip(configs, dirs)],
        )
    bar = progress.Progress(len(configs), what, enabled=runtime.verbose)
    quiet = dataclasses.replace(runtime, verbose=False)  # One progress line per run, not per loop.
    done = []
    for config, directory in zip(configs, dirs):
        status = train.train(config, directory, quiet, strategy, task)
        done.append(directory)
        bar.update(detail=f"{label(config)}: {status['status']}")
        if deadline is not None and deadline.expired() and len(done) < len(dirs):
            break
    return done


def mark_cut_short(res, measured, planned, what, max_minutes, last_status="ok"):
    """Says in the result that a time bound stopped the sweep before its plan was done."""
    res["cut_short"] = measured < planned and last_status != "oom"
    if res["cut_short"]:
        note = (
            f"Cut short by --max_minutes={max_minutes:g} after {measured} of {planned} {what}; "
            "the result covers only those."
        )
        res["recommendation"] = f"{note} {res['recommendation']}"


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


def print_result(res, directory):
    """Prints the rule's table, recommendation and overrides."""
    table = res.get("table") or []
    if table:
        columns = res.get("columns") or list(dict.fromkeys(k for row in table for k in row))
        rows = [columns] + [[_cell(row.get(c)) for c in columns] for row in table]
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
        for r in rows:
            print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    print(f"recommendation: {res['recommendation']}")
    if res.get("overrides"):
        print("overrides: " + " ".join(f"--override={o}" for o in res["overrides"]))
    print(f"written: {directory}")


def finish(res, directory, measurements, figure, study_dir):
    """Writes the procedure directory, prints the result, adds the study report's section."""
    output.write_procedure_dir(directory, res, measurements, figure)
    print_result(res, directory)
    if study_dir:
        from tfplaybook.analysis import report

        image = os.path.relpath(os.path.join(directory, output.PLOT), study_dir)
        section = output.report_section(res, image if figure is not None else None)
        print(f"report: {report.write_report(study_dir, extra_sections=[section])}")
    return res
