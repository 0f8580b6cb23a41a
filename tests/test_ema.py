"""Polyak averaging (ema_decay): the average itself, and its evaluation as its own variant."""

import os

import numpy as np
import pytest
from conftest import REPO

from tfplaybook.files import trial_dir as td
from tfplaybook.training import checkpoints
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train


def test_the_average_follows_the_ramped_decay_and_swaps_back_exactly():
    import keras
    import tensorflow as tf

    from tfplaybook.training import ema

    weights = keras.Variable(np.array([1.0, -2.0], "float32"))
    average = ema.WeightAverage([weights], decay=0.9)
    expected = np.array([1.0, -2.0])
    for t, value in enumerate([[3.0, 0.0], [5.0, 4.0], [-1.0, 2.0]], start=1):
        weights.assign(value)
        tf.function(lambda: average.update([weights]))()
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * np.array(value)
    np.testing.assert_allclose(average.averages[0].numpy(), expected, rtol=1e-6)
    average.swap()
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    average.swap()
    np.testing.assert_allclose(weights.numpy(), [-1.0, 2.0])


def _config(**top):
    config, _ = task_lib.load(os.path.join(REPO, "experiments", "digits_mlp.py"))
    config.update(max_train_steps=60, eval_every_steps=20, checkpoint_every_steps=20)
    config.update(top)
    return config


@pytest.fixture(scope="module")
def averaged_runs(tmp_path_factory):
    runs = {}
    for replicas in (1, 2):
        workdir = str(tmp_path_factory.mktemp(f"ema{replicas}"))
        runtime = train.Runtime(
            strategy="mirrored" if replicas == 2 else "cpu",
            num_cpu_replicas=replicas,
            verbose=False,
        )
        runs[replicas] = (workdir, train.train(_config(ema_decay=0.9), workdir, runtime))
    return runs


def test_the_averaged_weights_are_evaluated_and_kept_as_their_own_variant(averaged_runs):
    workdir, status = averaged_runs[1]
    rows = td.read_measurements(workdir)
    steps, values = td.series(rows, td.VALIDATION, "ema/accuracy")
    raw_steps, raw = td.series(rows, td.VALIDATION, "accuracy")
    assert steps == raw_steps == [20, 40, 60]
    assert values != raw  # A different set of weights.
    best_dir = os.path.join(workdir, td.CHECKPOINTS, checkpoints.BEST_EMA)
    kept = td.read_json(os.path.join(best_dir, "index.json"))["kept"]
    assert kept[0]["value"] == max(values) == status["best_value_ema"]
    assert status["best_step_ema"] == steps[int(np.argmax(values))]
    # The latest checkpoint carries the averages, so a resumed run continues them.
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(os.path.join(workdir, td.CHECKPOINTS, checkpoints.LATEST))
    names = [name for name, _ in tf.train.list_variables(latest)]
    assert any(name.startswith("ema/averages") for name in names)


def test_the_average_on_two_replicas_equals_one_replica(averaged_runs):
    values = {
        replicas: td.series(td.read_measurements(workdir), td.VALIDATION, "ema/loss")[1]
        for replicas, (workdir, _) in averaged_runs.items()
    }
    np.testing.assert_allclose(values[2], values[1], rtol=2e-3)


def test_without_ema_nothing_is_averaged(tmp_path):
    train.train(_config(max_train_steps=20), str(tmp_path), train.Runtime(verbose=False))
    rows = td.read_measurements(str(tmp_path))
    assert not [r for r in rows if r["metric"].startswith("ema/")]
    assert not os.path.exists(os.path.join(tmp_path, td.CHECKPOINTS, checkpoints.BEST_EMA))
