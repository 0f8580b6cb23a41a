"""ResNet-20 with batch norm on CIFAR-10 from TFDS, for users who have cifar10 prepared.

What it is for: a realistic image-classification workload for TPU VMs and GPU hosts. It needs
the TFDS `cifar10` dataset prepared under --data_dir (for example a gs:// bucket on a Cloud TPU VM);
tfplaybook never downloads unless --download is given. `model.batch_norm` selects synchronized,
per-replica or ghost batch norm (`model.virtual_batch_size`, checklist 94).

Run:
  python -m tfplaybook.run --mode=train --experiment=experiments/cifar10_resnet.py \
      --data_dir=gs://BUCKET/tensorflow_datasets --workdir=gs://BUCKET/runs/resnet20

Expect: He et al. (2016) report 91.25% test accuracy for ResNet-20 with this kind of schedule.
Not measured by tfplaybook (no accelerator or cifar10 here); on a CPU this experiment is
impractical.
"""


def get_config():
    return {
        "seed": 0,
        "batch_size": 128,
        "max_train_steps": 64000,
        "eval_every_steps": 2000,
        "checkpoint_every_steps": 2000,
        "keep_best_checkpoints": 3,
        "objective": {"metric": "accuracy", "goal": "max"},
        "divergence_loss_factor": 20.0,
        "data": {
            "dataset": "tfds:cifar10",
            "data_dir": "",
            "train_split": "train",
            "eval_split": "test",
            "eval_batch_size": 0,
            "shuffle_buffer": 10000,
            "cache": True,
            "augment": True,
            "slow_map_ms": 0.0,
        },
        "model": {
            "name": "resnet",
            "depth": 20,
            "width": 1,
            "dropout": 0.0,
            "activation": "relu",
            "normalization": "batch",
            "norm_placement": "post",
            "zero_init_residual": False,
            "batch_norm": "sync",
            "virtual_batch_size": 64,
        },
        "optimizer": {
            "name": "nesterov",
            "learning_rate": 0.1,
            "momentum": 0.9,
            "beta1": 0.9,
            "beta2": 0.999,
            "epsilon": 1e-7,
            "weight_decay": 5e-4,
            "clip_norm": 0.0,
        },
        "schedule": {
            "name": "cosine",
            "warmup_steps": 1000,
            "decay_start_step": 0,
            "decay_steps": 0,
            "end_factor": 0.0,
        },
        "study": {
            "name": "cifar10_resnet",
            "max_trials": 20,
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
                    "max": 1.0,
                },
                {
                    "name": "optimizer.weight_decay",
                    "role": "nuisance",
                    "scale": "log",
                    "min": 1e-5,
                    "max": 1e-3,
                },
            ],
        },
    }
