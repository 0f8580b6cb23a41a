"""Every private internal of keras-tuner and Keras that tfplaybook relies on, in one module.

Nothing else in tfplaybook reaches into keras-tuner's or Keras' private names (`_name`
attributes, `keras_tuner.src`, `keras.src`): tests/test_internals.py scans the package for it.
So a library upgrade that changes an internal breaks here, in one file, and the version check
(`check`, the ranges `setup.py` pins) refuses an untested version with one line first.

Two kinds of internal:

* Read or called through the functions below (no global state changes): an oracle's retry queue,
  project directory, seed state, duplicate check, value hashes and trial writer; keras-tuner 1.4's
  `Oracle.create_trial` step by step (`create_trial`, for trial ids of a fixed width); a tuner's
  worker test, file name and default initial space; Keras' recursive layer list, an optimizer's
  slot index of a variable and the TF optimizer's gradient all-reduce hook; TensorFlow's gradient
  registry (a finished trial's custom gradients are forgotten, or each trial's graph stays);
  TensorFlow's eager global seed, set without clearing the kernel cache (`seeded_build`); a
  worker's gRPC stub to the chief, wrapped so a call cut by the chief's death is made again.
* Replaced while a study runs, and only then (`installed`): keras-tuner's `utils.save_json`
  (atomic state files) and, on a distributed chief, its exit check (`oracle_chief.exit_chief`,
  so a worker that died between trials does not hold the chief). The user's own keras-tuner code
  in the same process sees the stock library outside a study.

One process-wide setting, made by the command line only (`python -m tfplaybook.run`), never by
the Python API: `skip_keras_optional_imports` keeps Keras and keras-tuner from importing
scikit-learn, pandas and matplotlib for features a tfplaybook run does not use (Keras' sklearn
wrappers, pandas inputs to `fit`, its image-gallery plot), each of which they import only if it
is installed.

What catches a change, beyond the version check: tests/test_reliability.py and bench/chaos.py
(kills at random moments: atomic writes), tests/test_idle_worker.py (the chief's exit),
tests/test_batchnorm.py (2 replicas against 1 on the same global batch: the all-reduce hook and
the layer list), tests/test_state_recovery.py (the oracle's state rebuilt from its trials).
"""

import contextlib
import importlib
import json
import random
import sys

from tfplaybook.config import ConfigError

# (distribution, import name, lowest tested, first untested): the ranges setup.py pins.
TESTED = (
    ("keras-tuner", "keras_tuner", (1, 4, 8), (1, 5)),
    ("keras", "keras", (3, 15), (3, 16)),
)


def _version(text):
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check(installed_versions=None):
    """Raises ConfigError unless every library in TESTED is within its tested range.

    Args:
      installed_versions: {import name: version string} instead of importing (for tests).
    """
    for distribution, module, low, high in TESTED:
        found = (installed_versions or {}).get(module)
        if found is None:
            found = importlib.import_module(module).__version__
        if not low <= _version(found) < high:
            wanted = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
            raise ConfigError(
                f"{distribution} {found} is not a version tfplaybook is tested with ({wanted}); "
                f"install one: pip install '{distribution}{wanted}'"
            )


# keras-tuner's oracle.


def is_chief_oracle():
    """True in the chief process of a distributed keras-tuner study."""
    from keras_tuner.src.distribute import utils

    return utils.is_chief_oracle()


def project_dir(oracle):
    return oracle._project_dir


def retry_queue(oracle):
    """The oracle's queue of trial ids to run again (the live list: changes are kept)."""
    return oracle._retry_queue


def set_retry_queue(oracle, trial_ids):
    oracle._retry_queue = list(trial_ids)


def max_collisions(oracle):
    """How many repeated values keras-tuner tolerates before it gives up on a new trial."""
    return oracle._max_collisions


def seed_state(oracle):
    return oracle._seed_state


def set_seed_state(oracle, seed):
    oracle._seed_state = seed


def is_duplicate(oracle, values):
    """True when `values` repeat an earlier trial's (keras-tuner's hash of the values)."""
    return oracle._duplicate(values)


def record_values(oracle, trial):
    """Records a trial's values so that later trials are checked against them."""
    oracle._record_values(trial)


def values_hash(oracle, values):
    return oracle._compute_values_hash(values)


def save_trial(oracle, trial):
    """Writes the trial's trial.json in the oracle's project directory."""
    oracle._save_trial(trial)


def create_trial(oracle, tuner_id, trial_id):
    """keras-tuner 1.4.8's `Oracle.create_trial`, step for step, with the new trial's id given.

    keras-tuner pads a new trial's id to the digits of the *current* max_trials; the caller
    chooses the id instead (tfplaybook.search.oracles keeps the width of the study's trial 0).
    """
    from keras_tuner.engine import trial as trial_module

    status_of = trial_module.TrialStatus
    if tuner_id in oracle.ongoing_trials:
        return oracle.ongoing_trials[tuner_id]
    oracle.tuner_ids.add(tuner_id)
    queue = retry_queue(oracle)
    if queue:
        trial = oracle.trials[queue.pop()]
        trial.status = status_of.RUNNING
        oracle.ongoing_trials[tuner_id] = trial
        oracle.save()
        oracle._display.on_trial_begin(trial)
        return trial
    if oracle.max_trials and len(oracle.trials) >= oracle.max_trials:
        status, values = status_of.STOPPED, None
    else:
        response = oracle.populate_space(trial_id)
        status, values = response["status"], response.get("values")
    hyperparameters = oracle.hyperparameters.copy()
    hyperparameters.values = values or {}
    trial = trial_module.Trial(hyperparameters=hyperparameters, trial_id=trial_id, status=status)
    if status == status_of.RUNNING:
        record_values(oracle, trial)
        oracle.ongoing_trials[tuner_id] = trial
        oracle.trials[trial_id] = trial
        oracle.start_order.append(trial_id)
        save_trial(oracle, trial)
        oracle.save()
        oracle._display.on_trial_begin(trial)
    if status == status_of.STOPPED:
        oracle.tuner_ids.remove(tuner_id)  # Tells the chief this tuner has left.
    return trial


# keras-tuner's tuner.


def _base_tuner():
    from keras_tuner.engine import base_tuner

    return base_tuner.BaseTuner


def is_worker(tuner):
    """True in a worker of a distributed study (its oracle is the chief's, over gRPC)."""
    return tuner._is_worker()


CHIEF_CALL_ATTEMPTS = 10


class _RetryingStub:
    """A worker's gRPC stub to the chief whose calls survive the chief's restart.

    keras-tuner's `OracleClient` calls with `wait_for_ready`, which waits for a chief that is not
    up yet, but a chief killed *during* a call fails it with UNAVAILABLE ("Stream removed"), and
    that ended the worker (seen when the chief died while a worker ended its trial). Such a call
    is made again, waiting for the restarted chief, up to CHIEF_CALL_ATTEMPTS times. Every call
    is safe to repeat: asking for a trial returns the one the tuner holds, an update overwrites,
    and the chief ignores the repeat of an end it recorded (tfplaybook.study.resilience).
    """

    def __init__(self, stub, attempts=CHIEF_CALL_ATTEMPTS):
        self._stub, self._attempts = stub, attempts

    def __getattr__(self, name):
        import grpc

        call = getattr(self._stub, name)

        def retried(*args, **kwargs):
            for attempt in range(1, self._attempts + 1):
                try:
                    return call(*args, **kwargs)
                except grpc.RpcError as e:
                    lost = getattr(e, "code", lambda: None)() == grpc.StatusCode.UNAVAILABLE
                    if not lost or attempt == self._attempts:
                        raise

        return retried


def retrying_stub(stub):
    """`stub` (a gRPC stub to the chief) with calls that survive the chief's restart."""
    return stub if isinstance(stub, _RetryingStub) else _RetryingStub(stub)


def retry_calls_lost_with_the_chief(tuner):
    """On a worker, makes the tuner's calls to the chief survive the chief's restart."""
    client = tuner.oracle
    if is_worker(tuner) and hasattr(client, "stub"):
        client.stub = retrying_stub(client.stub)


def tuner_file(tuner):
    """The path of the tuner's own state file (tuner0.json, or tuner-<id>.json on a worker)."""
    return tuner._get_tuner_fname()


def load_tuner_file(tuner, path):
    """Loads the tuner's own state file only (keras-tuner's `Stateful.reload`)."""
    super(_base_tuner(), tuner).reload(path)


class InitialSpaceHook:
    """Mixed in before a keras-tuner tuner class: its private first-space step made public.

    keras-tuner's `BaseTuner._populate_initial_space` builds the hypermodel once to register its
    hyperparameters (and, when the tuner file exists, reloads the study instead). A tuner that
    mixes this in overrides `populate_initial_space()`; `default_initial_space()` is
    keras-tuner's own step.
    """

    def _populate_initial_space(self):
        self.populate_initial_space()

    def populate_initial_space(self):
        self.default_initial_space()

    def default_initial_space(self):
        _base_tuner()._populate_initial_space(self)


# Keras.


def flatten_layers(model):
    """Every layer of `model`, nested ones included, in a stable order.

    Keras 3 has no public recursive layer iterator (`Model.layers` is one level deep).
    """
    return list(model._flatten_layers())


def variable_index(optimizer, variable):
    """The index of `variable` in an optimizer's slot lists (Keras' own optimizers use it)."""
    return optimizer._get_variable_index(variable)


def disable_gradient_all_reduce(optimizer):
    """Stops a Keras TF optimizer from summing gradients over replicas itself.

    For a loop that has already summed them (tfplaybook.training.engine): the optimizer would
    otherwise sum them a second time. `optimizer` is the inner optimizer (not a LossScaleOptimizer).
    """
    optimizer._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)


# Replaced while a study runs.

_PATCHES = []  # (module, attribute, original) replaced while a study runs.


def custom_gradients():
    """Names of the custom gradients TensorFlow's global gradient registry holds now.

    `tf.custom_gradient` in a traced function (a replica context's all_reduce uses one) registers
    its gradient function under a fresh name and never removes it, and that function keeps the
    whole traced graph alive: a study forgets those of each finished trial
    (`forget_custom_gradients`).
    """
    from tensorflow.python.framework import ops

    return {name for name in ops._gradient_registry._registry if name.startswith(_CUSTOM)}


def forget_custom_gradients(keep):
    """Drops the registry's custom gradients not in `keep` (those of a finished trial's graphs)."""
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    for name in [n for n in registry if n.startswith(_CUSTOM) and n not in keep]:
        del registry[name]


_CUSTOM = "CustomGradient-"

# Stateful random ops (their kernels keep a random state, so a cached kernel continues where the
# last run stopped): op types starting with these.
_STATEFUL_RANDOM = ("Random", "TruncatedNormal", "Multinomial", "ParameterizedTruncatedNormal")


def clear_session_keeping_kernels():
    """`keras.backend.clear_session(free_memory=False)` without clearing TensorFlow's kernel cache.

    Keras' global state (layer name counters, the functional API's graph) is reset as usual; the
    eager context's kernel cache, which holds the instantiated traced loops of the engines a
    study shares, stays (see `seeded_build` for what clearing it costs).
    """
    import keras
    from tensorflow.python.eager import context

    eager = context.context()
    eager.clear_kernel_cache = lambda: None
    try:
        keras.backend.clear_session(free_memory=False)
    finally:
        del eager.clear_kernel_cache


def seeded_build(seed, build):
    """`build()` after `keras.utils.set_random_seed(seed)`, keeping TensorFlow's kernel cache.

    `tf.random.set_seed` clears the eager context's kernel cache, so that stateful random kernels
    restart from the new seed. That cache also holds the instantiated traced loops, which a trial
    on a shared engine (tfplaybook.training.engine) then instantiates again: measured here, its
    first 50 steps of the default study took 550 ms instead of 260 and its first evaluation
    110-150 ms instead of 17. So the seed is set without clearing the cache, and the ops `build`
    runs are watched: one stateful random op (`tf.random.uniform` rather than Keras' seeded
    initializers) and the seed is set again the stock way and `build` runs again, so such a
    model gets exactly the weights of a fresh process.
    """
    import keras
    from tensorflow.python.eager import context
    from tensorflow.python.framework import op_callbacks

    eager = context.context()

    def set_global_seed_only(value):  # Context._set_global_seed, less the cache clearing.
        eager._seed = value
        eager._rng = random.Random(int(value))

    seen = []

    def watch(op_type, *args, **kwargs):
        if isinstance(op_type, str) and op_type.startswith(_STATEFUL_RANDOM):
            seen.append(op_type)

    eager._set_global_seed = set_global_seed_only
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del eager._set_global_seed  # The class's own method again.
    op_callbacks.add_op_callback(watch)
    try:
        built = build()
    finally:
        op_callbacks.remove_op_callback(watch)
    if not seen:
        return built
    keras.utils.set_random_seed(seed)
    return build()


def weights_file_layout(model):
    """What `model.save_weights` writes, in order: [(group path, metadata, dataset key or None,
    variable)] (None as key: the group itself), recorded by Keras' own `_save_state` against a
    store that keeps what it is given. None when a replay could differ from Keras' file: a
    saved value that is not a variable (a layer that computes what it saves), or internals
    other than Keras 3.15's (tfplaybook.training.checkpoints.WeightsWriter)."""
    import keras
    import tensorflow as tf

    try:
        from keras.src.saving import saving_lib
    except ImportError:
        return None

    class Recorder(saving_lib.H5IOStore):
        # _save_state accepts only Keras' own stores; this one keeps no file.
        def __init__(self):
            self.mode = "w"
            self.entries = []
            self._path = self._metadata = None
            self._created = False

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            self._path, self._metadata = path, dict(metadata) if metadata else None
            self._created = bool(metadata)
            if metadata:  # Keras creates a group with metadata at once, others on first use.
                self.entries.append((path, self._metadata, None, None))
            return self

        def __setitem__(self, key, value):
            if not self._created:
                self.entries.append((self._path, self._metadata, None, None))
                self._created = True
            self.entries.append((self._path, self._metadata, key, value))

    recorder = Recorder()
    try:
        saving_lib._save_state(
            model, weights_store=recorder, assets_store=None, inner_path="", visited_saveables=set()
        )
    except Exception:  # Other internals than these: Keras saves the model itself.
        return None
    variables = (keras.Variable, tf.Variable)
    if not all(v is None or isinstance(v, variables) for _, _, _, v in recorder.entries):
        return None
    return recorder.entries


def _patch(module, name, replacement):
    _PATCHES.append((module, name, getattr(module, name)))
    setattr(module, name, replacement)


def _keras_tuner_utils():
    from keras_tuner.src import utils

    return utils


def _atomic_save_json(path, obj):
    # keras-tuner 1.4.8 writes oracle.json, trial.json and tuner*.json in place: a SIGKILL during
    # a write leaves a torn file and the study can no longer be reloaded. Every keras-tuner state
    # write goes through utils.save_json (Stateful.save), so route it through a temporary file
    # and a rename.
    from tfplaybook.files import trial_dir

    text = json.dumps(obj)
    if "://" in str(path):  # gs:// and other tf.io.gfile paths: keras-tuner's own writer.
        return _ORIGINAL_SAVE_JSON(path, obj)
    trial_dir.atomic_write_text(path, text)
    return text


_ORIGINAL_SAVE_JSON = None  # keras-tuner's own, kept by `installed`.


def is_installed():
    """True while a study's replacements are in place."""
    return bool(_PATCHES)


@contextlib.contextmanager
def installed():
    """keras-tuner's internals replaced for the duration of one study, restored afterwards.

    Checks the library versions first (ConfigError on an untested one). Replaced:
    `utils.save_json` (atomic state files); a distributed chief's oracle adds its exit check
    (`install_chief_exit_check`) while this is in place.
    """
    global _ORIGINAL_SAVE_JSON
    check()
    utils = _keras_tuner_utils()
    _ORIGINAL_SAVE_JSON = utils.save_json
    _patch(utils, "save_json", _atomic_save_json)
    try:
        yield
    finally:
        while _PATCHES:
            module, name, original = _PATCHES.pop()
            setattr(module, name, original)


def install_chief_exit_check():
    """While a study runs: the chief asks its oracle to forget dead idle tuners before exiting.

    keras-tuner's chief server polls `oracle_chief.exit_chief(oracle)` (ongoing trials and
    tuners both empty) once a tuner has been told to stop; a worker that died between trials is
    never told, so the chief waited for ever. The oracle's `forget_silent_tuners()` (if it has
    one) runs first. Outside `installed()` nothing is replaced. oracle_chief is imported here:
    it loads gRPC, which only a chief needs.
    """
    from keras_tuner.src.distribute import oracle_chief

    original = oracle_chief.exit_chief
    if not is_installed() or getattr(original, "forgets_silent_tuners", False):
        return

    def exit_chief(oracle):
        forget = getattr(oracle, "forget_silent_tuners", None)
        if forget is not None:
            forget()
        return original(oracle)

    exit_chief.forgets_silent_tuners = True
    _patch(oracle_chief, "exit_chief", exit_chief)


# ------------------------------------------------------------------- Keras' optional imports

_OPTIONAL_FOR_KERAS = ("sklearn", "pandas", "matplotlib")
_IMPORTERS = ("keras", "keras_tuner")


class _SkipOptionalImports:
    """A meta-path finder that refuses `_OPTIONAL_FOR_KERAS` to imports made by Keras' and
    keras-tuner's own modules; every other importer (tfplaybook, the user's experiment file)
    gets them as usual."""

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in _OPTIONAL_FOR_KERAS or top in sys.modules:
            return None  # Not ours to refuse, or imported already (by the user): Keras uses it.
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back
        importer = (frame.f_globals.get("__name__") or "") if frame is not None else ""
        if importer.partition(".")[0] in _IMPORTERS:
            raise ModuleNotFoundError(f"{name} is not imported for Keras in a tfplaybook run")
        return None


def skip_keras_optional_imports():
    """Keeps Keras and keras-tuner from importing scikit-learn, pandas and matplotlib.

    Keras imports each of them at start-up when it is installed, for its sklearn wrappers, pandas
    inputs to `fit` and `keras.visualization` (importing Keras and keras-tuner took 9.7 s with
    them and 7.1 s without here), and works without them when they are not; keras-tuner
    likewise for its sklearn tuner and its stock Bayesian oracle. A tfplaybook run uses none of those. tfplaybook's own modules and
    the user's code still import these libraries normally, and one imported before Keras (by the
    experiment file's top level) is Keras' to use as well; otherwise Keras' and keras-tuner's
    references stay empty. Called by the command line before TensorFlow loads; the Python API
    leaves the user's process alone.
    """
    if not any(isinstance(finder, _SkipOptionalImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SkipOptionalImports())
