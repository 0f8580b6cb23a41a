"""The `--bn_check` diagnostic: per-replica batch and moving statistics of every batch-norm layer.

With `per_replica` or `ghost` batch norm each replica updates its own copy of the moving
statistics, and they drift apart between the syncs before evaluations and checkpoints
(tfplaybook.training.batchnorm, checklist 94-95). `bn_report` measures that: one training-mode
forward pass that changes nothing, gathered from every replica; `format_bn_report` prints it.
"""

import numpy as np
import tensorflow as tf

from tfplaybook.training.batchnorm import batch_norm_layers, batch_norm_mode


def _spread(per_replica):
    """Largest across-replica range over channels of an array of shape [replicas, channels]."""
    return float(np.max(np.max(per_replica, axis=0) - np.min(per_replica, axis=0)))


def bn_report(model, strategy, batch):
    """Per-replica batch and moving statistics of every batch-norm layer, and their spread.

    Runs one training-mode forward pass on a distributed batch and then restores the model's
    non-trainable state (moving statistics, dropout seeds), so calling it changes nothing.
    The batch statistics are the ones each layer folds into its moving averages: global for
    "sync", the replica's batch for "per_replica", the average over virtual batches for "ghost".

    Args:
      model: a built Keras model created under `strategy.scope()`.
      strategy: the `tf.distribute.Strategy`.
      batch: one element of a distributed dataset: the model inputs, or an
        (inputs, labels[, weights]) tuple whose first element is used.

    Returns:
      A dict: `num_replicas`, `replica_batch_size`, `moving_statistics_in_sync` and `layers`, a
      list of dicts with `name`, `mode`, `statistics_examples`, arrays of shape [replicas,
      channels] `batch_mean`, `batch_variance`, `moving_mean`, `moving_variance`, and the
      spreads (max over channels of max minus min over replicas) `batch_mean_spread`,
      `batch_variance_spread`, `moving_mean_spread`, `moving_variance_spread`.
    """
    layers = batch_norm_layers(model)
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    replicas = strategy.num_replicas_in_sync
    if not layers:
        return {
            "num_replicas": replicas,
            "replica_batch_size": None,
            "moving_statistics_in_sync": True,
            "layers": [],
        }
    # Only "none"-aggregated variables can be written back per replica without communication.
    state = [v for v in model.non_trainable_variables if v.aggregation == "none"]
    shapes = {}

    def read_statistics():
        return [
            tf.stack(
                [tf.identity(layer.moving_mean.value), tf.identity(layer.moving_variance.value)]
            )
            for layer in layers
        ]

    def replica_fn(x):
        shapes["replica_batch_size"] = tf.nest.flatten(x)[0].shape[0]
        saved = [tf.identity(v.value) for v in state]
        moving = read_statistics()
        model(x, training=True)
        # With momentum 0 the "moving" statistics are exactly this step's batch statistics.
        current = read_statistics()
        for variable, value in zip(state, saved):
            variable.assign(value)
        ctx = tf.distribute.get_replica_context()
        return ctx.all_gather([s[tf.newaxis] for s in moving + current], axis=0)

    @tf.function
    def run(x):
        momenta = [layer.momentum for layer in layers]
        try:
            for layer in layers:
                layer.momentum = 0.0  # Read at trace time by both layer kinds.
            return strategy.run(replica_fn, args=(x,))
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum

    gathered = [t.numpy() for t in strategy.experimental_local_results(run(inputs))[0]]
    replica_batch = shapes.get("replica_batch_size")
    examples = {"sync": replica_batch and replica_batch * replicas, "per_replica": replica_batch}
    report_layers = []
    for i, layer in enumerate(layers):
        moving, current = gathered[i], gathered[len(layers) + i]
        mode = batch_norm_mode(layer)
        entry = {
            "name": layer.name,
            "mode": mode,
            "statistics_examples": layer.virtual_batch_size if mode == "ghost" else examples[mode],
            "batch_mean": current[:, 0],
            "batch_variance": current[:, 1],
            "moving_mean": moving[:, 0],
            "moving_variance": moving[:, 1],
        }
        for key in ("batch_mean", "batch_variance", "moving_mean", "moving_variance"):
            entry[key + "_spread"] = _spread(entry[key])
        report_layers.append(entry)
    in_sync = all(
        e["moving_mean_spread"] == 0 and e["moving_variance_spread"] == 0 for e in report_layers
    )
    return {
        "num_replicas": replicas,
        "replica_batch_size": replica_batch,
        "moving_statistics_in_sync": in_sync,
        "layers": report_layers,
    }


def format_bn_report(report):
    """Text lines for `bn_report`'s result: per-replica channel averages and spreads."""
    replicas, replica_batch = report["num_replicas"], report["replica_batch_size"]
    in_sync = report["moving_statistics_in_sync"]
    verdict = "yes" if in_sync else "no (sync_moving_statistics runs before eval/checkpoints)"
    lines = [
        (
            f"batch norm check: {replicas} replicas, per-replica batch {replica_batch}, "
            f"{len(report['layers'])} batch-norm layers; moving statistics identical across "
            f"replicas: {verdict}"
        )
    ]
    for e in report["layers"]:
        channels = e["batch_mean"].shape[1]
        lines.append(
            f"  {e['name']} [{e['mode']}]: statistics over {e['statistics_examples']} examples, "
            f"{channels} channels"
        )
        for key in ("batch_mean", "batch_variance", "moving_mean", "moving_variance"):
            per_replica = " ".join(f"{x:.4g}" for x in e[key].mean(axis=1))
            lines.append(
                f"    {key.replace('_', ' ')}: per replica (channel average) {per_replica}; "
                f"spread across replicas {e[key + '_spread']:.3g}"
            )
    return lines
