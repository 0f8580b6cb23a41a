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
