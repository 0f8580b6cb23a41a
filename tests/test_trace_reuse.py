"""Trials that differ only in learning rate, momentum or seed share one traced step, and a trial
run on a shared step ends with exactly the weights it ends with when built fresh."""

import pytest

from tfplaybook import config as config_lib
from tfplaybook.files import trial_dir as td
from tfplaybook.training import trainer as train

_SMALL = (
    "max_train_steps=30",
    "eval_every_steps=15",
    "checkpoint_every_steps=15",
    "model.width=16",
    "model.depth=1",
    "model.dropout=0.2",  # Dropout draws from seed-generator state, reset with the weights.
    "optimizer.name=nesterov",
)


def _config(experiment_config, lr, momentum, seed=0):
    config = experiment_config("digits_mlp", *_SMALL)
    config["optimizer"].update(learning_rate=lr, momentum=momentum)
    config["seed"] = seed
    return config_lib.validate(config)


def _train(config, workdir, **runtime):
    runtime = dict(dict(verbose=False, steps_per_loop=15), **runtime)
    return train.train(config, str(workdir), train.Runtime(**runtime))


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_shared_trace_gives_the_weights_of_a_fresh_build(experiment_config, tmp_path, replicas):
    runtime = {"strategy": "mirrored", "num_cpu_replicas": 2} if replicas == 2 else {}
    first = _config(experiment_config, 0.05, 0.9)
    second = _config(experiment_config, 0.01, 0.5, seed=3)
    train.forget_traces()
    a = _train(first, tmp_path / "a", **runtime)
    trace = next(iter(train._ENGINES.values()))["train_loop"]
    b_shared = _train(second, tmp_path / "b_shared", **runtime)
    assert len(train._ENGINES) == 1  # The second trial used the first one's engine ...
    assert next(iter(train._ENGINES.values()))["train_loop"] is trace
    assert trace.experimental_get_tracing_count() == 1  # ... and its single trace.
    train.forget_traces()
    b_fresh = _train(second, tmp_path / "b_fresh", **runtime)
    assert b_shared["weights_digest"] == b_fresh["weights_digest"]
    assert b_shared["weights_digest"] != a["weights_digest"]
    train.forget_traces()
    # Every logged number (losses, norms, metrics, evaluations) is the same, but the timings.
    shared, fresh = (
        [r for r in td.read_measurements(str(tmp_path / name)) if r["metric"] != "steps_per_second"]
        for name in ("b_shared", "b_fresh")
    )
    assert shared == fresh


def test_another_architecture_builds_its_own(experiment_config, tmp_path):
    train.forget_traces()
    _train(_config(experiment_config, 0.05, 0.9), tmp_path / "a")
    wider = _config(experiment_config, 0.05, 0.9)
    wider["model"]["width"] = 32
    _train(wider, tmp_path / "b")
    assert len(train._ENGINES) == 2
    zero = _config(experiment_config, 0.05, 0.0)  # No momentum: no velocity, another step.
    _train(zero, tmp_path / "c")
    assert len(train._ENGINES) == 3
    train.forget_traces()


def test_seeded_build_gives_a_stateful_random_model_the_weights_of_a_fresh_process():
    import keras
    import numpy as np
    import tensorflow as tf

    from tfplaybook import internals

    def stateful():  # tf.random.uniform with an op seed: a stateful kernel, cached by its seeds.
        return tf.Variable(tf.random.uniform([4], seed=1)).numpy()

    def keras_init():
        return keras.initializers.GlorotUniform()((3, 3)).numpy()

    tf.random.set_seed(7)  # What a fresh process gives after keras.utils.set_random_seed(7).
    expected = tf.random.uniform([4], seed=1).numpy()
    for _ in range(2):  # Without the stock re-seed, the cached kernel would go on drawing.
        np.testing.assert_array_equal(internals.seeded_build(7, stateful), expected)
    first = internals.seeded_build(7, keras_init)
    np.testing.assert_array_equal(internals.seeded_build(7, keras_init), first)
    assert not np.array_equal(internals.seeded_build(8, keras_init), first)


def test_end_trial_keeps_the_kernel_cache_only_when_cached_engines_own_it():
    import tensorflow as tf

    from tfplaybook.training import engine

    def draw():  # A stateful kernel: it restarts from its seeds only once the cache is cleared.
        return float(tf.random.uniform([], seed=5))

    engine.forget_traces()
    engine.end_trial()  # An engine was forgotten: the cache is cleared.
    tf.random.set_seed(0)
    first = draw()
    engine.end_trial()  # Nothing unowned: kept, so the same kernel draws its next number.
    assert draw() != first
    engine._KERNELS["unowned"] += 1  # As after a trial whose engine was not kept (EMA, fp16).
    engine.end_trial()
    assert draw() == first  # Cleared: the kernel starts again from seeds (0, 5).
    engine.end_trial()
    assert draw() != first  # And kept again once nothing is unowned.
