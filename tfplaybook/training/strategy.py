"""The one place that picks the `tf.distribute` strategy.

`auto` must decide fast and without network traffic on a machine with no TPU: the TPU cluster
resolver contacts the GCE metadata server, so it is only called when a local TPU device node
exists or `--tpu` names a TPU explicitly.
"""

import glob
import json
import os

from tfplaybook.choices import STRATEGIES
from tfplaybook.config import ConfigError

# Device nodes a Cloud TPU VM exposes: /dev/accel* (v2-v4) and /dev/vfio/* (v5e and later).
_TPU_DEVICE_GLOBS = ("/dev/accel[0-9]*", "/dev/vfio/[0-9]*")


def split_cpu(num_replicas):
    """Splits the first CPU into `num_replicas` logical devices (before TensorFlow initialises).

    A no-op when the split is already in place. Raises ConfigError when TensorFlow has already
    initialised with a different device layout (the split must come first).
    """
    import tensorflow as tf

    if num_replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    existing = tf.config.get_logical_device_configuration(cpus[0])
    if existing and len(existing) >= num_replicas:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < num_replicas:
            raise ConfigError(
                f"--num_cpu_replicas={num_replicas}: TensorFlow already initialised with {have} "
                "CPU device(s); the split must happen before any TensorFlow op"
            ) from None


def local_tpu_present():
    """True when this host has a TPU device node (a Cloud TPU VM); touches no network."""
    return any(glob.glob(pattern) for pattern in _TPU_DEVICE_GLOBS)


def _tpu_strategy(tpu):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise ConfigError(f"--tpu={tpu!r} could not be resolved: {e}".splitlines()[0]) from None
    return tf.distribute.TPUStrategy(resolver)


def _cpu_devices(num_cpu_replicas):
    split_cpu(num_cpu_replicas)
    return [f"/device:CPU:{i}" for i in range(num_cpu_replicas)]


_CACHE = {}


def _once(key, make):
    """Creates each distributed strategy once per process and reuses it.

    Trials of a study share one strategy: two MirroredStrategy objects over the same devices
    derive the same collective keys, and their collectives then collide (measured here as
    "Shape mismatch in the collective instance" aborts). A TPU system is also initialised once.
    """
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def get_strategy(name="auto", tpu="local", num_cpu_replicas=1):
    """Returns the strategy for `--strategy`.

    Args:
      name: one of STRATEGIES.
      tpu: TPU name or address for the cluster resolver; "local" on a Cloud TPU VM.
      num_cpu_replicas: with no accelerator, split the CPU into this many logical devices and use
        MirroredStrategy over them (so multi-replica code runs on a laptop).

    Raises:
      ConfigError: on an unknown name or an impossible combination, naming what is allowed.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy={name!r} is not one of {', '.join(STRATEGIES)}")
    if num_cpu_replicas < 1:
        raise ConfigError(f"--num_cpu_replicas={num_cpu_replicas} must be at least 1")
    explicit_tpu = bool(tpu) and tpu != "local"
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu" or (name == "auto" and (explicit_tpu or local_tpu_present())):
        if name == "tpu" and not explicit_tpu and not local_tpu_present():
            raise ConfigError(
                "--strategy=tpu: no local TPU device on this host and no --tpu address given; "
                "use --strategy=auto, mirrored or cpu"
            )
        return _once(("tpu", tpu), lambda: _tpu_strategy(tpu))

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "one_device":
        if num_cpu_replicas > 1:
            raise ConfigError("--strategy=one_device runs one replica; drop --num_cpu_replicas")
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "cpu":
        if num_cpu_replicas > 1:
            return _mirrored(_cpu_devices(num_cpu_replicas))
        return tf.distribute.get_strategy()
    if gpus and num_cpu_replicas > 1:
        raise ConfigError("--num_cpu_replicas applies only without GPUs; this host has GPUs")
    if gpus:
        return _mirrored(None)
    if name == "mirrored" or num_cpu_replicas > 1:
        return _mirrored(_cpu_devices(num_cpu_replicas))
    return tf.distribute.get_strategy()


def _multi_worker_strategy():
    import tensorflow as tf

    raw = os.environ.get("TF_CONFIG", "")
    try:
        tf_config = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        tf_config = None
    if not tf_config or "cluster" not in tf_config or "task" not in tf_config:
        raise ConfigError(
            "--strategy=multi_worker needs TF_CONFIG as JSON with 'cluster' and 'task' "
            f"(got {raw[:80]!r})"
        )
    return _once(("multi_worker", raw), tf.distribute.MultiWorkerMirroredStrategy)


def _mirrored(devices):
    import tensorflow as tf

    key = ("mirrored", tuple(devices) if devices else None)
    return _once(key, lambda: tf.distribute.MirroredStrategy(devices))


def task_info(strategy):
    """Returns (task_type, task_id, is_chief) for this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type in (None, "chief"):
        return task_type, task_id, True
    # Without an explicit chief, worker 0 plays chief (TensorFlow's convention).
    has_chief = "chief" in (resolver.cluster_spec().as_dict() if resolver else {})
    return task_type, task_id, task_type == "worker" and task_id == 0 and not has_chief


def check_batch_size(global_batch_size, strategy, what="batch_size"):
    """Raises ConfigError unless the replicas divide the global batch size."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(
            f"{what}={global_batch_size} is not divisible by the {replicas} replicas; use a "
            f"multiple of {replicas} such as {replicas * max(1, global_batch_size // replicas)}"
        )
    return global_batch_size // replicas


def num_hosts(strategy):
    """Number of hosts (input pipelines) taking part in `strategy`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1
    spec = resolver.cluster_spec().as_dict()
    return len(spec.get("worker", [])) + len(spec.get("chief", []))
