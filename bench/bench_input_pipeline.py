"""Is the input pipeline the bottleneck? Training steps/s on the real tf.data pipeline divided by
the same loop on one batch held in memory (checklist 8), for digits_cnn and synthetic_resnet.

The loop is tfplaybook's own (`Trainer.train_loop`, `steps_per_loop` steps per host call) on the
default strategy; both datasets go through `strategy.distribute_datasets_from_function`. After one
untimed warm-up window per dataset (tracing, the pipeline's start and its cache filling), timed
windows alternate real / in-memory `--rounds` times, so a change of machine load hits both alike;
the ratio is median real steps/s over median in-memory steps/s (target >= 0.98).

Usage: python bench/bench_input_pipeline.py [--steps 100] [--rounds 7]
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


def _window(trainer, iterator, steps):
    import tensorflow as tf

    start = time.perf_counter()
    trainer.train_loop(iterator, tf.constant(steps))[0].numpy()  # .numpy(): the steps finished.
    return steps / (time.perf_counter() - start)


def measure(name, steps, rounds):
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
    real, memory = iter(real_ds), iter(memory_ds)
    _window(trainer, real, steps)
    _window(trainer, memory, steps)
    rates = {"real": [], "memory": []}
    for _ in range(rounds):
        rates["real"].append(_window(trainer, real, steps))
        rates["memory"].append(_window(trainer, memory, steps))
    keras.backend.clear_session()
    return {k: statistics.median(v) for k, v in rates.items()}, rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{'experiment':<18} {'real steps/s':>13} {'in-memory':>10} {'ratio':>6}")
    for name in EXPERIMENTS:
        medians, _ = measure(name, args.steps, args.rounds)
        ratio = medians["real"] / medians["memory"]
        print(f"{name:<18} {medians['real']:>13.1f} {medians['memory']:>10.1f} {ratio:>6.3f}")


if __name__ == "__main__":
    main()
