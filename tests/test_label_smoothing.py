"""label_smoothing: the training loss of cross-entropies smoothed, evaluation never."""

import json
import os

import numpy as np
import pytest

from tfplaybook import validation
from tfplaybook.config import ConfigError
from tfplaybook.study import tracking
from tfplaybook.training import metrics as metrics_lib
from tfplaybook.training import task as task_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**top):
    config, _ = task_lib.load(os.path.join(REPO, "experiments", "digits_mlp.py"))
    config.update(top)
    return config


def _softmax_ce(labels_one_hot, logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -(labels_one_hot * log_p).sum(axis=-1)


@pytest.mark.parametrize("labels_shape", [(5,), (5, 1)])
def test_sparse_labels_are_smoothed_in_training_and_not_in_evaluation(labels_shape):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype("float32")
    labels = np.array([0, 3, 1, 2, 3]).reshape(labels_shape)
    config = dict(_config(), label_smoothing=0.2)
    one_hot = np.eye(4)[labels.reshape(-1)]
    smoothed = one_hot * 0.8 + 0.2 / 4
    train = np.asarray(metrics_lib.make_loss(config)(labels, logits))
    evaluation = np.asarray(metrics_lib.make_loss(config, training=False)(labels, logits))
    np.testing.assert_allclose(train, _softmax_ce(smoothed, logits), rtol=1e-5)
    np.testing.assert_allclose(evaluation, _softmax_ce(one_hot, logits), rtol=1e-5)
    assert train.shape == (5,)


def test_binary_crossentropy_takes_the_smoothing_as_keras_does():
    logits = np.array([[2.0], [-1.0], [0.5]], "float32")
    labels = np.array([[1.0], [0.0], [1.0]], "float32")
    config = dict(_config(loss="binary_crossentropy"), label_smoothing=0.1)
    target = labels * 0.9 + 0.05
    p = 1 / (1 + np.exp(-logits))
    expected = -(target * np.log(p) + (1 - target) * np.log(1 - p)).reshape(-1)
    np.testing.assert_allclose(
        np.asarray(metrics_lib.make_loss(config)(labels, logits)), expected, rtol=1e-5
    )


@pytest.mark.parametrize(
    "top, fragment",
    [
        ({"label_smoothing": 1.0}, "label_smoothing=1.0 must be in [0, 1)"),
        ({"label_smoothing": -0.1}, "label_smoothing=-0.1 must be in [0, 1)"),
        ({"label_smoothing": 0.1, "loss": "mse"}, "needs a cross-entropy loss"),
    ],
)
def test_bad_smoothing_is_refused_before_anything_runs(top, fragment):
    with pytest.raises(
        ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        validation.check_config(_config(**top), study=False)


def test_a_study_recorded_before_label_smoothing_existed_still_resumes(tmp_path):
    config = _config()
    old = json.loads(json.dumps(config))
    del old["label_smoothing"]  # As an older tfplaybook recorded it.
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"config": old}))
    tracking.check_study_dir(str(study), config)  # The default value: no change.
    changed = json.loads(json.dumps(config))
    changed["label_smoothing"] = 0.1
    with pytest.raises(ConfigError, match="differs at: label_smoothing"):
        tracking.check_study_dir(str(study), changed)


def test_a_smoothed_training_run_logs_the_smoothed_loss_and_evaluates_the_plain_one(tmp_path):
    import tfplaybook
    from tfplaybook.files import trial_dir as td

    losses = {}
    for smoothing in (0.0, 0.3):
        directory = tmp_path / f"s{smoothing}"
        result = tfplaybook.train(
            experiment=os.path.join(REPO, "experiments", "digits_mlp.py"),
            workdir=str(directory),
            overrides=[
                f"label_smoothing={smoothing}",
                "max_train_steps=60",
                "eval_every_steps=30",
                "optimizer.learning_rate=0.01",
            ],
            verbose=False,
        )
        assert result.status == "completed"
        assert td.read_config(str(directory))["label_smoothing"] == smoothing
        rows = td.read_measurements(str(directory))
        losses[smoothing] = (
            td.series(rows, td.TRAIN, "loss")[1][-1],
            td.series(rows, td.VALIDATION, "loss")[1][-1],
        )
    # A smoothed target keeps the training cross-entropy above its entropy (0.3 of 10 classes:
    # about 1.0 nats); the validation loss is the plain one, which the smoothed run also lowers.
    assert losses[0.3][0] > 0.9 > losses[0.0][0]
    assert losses[0.3][1] < 0.9
