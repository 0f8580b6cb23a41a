"""Small batch-norm CNN on scikit-learn's bundled digits: the embedded, offline default.

What it is for: the default experiment and study. It needs no download: the digits images ship
inside scikit-learn and tfplaybook's embedded TFDS builder prepares them on first use.

Run one training:
  python -m tfplaybook.run --mode=train --experiment=experiments/digits_cnn.py --workdir=/tmp/cnn
Run the default study (does a wider CNN help? quasi-random search over the width, a scientific
hyperparameter, with the learning rate and momentum as nuisance hyperparameters):
  python -m tfplaybook.run

Expect (measured on a 2-core CPU, TensorFlow's start-up included): one training reaches about
97.8% validation accuracy after 300 steps in about 23 s; the default study's 8 trials take
about 35-40 s.
"""


def get_config():
    return {
        "seed": 0,
        "batch_size": 64,
        "max_train_steps": 300,
        "eval_every_steps": 50,
        "checkpoint_every_steps": 100,
        "keep_best_checkpoints": 3,
        "objective": {"metric": "accuracy", "goal": "max"},
        "divergence_loss_factor": 20.0,
        "data": {
            "dataset": "digits",
            "data_dir": "",
            "train_split": "train",
            "eval_split": "test",
            "eval_batch_size": 0,  # 0: the training batch size (checklist 83).
            "shuffle_buffer": 2048,
            "cache": True,
            "augment": False,
            "slow_map_ms": 0.0,
        },
        "model": {
            "name": "cnn",
            "width": 32,
            "depth": 2,
            "dense_width": 128,
            "dropout": 0.0,
            "activation": "relu",
            "normalization": "batch",
            "batch_norm": "sync",
            "virtual_batch_size": 64,
        },
        "optimizer": {
            "name": "nesterov",
            "learning_rate": 0.05,
            "momentum": 0.9,
            "beta1": 0.9,
            "beta2": 0.999,
            "epsilon": 1e-7,
            "weight_decay": 0.0,
            "clip_norm": 0.0,  # 0: no clipping; the unclipped norm is logged either way.
        },
        "schedule": {
            "name": "cosine",
            "warmup_steps": 0,
            "decay_start_step": 0,
            "decay_steps": 0,
            "end_factor": 0.0,
        },
        "study": {
            "name": "digits_cnn",
            "max_trials": 8,
            "oracle": "quasi_random",
            "design": "joint",
            # A trial whose worker sends no heartbeat for this long goes to another worker.
            "stale_trial_seconds": 120,
            "search_space": [
                # The question of the default study: does a wider CNN help? The width is
                # scientific; the learning rate and momentum are nuisance (checklist 28-29).
                {
                    "name": "model.width",
                    "role": "scientific",
                    "scale": "discrete",
                    "values": [16, 32],
                },
                {
                    "name": "optimizer.learning_rate",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 1e-3,
                    "max": 1.0,
                },
                {
                    "name": "optimizer.momentum",
                    "role": "nuisance",
                    "scale": "reverse_log",
                    "min": 0.5,
                    "max": 0.99,
                },
            ],
        },
    }
