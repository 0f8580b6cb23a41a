"""ResNet-20 on synthetic 32x32x3 images held in memory: for throughput work, no dataset needed.

What it is for: batch-size sweeps and input-pipeline diagnosis (checklist 6-9, 78-80). The images
are generated (learnable class means plus noise), so the pipeline costs almost nothing unless
`data.slow_map_ms` adds a deliberately costly map. `model.batch_norm` selects synchronized,
per-replica or ghost batch norm.

Run:
  python -m tfplaybook.run --mode=train --experiment=experiments/synthetic_resnet.py \
      --workdir=/tmp/syn

Expect: validation accuracy near 100% (the classes are easy) after 100 steps; about
20 s on a 2-core CPU.
"""


def get_config():
    return {
        "seed": 0,
        "batch_size": 32,
        "max_train_steps": 100,
        "eval_every_steps": 50,
        "checkpoint_every_steps": 50,
        "keep_best_checkpoints": 2,
        "objective": {"metric": "accuracy", "goal": "max"},
        "divergence_loss_factor": 20.0,
        "data": {
            "dataset": "synthetic",
            "data_dir": "",
            "train_split": "train",
            "eval_split": "test",
            "eval_batch_size": 0,
            "shuffle_buffer": 1024,
            "cache": True,
            "augment": False,
            "slow_map_ms": 0.0,
            "image_shape": [32, 32, 3],
            "num_classes": 10,
            "num_train_examples": 2048,
            "num_eval_examples": 256,
        },
        "model": {
            "name": "resnet",
            "depth": 20,
            "width": 1,
            "dropout": 0.0,
            "activation": "relu",
            "normalization": "batch",
            "norm_placement": "pre",
            "zero_init_residual": True,
            "batch_norm": "sync",
            "virtual_batch_size": 16,
            # Short runs need faster-moving statistics for evaluation to match training.
            "bn_momentum": 0.9,
        },
        "optimizer": {
            "name": "nesterov",
            "learning_rate": 0.05,
            "momentum": 0.9,
            "beta1": 0.9,
            "beta2": 0.999,
            "epsilon": 1e-7,
            "weight_decay": 0.0,
            "clip_norm": 0.0,
        },
        "schedule": {
            "name": "cosine",
            "warmup_steps": 10,
            "decay_start_step": 0,
            "decay_steps": 0,
            "end_factor": 0.0,
        },
        "study": {
            "name": "synthetic_resnet",
            "max_trials": 4,
            "oracle": "quasi_random",
            "design": "joint",
            # A trial whose worker sends no heartbeat for this long goes to another worker.
            "stale_trial_seconds": 120,
            "search_space": [
                {
                    "name": "optimizer.learning_rate",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 0.01,
                    "max": 0.5,
                }
            ],
        },
    }
