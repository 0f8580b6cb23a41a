"""Batch-size sweep: throughput per batch size, scaling, and the input-bound check.

Checklist 6-14, 16 and 78-80. Training runs short jobs at doubling batch sizes (`batch_sizes`)
until one runs out of memory, once with the real input pipeline and once with synthetic in-memory
data, and records one dict per batch size:

    {"batch_size": 256, "status": "ok" | "oom" | "error",
     "step_times_s": [0.051, 0.049, ...],     seconds per step, measured after warm-up
     "reason": "..."}                         optional, for "error"

`analyze` turns those records into a recommendation. Throughput (examples per second) is derived
here, never recorded, so it cannot disagree with the step times.
"""

import itertools
import math

import numpy as np

from tfplaybook.procedures import INFO, OK, WARN, check, ours, result, threshold

STATUSES = ("ok", "oom", "error")
REAL = "real"
SYNTHETIC = "synthetic"
# Column order of the report table (summary.json sorts the keys of each row).
COLUMNS = (
    "data",
    "batch_size",
    "status",
    "examples_per_s",
    "examples_per_s_std",
    "time_per_step_s",
    "scaling_efficiency",
    "num_steps_measured",
    "reason",
)

# Checklist 8: "nearly double" has no number in the playbook; 0.8 means a doubling must give at
# least 1.6x the throughput to count as perfect scaling.
DEFAULT_MIN_SCALING_EFFICIENCY = 0.8
# Checklist 9/13: "stops increasing" needs a noise margin; below +10% per doubling a larger batch
# buys too little speed to be worth re-tuning every other hyperparameter (checklist 16).
DEFAULT_MIN_THROUGHPUT_GAIN = 1.1
# Checklist 8, 78-80: synthetic data this much faster than the real pipeline names the input
# pipeline as the bottleneck; 1.25 stays clear of run-to-run noise on shared machines.
DEFAULT_INPUT_BOUND_RATIO = 1.25
# Checklist 7: "enough steps for a reliable estimate"; a spread above 10% of the mean says measure
# longer before trusting a 10% gain.
DEFAULT_MAX_RELATIVE_SPREAD = 0.1


def batch_sizes(start, cap):
    """Batch sizes start, 2*start, 4*start, ... up to and including `cap` (checklist 6).

    Starting from a power of two gives powers of two, as the playbook sweeps.

    Raises:
      ValueError: when `start` or `cap` is not a positive integer or `start` exceeds `cap`.
    """
    for name, value in (("start", start), ("cap", cap)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if start > cap:
        raise ValueError(f"start={start} exceeds cap={cap}: no batch size to sweep")
    sizes = []
    size = start
    while size <= cap:
        sizes.append(size)
        size *= 2
    return sizes


def summarize(records, data=REAL):
    """One row per batch size (sorted): throughput mean and spread, time per step.

    Throughput is batch_size / mean(step time), i.e. examples over total time (checklist 7), and
    its spread is the sample standard deviation of the per-measurement throughputs.

    Raises:
      ValueError: on a record with a bad batch size or status, a repeated batch size, or an "ok"
        record without positive finite step times.
    """
    rows = []
    seen = set()
    for record in records:
        size = record.get("batch_size")
        status = record.get("status")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"batch_size={size!r} in {data} record must be a positive integer")
        if status not in STATUSES:
            raise ValueError(f"status={status!r} at batch_size={size} is not one of {STATUSES}")
        if size in seen:
            raise ValueError(f"batch_size={size} appears twice in the {data} records")
        seen.add(size)
        row = {
            "data": data,
            "batch_size": size,
            "status": status,
            "examples_per_s": None,
            "examples_per_s_std": None,
            "time_per_step_s": None,
            "num_steps_measured": 0,
            "scaling_efficiency": None,
            "reason": record.get("reason", ""),
        }
        if status == "ok":
            times = np.asarray(record.get("step_times_s") or [], dtype=float)
            if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times <= 0):
                raise ValueError(
                    f"{data} batch_size={size} is ok but "
                    f"step_times_s={record.get('step_times_s')!r}"
                    " is not a non-empty list of positive seconds"
                )
            per_step = size / times
            row.update(
                examples_per_s=float(size / times.mean()),
                examples_per_s_std=float(per_step.std(ddof=1)) if times.size > 1 else 0.0,
                time_per_step_s=float(times.mean()),
                num_steps_measured=int(times.size),
            )
        rows.append(row)
    rows.sort(key=lambda r: r["batch_size"])
    _add_scaling_efficiency(rows)
    return rows


def _gain_per_doubling(small, large):
    """Throughput ratio per doubling of batch size, for rows possibly several doublings apart."""
    doublings = math.log2(large["batch_size"] / small["batch_size"])
    return (large["examples_per_s"] / small["examples_per_s"]) ** (1.0 / doublings)


def _add_scaling_efficiency(rows):
    # Efficiency per doubling: 1.0 when doubling the batch doubles throughput (checklist 8).
    ok = [r for r in rows if r["status"] == "ok"]
    for small, large in itertools.pairwise(ok):
        large["scaling_efficiency"] = _gain_per_doubling(small, large) / 2.0


def _scaling_break(rows, min_efficiency):
    """(largest batch size reached by perfect scaling, first batch size where it fails or None)."""
    ok = [r for r in rows if r["status"] == "ok"]
    for previous, row in itertools.pairwise(ok):
        if row["scaling_efficiency"] < min_efficiency:
            return previous["batch_size"], row["batch_size"]
    return (ok[-1]["batch_size"] if ok else None), None


def _recommended(rows, min_gain):
    """Largest batch size whose throughput beats the previous pick by `min_gain` per doubling."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    pick = ok[0]
    for row in ok[1:]:
        if _gain_per_doubling(pick, row) >= min_gain:
            pick = row
    return pick


def _fmt(x):
    return f"{x:,.0f}"


def analyze(
    real,
    synthetic=None,
    *,
    current_batch_size=None,
    min_scaling_efficiency=DEFAULT_MIN_SCALING_EFFICIENCY,
    min_throughput_gain=DEFAULT_MIN_THROUGHPUT_GAIN,
    input_bound_ratio=DEFAULT_INPUT_BOUND_RATIO,
    max_relative_spread=DEFAULT_MAX_RELATIVE_SPREAD,
):
    """Recommends a batch size from the sweep records (checklist 6-14, 16, 78-80).

    Args:
      real: records measured with the real input pipeline (see the module docstring).
      synthetic: the same sweep on synthetic in-memory data, or None when not measured.
      current_batch_size: the config's batch size, to warn that changing it needs re-tuning.
      min_scaling_efficiency: a doubling counts as perfect scaling when it multiplies throughput
        by at least 2 * this value.
      min_throughput_gain: the recommended batch size is the largest whose throughput still beats
        the previous pick by this factor per doubling.
      input_bound_ratio: synthetic / real throughput above this names the input pipeline.
      max_relative_spread: spread / mean above this flags a noisy throughput estimate.

    Returns:
      The common result dict (see tfplaybook.procedures) with a "table" of rows for both sweeps.
    """
    if not 0 < min_scaling_efficiency <= 1:
        raise ValueError(f"min_scaling_efficiency={min_scaling_efficiency!r} must be in (0, 1]")
    if min_throughput_gain <= 1 or input_bound_ratio <= 1:
        raise ValueError(
            f"min_throughput_gain={min_throughput_gain!r} and input_bound_ratio="
            f"{input_bound_ratio!r} must both exceed 1"
        )
    rows = summarize(real, REAL)
    synth_rows = summarize(synthetic, SYNTHETIC) if synthetic is not None else []
    ok = [r for r in rows if r["status"] == "ok"]
    oom = [r["batch_size"] for r in rows if r["status"] == "oom"]
    errors = [r["batch_size"] for r in rows if r["status"] == "error"]
    pick = _recommended(rows, min_throughput_gain)
    synth_pick = _recommended(synth_rows, min_throughput_gain)
    perfect_up_to, breaks_at = _scaling_break(rows, min_scaling_efficiency)
    synth_by_size = {r["batch_size"]: r for r in synth_rows if r["status"] == "ok"}
    ratios = {
        r["batch_size"]: synth_by_size[r["batch_size"]]["examples_per_s"] / r["examples_per_s"]
        for r in ok
        if r["batch_size"] in synth_by_size
    }
    input_bound = sorted(size for size, ratio in ratios.items() if ratio > input_bound_ratio)
    noisy = [
        r["batch_size"]
        for r in ok + [r for r in synth_rows if r["status"] == "ok"]
        if r["examples_per_s_std"] > max_relative_spread * r["examples_per_s"]
    ]
    numbers = {
        "recommended_batch_size": pick["batch_size"] if pick else None,
        "recommended_examples_per_s": pick["examples_per_s"] if pick else None,
        "recommended_batch_size_synthetic": synth_pick["batch_size"] if synth_pick else None,
        "perfect_scaling_up_to": perfect_up_to,
        "perfect_scaling_breaks_at": breaks_at,
        "largest_feasible_batch_size": ok[-1]["batch_size"] if ok else None,
        "oom_batch_size": min(oom) if oom else None,
        "error_batch_sizes": errors,
        "synthetic_over_real": {str(k): v for k, v in sorted(ratios.items())},
        "input_bound_batch_sizes": input_bound,
        "noisy_batch_sizes": sorted(set(noisy)),
        "current_batch_size": current_batch_size,
    }
    thresholds = {
        "min_scaling_efficiency": threshold(
            min_scaling_efficiency, ours("a doubling must give >= 2x this throughput (item 8)")
        ),
        "min_throughput_gain": threshold(
            min_throughput_gain, ours("per-doubling gain a larger batch must still give (9, 13)")
        ),
        "input_bound_ratio": threshold(
            input_bound_ratio, ours("synthetic/real throughput naming the input pipeline (8, 78)")
        ),
        "max_relative_spread": threshold(
            max_relative_spread, ours("throughput std/mean for a reliable estimate (item 7)")
        ),
    }
    checklist = _checklist(rows, synth_rows, numbers, min_scaling_efficiency, input_bound_ratio)
    return result(
        "batch_sweep",
        _recommendation_text(pick, numbers, min_throughput_gain, input_bound_ratio),
        numbers,
        checklist,
        thresholds,
        table=rows + synth_rows,
        columns=COLUMNS,
    )


# Fixed advice attached to the verdicts below, by checklist item.
_ADVICE = {
    10: "Gradient accumulation gives no throughput benefit; do not use it.",
    11: "Re-run this sweep whenever the model or the optimizer changes.",
    14: "To compare batch sizes by result, fix a step budget, not an epoch budget: a fixed epoch "
    "budget only probes the perfect-scaling regime.",
    16: "Every other hyperparameter (learning rate, momentum, regularisation, step budget) must "
    "be re-tuned for a new batch size; tuned values do not carry over.",
    79: "Common causes: data read over the network, expensive online preprocessing (do it once "
    "offline), synchronisation that breaks prefetching.",
    80: "Prefetch (tf.data prefetch), cache, drop unused features early, parallelise the map, or "
    "replicate the producers (tf.data service).",
}


def _checklist(rows, synth_rows, n, min_eff, ratio_limit):
    items = []
    feasible = [r["batch_size"] for r in rows if r["status"] == "ok"]
    if not feasible:
        items.append(check(6, WARN, "No batch size ran: fix the errors before sweeping."))
    elif n["oom_batch_size"] is None:
        items.append(
            check(6, INFO, f"Feasible: {feasible}; none ran out of memory: larger may fit.")
        )
    else:
        items.append(check(6, OK, f"Feasible: {feasible}; out of memory at {n['oom_batch_size']}."))
    if n["error_batch_sizes"]:
        items.append(check(6, WARN, f"Runs failed (not OOM) at {n['error_batch_sizes']}."))
    if n["noisy_batch_sizes"]:
        message = (
            f"Throughput varies by more than the allowed spread at {n['noisy_batch_sizes']}: "
            "measure more steps after warm-up before trusting small differences."
        )
        items.append(check(7, WARN, message))
    else:
        items.append(check(7, OK, "Throughput estimates are steady across repeated steps."))
    if n["perfect_scaling_breaks_at"] is None:
        items.append(check(8, OK, "Doubling the batch size nearly doubled throughput throughout."))
    else:
        row = next(r for r in rows if r["batch_size"] == n["perfect_scaling_breaks_at"])
        message = (
            f"Perfect scaling holds up to {n['perfect_scaling_up_to']} and fails at "
            f"{row['batch_size']} (efficiency {row['scaling_efficiency']:.2f} per doubling < "
            f"{min_eff}): either the device is saturated or a bottleneck (input pipeline, "
            "cross-device synchronisation) limits throughput; fix a bottleneck first."
        )
        items.append(check(8, WARN, message))
    pick = n["recommended_batch_size"]
    if pick is not None and feasible[-1] > pick:
        message = (
            f"Throughput stops increasing beyond {pick}: consider only batch sizes up to it, "
            f"although up to {feasible[-1]} fit."
        )
        items.append(check(9, INFO, message))
    items += [check(k, INFO, _ADVICE[k]) for k in (10, 11, 14)]
    current = n["current_batch_size"]
    changes = current is not None and pick is not None and current != pick
    items.append(check(16, WARN if changes else INFO, _ADVICE[16]))
    if not synth_rows:
        items.append(
            check(78, INFO, "No synthetic-data sweep: the input pipeline is not ruled out.")
        )
    elif n["input_bound_batch_sizes"]:
        message = (
            f"Input pipeline is the bottleneck at batch sizes {n['input_bound_batch_sizes']}: "
            f"synthetic data ran more than {ratio_limit}x faster. Profile it with the TensorFlow "
            "profiler."
        )
        items += [check(78, WARN, message), check(79, WARN, _ADVICE[79])]
        items.append(check(80, WARN, _ADVICE[80]))
    else:
        items.append(check(78, OK, "Synthetic data is not much faster: the pipeline keeps up."))
    return items


def _recommendation_text(pick, n, min_gain, ratio_limit):
    if pick is None:
        return "No batch size ran: fix the failures listed below and sweep again."
    parts = [
        (
            f"Use batch_size={pick['batch_size']}: the largest batch size that still raised "
            f"throughput by at least {min_gain}x per doubling "
            f"({_fmt(pick['examples_per_s'])} examples/s, "
            f"{pick['time_per_step_s'] * 1e3:.1f} ms per step)."
        )
    ]
    if n["perfect_scaling_breaks_at"] is not None:
        parts.append(
            f"Perfect scaling holds up to {n['perfect_scaling_up_to']} and stops at "
            f"{n['perfect_scaling_breaks_at']}."
        )
    if n["oom_batch_size"] is not None:
        parts.append(f"Batch size {n['oom_batch_size']} ran out of memory.")
    if n["input_bound_batch_sizes"]:
        parts.append(
            f"The input pipeline is the bottleneck at {n['input_bound_batch_sizes']} (synthetic "
            f"data more than {ratio_limit}x faster): fix it (prefetch, cache, offline "
            "preprocessing) and sweep again; with synthetic data the pick would be "
            f"{n['recommended_batch_size_synthetic']}."
        )
    parts.append(
        "A new batch size needs every other hyperparameter re-tuned, especially the learning "
        "rate, momentum and regularisation."
    )
    return " ".join(parts)


def measurement_rows(real, synthetic=None):
    """Long-format rows of the raw records (one per measured step) for measurements.csv."""
    rows = []
    for data, records in ((REAL, real), (SYNTHETIC, synthetic or [])):
        for record in records:
            times = record.get("step_times_s") or [None]
            for repeat, seconds in enumerate(times):
                rows.append(
                    {
                        "data": data,
                        "batch_size": record["batch_size"],
                        "status": record["status"],
                        "repeat": repeat,
                        "step_time_s": seconds,
                    }
                )
    return rows


def plot(res):
    """Throughput vs batch size, real vs synthetic, with the ideal-scaling line (checklist 8)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for data, style in ((REAL, "o-"), (SYNTHETIC, "s--")):
        ok = [r for r in res["table"] if r["data"] == data and r["status"] == "ok"]
        if not ok:
            continue
        sizes = [r["batch_size"] for r in ok]
        ax.errorbar(
            sizes,
            [r["examples_per_s"] for r in ok],
            yerr=[r["examples_per_s_std"] for r in ok],
            fmt=style,
            capsize=3,
            label=f"{data} data",
        )
        if data == REAL:
            first = ok[0]
            ax.plot(
                sizes,
                [first["examples_per_s"] * s / first["batch_size"] for s in sizes],
                ":",
                color="gray",
                label="ideal scaling",
            )
    n = res["numbers"]
    if n["recommended_batch_size"] is not None:
        ax.axvline(n["recommended_batch_size"], color="green", alpha=0.5, label="recommended")
    if n["oom_batch_size"] is not None:
        ax.axvline(n["oom_batch_size"], color="red", alpha=0.5, label="out of memory")
    ax.set_xscale("log", base=2)
    sizes = sorted({r["batch_size"] for r in res["table"]})
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("examples / s")
    ax.set_title("Throughput vs batch size")
    ax.legend(fontsize="small")
    return fig
