"""User tasks end to end: the shipped task examples, the README's own-model routes, loss/metrics.

Every example of the task contract is executed here: experiments/diabetes_regression.py,
image_folder.py (on PNGs written by the test), token_sequences.py (on an .npz written by the
test), and the README's "Tune your own model" experiment file (through --mode=tune, analyze,
lr_sweep and batch_sweep) and Python API example.
"""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_cli

import tfplaybook
from tfplaybook.files import trial_dir as td
from tfplaybook.training import data as data_lib
from tfplaybook.training import task as task_lib
from tfplaybook.training import trainer as train

CPU = dict(strategy="cpu", verbose=False)


def experiment(name):
    return os.path.join(REPO, "experiments", f"{name}.py")


def readme_blocks(language):
    text = open(os.path.join(REPO, "README.md")).read()
    section = text[text.index("## Tune your own model") : text.index("## Using it")]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_diabetes_regression_learns_with_its_own_model_data_and_loss(tmp_path):
    result = tfplaybook.train(
        experiment("diabetes_regression"),
        workdir=str(tmp_path / "run"),
        overrides=["max_train_steps=200"],
        **CPU,
    )
    assert result.status == "completed"
    # Predicting the mean of the standardised target gives an MAE of about 0.8.
    assert result.best_value < 0.7
    rows = td.read_measurements(str(tmp_path / "run"))
    assert {r["metric"] for r in rows if r["split"] == td.VALIDATION} == {"loss", "mae"}
    config = td.read_config(str(tmp_path / "run"))
    assert config["loss"] == "mse" and config["objective"] == {"metric": "mae", "goal": "min"}


def write_stripes(root, per_class=120, size=16):
    """PNGs of two classes in class folders: horizontal or vertical stripes, with noise."""
    rng = np.random.RandomState(0)
    for label, name in enumerate(["horizontal", "vertical"]):
        os.makedirs(root / name)
        for i in range(per_class):
            stripes = (np.arange(size) // 2 % 2).astype(np.float32)
            image = (
                np.tile(stripes[:, None], (1, size)) if label == 0 else np.tile(stripes, (size, 1))
            )
            image = np.clip(image * 200 + rng.normal(0, 40, image.shape), 0, 255)
            png = tf.io.encode_png(image.astype(np.uint8)[..., None])
            tf.io.write_file(str(root / name / f"{i}.png"), png)


def test_image_folder_experiment_reads_class_folders_from_disk(tmp_path):
    write_stripes(tmp_path / "images")
    result = tfplaybook.train(
        experiment("image_folder"),
        workdir=str(tmp_path / "run"),
        overrides=[f"data.directory={tmp_path / 'images'}"],
        **CPU,
    )
    assert result.status == "completed" and result.best_value > 0.9
    status = td.read_status(str(tmp_path / "run"))
    assert status["objective"]["metric"] == "accuracy"


def test_image_folder_without_a_directory_is_one_line(tmp_path):
    out = run_cli(
        "--mode=train",
        f"--experiment={experiment('image_folder')}",
        f"--workdir={tmp_path / 'run'}",
        "--strategy=cpu",
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: data.directory=''")
    assert not (tmp_path / "run").exists()


def test_token_sequence_experiment_on_a_generated_file(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tokens", experiment("token_sequences"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokens, labels = module.generate(800, 20, 50, seed=5)
    np.savez(tmp_path / "tokens.npz", tokens=tokens, labels=labels)
    result = tfplaybook.train(
        experiment("token_sequences"),
        workdir=str(tmp_path / "run"),
        overrides=[f"data.path={tmp_path / 'tokens.npz'}"],
        **CPU,
    )
    assert result.status == "completed" and result.best_value > 0.85


def test_readme_experiment_file_runs_every_mode(tmp_path):
    (source,) = readme_blocks("python")[:1]
    path = tmp_path / "my_moons.py"
    path.write_text(source)
    (commands,) = readme_blocks("sh")[:1]
    quick = ["--override=max_train_steps=100", "--override=study.max_trials=2", "--quiet"]
    for line in commands.strip().splitlines():
        args = line.split("#")[0].split()[3:]  # Drop "python -m tfplaybook.run".
        args = [a.replace("my_moons.py", str(path)) for a in args]
        args = [a.replace("runs/", f"{tmp_path}/runs/") for a in args]
        if "--mode=analyze" not in args:
            args += quick + ["--strategy=cpu"]
        if "--mode=batch_sweep" in args:
            args += ["--sweep_max_batch_size=32", "--sweep_steps=5", "--sweep_repeats=1"]
        if "--mode=lr_sweep" in args:
            args += ["--learning_rates=0.003,0.03"]
        out = run_cli(*args, timeout=600)
        assert out.returncode == 0, (args, out.stderr[-3000:])
    study = tmp_path / "runs" / "moons"
    trials = [d for d in os.listdir(study) if d.startswith("trial_")]
    assert len(trials) == 2
    statuses = [td.read_status(str(study / t)) for t in trials]
    assert all(s["status"] == "completed" for s in statuses)
    # AUC of a two-moons classifier: well above chance (0.5) after 100 steps.
    assert max(s["best_value"] for s in statuses) > 0.85
    assert (study / "report.html").exists()
    report = (study / "report.md").read_text()
    assert "auc" in report
    lr_summary = json.loads((tmp_path / "runs" / "moons_lr" / "summary.json").read_text())
    assert lr_summary["numbers"]["metric"] == "error"  # The task records accuracy.
    batch_summary = json.loads((tmp_path / "runs" / "moons_bs" / "summary.json").read_text())
    assert batch_summary["recommendation"]


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    _, source = readme_blocks("python")[:2]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(source.replace('"runs/linear"', '"runs/linear"'), "README", "exec"), namespace)
    study = namespace["study"]
    assert isinstance(study, tfplaybook.StudyResult)
    assert len(study.trials) == 3 and all(t.status == "completed" for t in study.trials)
    assert study.best_trial.best_value < 1.0  # A linear target: the MAE falls far below its std.
    assert os.path.exists(study.report_path)
    values = [t.values["optimizer.learning_rate"] for t in study.trials]
    assert len(set(values)) == 3 and all(0.01 <= v <= 0.1 for v in values)


def binary_task(weights=False):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    w = rng.uniform(0, 2, size=400).astype(np.float32)

    def make_dataset(split, config):
        part = slice(0, 300) if split == "train" else slice(300, None)
        items = (x[part], y[part], w[part]) if weights else (x[part], y[part])
        return tf.data.Dataset.from_tensor_slices(items)

    def build_model(config, data_spec):
        import keras

        inputs = keras.Input(data_spec.feature_shape)
        return keras.Model(inputs, keras.layers.Dense(1)(inputs))

    return task_lib.Task(build_model=build_model, make_dataset=make_dataset), (x, y, w)


def binary_config(**extra):
    base = {
        "batch_size": 20,
        "max_train_steps": 60,
        "eval_every_steps": 30,
        "loss": "binary_crossentropy",
        "metrics": ["accuracy", "auc"],
        "optimizer": {"name": "adam", "learning_rate": 0.05},
    }
    return dict(base, **extra)


def test_binary_logits_get_a_zero_threshold_and_auc_from_logits(tmp_path):
    task, _ = binary_task()
    result = tfplaybook.train(
        config=binary_config(),
        build_model=task.build_model,
        make_dataset=task.make_dataset,
        workdir=str(tmp_path),
        **CPU,
    )
    rows = td.read_measurements(str(tmp_path))
    final = {
        r["metric"]: r["value"] for r in rows if r["split"] == td.VALIDATION and r["step"] == 60
    }
    # A linearly separable problem: with logits thresholded at 0, accuracy is near 1 (at a 0.5
    # threshold on logits it would count many positives as negatives).
    assert final["accuracy"] > 0.93 and final["auc"] > 0.97
    assert result.best_value == pytest.approx(final["accuracy"], abs=0.05)


def test_evaluation_is_the_exact_weighted_metric(tmp_path):
    task, (x, y, w) = binary_task(weights=True)
    config = task_lib.complete_config(
        binary_config(loss="mse", metrics=["mae"], data={"eval_batch_size": 30}), task
    )
    trainer = train.Trainer(config, str(tmp_path), train.Runtime(**CPU), task=task)
    _, eval_ds = trainer.datasets(shuffle_seed=0)
    got = trainer.evaluate(eval_ds)
    prediction = trainer.model(x[300:]).numpy()[:, 0]
    weights = w[300:]
    assert trainer.eval_steps * 30 == 120  # 100 examples: 20 padding examples of weight 0.
    expected_mae = np.sum(weights * np.abs(prediction - y[300:])) / np.sum(weights)
    expected_mse = np.sum(weights * (prediction - y[300:]) ** 2) / np.sum(weights)
    assert got["mae"] == pytest.approx(expected_mae, rel=1e-5)
    assert got["loss"] == pytest.approx(expected_mse, rel=1e-5)


def test_a_bad_make_dataset_return_is_one_line(tmp_path):
    task = task_lib.Task(build_model=lambda c, s: None, make_dataset=lambda split, c: [1, 2])
    config = task_lib.complete_config(binary_config(), task)
    with pytest.raises(tfplaybook.ConfigError, match="returned list, expected a tf.data.Dataset"):
        data_lib.get_data_spec(config, task)
    batched = task_lib.Task(
        make_dataset=lambda split, c: tf.data.Dataset.from_tensor_slices(
            {"x": np.zeros((4, 2)), "y": np.zeros(4)}
        )
    )
    with pytest.raises(tfplaybook.ConfigError, match=r"expected \(features, label\)"):
        data_lib.get_data_spec(config, batched)
