"""Counts of correct predictions per class in every evaluation (checklist 89)."""

import os

import numpy as np
import pytest
from conftest import REPO

from tfplaybook.files import trial_dir as td
from tfplaybook.training import data as data_lib
from tfplaybook.training import metrics as metrics_lib
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train


def _config(**top):
    config, _ = task_lib.load(os.path.join(REPO, "experiments", "digits_mlp.py"))
    config.update(top)
    return config


def test_sparse_counts_per_class_skip_weight_zero_padding():
    counts = metrics_lib.make_class_counts(_config(), num_classes=3)
    logits = np.array([[3, 0, 0], [0, 2, 0], [0, 0, 1], [1, 0, 0], [0, 5, 0]], "float32")
    labels = np.array([0, 1, 1, 0, 2])
    weights = np.array([1, 1, 1, 1, 0], "float32")  # The last one is evaluation padding.
    counts.update_state(labels, logits, sample_weight=weights)
    assert counts.results() == {
        "correct_count": 3.0,
        "example_count": 4.0,
        "correct_count/0": 2.0,
        "example_count/0": 2.0,
        "correct_count/1": 1.0,
        "example_count/1": 2.0,
        "correct_count/2": 0.0,
        "example_count/2": 0.0,
    }
    counts.reset_state()
    assert counts.results()["example_count"] == 0.0


def test_binary_logits_are_thresholded_at_zero_and_one_hot_labels_read_by_argmax():
    binary = metrics_lib.make_class_counts(_config(loss="binary_crossentropy"), num_classes=2)
    binary.update_state(np.array([[1.0], [0.0], [1.0]]), np.array([[0.3], [-2.0], [-0.1]]))
    assert binary.results()["correct_count"] == 2.0 and binary.results()["example_count/1"] == 2.0
    one_hot = metrics_lib.make_class_counts(_config(loss="categorical_crossentropy"), 2)
    one_hot.update_state(np.eye(2)[[0, 1, 1]], np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    assert one_hot.results()["correct_count"] == 2.0


def test_many_classes_keep_totals_only_and_regression_has_no_counts():
    counts = metrics_lib.make_class_counts(_config(), num_classes=1000)
    counts.update_state(np.array([5, 7]), np.eye(1000)[[5, 6]])
    assert counts.results() == {"correct_count": 1.0, "example_count": 2.0}
    assert metrics_lib.make_class_counts(_config(loss="mse")) is None


@pytest.mark.parametrize("replicas", [1, 2])
def test_every_evaluation_logs_counts_that_match_its_accuracy(tmp_path, replicas):
    config = _config(max_train_steps=40, eval_every_steps=20)
    runtime = train.Runtime(
        strategy="mirrored" if replicas == 2 else "cpu",
        num_cpu_replicas=replicas,
        verbose=False,
    )
    train.train(config, str(tmp_path), runtime)
    rows = td.read_measurements(str(tmp_path))
    num_eval = data_lib.get_data_spec(config, task_lib.Task()).num_eval_examples
    for step in (20, 40):
        values = {
            r["metric"]: r["value"]
            for r in rows
            if r["split"] == td.VALIDATION and r["step"] == step
        }
        assert values["example_count"] == num_eval  # Padding excluded, across replicas too.
        assert values["correct_count"] / num_eval == pytest.approx(values["accuracy"], abs=1e-6)
        per_class = [values[f"example_count/{k}"] for k in range(10)]
        assert sum(per_class) == num_eval and min(per_class) > 0
        assert sum(values[f"correct_count/{k}"] for k in range(10)) == values["correct_count"]
