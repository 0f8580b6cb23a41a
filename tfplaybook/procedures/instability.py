"""Does the training loss climb? The instability criterion and the LR probes.

Checklist 104-109. The playbook's test for optimisation instability is visual: training loss that
goes *up* during training at learning rates just above the best one (105), in a ~500-step run at
2x the best LR evaluated every step (107), or after a steady decline at 5-10x (108). It gives no
number for "goes up", so `detect_climb` uses this criterion (every value configurable):

  1. smooth the loss with a trailing mean over the last `smoothing_steps` steps;
  2. keep the running minimum of the smoothed loss;
  3. a point is *rising* when the smoothed loss exceeds that minimum by more than
     max(`rise_fraction` * |minimum|, `min_absolute_rise`);
  4. the loss *climbs* when rising points follow each other for at least `sustain_steps` steps;
     a non-finite loss is a *divergence* and counts at once.

The absolute floor keeps a loss that already sits near zero from "climbing" by tiny noise.
"""

import copy

import numpy as np

from tfplaybook.procedures import INFO, OK, WARN, check, ours, playbook, result, threshold

STABLE = "stable"
CLIMBS = "climbs"
DIVERGED = "diverged"
VERDICTS = (STABLE, CLIMBS, DIVERGED)

DEFAULT_SMOOTHING_STEPS = 10
DEFAULT_RISE_FRACTION = 0.1
DEFAULT_MIN_ABSOLUTE_RISE = 0.01
DEFAULT_SUSTAIN_STEPS = 20
PROBE_STEPS = 500  # Checklist 107: "an abbreviated ~500-step run".


def _trailing_mean(steps, values, window_steps):
    # A window in steps (not points) keeps the criterion's meaning when the loss is logged every
    # step or every 50 steps; with coarse logging the window holds one point (no smoothing).
    out = np.empty_like(values)
    start = 0
    total = 0.0
    for i, step in enumerate(steps):
        total += values[i]
        while steps[start] <= step - window_steps:
            total -= values[start]
            start += 1
        out[i] = total / (i - start + 1)
    return out


def detect_climb(
    steps,
    losses,
    *,
    smoothing_steps=DEFAULT_SMOOTHING_STEPS,
    rise_fraction=DEFAULT_RISE_FRACTION,
    min_absolute_rise=DEFAULT_MIN_ABSOLUTE_RISE,
    sustain_steps=DEFAULT_SUSTAIN_STEPS,
):
    """Decides whether a training-loss series climbs (criterion in the module docstring).

    Args:
      steps: increasing training steps.
      losses: the training loss at those steps.
      smoothing_steps: trailing-mean window, in steps.
      rise_fraction: relative rise over the running minimum that counts as rising.
      min_absolute_rise: smallest absolute rise that counts, whatever the minimum.
      sustain_steps: how long, in steps, the rise must last.

    Returns:
      {"verdict": "stable"|"climbs"|"diverged", "climb_step": first step of the sustained rise
       (or of the first non-finite loss) or None, "min_step": step of the running minimum the
       rise is measured from, "rise_fraction": peak relative rise seen, "unconfirmed_rise_step":
       start of a rise still under way at the end of the series but shorter than sustain_steps}.

    Raises:
      ValueError: when the series are empty, of different lengths, or steps do not increase.
    """
    steps = np.asarray(steps, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if steps.size == 0 or steps.shape != losses.shape:
        raise ValueError(
            f"need equally long, non-empty steps and losses; got {steps.size} and {losses.size}"
        )
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must strictly increase")
    if smoothing_steps < 1 or sustain_steps < 0 or rise_fraction < 0 or min_absolute_rise < 0:
        raise ValueError(
            f"smoothing_steps={smoothing_steps!r} must be >= 1 and sustain_steps="
            f"{sustain_steps!r}, rise_fraction={rise_fraction!r}, min_absolute_rise="
            f"{min_absolute_rise!r} must be >= 0"
        )
    out = {
        "verdict": STABLE,
        "climb_step": None,
        "min_step": None,
        "rise_fraction": 0.0,
        "unconfirmed_rise_step": None,
    }
    bad = np.flatnonzero(~np.isfinite(losses))
    finite_end = bad[0] if bad.size else losses.size
    smooth = _trailing_mean(steps[:finite_end], losses[:finite_end], smoothing_steps)
    run_start = None  # Index where the current stretch of rising points began.
    best = 0
    for i in range(smooth.size):
        if smooth[i] < smooth[best]:
            best = i
        minimum = smooth[best]
        rise = smooth[i] - minimum
        if minimum != 0:
            out["rise_fraction"] = max(out["rise_fraction"], float(rise / abs(minimum)))
        if rise > max(rise_fraction * abs(minimum), min_absolute_rise):
            if run_start is None:
                run_start = i
                out["min_step"] = int(steps[best])
            if steps[i] - steps[run_start] >= sustain_steps:
                out.update(verdict=CLIMBS, climb_step=int(steps[run_start]))
                return out
        else:
            run_start = None
            out["min_step"] = None
    if bad.size:
        out.update(verdict=DIVERGED, climb_step=int(steps[bad[0]]))
    elif run_start is not None:
        out["unconfirmed_rise_step"] = int(steps[run_start])
    return out


def classify(series_by_key, **criterion):
    """`detect_climb` on each run: {key: verdict dict} for {key: (steps, losses)}."""
    return {key: detect_climb(*series_by_key[key], **criterion) for key in sorted(series_by_key)}


def is_stable(verdict):
    """True for a stable run; accepts a `detect_climb` result or a plain bool."""
    if isinstance(verdict, bool):
        return verdict
    return verdict["verdict"] == STABLE


def criterion_thresholds(**criterion):
    """The thresholds `detect_climb` uses, with their sources, for a result's "thresholds"."""
    values = {
        "smoothing_steps": DEFAULT_SMOOTHING_STEPS,
        "rise_fraction": DEFAULT_RISE_FRACTION,
        "min_absolute_rise": DEFAULT_MIN_ABSOLUTE_RISE,
        "sustain_steps": DEFAULT_SUSTAIN_STEPS,
    }
    unknown = sorted(set(criterion) - set(values))
    if unknown:
        raise ValueError(f"unknown criterion settings {unknown}; allowed: {sorted(values)}")
    values.update(criterion)
    why = "the playbook says only that the loss 'goes up' (105, 108)"
    return {name: threshold(value, ours(why)) for name, value in values.items()}


def probe_config(
    config, best_learning_rate, lr_multiplier=2.0, max_train_steps=PROBE_STEPS, eval_every_steps=1
):
    """Config of one instability probe run (checklist 107: 2x for ~500 steps; 108: 5-10x).

    The schedule becomes constant (its warmup kept): the first steps of a decaying production
    schedule sit near the base learning rate, and a constant schedule reproduces them without
    compressing the decay into the short probe.

    Raises:
      ValueError: when the learning rate, multiplier or step counts are not positive.
    """
    if best_learning_rate <= 0 or lr_multiplier <= 0:
        raise ValueError(
            f"best_learning_rate={best_learning_rate!r} and lr_multiplier={lr_multiplier!r} "
            "must be positive"
        )
    if max_train_steps < 1 or eval_every_steps < 1:
        raise ValueError(
            f"max_train_steps={max_train_steps!r} and eval_every_steps={eval_every_steps!r} "
            "must be positive"
        )
    probe = copy.deepcopy(config)
    probe["optimizer"]["learning_rate"] = float(best_learning_rate * lr_multiplier)
    probe["schedule"]["name"] = "constant"
    probe["max_train_steps"] = int(max_train_steps)
    probe["eval_every_steps"] = int(min(eval_every_steps, max_train_steps))
    if "checkpoint_every_steps" in probe:
        probe["checkpoint_every_steps"] = int(max_train_steps)
    return probe


def analyze_probes(runs, best_learning_rate=None, **criterion):
    """Verdicts for the probe runs and what to do next (checklist 105, 107-109).

    Args:
      runs: {lr_multiplier: (steps, training losses)}, e.g. {2.0: ..., 10.0: ...}.
      best_learning_rate: the current best LR, to state the probed learning rates.
      **criterion: settings for `detect_climb`.

    Returns:
      The common result dict; numbers["runs"] maps each multiplier (as a string) to its verdict.
    """
    if not runs:
        raise ValueError("runs is empty: give at least the 2x probe as {2.0: (steps, losses)}")
    verdicts = {}
    for multiplier, verdict in classify(runs, **criterion).items():
        verdict["lr_multiplier"] = float(multiplier)
        if best_learning_rate is not None:
            verdict["learning_rate"] = float(best_learning_rate * multiplier)
        verdict["last_step"] = int(runs[multiplier][0][-1])
        verdicts[str(float(multiplier))] = verdict
    unstable = {k: v for k, v in verdicts.items() if v["verdict"] != STABLE}
    checklist = []
    for key, v in verdicts.items():
        item = 107 if float(key) <= 2.0 else 108
        if v["verdict"] == STABLE:
            msg = f"At {key}x the best LR the training loss does not climb."
            if v["unconfirmed_rise_step"] is not None:
                msg += f" It starts rising at step {v['unconfirmed_rise_step']} near the end."
            checklist.append(check(item, OK, msg))
        else:
            word = "diverges" if v["verdict"] == DIVERGED else "climbs"
            checklist.append(
                check(
                    item, WARN, f"At {key}x the best LR the loss {word} at step {v['climb_step']}."
                )
            )
    if unstable:
        first = min(unstable.values(), key=lambda v: v["lr_multiplier"])
        text = (
            f"Training is unstable just above the best learning rate: at {first['lr_multiplier']}x "
            f"the loss {'diverges' if first['verdict'] == DIVERGED else 'climbs'} from step "
            f"{first['climb_step']}. Fixing the instability will likely allow a higher learning "
            "rate and better results: try learning-rate warmup first (--mode=warmup_sweep), then "
            "gradient clipping, another optimizer, or normalisation/residual fixes; lower the "
            "learning rate only as a last resort."
        )
        checklist.append(
            check(
                109,
                INFO,
                "Fixes in order: warmup, gradient clipping, another optimizer, architecture "
                "(residuals, normalisation inside the branch, zero-init); lowering the LR last.",
            )
        )
    else:
        text = (
            "No instability found: the training loss does not climb at "
            f"{', '.join(k + 'x' for k in verdicts)} the best learning rate, so instability does "
            "not force the learning rate down; look elsewhere for gains."
        )
    return result(
        "instability_probe",
        text,
        {"best_learning_rate": best_learning_rate, "runs": verdicts},
        checklist,
        dict(
            criterion_thresholds(**criterion),
            probe_steps=threshold(PROBE_STEPS, playbook("L1836-1841, ~500 steps at 2x")),
        ),
    )


def plot(runs, res):
    """Training loss vs step per probe run, climb points marked (P7, P10)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for multiplier in sorted(runs):
        steps, losses = runs[multiplier]
        line = ax.plot(steps, losses, label=f"{multiplier}x best LR")[0]
        verdict = res["numbers"]["runs"][str(float(multiplier))]
        if verdict["climb_step"] is not None:
            ax.axvline(verdict["climb_step"], color=line.get_color(), ls="--", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Instability probes (dashed: loss starts to climb)")
    ax.legend(fontsize="small")
    return fig
