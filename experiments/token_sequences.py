"""Token sequences: an embedding-and-pooling classifier, a user task with integer inputs.

What it is for: the task contract on non-image data. `make_dataset` reads an .npz file
(`data.path`, arrays `tokens` of shape [examples, length] with 0 as padding, and `labels`), or,
with no path, generates such a dataset itself (two classes drawing their tokens from overlapping
halves of the vocabulary). `build_model` embeds the tokens (masking the padding), averages them
and classifies. Loss sparse categorical cross-entropy on logits, objective validation accuracy.

Run one training:
  python -m tfplaybook.run --mode=train --experiment=experiments/token_sequences.py \
      --workdir=/tmp/tokens
Run the study (does a larger embedding help?):
  python -m tfplaybook.run --experiment=experiments/token_sequences.py

Expect (measured on a 2-core CPU): above 90% validation accuracy after 200 steps on the
generated data.
"""

import numpy as np


def get_config():
    return {
        "seed": 0,
        "batch_size": 32,
        "max_train_steps": 200,
        "eval_every_steps": 50,
        "data": {
            "dataset": "token_sequences",
            "path": "",  # An .npz with tokens and labels; empty: generated.
            "vocab_size": 50,
            "eval_fraction": 0.2,
        },
        "model": {"embedding_dim": 16, "dropout": 0.0},
        "optimizer": {"name": "adam", "learning_rate": 3e-3},
        "study": {
            "name": "token_sequences",
            "max_trials": 6,
            "oracle": "quasi_random",
            "search_space": [
                {
                    "name": "model.embedding_dim",
                    "role": "scientific",
                    "scale": "discrete",
                    "values": [4, 16],
                },
                {
                    "name": "optimizer.learning_rate",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 1e-3,
                    "max": 3e-2,
                },
            ],
        },
    }


def generate(num_examples, length, vocab_size, seed):
    """Two classes of variable-length sequences padded with 0 to `length`."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, size=num_examples)
    tokens = np.zeros((num_examples, length), np.int32)
    half = vocab_size // 2
    for i, label in enumerate(labels):
        n = rng.randint(length // 2, length + 1)
        low = 1 + label * (half // 5)
        tokens[i, :n] = rng.randint(low, low + half, size=n)
    return tokens, labels.astype(np.int32)


def _arrays(data, seed):
    if data["path"]:
        with np.load(data["path"]) as f:
            tokens, labels = f["tokens"].astype(np.int32), f["labels"].astype(np.int32)
    else:
        tokens, labels = generate(1200, 24, data["vocab_size"], seed)
    num_eval = int(round(len(labels) * data["eval_fraction"]))
    return {
        "train": (tokens[num_eval:], labels[num_eval:]),
        "eval": (tokens[:num_eval], labels[:num_eval]),
    }


def make_dataset(split, config):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(_arrays(config["data"], config["seed"])[split])


def build_model(config, data_spec):
    import keras

    cfg = config["model"]
    inputs = keras.Input(data_spec.feature_shape, dtype="int32")
    x = keras.layers.Embedding(config["data"]["vocab_size"], cfg["embedding_dim"], mask_zero=True)(
        inputs
    )
    x = keras.layers.GlobalAveragePooling1D()(x)
    if cfg["dropout"] > 0:
        x = keras.layers.Dropout(cfg["dropout"])(x)
    logits = keras.layers.Dense(data_spec.require_num_classes(), dtype="float32")(x)
    return keras.Model(inputs, logits)
