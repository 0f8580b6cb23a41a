"""Playbook procedures: recommendation rules on recorded measurements, and the drivers that train.

Two kinds of module live here. The rules read numbers that training already recorded and return a
recommendation; they never train, and they import only NumPy, each other and tfplaybook's pure
modules (config, files, training.selection and training.schedules, study.tracking inside a
function), with matplotlib only inside their plot functions, so they run without TensorFlow. The
drivers are the modes of `python -m tfplaybook.run` that train or time what the rules need: they
may import the rules, tfplaybook.training, tfplaybook.study and tfplaybook.analysis, TensorFlow
only inside their functions; no rule imports a driver.

Rules:
    batch_sweep     feasible batch sizes, throughput scaling, input-bound check (6-16, 78-80)
    critical_batch  steps to a target per batch size, the critical batch size (checklist 12)
    lr_sweep        constant-LR sweep that sets an initial max_train_steps (checklist 71)
    warmup          unstable LR, warmup-length sweep, prepending warmup (checklist 110-114)
    instability     does the training loss climb? 2x and 5-10x probes (checklist 105, 107-108)
    clipping        gradient-norm percentile threshold and clipped fractions (checklist 115-119)
    rounds          short round 1 and long round 2 for compute-bound work (checklist 72-76)
    output          procedure directory (measurements, plot, summary) and report section

Drivers:
    driver_base     what every driver shares: input checks, the plan, runs, the written result
    batch_drivers   --mode=batch_sweep and critical_batch
    lr_drivers      --mode=lr_sweep and warmup_sweep
    check_drivers   --mode=probe, clip_advice, compare and bn_check
    round_driver    the config of --round=1 and --round=2

Every rule returns the same shape, built by `result`:

    {"procedure": str,
     "recommendation": str,         what a person should do next, in sentences
     "numbers": {...},              the numbers the recommendation rests on
     "checklist": [{"item": int, "verdict": "ok"|"warn"|"info", "message": str}, ...],
     "thresholds": {name: {"value": number, "source": str}},
     ...}                           procedure-specific extras (table rows, overrides, config)

A threshold's `source` says whether the playbook gives the number or tfplaybook chose it, so the
report can say which of its verdicts rest on our own choices.
"""

OK = "ok"
WARN = "warn"
INFO = "info"
VERDICTS = (OK, WARN, INFO)


def check(item, verdict, message):
    """One checklist verdict: the playbook item number, ok/warn/info, and a sentence."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    return {"item": int(item), "verdict": verdict, "message": message}


def threshold(value, source):
    """A threshold used by a rule, with where the number comes from."""
    return {"value": value, "source": source}


def playbook(lines):
    """Source text for a threshold the playbook states (tuning_playbook README lines)."""
    return f"playbook ({lines})"


def ours(why):
    """Source text for a threshold the playbook does not give: tfplaybook's own choice."""
    return f"tfplaybook's choice, the playbook gives no number: {why}"


def result(procedure, recommendation, numbers, checklist, thresholds, **extra):
    """Builds the common result dict every procedure returns (see the module docstring)."""
    out = {
        "procedure": procedure,
        "recommendation": recommendation,
        "numbers": numbers,
        "checklist": list(checklist),
        "thresholds": thresholds,
    }
    out.update(extra)
    return out


def warnings(res):
    """The checklist entries of a result whose verdict is "warn"."""
    return [c for c in res["checklist"] if c["verdict"] == WARN]
