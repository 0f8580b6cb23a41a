"""A finished trial's traced graphs are freed: TensorFlow's gradient registry lets them go.

A replica context's all_reduce, traced, registers a custom gradient under a fresh name in
TensorFlow's global gradient registry, and that registration keeps the whole traced graph alive:
without forgetting them, every trial of a multi-replica study stayed in memory.
"""

import gc
import weakref

import tensorflow as tf

from tfplaybook import internals
from tfplaybook.training import strategy as strategy_lib


def _traced_all_reduce(strategy):
    @tf.function
    def step():
        return strategy.run(
            lambda: tf.distribute.get_replica_context().all_reduce("sum", tf.ones([3]))
        )

    return step.get_concrete_function()


def test_forgetting_a_trials_custom_gradients_frees_its_graph():
    strategy = strategy_lib.get_strategy("mirrored", "local", 2)
    assert strategy.num_replicas_in_sync == 2
    before = internals.custom_gradients()
    concrete = _traced_all_reduce(strategy)
    graph = weakref.ref(concrete.graph)
    assert internals.custom_gradients() - before, "the traced all_reduce registered nothing"
    del concrete
    gc.collect()
    assert graph() is not None  # The registry holds it: what leaked a trial's graphs.
    internals.forget_custom_gradients(before)
    gc.collect()
    assert graph() is None
    assert internals.custom_gradients() == before
