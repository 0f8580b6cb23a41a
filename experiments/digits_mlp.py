"""A two-layer MLP with layer norm on the embedded digits: the smallest, fastest experiment.

What it is for: quick checks of the pipeline and small studies over optimizer hyperparameters
(Adam, so the report's Adam advice applies, checklist 98).

Run:
  python -m tfplaybook.run --mode=train --experiment=experiments/digits_mlp.py --workdir=/tmp/mlp

Expect: about 96% validation accuracy after 300 steps, in under 10 s on a 2-core CPU.
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
            "eval_batch_size": 0,
            "shuffle_buffer": 2048,
            "cache": True,
            "augment": False,
            "slow_map_ms": 0.0,
        },
        "model": {
            "name": "mlp",
            "width": 128,
            "depth": 2,
            "dropout": 0.0,
            "activation": "relu",
            "normalization": "layer",
            "batch_norm": "sync",
            "virtual_batch_size": 64,
        },
        "optimizer": {
            "name": "adam",
            "learning_rate": 3e-3,
            "momentum": 0.9,
            "beta1": 0.9,
            "beta2": 0.999,
            "epsilon": 1e-7,
            "weight_decay": 0.0,
            "clip_norm": 0.0,
        },
        "schedule": {
            "name": "cosine",
            "warmup_steps": 0,
            "decay_start_step": 0,
            "decay_steps": 0,
            "end_factor": 0.0,
        },
        "study": {
            "name": "digits_mlp",
            "max_trials": 8,
            "oracle": "quasi_random",
            "design": "joint",
            # A trial whose worker sends no heartbeat for this long goes to another worker.
            "stale_trial_seconds": 120,
            "search_space": [
                {
                    "name": "optimizer.learning_rate",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 1e-4,
                    "max": 3e-2,
                },
                {
                    "name": "optimizer.beta1",
                    "role": "nuisance",
                    "scale": "reverse_log",
                    "min": 0.5,
                    "max": 0.99,
                },
            ],
        },
    }
