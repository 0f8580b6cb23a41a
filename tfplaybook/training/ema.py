"""Polyak averaging: an exponential moving average of the trainable weights (checklist 49).

`ema_decay` > 0 keeps, next to the weights being trained, their running average

    average <- d * average + (1 - d) * weights,   d = min(ema_decay, (1 + t) / (10 + t))

after every step t (the ramp of TensorFlow's ExponentialMovingAverage with num_updates, so a
short run is not dominated by the initial weights). The loop evaluates the averaged weights as
their own variant after every evaluation of the trained ones (metrics `ema/<name>`), keeps the N
best averaged checkpoints in checkpoints/best_ema/, and saves the averages with the latest
checkpoint so a resumed run continues them. Batch-norm moving statistics are not averaged: the
averaged weights are evaluated with the model's own statistics.

The averages are variables of the strategy (aggregation ONLY_FIRST_REPLICA: every replica holds
the same weights after its all-reduced update), updated inside the replica step.
"""

import tensorflow as tf

PREFIX = "ema/"


class WeightAverage:
    """The running average of `variables` (create it under the strategy's scope)."""

    def __init__(self, variables, decay):
        self.decay = float(decay)
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first, name="n")
        self.averages = [
            tf.Variable(tf.identity(v.value), trainable=False, aggregation=first, name=f"ema_{i}")
            for i, v in enumerate(variables)
        ]
        self.variables = list(variables)
        self.checkpointable = tf.Module()  # Tracked by tf.train.Checkpoint with the latest one.
        self.checkpointable.count = self.count
        self.checkpointable.averages = self.averages

    def update(self, variables):
        """One step of the average (in the replica step, after the update of `variables`)."""
        self.count.assign_add(1)
        t = tf.cast(self.count, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
        for average, variable in zip(self.averages, variables):
            value = tf.cast(variable.value, average.dtype)
            average.assign(decay * average + (1.0 - decay) * value)

    @tf.function
    def swap(self):
        """Exchanges the weights and their averages (twice restores both exactly)."""
        for average, variable in zip(self.averages, self.variables):
            trained = tf.identity(variable.value)
            variable.assign(tf.cast(average, variable.dtype))
            average.assign(tf.cast(trained, average.dtype))
