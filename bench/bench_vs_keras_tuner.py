"""The default study against the same study written the way a Keras user writes it.

The yardstick (issue "fast at every scale"): keras-tuner's RandomSearch over the same space
(model.width in {16, 32}, learning rate log [1e-3, 1], momentum [0.5, 0.99]), the same model
(tfplaybook's registry CNN, built from the same config, so the compute is identical), SGD with
Nesterov momentum and a cosine decay over 300 steps, batch 64, evaluated every 50 steps on the
test split (`model.fit` with steps_per_epoch=50 and 6 epochs), and a `ModelCheckpoint` that keeps
the best weights by validation accuracy. 8 trials each. The data are scikit-learn's digits in
NumPy arrays, split as tfplaybook's digits builder splits them (the same 20% test set).

Each side runs in its own fresh process, in turn, `--repeats` times (default 3); the table gives
the median wall time of each and their ratio (target: tfplaybook <= 0.5x), and CPU time too.

Usage: python bench/bench_vs_keras_tuner.py [--repeats 3]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KERAS_TUNER_STUDY = r"""
import os, sys
sys.path.insert(0, {repo!r})
import numpy as np
import keras, keras_tuner
from sklearn.datasets import load_digits
from tfplaybook import config as config_lib

from tfplaybook.training import models

from tfplaybook.training import task as task_lib


digits = load_digits()
images = np.round(digits.images * (255.0 / 16.0)).astype("float32")[..., None] / 255.0
labels = digits.target.astype("int64")
order = np.random.RandomState(1234).permutation(len(labels))
test, train = order[: int(round(len(labels) * 0.2))], order[int(round(len(labels) * 0.2)) :]
x_train, y_train, x_test, y_test = images[train], labels[train], images[test], labels[test]
config, _ = task_lib.load(os.path.join({repo!r}, "experiments", "digits_cnn.py"))

class Spec:
    feature_shape = x_train.shape[1:]
    def require_num_classes(self):
        return 10

def build(hp):
    cfg = dict(config, model=dict(config["model"], width=hp.Choice("width", [16, 32])))
    model = models.get_builder("cnn").build(cfg, Spec())
    schedule = keras.optimizers.schedules.CosineDecay(
        hp.Float("learning_rate", 1e-3, 1.0, sampling="log"), decay_steps=300
    )
    optimizer = keras.optimizers.SGD(
        schedule, momentum=hp.Float("momentum", 0.5, 0.99), nesterov=True
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model

class Tuner(keras_tuner.RandomSearch):
    def run_trial(self, trial, *args, **kwargs):
        path = os.path.join(self.get_trial_dir(trial.trial_id), "best.weights.h5")
        best = keras.callbacks.ModelCheckpoint(
            path, monitor="val_accuracy", mode="max", save_best_only=True, save_weights_only=True
        )
        return super().run_trial(trial, *args, callbacks=[best], **kwargs)

train_ds = (
    __import__("tensorflow").data.Dataset.from_tensor_slices((x_train, y_train))
    .shuffle(2048, seed=0).repeat().batch(64, drop_remainder=True)
)
tuner = Tuner(
    build, objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=8, seed=1,
    directory={directory!r}, project_name="kt", overwrite=True,
)
tuner.search(
    train_ds, steps_per_epoch=50, epochs=6, validation_data=(x_test, y_test),
    validation_batch_size=64, verbose=0,
)
print("best", tuner.oracle.get_best_trials(1)[0].score)
"""


def _run(command, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run(
        command,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {"tfplaybook": [], "keras-tuner + fit": []}
    for _ in range(args.repeats):
        scratch = tempfile.mkdtemp(prefix="tfplaybook-vs-kt-")
        study = os.path.join(scratch, "study")
        results["tfplaybook"].append(
            _run([sys.executable, "-m", "tfplaybook.run", f"--workdir={study}", "--quiet"], REPO)
        )
        code = KERAS_TUNER_STUDY.format(repo=REPO, directory=os.path.join(scratch, "kt"))
        results["keras-tuner + fit"].append(_run([sys.executable, "-c", code], REPO))
    print(f"{'side':<20} {'median wall s':>14} {'median CPU s':>13}  runs (wall)")
    medians = {}
    for side, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        medians[side] = (wall, cpu)
        shown = ", ".join(f"{w:.1f}" for w, _ in runs)
        print(f"{side:<20} {wall:>14.1f} {cpu:>13.1f}  {shown}")
    (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = medians.values()
    print(
        f"ratio tfplaybook / keras-tuner: wall {ours_wall / theirs_wall:.2f}, "
        f"CPU {ours_cpu / theirs_cpu:.2f} (target <= 0.5)"
    )


if __name__ == "__main__":
    main()
