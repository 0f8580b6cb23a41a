"""Playbook procedures: recommendation rules on recorded measurements.

Every module here is pure Python (NumPy at most; matplotlib only inside the plot functions): it
reads numbers that training already recorded and returns a recommendation. None of them trains.

    batch_sweep   feasible batch sizes, throughput scaling, input-bound check (6-16, 78-80)
    lr_sweep      constant-LR sweep that sets an initial max_train_steps (checklist 71)
    warmup        unstable LR, warmup-length sweep, prepending warmup (checklist 110-114)
    instability   does the training loss climb? 2x and 5-10x probes (checklist 105, 107-108)
    clipping      gradient-norm percentile threshold and clipped fractions (checklist 115-119)
    rounds        short round 1 and long round 2 for compute-bound work (checklist 72-76)
    output        procedure directory (measurements, plot, summary) and report section

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
