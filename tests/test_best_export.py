"""The best checkpoint exported (checklist 87): predictions on a sample, .keras, SavedModel."""

import json
import os

import numpy as np
import pytest
from conftest import REPO, snapshot

import tfplaybook
from tfplaybook.files import trial_dir as td
from tfplaybook.training import best_export
from tfplaybook.training import data as data_lib
from tfplaybook.training import task as task_lib

OVERRIDES = ["max_train_steps=40", "eval_every_steps=20", "optimizer.learning_rate=0.01"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("mlp"))
    result = tfplaybook.train(
        experiment=os.path.join(REPO, "experiments", "digits_mlp.py"),
        workdir=workdir,
        overrides=OVERRIDES,
        verbose=False,
    )
    return workdir, result


def _sample(config):
    spec = data_lib.get_data_spec(config, task_lib.Task())
    features, labels, _ = next(iter(data_lib.eval_dataset(spec, config, 64, steps=1)))
    return np.asarray(features), np.asarray(labels)


def test_predictions_of_the_best_checkpoint_on_a_fixed_sample(trained):
    workdir, result = trained
    out = os.path.join(workdir, best_export.EXPORT)
    summary = td.read_json(os.path.join(out, best_export.SUMMARY))
    assert summary["step"] == result.best_step and summary["value"] == pytest.approx(
        result.best_value
    )
    lines = open(os.path.join(out, best_export.PREDICTIONS)).read().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == list(range(64))
    _, labels = _sample(td.read_config(workdir))
    assert [r["label"] for r in records] == labels.tolist()  # The split's first 64, in order.
    for r in records:
        assert len(r["output"]) == 10 and r["predicted"] == int(np.argmax(r["output"]))
        assert 0.1 <= r["probability"] <= 1.0


def test_the_keras_file_and_the_saved_model_give_the_recorded_outputs(trained):
    import keras
    import tensorflow as tf

    workdir, _ = trained
    out = os.path.join(workdir, best_export.EXPORT)
    features, _ = _sample(td.read_config(workdir))
    recorded = np.array(
        [json.loads(line)["output"] for line in open(os.path.join(out, best_export.PREDICTIONS))]
    )
    model = keras.models.load_model(os.path.join(out, best_export.KERAS_FILE), compile=False)
    np.testing.assert_allclose(model(features, training=False), recorded, rtol=1e-4, atol=1e-5)
    served = tf.saved_model.load(os.path.join(out, best_export.SAVED_MODEL))
    np.testing.assert_allclose(served.serve(features), recorded, rtol=1e-4, atol=1e-5)


def test_a_finished_run_keeps_its_export_and_one_without_gets_it(trained):
    workdir, _ = trained
    before = snapshot(workdir)
    again = tfplaybook.train(
        experiment=os.path.join(REPO, "experiments", "digits_mlp.py"),
        workdir=workdir,
        overrides=OVERRIDES,
        verbose=False,
    )
    assert again.status == "completed" and snapshot(workdir) == before
    summary = os.path.join(workdir, best_export.EXPORT, best_export.SUMMARY)
    os.remove(summary)  # As a run made before exports existed.
    assert not best_export.exported(workdir)
    tfplaybook.train(
        experiment=os.path.join(REPO, "experiments", "digits_mlp.py"),
        workdir=workdir,
        overrides=OVERRIDES,
        verbose=False,
    )
    assert best_export.exported(workdir)
    leftovers = [n for n in os.listdir(os.path.join(workdir, best_export.EXPORT)) if n[0] == "."]
    assert leftovers == []  # No temporary left behind.


def test_a_regression_export_has_outputs_and_no_classes(tmp_path):
    tfplaybook.train(
        experiment=os.path.join(REPO, "experiments", "diabetes_regression.py"),
        workdir=str(tmp_path),
        overrides=["max_train_steps=20", "eval_every_steps=10"],
        verbose=False,
    )
    line = open(tmp_path / best_export.EXPORT / best_export.PREDICTIONS).readline()
    record = json.loads(line)
    assert set(record) == {"index", "label", "output"} and len(record["output"]) == 1
