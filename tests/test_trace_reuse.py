"""Trials that differ only in hyperparameter values (learning rate and schedule, momentum, rho,
Adam's betas and epsilon, weight decay, clip norm, step budget) or seed share one traced step,
and a trial run on a shared step ends with exactly the weights it ends with when built fresh."""

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


def _config(experiment_config, lr, momentum, seed=0, **sections):
    config = experiment_config("digits_mlp", *_SMALL)
    config["optimizer"].update(learning_rate=lr, momentum=momentum)
    config["seed"] = seed
    for key, value in sections.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config_lib.validate(config)


def _train(config, workdir, **runtime):
    runtime = dict(dict(verbose=False, steps_per_loop=15), **runtime)
    return train.train(config, str(workdir), train.Runtime(**runtime))


# (first trial, second trial): the second differs from the first in every value its step reads.
_WARM_COSINE = {"name": "cosine", "warmup_steps": 5, "end_factor": 0.0}
CASES = {
    "nesterov": ({"lr": 0.05, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.5, "seed": 3}),
    "adamw": (
        {
            "lr": 0.01,
            "momentum": 0.9,
            "optimizer": {"name": "adamw", "weight_decay": 0.01, "clip_norm": 1.0},
            "schedule": _WARM_COSINE,
        },
        {
            "lr": 0.003,
            "momentum": 0.9,
            "seed": 3,
            "max_train_steps": 45,
            "optimizer": {
                "name": "adamw",
                "beta1": 0.8,
                "beta2": 0.99,
                "epsilon": 1e-5,
                "weight_decay": 0.1,
                "clip_norm": 0.3,
            },
            "schedule": dict(_WARM_COSINE, warmup_steps=10, decay_start_step=12, end_factor=0.1),
        },
    ),
    "rmsprop": (
        {"lr": 0.01, "momentum": 0.0, "optimizer": {"name": "rmsprop", "rho": 0.9}},
        {
            "lr": 0.002,
            "momentum": 0.5,
            "seed": 3,
            "optimizer": {"name": "rmsprop", "rho": 0.7, "epsilon": 1e-4},
            "schedule": {"name": "linear", "end_factor": 0.2},
        },
    ),
}


def _case_config(experiment_config, case):
    case = dict(case)
    return _config(experiment_config, case.pop("lr"), case.pop("momentum"), **case)


# Every case on one replica; on two, the case with the most of the step's values changed (the
# replica path of the step is the same code for every optimizer).
@pytest.mark.parametrize("replicas, case", [(1, case) for case in sorted(CASES)] + [(2, "adamw")])
def test_a_shared_trace_gives_the_weights_of_a_fresh_build(
    experiment_config, tmp_path, replicas, case
):
    runtime = {"strategy": "mirrored", "num_cpu_replicas": 2} if replicas == 2 else {}
    first, second = (_case_config(experiment_config, c) for c in CASES[case])
    if case == "rmsprop":  # The linear schedule is structural: give the first trial one too.
        first["schedule"] = dict(second["schedule"], end_factor=0.5)
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
    if case == "adamw":  # The 0.3 clip norm bit: the step read the new value.
        clipped = [r["value"] for r in shared if r["metric"] == "clipped_fraction"]
        assert clipped and max(clipped) > 0


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
    # Whether the step decays, clips, or which schedule family it follows is structural too.
    base = _config(experiment_config, 0.05, 0.9)
    variants = [
        _config(experiment_config, 0.05, 0.9, optimizer={"weight_decay": 0.01}),
        _config(experiment_config, 0.05, 0.9, optimizer={"clip_norm": 1.0}),
        _config(experiment_config, 0.05, 0.9, schedule={"name": "linear"}),
    ]
    keys = {train.engine.reuse_key(c, train.Runtime(), None, None, _Spec()) for c in variants}
    assert len(keys | {train.engine.reuse_key(base, train.Runtime(), None, None, _Spec())}) == 4


class _Spec:
    element_spec = None


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
