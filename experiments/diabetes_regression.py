"""Regression on scikit-learn's bundled diabetes data: a user task with its own model and data.

What it is for: the worked example of the task contract (docs/tasks.md). The file defines its own
`make_dataset` (standardised features and target, a fixed 80/20 split, no download: the data ship
inside scikit-learn) and its own `build_model` (an MLP with one linear output), the loss is
mean squared error and the study's objective is the validation mean absolute error, minimised.
The question of its study: does a wider hidden layer help? (`model.hidden_units`, scientific;
learning rate and weight decay are nuisance hyperparameters.)

Run one training:
  python -m tfplaybook.run --mode=train --experiment=experiments/diabetes_regression.py \
      --workdir=/tmp/diabetes
Run the study:
  python -m tfplaybook.run --experiment=experiments/diabetes_regression.py

Expect (measured on a 2-core CPU): one training of 400 steps ends near a validation MAE of
0.55-0.6 (in standard deviations of the target; predicting the mean gives about 0.8).
"""

import numpy as np

_SPLIT_SEED = 7


def get_config():
    return {
        "seed": 0,
        "batch_size": 32,
        "max_train_steps": 400,
        "eval_every_steps": 50,
        "loss": "mse",
        "metrics": ["mae"],
        "objective": {"metric": "mae", "goal": "min"},
        "data": {"dataset": "diabetes", "shuffle_buffer": 512},
        "model": {"hidden_units": 64, "depth": 2, "dropout": 0.0},
        "optimizer": {"name": "adam", "learning_rate": 3e-3},
        "schedule": {"name": "cosine"},
        "study": {
            "name": "diabetes_regression",
            "max_trials": 8,
            "oracle": "quasi_random",
            "search_space": [
                {
                    "name": "model.hidden_units",
                    "role": "scientific",
                    "scale": "discrete",
                    "values": [16, 64],
                },
                {
                    "name": "optimizer.learning_rate",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 3e-4,
                    "max": 3e-2,
                },
                {
                    "name": "optimizer.weight_decay",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 1e-5,
                    "max": 1e-2,
                },
            ],
        },
    }


def _arrays():
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    order = np.random.RandomState(_SPLIT_SEED).permutation(len(y))
    x, y = x[order], y[order]
    num_eval = len(y) // 5
    train_x, train_y = x[num_eval:], y[num_eval:]
    # Standardise with the training split's statistics only.
    mean_x, std_x = train_x.mean(0), train_x.std(0)
    mean_y, std_y = train_y.mean(), train_y.std()
    scale = lambda a, m, s: ((a - m) / s).astype(np.float32)  # noqa: E731
    return {
        "train": (scale(train_x, mean_x, std_x), scale(train_y, mean_y, std_y)),
        "eval": (scale(x[:num_eval], mean_x, std_x), scale(y[:num_eval], mean_y, std_y)),
    }


def make_dataset(split, config):
    import tensorflow as tf

    del config  # Nothing in the data depends on the trial's hyperparameters.
    return tf.data.Dataset.from_tensor_slices(_arrays()[split])


def build_model(config, data_spec):
    import keras

    cfg = config["model"]
    inputs = keras.Input(data_spec.feature_shape)
    x = inputs
    for _ in range(cfg["depth"]):
        x = keras.layers.Dense(cfg["hidden_units"], activation="relu")(x)
        if cfg["dropout"] > 0:
            x = keras.layers.Dropout(cfg["dropout"])(x)
    return keras.Model(inputs, keras.layers.Dense(1, dtype="float32")(x))
