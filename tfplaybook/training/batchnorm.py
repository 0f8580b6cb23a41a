"""Batch normalisation across replicas: synchronised, per-replica and ghost, with consistent stats.

Checklist 18 and 94: batch norm should usually compute its statistics on a smaller batch than the
gradient, ideally about 64 examples (ghost batch norm, Hoffer et al. arXiv:1705.08741), so that
comparing batch sizes does not also change the normalisation. `make_batch_norm` builds one of:

- `sync`: `keras.layers.BatchNormalization(synchronized=True)`, statistics over the global batch
  (an all-reduce per layer and step);
- `per_replica`: `BatchNormalization(synchronized=False)`, statistics over each replica's batch;
- `ghost`: `GhostBatchNormalization`, statistics over groups of exactly `virtual_batch_size`
  examples inside each replica, however large the replica's batch is (checklist 94: ghost BN
  implementations often use the whole per-device batch when it exceeds the virtual batch).

What happens to the moving statistics (measured with TensorFlow 2.21.0, Keras 3.15.1, TensorFlow
backend, `MirroredStrategy` over two logical CPU devices): Keras 3 creates `moving_mean` and
`moving_variance` with `add_weight(..., aggregation="none")` and the default synchronization
"auto", so under a strategy they are `MirroredVariable`s with `VariableSynchronization.ON_WRITE`
and `VariableAggregation.NONE`. TensorFlow's `_on_write_update_replica` applies a replica-context
assign of a NONE-aggregated variable to that replica's own copy only, without any communication.
So with `per_replica` or `ghost` batch norm the replicas' moving statistics silently diverge
(one step with momentum 0.5 on data centred at 10 on replica 0 and 20 on replica 1 left the
copies of one `moving_mean` at 5.0 and 9.6), and reads in cross-replica context see replica 0's
copy only: `variable.numpy()`, `get_weights()` and `tf.train.Checkpoint` all gave 5.0. That is
exactly the checkpoint bug of checklist 94. With `sync` every replica computes the same global
moments, so the copies stay identical.

The moving averages are linear in the batch statistics (checklist 94), so averaging the copies
occasionally gives the same result as averaging every step. `sync_moving_statistics` does that
with one cross-replica all-reduce (MEAN); the training loop calls it before every evaluation
and every checkpoint (checklist 95), on every worker. `tfplaybook.training.bn_check` shows the
per-replica batch and moving statistics and their spread (the `--bn_check` diagnostic).
"""

import operator
import weakref

import keras
import tensorflow as tf
from keras import ops

from tfplaybook import internals
from tfplaybook.choices import BATCH_NORM_MODES


@keras.saving.register_keras_serializable(package="tfplaybook")
class GhostBatchNormalization(keras.layers.Layer):
    """Batch norm whose training statistics come from groups of `virtual_batch_size` examples.

    In training, a replica batch of shape [B, ...] is reshaped to [B // v, v, ...]; each group is
    normalised with its own mean and variance (over the v examples and all spatial positions),
    and the moving statistics move towards the average of the groups' statistics. In inference the
    moving statistics are used, as in `keras.layers.BatchNormalization`. The per-replica batch
    must be static and a multiple of `virtual_batch_size` (static shapes keep XLA/TPU happy).

    Args:
      virtual_batch_size: examples per statistics group (checklist 94 suggests about 64).
      axis: the feature axis (not the batch axis 0).
      momentum: moving-average momentum: `moving = moving * momentum + batch * (1 - momentum)`.
      epsilon: added to the variance before the square root.
      center: whether to add the learned offset `beta`.
      scale: whether to multiply by the learned scale `gamma`.
      **kwargs: base layer arguments (`name`, `dtype`, ...) and the initializers
        `beta_initializer`, `gamma_initializer`, `moving_mean_initializer`,
        `moving_variance_initializer`.
    """

    def __init__(
        self,
        virtual_batch_size=64,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.virtual_batch_size = _check_virtual_batch_size(virtual_batch_size)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.supports_masking = False
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        rank = len(input_shape)
        axis = self.axis % rank if rank else 0
        if rank < 2 or axis == 0:
            raise ValueError(
                f"GhostBatchNormalization needs a feature axis other than the batch axis 0; "
                f"got axis={self.axis} for input shape {tuple(input_shape)}"
            )
        self._feature_axis = axis
        shape = (input_shape[axis],)
        add = {"shape": shape, "autocast": False}
        if self.scale:
            self.gamma = self.add_weight(name="gamma", initializer=self.gamma_initializer, **add)
        if self.center:
            self.beta = self.add_weight(name="beta", initializer=self.beta_initializer, **add)
        # The same names, initial values and aggregation ("none") as Keras batch norm, so both
        # kinds diverge per replica in the same way and `sync_moving_statistics` treats them alike.
        self.moving_mean = self.add_weight(
            name="moving_mean", initializer=self.moving_mean_initializer, trainable=False, **add
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            **add,
        )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={axis: input_shape[axis]})

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None):
        x = inputs
        if x.dtype in ("float16", "bfloat16"):  # Statistics overflow in half precision.
            x = ops.cast(x, "float32")
        gamma = None if self.gamma is None else ops.cast(self.gamma, x.dtype)
        beta = None if self.beta is None else ops.cast(self.beta, x.dtype)
        if training and self.trainable:
            outputs = self._normalize_virtual_batches(x, gamma, beta)
        else:
            outputs = ops.batch_normalization(
                x,
                mean=ops.cast(self.moving_mean, x.dtype),
                variance=ops.cast(self.moving_variance, x.dtype),
                axis=self._feature_axis,
                offset=beta,
                scale=gamma,
                epsilon=self.epsilon,
            )
        return ops.cast(outputs, self.compute_dtype)

    def _normalize_virtual_batches(self, x, gamma, beta):
        shape = ops.shape(x)
        batch, v = x.shape[0], self.virtual_batch_size
        if batch is None:
            raise ValueError(
                f"GhostBatchNormalization {self.name!r} needs a static per-replica batch size, "
                f"got input shape {x.shape}; batch the dataset with drop_remainder=True"
            )
        _check_replica_batch(batch, v, self.name)
        rank, axis = len(shape), self._feature_axis
        grouped = ops.reshape(x, (batch // v, v) + tuple(shape[1:]))
        # Axis 1 runs over the v examples of a group; the other non-feature axes are spatial.
        reduce_axes = [1] + [i + 1 for i in range(1, rank) if i != axis]
        mean, variance = ops.moments(grouped, axes=reduce_axes, keepdims=True)
        normalized = (grouped - mean) * ops.rsqrt(variance + self.epsilon)
        param_shape = [1] * (rank + 1)
        param_shape[axis + 1] = shape[axis]
        if gamma is not None:
            normalized = normalized * ops.reshape(gamma, param_shape)
        if beta is not None:
            normalized = normalized + ops.reshape(beta, param_shape)
        # The moving statistics follow the average over the groups of this replica.
        group_mean = ops.reshape(ops.mean(mean, axis=0), (shape[axis],))
        group_variance = ops.reshape(ops.mean(variance, axis=0), (shape[axis],))
        m = self.momentum
        moving_mean = ops.cast(self.moving_mean, x.dtype)
        moving_variance = ops.cast(self.moving_variance, x.dtype)
        self.moving_mean.assign(moving_mean * m + group_mean * (1.0 - m))
        self.moving_variance.assign(moving_variance * m + group_variance * (1.0 - m))
        return ops.reshape(normalized, shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            virtual_batch_size=self.virtual_batch_size,
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=keras.initializers.serialize(self.beta_initializer),
            gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=keras.initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=keras.initializers.serialize(
                self.moving_variance_initializer
            ),
        )
        return config


def _check_virtual_batch_size(virtual_batch_size):
    try:
        value = operator.index(virtual_batch_size)  # Python and NumPy integers, not floats.
    except TypeError:
        value = 0
    if value < 1 or virtual_batch_size is True:
        raise ValueError(
            f"virtual_batch_size must be a positive integer, got {virtual_batch_size!r}"
        )
    return value


def _check_replica_batch(replica_batch_size, virtual_batch_size, layer_name):
    """Raises unless the replica batch splits into whole virtual batches."""
    if replica_batch_size % virtual_batch_size == 0:
        return
    v = virtual_batch_size
    divisors = [d for d in range(1, replica_batch_size + 1) if replica_batch_size % d == 0]
    raise ValueError(
        f"ghost batch norm {layer_name!r}: per-replica batch {replica_batch_size} is not a "
        f"multiple of virtual_batch_size={v}; use a per-replica batch in {v}, {2 * v}, {3 * v}, "
        f"... (global batch = per-replica batch x replicas) or a virtual_batch_size in {divisors}"
    )


def make_batch_norm(mode, virtual_batch_size=64, momentum=0.99, epsilon=1e-3, name=None, **kwargs):
    """Returns a batch-norm layer of the given mode (one of `BATCH_NORM_MODES`).

    Args:
      mode: "sync" (global-batch statistics), "per_replica" (each replica's batch) or "ghost"
        (groups of `virtual_batch_size` examples inside each replica).
      virtual_batch_size: examples per statistics group; used by "ghost" only.
      momentum: moving-average momentum.
      epsilon: added to the variance.
      name: the layer name.
      **kwargs: further layer arguments (`axis`, `center`, `scale`, initializers, `dtype`).

    Raises:
      ValueError: for an unknown mode or a bad virtual batch size.
    """
    common = dict(momentum=momentum, epsilon=epsilon, name=name, **kwargs)
    if mode == "sync":
        return keras.layers.BatchNormalization(synchronized=True, **common)
    if mode == "per_replica":
        return keras.layers.BatchNormalization(synchronized=False, **common)
    if mode == "ghost":
        return GhostBatchNormalization(virtual_batch_size=virtual_batch_size, **common)
    raise ValueError(f"unknown batch norm mode {mode!r}; known: {', '.join(BATCH_NORM_MODES)}")


def batch_norm_mode(layer):
    """The mode of a batch-norm layer ("sync", "per_replica", "ghost"), or None for other layers."""
    if isinstance(layer, GhostBatchNormalization):
        return "ghost"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "sync" if layer.synchronized else "per_replica"
    return None


def batch_norm_layers(model):
    """All batch-norm layers of `model`, nested ones included, in a stable order."""
    return [
        layer for layer in internals.flatten_layers(model) if batch_norm_mode(layer) is not None
    ]


def _unsynchronized_statistics(model):
    """Moving statistics that each replica updates on its own (per_replica and ghost layers)."""
    variables = []
    for layer in batch_norm_layers(model):
        if batch_norm_mode(layer) != "sync":
            variables += [v for v in layer.non_trainable_variables if "float" in v.dtype]
    return variables


# One compiled all-reduce per (model, strategy): evaluation and checkpoints call it repeatedly.
_SYNC_FUNCTIONS = weakref.WeakKeyDictionary()


def sync_moving_statistics(model, strategy):
    """Replaces every replica's per-replica moving statistics with their average over replicas.

    Checklist 94-95: call before each evaluation and each checkpoint, in cross-replica context
    (outside `strategy.run`) and on every worker, since it is a collective. Afterwards all
    replicas hold identical values, so evaluation and checkpoints use the replica average
    instead of replica 0's copy. Synchronised ("sync") layers are skipped: their copies are
    already identical.

    Returns:
      The number of variables averaged (0 when there is nothing to do).
    """
    variables = _unsynchronized_statistics(model)
    if not variables or strategy.num_replicas_in_sync == 1:
        return 0
    cached = _SYNC_FUNCTIONS.get(model)
    if cached is None or cached[0] is not strategy:

        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            local = [tf.identity(v.value) for v in variables]
            averaged = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, local)
            for variable, value in zip(variables, averaged):
                # Aggregation "none": a replica-context assign writes this replica's copy only.
                variable.assign(value)

        cached = (strategy, tf.function(lambda: strategy.run(replica_fn)))
        _SYNC_FUNCTIONS[model] = cached
    cached[1]()
    return len(variables)
