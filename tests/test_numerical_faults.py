"""NaN or Inf in the loss, the gradients or the evaluation metrics ends a trial as `diverged`
(infeasible, checklist 41) with the step and the quantity in status.json's reason; a study with a
diverged trial carries on to max_trials."""

import json

import numpy as np
from conftest import run_cli

from tfplaybook.files import trial_dir as td
from tfplaybook.study import tracking
from tfplaybook.training import trainer as train

RUNTIME = dict(verbose=False, steps_per_loop=10, strategy="cpu")


def trainer(experiment_config, tmp_path, *overrides):
    config = experiment_config(
        "digits_mlp",
        "max_train_steps=60",
        "eval_every_steps=30",
        "checkpoint_every_steps=30",
        "model.normalization=none",  # Plain dense + ReLU: the weight edits below act directly.
        *overrides,
    )
    t = train.Trainer(config, str(tmp_path), train.Runtime(**RUNTIME))
    td.write_config(str(tmp_path), config)
    return t


def layer(model, name):
    return next(layer for layer in model.layers if layer.name == name)


def set_weights(model, name, kernel=None, bias=None):
    dense = layer(model, name)
    k, b = dense.get_weights()
    dense.set_weights([k if kernel is None else kernel(k), b if bias is None else bias(b)])


def diverged(t, tmp_path, step, quantity):
    status = t.run()
    assert status["status"] == "diverged", status
    assert td.read_status(str(tmp_path))["reason"] == status["reason"]
    assert f"at step {step}" in status["reason"] and status["reason"].startswith(quantity), status
    return status


def test_nan_loss(experiment_config, tmp_path):
    t = trainer(experiment_config, tmp_path)
    # The logits layer: a NaN in a hidden layer is zeroed by ReLU (TensorFlow's relu(NaN) = 0).
    set_weights(t.model, t.model.layers[-1].name, kernel=lambda k: np.full_like(k, np.nan))
    diverged(t, tmp_path, 1, "training loss is nan")


def test_inf_loss_with_finite_weights(experiment_config, tmp_path):
    t = trainer(experiment_config, tmp_path)
    last = t.model.layers[-1].name
    # Logit gaps beyond float32's range: log-softmax of the wrong classes overflows to -inf.
    set_weights(
        t.model, last, bias=lambda b: np.where(np.arange(b.size) == 0, 3e38, -3e38).astype(b.dtype)
    )
    diverged(t, tmp_path, 1, "training loss is inf")


def test_nan_gradient_with_a_finite_loss(experiment_config, tmp_path):
    # Layer 0's bias is +inf, so its ReLU outputs +inf; layer 1's kernel is all negative, so its
    # pre-activations are -inf and its ReLU outputs 0: the logits (and the loss) are finite. Back-
    # propagation multiplies layer 1's zero upstream gradient by the +inf inputs: 0 * inf = NaN.
    t = trainer(experiment_config, tmp_path)
    set_weights(t.model, "dense0", bias=lambda b: np.full_like(b, np.inf))
    set_weights(t.model, "dense1", kernel=lambda k: -np.abs(k) - 0.01)
    diverged(t, tmp_path, 1, "gradient norm is nan")
    losses = td.series(td.read_measurements(str(tmp_path)), "train", "loss")[1]
    assert np.isfinite(losses[0])  # The loss really was finite at the diverging step.


def test_inf_gradient_norm_with_a_finite_loss(experiment_config, tmp_path):
    # Huge but finite activations into a tiny last layer: finite logits and loss, but the last
    # layer's gradient (activation x upstream gradient) overflows the norm to +inf.
    t = trainer(experiment_config, tmp_path)
    set_weights(t.model, "dense0", bias=lambda b: np.full_like(b, 1e30))
    set_weights(t.model, "dense1", kernel=lambda k: np.full_like(k, 1e-3))
    last = t.model.layers[-1].name
    rng = np.random.default_rng(0)
    set_weights(
        t.model, last, kernel=lambda k: (rng.standard_normal(k.shape) * 1e-30).astype(k.dtype)
    )
    diverged(t, tmp_path, 1, "gradient norm is inf")
    losses = td.series(td.read_measurements(str(tmp_path)), "train", "loss")[1]
    assert np.isfinite(losses[0])


def test_inf_validation_loss(experiment_config, tmp_path, monkeypatch):
    t = trainer(experiment_config, tmp_path)
    evaluate = t.evaluate
    last = t.model.layers[-1].name

    def poisoned_evaluate(eval_ds):
        # Training ran on sane weights; the evaluated model has logit gaps beyond float32.
        set_weights(
            t.model,
            last,
            bias=lambda b: np.where(np.arange(b.size) == 0, 3e38, -3e38).astype(b.dtype),
        )
        return evaluate(eval_ds)

    monkeypatch.setattr(t, "evaluate", poisoned_evaluate)
    diverged(t, tmp_path, 30, "validation loss is inf")
    steps, _ = td.series(td.read_measurements(str(tmp_path)), "train", "loss")
    assert steps == list(range(1, 31))


def test_study_with_a_diverging_trial_carries_on_to_max_trials(tmp_path):
    space = [
        {
            "name": "optimizer.learning_rate",
            "role": "nuisance",
            "scale": "discrete",
            "values": [0.003, 3000.0],
        },
        {"name": "optimizer.beta1", "role": "nuisance", "scale": "linear", "min": 0.8, "max": 0.95},
    ]
    study = tmp_path / "study"
    out = run_cli(
        "--mode=tune",
        "--experiment=experiments/digits_mlp.py",
        f"--workdir={study}",
        "--override=study.max_trials=4",
        f"--override=study.search_space={json.dumps(space)}",
        "--override=max_train_steps=60",
        "--override=eval_every_steps=30",
        "--steps_per_loop=10",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    statuses = [td.read_status(d) for d in tracking.trial_dirs(study)]
    assert len(statuses) == 4 and all(s["status"] in td.FINISHED for s in statuses)
    kinds = sorted(s["status"] for s in statuses)
    assert "diverged" in kinds and "completed" in kinds, kinds
    for s in statuses:
        if s["status"] == "diverged":
            assert "at step" in s["reason"]
