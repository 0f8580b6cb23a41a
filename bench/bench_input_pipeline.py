"""Is the input pipeline the bottleneck? Training steps/s on the real tf.data pipeline divided by
the same loop on one batch held in memory (checklist 8), for digits_cnn and synthetic_resnet.

The loop is tfplaybook's own (`Trainer.train_loop`, `--steps` steps per host call) on the default
strategy; both datasets go through `strategy.distribute_datasets_from_function`. After one untimed
warm-up window per dataset (tracing, the pipeline's start, its cache or held tensors filling), each
round times four windows of about `--seconds` each in the order real, memory, memory, real (ABBA),
so a drift of machine load within a round hits both alike. A round's ratio is its real steps/s over
its in-memory steps/s; the result is the median round ratio with its quartiles (target >= 0.98),
the same for CPU seconds a step (in-memory over real: below 1 means the real pipeline costs CPU),
and the share of the machine's time the hypervisor stole during the run (/proc/stat), which says
how far the seconds can be trusted.

Usage: python bench/bench_input_pipeline.py [--steps 20] [--seconds 2] [--rounds 15]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

EXPERIMENTS = ("digits_cnn", "synthetic_resnet")


def _cpu_times():
    """(steal, total) jiffies of the whole machine, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def _window(trainer, iterator, steps, seconds):
    """(steps/s, CPU seconds a step) over calls of `steps` steps lasting about `seconds`."""
    import tensorflow as tf

    done, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        trainer.train_loop(iterator, tf.constant(steps))[0].numpy()  # .numpy(): steps finished.
        done += steps
        elapsed = time.perf_counter() - wall
        if elapsed >= seconds:
            return done / elapsed, (time.process_time() - cpu) / done


def _quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q[0], statistics.median(values), q[2]


def measure(name, steps, seconds, rounds):
    import keras

    from tfplaybook.training import data as data_lib
    from tfplaybook.training import strategy as strategy_lib
    from tfplaybook.training import task as task_lib
    from tfplaybook.training import trainer as train

    config, task = task_lib.load(os.path.join(REPO, "experiments", f"{name}.py"))
    runtime = train.Runtime(strategy="cpu", steps_per_loop=steps, verbose=False)
    strategy = strategy_lib.get_strategy("cpu", "local", 1)
    trainer = train.Trainer(config, tempfile.mkdtemp(), runtime, strategy, task)
    real_ds, _ = trainer.datasets(config["seed"])
    memory_ds = strategy.distribute_datasets_from_function(
        lambda ctx: data_lib.in_memory_dataset(trainer.spec, config, config["batch_size"], ctx)
    )
    iterators = {"real": iter(real_ds), "memory": iter(memory_ds)}
    for it in iterators.values():
        _window(trainer, it, steps, seconds)
    ratios, cpu_ratios, rates = [], [], {"real": [], "memory": []}
    start = _cpu_times()
    for _ in range(rounds):
        got = {"real": [], "memory": []}
        for which in ("real", "memory", "memory", "real"):
            got[which].append(_window(trainer, iterators[which], steps, seconds))
        real = statistics.mean(r for r, _ in got["real"])
        memory = statistics.mean(r for r, _ in got["memory"])
        rates["real"].append(real)
        rates["memory"].append(memory)
        ratios.append(real / memory)
        cpu_ratios.append(
            statistics.mean(c for _, c in got["memory"])
            / statistics.mean(c for _, c in got["real"])
        )
    end = _cpu_times()
    steal = None
    if start and end and end[1] > start[1]:
        steal = (end[0] - start[0]) / (end[1] - start[1])
    keras.backend.clear_session()
    data_lib.forget_shared()
    return {
        "real": statistics.median(rates["real"]),
        "memory": statistics.median(rates["memory"]),
        "ratio": _quartiles(ratios),
        "cpu": statistics.median(cpu_ratios),
        "steal": steal,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per host call")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of a timed window")
    parser.add_argument("--rounds", type=int, default=15, help="ABBA rounds per experiment")
    args = parser.parse_args()
    print(
        f"{'experiment':<18} {'real steps/s':>12} {'in-memory':>10} {'ratio':>6} "
        f"{'quartiles':>13} {'CPU ratio':>9} {'steal':>6}"
    )
    for name in EXPERIMENTS:
        m = measure(name, args.steps, args.seconds, args.rounds)
        low, ratio, high = m["ratio"]
        steal = "n/a" if m["steal"] is None else f"{m['steal']:.0%}"
        print(
            f"{name:<18} {m['real']:>12.1f} {m['memory']:>10.1f} {ratio:>6.3f} "
            f"{low:>6.3f}-{high:<6.3f} {m['cpu']:>9.3f} {steal:>6}"
        )


if __name__ == "__main__":
    main()
