"""Every command-line flag of tfplaybook, defined once (absl FlagHolders, read with `.value`).

`--flagfile=FILE` works too: absl provides it.
"""

from absl import flags

from tfplaybook.choices import PRECISIONS, RERUN_VARY_CHOICES, STRATEGIES

MODES = (
    "tune",
    "train",
    "analyze",
    "advise",
    "list",
    "batch_sweep",
    "critical_batch",
    "lr_sweep",
    "warmup_sweep",
    "probe",
    "clip_advice",
    "compare",
    "bn_check",
)

MODE = flags.DEFINE_enum(
    "mode",
    "tune",
    MODES,
    "What to do: tune runs (or resumes) the experiment's study, train trains one configuration, "
    "analyze (re)writes a study's report from its files, advise writes the next round's "
    "experiment file (next_experiment.py) from a finished study's checks, list prints the study "
    "index of the runs root; batch_sweep, critical_batch, lr_sweep, warmup_sweep, probe and "
    "clip_advice run the playbook's procedures and write their recommendation under --workdir; "
    "compare decides whether to adopt --candidate over --baseline by rerunning both bests; "
    "bn_check prints per-replica batch-norm statistics.",
)
EXPERIMENT = flags.DEFINE_string(
    "experiment",
    None,
    "Path of the experiment file (Python defining get_config()); default "
    "experiments/digits_cnn.py, the embedded offline default.",
)
WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Directory for this run's outputs; running the same command again resumes it. "
    "Default: runs/<experiment name>.",
)
OVERRIDE = flags.DEFINE_multi_string(
    "override",
    [],
    "KEY=VALUE change to the experiment config with a dotted key "
    "(e.g. optimizer.learning_rate=0.1); "
    "repeatable; an unknown key fails and lists the valid keys.",
)
DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Dataset overriding data.dataset: digits (embedded, offline), synthetic, or tfds:NAME for any "
    "prepared TFDS dataset.",
)
DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "TFDS data directory (local path or gs:// bucket) overriding data.data_dir; default "
    "$TFDS_DATA_DIR or ~/tensorflow_datasets.",
)
DOWNLOAD = flags.DEFINE_bool(
    "download",
    False,
    "Allow TFDS to download and prepare a dataset that is not prepared yet (never done otherwise).",
)
STRATEGY = flags.DEFINE_enum(
    "strategy",
    "auto",
    STRATEGIES,
    "Distribution strategy: auto picks TPU when one resolves, else all GPUs (mirrored), else CPU.",
)
TPU = flags.DEFINE_string(
    "tpu",
    "local",
    "TPU name or grpc:// address for the cluster resolver; 'local' means this Cloud TPU VM.",
)
NUM_CPU_REPLICAS = flags.DEFINE_integer(
    "num_cpu_replicas",
    1,
    "Without accelerators, split the CPU into this many logical devices and mirror over them.",
    lower_bound=1,
)
JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", False, "Compile the per-replica training step with XLA (as a TPU would)."
)
PRECISION = flags.DEFINE_enum(
    "precision",
    "float32",
    PRECISIONS,
    "Keras dtype policy: float32, mixed_bfloat16 (TPUs) or mixed_float16 (GPUs, with loss "
    "scaling).",
)
STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop",
    50,
    "Training steps per host call of the compiled loop (fewer host round trips; evaluation and "
    "checkpoint steps always end a loop).",
    lower_bound=1,
)
QUIET = flags.DEFINE_bool("quiet", False, "Print no per-loop progress lines.")
NOTES = flags.DEFINE_string(
    "notes", "", "A short description of the study, stored in the runs root's study index."
)
RUNS_ROOT = flags.DEFINE_string(
    "runs_root",
    None,
    "Directory holding the study index (index.sqlite); default: the parent of --workdir, or runs.",
)
TUNER_ROLE = flags.DEFINE_enum(
    "tuner_role",
    "none",
    ("none", "chief", "worker"),
    "Distributed tuning role: chief serves the oracle over gRPC and runs no trials, worker runs "
    "trials it gets from the chief, none tunes in this process alone.",
)
TUNER_CHIEF_ADDRESS = flags.DEFINE_string(
    "tuner_chief_address",
    "127.0.0.1",
    "Address the tuning chief binds to and workers connect to; loopback unless set explicitly.",
)
TUNER_CHIEF_PORT = flags.DEFINE_integer(
    "tuner_chief_port", 8470, "TCP port of the tuning chief's gRPC server.", lower_bound=1
)
TUNER_ID = flags.DEFINE_string(
    "tuner_id",
    None,
    "Name of this tuning worker (unique per worker); default worker-<hostname>-<pid>.",
)
MAX_MINUTES = flags.DEFINE_float(
    "max_minutes",
    None,
    "Wall-time bound of --mode=tune, batch_sweep, critical_batch and lr_sweep: once it has "
    "passed, the work stops cleanly after the trial or measurement in progress and keeps what it "
    "has (a study resumes with the same command; a sweep's summary says it was cut short).",
    lower_bound=0,
)
SWEEP_START_BATCH_SIZE = flags.DEFINE_integer(
    "sweep_start_batch_size",
    8,
    "Smallest batch size of --mode=batch_sweep and critical_batch; the sweep doubles it up to "
    "--sweep_max_batch_size.",
    lower_bound=1,
)
SWEEP_MAX_BATCH_SIZE = flags.DEFINE_integer(
    "sweep_max_batch_size",
    256,
    "Largest batch size of --mode=batch_sweep (which also stops at the first out-of-memory) and "
    "of --mode=critical_batch.",
    lower_bound=1,
)
SWEEP_STEPS = flags.DEFINE_integer(
    "sweep_steps",
    10,
    "Training steps per timed window of --mode=batch_sweep.",
    lower_bound=1,
)
SWEEP_REPEATS = flags.DEFINE_integer(
    "sweep_repeats",
    2,
    "Timed windows per batch size in --mode=batch_sweep, after one untimed warm-up window.",
    lower_bound=1,
)
CRITICAL_TRIALS = flags.DEFINE_integer(
    "critical_trials",
    8,
    "Trials of the quasi-random learning-rate study that --mode=critical_batch runs at each batch "
    "size.",
    lower_bound=1,
)
CRITICAL_LR_RANGE = flags.DEFINE_string(
    "critical_lr_range",
    None,
    "MIN,MAX learning-rate range of --mode=critical_batch at the config's batch_size; default the "
    "study's optimizer.learning_rate range, else 0.1x to 10x the config's learning rate.",
)
CRITICAL_LR_SCALING = flags.DEFINE_enum(
    "critical_lr_scaling",
    "sqrt",
    ("none", "sqrt", "linear"),
    "How --mode=critical_batch moves the learning-rate range with the batch size, relative to "
    "the config's batch_size: not at all, by sqrt(batch ratio) or by the batch ratio.",
)
TARGET_VALUE = flags.DEFINE_float(
    "target_value",
    None,
    "Validation objective value whose first reaching --mode=critical_batch counts in steps; "
    "default --target_fraction of the best value every batch size reached.",
)
TARGET_FRACTION = flags.DEFINE_float(
    "target_fraction",
    0.95,
    "Without --target_value, --mode=critical_batch targets this fraction of the best validation "
    "value every batch size reached (for a minimised objective, 2 minus it).",
)
SCALING_TOLERANCE = flags.DEFINE_float(
    "scaling_tolerance",
    1.25,
    "--mode=critical_batch counts steps within this factor of perfect scaling (steps halve when "
    "the batch doubles) as near-perfect.",
)
LEARNING_RATES = flags.DEFINE_string(
    "learning_rates",
    None,
    "Comma-separated learning rates of --mode=lr_sweep and warmup_sweep; default a log grid "
    "from 0.1x to 10x the config's learning rate.",
)
FIT_ERROR = flags.DEFINE_float(
    "fit_error",
    0.0,
    "Training error at or below which an --mode=lr_sweep run counts as fitting the training set "
    "perfectly (the playbook's 0 by default).",
)
FIT_LOSS = flags.DEFINE_float(
    "fit_loss",
    None,
    "lr_sweep for a task that records no accuracy (e.g. regression): the training loss at or "
    "below which the training set counts as fit perfectly; default 0.01.",
)
UNSTABLE_LEARNING_RATE = flags.DEFINE_float(
    "unstable_learning_rate",
    None,
    "The smallest unstable learning rate, given to --mode=warmup_sweep to skip its LR sweep.",
)
BEST_LEARNING_RATE = flags.DEFINE_float(
    "best_learning_rate",
    None,
    "The best learning rate found so far, probed at 2x and --probe_multiplier x by --mode=probe; "
    "default the config's learning rate.",
)
PROBE_STEPS = flags.DEFINE_integer(
    "probe_steps",
    500,
    "Training steps of each --mode=probe run (the playbook's ~500; evaluation runs every step).",
    lower_bound=1,
)
PROBE_MULTIPLIER = flags.DEFINE_float(
    "probe_multiplier",
    10.0,
    "Learning-rate multiplier of the second --mode=probe run, between 5 and 10.",
)
FROM = flags.DEFINE_string(
    "from",
    None,
    "Input directory: the finished trial for --mode=clip_advice, or the round-1 study whose best "
    "trial --round=2 trains.",
)
ROUND = flags.DEFINE_integer(
    "round",
    0,
    "Tuning round: 1 shortens the config for --mode=tune, 2 trains the best trial of --from to "
    "the full max_train_steps with --mode=train, 0 leaves the config as it is.",
    lower_bound=0,
    upper_bound=2,
)
REPORT_STUDY = flags.DEFINE_string(
    "report_study",
    None,
    "Study whose report gets the procedure's section; default the parent of --workdir when it "
    "holds a report.",
)
BASELINE = flags.DEFINE_string(
    "baseline",
    None,
    "Study directory of the baseline for --mode=compare (its best trial is rerun).",
)
CANDIDATE = flags.DEFINE_string(
    "candidate",
    None,
    "Study directory of the candidate for --mode=compare (its best trial is rerun).",
)
RERUNS = flags.DEFINE_integer(
    "reruns",
    3,
    "How many times --mode=compare re-trains each best trial with new seeds to measure trial "
    "variance (checklist 59).",
    lower_bound=2,
)
RERUN_VARY = flags.DEFINE_enum(
    "rerun_vary",
    "both",
    RERUN_VARY_CHOICES,
    "Which seeds each --mode=compare rerun changes: both (initialisation and data order), init "
    "(seed only), data (data_seed only), or sources (all three sets of reruns: decide on both, "
    "report each source's standard deviation; 3x the reruns).",
)
BN_CHECK_STEPS = flags.DEFINE_integer(
    "bn_check_steps",
    20,
    "Training steps --mode=bn_check runs between its before and after batch-norm reports.",
    lower_bound=1,
)
