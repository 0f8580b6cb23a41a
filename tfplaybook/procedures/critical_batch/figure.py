"""Critical batch size, drawn: steps to target against the batch size (checklist 12)."""

from tfplaybook.procedures.critical_batch.verdicts import objective_text


def plot(res):
    """Steps to target vs batch size on log-log axes, with the perfect-scaling line (item 12)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    n = res["numbers"]
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    rows = [r for r in res["table"] if r["steps_to_target"] is not None]
    if rows:
        ax.plot(
            [r["batch_size"] for r in rows],
            [r["steps_to_target"] for r in rows],
            "o-",
            label="measured (fastest learning rate)",
        )
        for r in rows:
            ax.annotate(
                f"lr {r['best_learning_rate']:.2g}",
                (r["batch_size"], r["steps_to_target"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="x-small",
            )
    ideal = [r for r in res["table"] if r["perfect_scaling_steps"] is not None]
    if ideal:
        sizes = [r["batch_size"] for r in ideal]
        perfect = [r["perfect_scaling_steps"] for r in ideal]
        ax.plot(sizes, perfect, ":", color="gray", label="perfect scaling")
        tol = res["thresholds"]["scaling_tolerance"]["value"]
        ax.plot(
            sizes,
            [tol * p for p in perfect],
            "--",
            color="gray",
            alpha=0.5,
            label=f"{tol:g}x perfect scaling (tolerance)",
        )
    missed = [r["batch_size"] for r in res["table"] if r["steps_to_target"] is None]
    if missed and n["max_train_steps"]:
        ax.plot(missed, [n["max_train_steps"]] * len(missed), "rx", label="target not reached")
    if n["critical_batch_size"] is not None:
        ax.axvline(
            n["critical_batch_size"],
            color="green",
            alpha=0.5,
            label=f"critical batch size {n['critical_batch_size']}",
        )
    ax.set_xscale("log", base=2)
    sizes = [r["batch_size"] for r in res["table"]]
    if sizes:
        ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize="x-small")
    ax.set_xlabel("batch size")
    target = n["target_value"]
    ylabel = "steps to target"
    if target is not None:
        ylabel += f" ({objective_text(n['metric'], n['goal'], target)})"
    ax.set_ylabel(ylabel, fontsize="small")
    ax.set_title("Steps to target vs batch size")
    ax.legend(fontsize="small")
    return fig
