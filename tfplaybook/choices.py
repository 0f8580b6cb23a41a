"""The closed sets of names that configs and flags accept, each owned here once.

Pure Python, so every name can be checked before TensorFlow loads (tfplaybook.validation); the
modules that implement them import their list from here.
"""

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "nadam", "adamw")
BATCH_NORM_MODES = ("sync", "per_replica", "ghost")
ORACLES = ("quasi_random", "bayesian")
STRATEGIES = ("auto", "tpu", "mirrored", "multi_worker", "one_device", "cpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NORM_PLACEMENTS = ("pre", "post")
# --rerun_vary of --mode=compare: the seeds each rerun changes (tfplaybook.study.adoption), or
# "sources": all three sets of reruns.
RERUN_SEEDS = ("both", "init", "data")
RERUN_VARY_CHOICES = RERUN_SEEDS + ("sources",)
