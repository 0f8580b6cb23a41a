"""The playbook's study figures (docs/plots.md P1-P4, P12), drawn with matplotlib's Agg canvas.

Figures are built with `matplotlib.figure.Figure` directly, never pyplot: no global state, no
display backend, safe to call from any thread or process. Every function takes a loaded study
(`study_data.Study`) and returns a Figure, or None when the study lacks the data for it.
"""

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from tfplaybook.analysis import study_data
from tfplaybook.files import trial_dir as td

BEST_COLOR, TRIAL_COLOR, INFEASIBLE_COLOR = "tab:green", "tab:blue", "tab:red"
TOP_COLORS = ("tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink")


def to_png(figure, dpi=100):
    """Renders a figure to PNG bytes.

    Laid out by matplotlib's constrained layout (every figure here is made with it; any other
    is given it), which fits the labels within the figure in one draw. `bbox_inches="tight"`
    drew each figure twice and `tight_layout` once more: the default study's report took 5.2 s
    with them and 3.8 s without, here.
    """
    if figure.get_layout_engine() is None:
        figure.set_layout_engine("constrained")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _objective_label(study):
    return f"best validation {study.metric} ({study.goal})"


def _infeasible_level(study, feasible_values):
    """A y position for infeasible trials, just beyond the worst feasible value (P1)."""
    if not feasible_values:
        return 0.0
    worst = min(feasible_values) if study.goal == "max" else max(feasible_values)
    span = (max(feasible_values) - min(feasible_values)) or abs(worst) * 0.1 or 0.1
    return worst - study.sign() * 0.12 * span


def _set_x_scale(ax, dim):
    """Log axis for log-scaled dimensions; Vizier's reverse-log axis for reverse_log ones."""
    bounds = dim.bounds()
    if dim.scale == "log" and (bounds is None or bounds[0] > 0):
        ax.set_xscale("log")
    elif dim.scale == "reverse_log" and bounds is not None and bounds[0] > 0:
        low, high = bounds

        def forward(x):
            # Values at or past low + high have no reverse-log coordinate: clamp them just inside.
            return dim.transform(np.minimum(np.asarray(x, float), low + high - 1e-12 * high))

        ax.set_xscale("function", functions=(forward, dim.untransform))
        ticks = dim.untransform(np.linspace(forward(low), forward(high), 5))
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([f"{t:.3g}" for t in ticks])


def _categories(dim, trials):
    """Tick labels of a categorical axis (None for numeric dimensions)."""
    if dim.numeric:
        return None
    return [str(v) for v in (dim.values or sorted({t.values[dim.id] for t in trials}, key=str))]


def _x(dim, trials, categories):
    """x of each trial: the value, or its category's index on a categorical axis."""
    if categories is None:
        return [float(t.values[dim.id]) for t in trials]
    return [categories.index(str(t.values[dim.id])) for t in trials]


def axis_plot(study, dim, top_k=3, boundary_fraction=0.05):
    """P1, checklist 56 and 42: objective against one hyperparameter, one point per trial."""
    trials = [t for t in study.trials if t.values.get(dim.id) is not None]
    if not trials:
        return None
    feasible = [t for t in trials if t.feasible and t.objective is not None]
    infeasible = [t for t in trials if not t.feasible]
    top = [t for t in study.best(top_k) if t in trials]
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    labels = _categories(dim, trials)
    ax.scatter(
        _x(dim, feasible, labels),
        [t.objective for t in feasible],
        color=TRIAL_COLOR,
        s=22,
        zorder=2,
        label=f"feasible ({len(feasible)})",
    )
    if infeasible:
        level = _infeasible_level(study, [t.objective for t in feasible])
        ax.scatter(
            _x(dim, infeasible, labels),
            [level] * len(infeasible),
            color=INFEASIBLE_COLOR,
            marker="x",
            s=50,
            zorder=3,
            label=f"infeasible ({len(infeasible)}), drawn beyond the worst",
        )
    if top:
        ax.scatter(
            _x(dim, top, labels),
            [t.objective for t in top],
            color=BEST_COLOR,
            marker="*",
            s=220,
            edgecolors="black",
            linewidths=0.6,
            zorder=4,
            label=f"top {len(top)} trials",
        )
    bounds = dim.bounds()
    if labels is not None:
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
    else:
        _set_x_scale(ax, dim)
        if bounds is not None:
            for edge in bounds:
                ax.axvline(edge, color="gray", linestyle="--", linewidth=0.8)
            _shade_boundary(ax, dim, boundary_fraction)
    ax.set_xlabel(f"{dim.id} ({dim.scale} scale)")
    ax.set_ylabel(_objective_label(study))
    ax.set_title(f"Axis plot: {dim.id} ({dim.role})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def _shade_boundary(ax, dim, fraction):
    """Shades the outer `fraction` of the scaled range at both ends (checklist 42's zone)."""
    low, high = dim.bounds()
    if dim.to_unit(low) is None:
        return
    t_low, t_high = dim.transform([low, high])
    for a, b in (
        (t_low, t_low + fraction * (t_high - t_low)),
        (t_high - fraction * (t_high - t_low), t_high),
    ):
        edges = dim.untransform([a, b])
        ax.axvspan(edges[0], edges[1], color="orange", alpha=0.12, linewidth=0)


def isolation_plot(study, dim, num_buckets=5):
    """P2, checklist 53-54: best objective over the nuisance hyperparameters per value of `dim`."""
    feasible = [t for t in study.ranked() if t.values.get(dim.id) is not None]
    groups = study_data.value_groups(feasible, dim, num_buckets)
    if not groups:
        return None
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    categorical = not dim.numeric
    xs = list(range(len(groups))) if categorical else [float(x) for _, x, _ in groups]
    # `feasible` is ranked, so the first member of each group is its best trial.
    best = [members[0].objective for _, _, members in groups]
    for x, (_, _, members) in zip(xs, groups):
        ys = [m.objective for m in members]
        ax.scatter([x] * len(ys), ys, color="lightgray", s=18, zorder=1)
    ax.plot(
        xs,
        best,
        color=BEST_COLOR,
        marker="o",
        markersize=9,
        zorder=3,
        label="best trial over nuisance hyperparameters",
    )
    for x, y, (_, _, members) in zip(xs, best, groups):
        ax.annotate(
            f"n={len(members)}",
            (x, y),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    if categorical or dim.scale == "discrete":
        ax.set_xticks(xs)
        ax.set_xticklabels([label for label, _, _ in groups])
    if dim.scale not in ("discrete", "categorical"):
        _set_x_scale(ax, dim)
    bucketed = " (bucket centres)" if dim.scale not in ("discrete", "categorical") else ""
    ax.set_xlabel(f"{dim.id}{bucketed}")
    ax.set_ylabel(_objective_label(study))
    ax.margins(y=0.15)  # Room for the n= labels.
    ax.set_title(f"Isolation plot: {dim.id}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def _plot_series(ax, steps, values, **kwargs):
    values = np.where(np.isfinite(values), values, np.nan)
    ax.plot(steps, values, **kwargs)


def training_curves(study, top_k=3):
    """P3, checklist 46 and 56: training loss and validation objective of every trial."""
    trials = [t for t in study.trials if t.series]
    if not trials:
        return None
    top = study.best(top_k)
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    loss_ax, val_ax = fig.subplots(1, 2)
    low, high = _loss_limits(trials)
    for trial in trials:
        if trial in top:
            continue
        style = {"color": "silver", "linewidth": 0.8, "alpha": 0.8}
        steps, losses = trial.curve(td.TRAIN, "loss")
        if not trial.feasible:
            style = {"color": INFEASIBLE_COLOR, "linewidth": 0.8, "alpha": 0.5, "linestyle": "--"}
            steps, losses = _clipped(loss_ax, steps, losses, high)
        _plot_series(loss_ax, steps, losses, **style)
        _plot_series(val_ax, *trial.curve(td.VALIDATION, study.metric), **style)
    for rank, (trial, color) in enumerate(zip(top, TOP_COLORS), start=1):
        label = f"#{rank} {trial.id} ({trial.objective:.4g})"
        _plot_series(loss_ax, *trial.curve(td.TRAIN, "loss"), color=color, linewidth=2, label=label)
        _plot_series(
            val_ax, *trial.curve(td.VALIDATION, study.metric), color=color, linewidth=2, label=label
        )
        if trial.best_step is not None:
            val_ax.scatter(
                [trial.best_step],
                [trial.objective],
                color=color,
                s=60,
                edgecolors="black",
                zorder=5,
            )
    if low is not None:
        if low > 0:
            loss_ax.set_yscale("log")
        loss_ax.set_ylim(low, high)
    loss_ax.set_title(
        "Training loss (gray: other trials, red dashed: infeasible, ^ clipped at the top)"
    )
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("train loss")
    val_ax.set_title(f"Validation {study.metric} (dots: retrospective best step)")
    val_ax.set_xlabel("step")
    val_ax.set_ylabel(f"validation {study.metric}")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        if top:
            ax.legend(fontsize=8, loc="best")
    return fig


def _loss_limits(trials):
    """Loss-axis limits from the feasible trials' finite losses (all trials' if none is feasible):
    a diverged trial's 1e30 must not squash every useful curve."""
    chosen = [t for t in trials if t.feasible] or trials
    losses = np.concatenate([t.curve(td.TRAIN, "loss")[1] for t in chosen])
    finite = losses[np.isfinite(losses)]
    if not len(finite):
        return None, None
    low, high = float(finite.min()), float(finite.max())
    if low > 0:
        return low / 1.5, high * 1.5
    pad = 0.05 * (high - low or 1.0)
    return low - pad, high + pad


def _clipped(ax, steps, losses, high):
    """An infeasible trial's losses held at the top edge (non-finite too), with a marker where
    the curve leaves the axis."""
    steps, losses = np.asarray(steps, float), np.asarray(losses, float)
    if high is None or not len(losses):
        return steps, losses
    over = ~np.isfinite(losses) | (losses > high)
    if over.any():
        first = int(np.argmax(over))
        ax.scatter([steps[first]], [high], marker="^", color=INFEASIBLE_COLOR, s=40, zorder=5)
    return steps, np.where(over, high, losses)


def best_step_plot(study, early_fraction=0.1, late_fraction=0.25):
    """P4, checklist 69: the retrospectively chosen best step of every trial."""
    trials = [t for t in study.trials if t.best_step is not None and t.max_train_steps]
    if not trials:
        return None
    fig = Figure(figsize=(max(6.4, 0.35 * len(trials) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    budgets = [t.max_train_steps for t in trials]
    budget = max(set(budgets), key=budgets.count)
    ax.axhspan(
        0,
        early_fraction * budget,
        color="orange",
        alpha=0.15,
        label=f"first {early_fraction:.0%}: too many steps?",
    )
    ax.axhspan(
        (1 - late_fraction) * budget,
        budget,
        color="tab:cyan",
        alpha=0.15,
        label=f"last {late_fraction:.0%}: train longer?",
    )
    ax.axhline(
        budget, color="gray", linestyle="--", linewidth=0.8, label=f"max_train_steps = {budget}"
    )
    for i, trial in enumerate(trials):
        color = TRIAL_COLOR if trial.completed else "gray" if trial.feasible else INFEASIBLE_COLOR
        marker = "o" if trial.feasible else "x"
        ax.scatter([i], [trial.best_step], s=40, zorder=3, color=color, marker=marker)
    ax.set_xticks(range(len(trials)))
    ax.set_xticklabels([t.id for t in trials], rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, budget * 1.05)
    ax.set_ylabel("retrospective best step")
    ax.set_title("Best step per trial (blue: completed, gray: running, red x: infeasible)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    return fig


def gradient_norm_plot(study):
    """P12, checklist 116-117: the best trial's unclipped gradient norm per step and histogram."""
    for trial in study.ranked():
        steps, norms = trial.curve(td.TRAIN, "grad_norm")
        keep = np.isfinite(norms) & (norms > 0)
        if keep.sum() >= 2:
            break
    else:
        return None
    steps, norms = steps[keep], norms[keep]
    p90 = float(np.percentile(norms, 90))
    clip = trial.clip_norm
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    line_ax, hist_ax = fig.subplots(1, 2)
    line_ax.plot(steps, norms, color=TRIAL_COLOR, linewidth=0.7)
    line_ax.set_yscale("log")
    bins = np.geomspace(norms.min(), norms.max() * 1.0001, 40)
    hist_ax.hist(norms, bins=bins, color=TRIAL_COLOR, alpha=0.8)
    hist_ax.set_xscale("log")
    for ax, draw in ((line_ax, line_ax.axhline), (hist_ax, hist_ax.axvline)):
        draw(p90, color=BEST_COLOR, linestyle=":", linewidth=2, label=f"90th percentile {p90:.3g}")
        if clip > 0:
            draw(
                clip,
                color=INFEASIBLE_COLOR,
                linestyle="--",
                linewidth=1.5,
                label=f"clip_norm {clip:.3g} ({np.mean(norms > clip):.0%} of steps clipped)",
            )
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    line_ax.set_title(f"Unclipped gradient norm, best trial {trial.id}")
    line_ax.set_xlabel("step")
    line_ax.set_ylabel("global L2 gradient norm")
    hist_ax.set_title("Histogram over all steps")
    hist_ax.set_xlabel("global L2 gradient norm")
    hist_ax.set_ylabel("steps")
    return fig


def comparison_plot(decision):
    """Checklist 57-60: rerun objective values of baseline and candidate, with their spreads."""
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, color) in enumerate((("baseline", "gray"), ("candidate", BEST_COLOR))):
        stats = decision[name]
        values = np.asarray(stats["values"], float)
        jitter = np.linspace(-0.08, 0.08, len(values)) if len(values) > 1 else [0.0]
        ax.scatter(i + np.asarray(jitter), values, color=color, s=40, zorder=3)
        ax.hlines(stats["mean"], i - 0.25, i + 0.25, color=color, linewidth=2, label=f"{name} mean")
        ax.vlines(i + 0.3, stats["min"], stats["max"], color=color, linewidth=4, alpha=0.5)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["baseline", "candidate"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylabel(f"objective ({decision['goal']})")
    ax.set_title(f"Reruns: {decision['decision']}")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="best")
    return fig


def budget_plot(study, result, variance=None):
    """P5, checklist 103: bootstrapped best-of-k (median and interquartile range) against k;
    with `variance` (budget.study_variance), the other seeds' median curves too (study variance)."""
    if result is None:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(result["k"], result["q25"], result["q75"], alpha=0.3, label="interquartile")
    ax.plot(result["k"], result["median"], marker="o", label="median best-of-k")
    for other in (variance or {}).get("studies", []):
        if other["path"] == study.path:
            continue
        ax.plot(
            range(1, len(other["curve"]) + 1),
            other["curve"],
            color="gray",
            linewidth=0.9,
            alpha=0.8,
            label=f"seed {other['seed']} (another study)",
        )
    ax.set_xlabel("trials in the study (k, bootstrapped from this study)")
    ax.set_ylabel(f"best {_objective_label(study)}")
    ax.set_title("How many trials: best-of-study against the budget")
    ax.legend(fontsize="small")
    return fig
