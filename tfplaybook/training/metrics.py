"""The task's loss and metrics from Keras identifiers (config keys `loss`, `metrics`).

`loss` is any Keras loss identifier ("mse", "huber", "binary_crossentropy",
"sparse_categorical_crossentropy", a class name such as "MeanSquaredError") or a serialized loss
`{"class_name": ..., "config": {...}}`; `metrics` is a list of Keras metric identifiers or
serialized metrics. With `from_logits` true (the default: the shipped models end in a linear layer,
which is numerically the stabler choice), losses and metrics that take `from_logits` get it, and
"accuracy" / "binary_accuracy" threshold logits at 0 instead of probabilities at 0.5. "accuracy"
means the accuracy that fits the loss, as in Keras' `compile`: sparse categorical, categorical or
binary.

`label_smoothing` (default 0, checklist 47-48's regulariser) smooths the training loss of the
cross-entropies: binary and categorical take it as Keras' own argument; sparse categorical labels
are one-hot encoded against the model's output width first (Keras' sparse loss has no smoothing).
Evaluation uses the unsmoothed loss, so validation losses stay comparable across trials.

The loss is built with `reduction=None`: the loop needs one value per example to average over the
global batch with the examples' weights (and weight-0 padding in evaluation).

Classification evaluations also count correct predictions (checklist 89, `make_class_counts`):
`correct_count` and `example_count` over the whole evaluation set, and per class
`correct_count/K` and `example_count/K` up to CLASS_COUNTS_MAX_CLASSES classes, so that a gain of
0.1% can be seen to be one example of a rare class.

Name resolution is pure Python (`metric_name`, `metric_names`); building objects imports Keras.
"""

from tfplaybook.config import ConfigError

ALIASES = {"acc": "accuracy"}
# Metrics where a larger value is better; every other metric (errors, losses) is minimised.
MAXIMISED = (
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "auc",
    "precision",
    "recall",
    "f1_score",
    "fbeta_score",
    "r2_score",
    "iou",
    "mean_iou",
)
CLASS_COUNTS_MAX_CLASSES = 32  # Above: totals only (two rows per evaluation, not 2 per class).
_CROSSENTROPY = {"sparsecategoricalcrossentropy", "categoricalcrossentropy"}
_BINARY = {"binarycrossentropy", "binaryfocalcrossentropy"}


def metric_name(identifier):
    """The name a metric is recorded under: its identifier, or a serialized metric's name."""
    if isinstance(identifier, str):
        return ALIASES.get(identifier, identifier)
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        return (identifier.get("config") or {}).get("name") or identifier["class_name"]
    raise ConfigError(
        f"metric {identifier!r} must be a Keras metric identifier (e.g. 'mae') or "
        "{'class_name': ..., 'config': {...}}"
    )


def metric_names(config):
    return [metric_name(m) for m in config["metrics"]]


def default_goal(name):
    """'max' for accuracy-like metrics, 'min' for the loss and error-like ones."""
    key = name.lower()
    return "max" if key in MAXIMISED or key.endswith("accuracy") else "min"


def _key(name):
    return name.replace("_", "").lower()


def _loss_class(identifier):
    import keras

    classes = {
        _key(n): getattr(keras.losses, n)
        for n in dir(keras.losses)
        if n[0].isupper() and isinstance(getattr(keras.losses, n), type)
    }
    if isinstance(identifier, dict):
        name, kwargs = identifier.get("class_name"), dict(identifier.get("config") or {})
    else:
        name, kwargs = identifier, {}
    if not isinstance(name, str):
        raise ConfigError(f"loss={identifier!r} must be a Keras loss identifier or class config")
    if _key(name) not in classes:
        # snake_case function names ("mse", "mae") resolve through Keras' own aliases.
        try:
            fn = keras.losses.get(name)
        except (ValueError, TypeError):
            fn = None
        name = getattr(fn, "__name__", None) or getattr(getattr(fn, "fn", None), "__name__", "")
    cls = classes.get(_key(name))
    if cls is None or cls is keras.losses.Loss:
        known = sorted(n for n in dir(keras.losses) if n[0].isupper() and n != "Loss")
        raise ConfigError(
            f"loss={identifier!r} is not a Keras loss; use e.g. mse, mae, huber, "
            f"binary_crossentropy, sparse_categorical_crossentropy or one of {', '.join(known)}"
        )
    return cls, kwargs


def _takes(cls, argument):
    import inspect

    return argument in inspect.signature(cls.__init__).parameters


def smoothable(loss):
    """True when `loss` (an identifier or serialized loss) is a cross-entropy (pure Python)."""
    name = loss.get("class_name") if isinstance(loss, dict) else loss
    return isinstance(name, str) and _key(name) in _CROSSENTROPY | _BINARY


def make_loss(config, training=True):
    """The per-example loss, a Keras Loss with reduction=None (one value per example).

    `training`: apply `label_smoothing` (evaluation never does).
    """
    import keras

    cls, kwargs = _loss_class(config["loss"])
    if _takes(cls, "from_logits"):
        kwargs.setdefault("from_logits", bool(config["from_logits"]))
    kwargs["reduction"] = None
    smoothing = float(config.get("label_smoothing", 0.0)) if training else 0.0
    sparse = smoothing and cls is keras.losses.SparseCategoricalCrossentropy
    if smoothing:
        if sparse:
            cls = keras.losses.CategoricalCrossentropy
            kwargs.pop("ignore_class", None)
        kwargs["label_smoothing"] = smoothing
    try:
        loss = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"loss={config['loss']!r}: {e}".splitlines()[0]) from None
    if not sparse:
        return loss

    def smoothed(labels, outputs):
        classes = keras.ops.shape(outputs)[-1]
        labels = keras.ops.reshape(keras.ops.cast(labels, "int32"), keras.ops.shape(outputs)[:-1])
        return loss(keras.ops.one_hot(labels, classes, dtype=outputs.dtype), outputs)

    return smoothed


def _accuracy_for(config, name):
    import keras

    cls, _ = _loss_class(config["loss"])
    logits = bool(config["from_logits"])
    key = _key(cls.__name__)
    if name == "binary_accuracy" or (name == "accuracy" and key in _BINARY):
        return keras.metrics.BinaryAccuracy(name=name, threshold=0.0 if logits else 0.5)
    if name == "accuracy" and key == "sparsecategoricalcrossentropy":
        return keras.metrics.SparseCategoricalAccuracy(name=name)
    if name == "accuracy" and key == "categoricalcrossentropy":
        return keras.metrics.CategoricalAccuracy(name=name)
    return None


def make_metrics(config):
    """{name: fresh Keras metric} for the config's `metrics`, in order."""
    import keras

    out = {}
    for identifier in config["metrics"]:
        name = metric_name(identifier)
        metric = _accuracy_for(config, name) if isinstance(identifier, str) else None
        if metric is None:
            try:
                metric = keras.metrics.get(identifier)
            except (ValueError, TypeError) as e:
                raise ConfigError(
                    f"metrics: {identifier!r} is not a Keras metric ({str(e).splitlines()[0]})"
                ) from None
            if not isinstance(metric, keras.metrics.Metric):
                metric = keras.metrics.MeanMetricWrapper(metric, name=name)
            else:
                kwargs = dict(metric.get_config(), name=name)
                if _takes(type(metric), "from_logits"):
                    kwargs["from_logits"] = bool(config["from_logits"])
                metric = type(metric).from_config(kwargs)
        out[name] = metric
    return out


def is_classification(config):
    """True when the loss is a categorical cross-entropy (integer or one-hot class labels)."""
    cls, _ = _loss_class(config["loss"])
    return _key(cls.__name__) in _CROSSENTROPY


def count_kind(config):
    """ "sparse", "one_hot" or "binary" for a classification loss, else None (pure Python)."""
    name = config["loss"].get("class_name") if isinstance(config["loss"], dict) else config["loss"]
    key = _key(name) if isinstance(name, str) else ""
    aliases = {"sparsecategoricalcrossentropy": "sparse", "categoricalcrossentropy": "one_hot"}
    if key in aliases:
        return aliases[key]
    return "binary" if key in _BINARY else None


def make_class_counts(config, num_classes=None):
    """A Keras metric counting correct predictions per class, or None for a non-classification
    loss. `num_classes` (the model's output width; 2 for one binary logit) enables the per-class
    counts when it is at most CLASS_COUNTS_MAX_CLASSES; otherwise only the totals are kept.

    `counts.results()` returns {"correct_count": .., "example_count": .., "correct_count/K": ..}.
    Examples of weight 0 (evaluation padding) are not counted.
    """
    import keras
    from keras import ops

    kind = count_kind(config)
    if kind is None:
        return None
    threshold = 0.0 if config["from_logits"] else 0.5
    width = num_classes if num_classes and num_classes <= CLASS_COUNTS_MAX_CLASSES else 0

    class ClassCounts(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="class_counts")
            self.totals = self.add_variable(shape=(2,), initializer="zeros", name="totals")
            if width:
                self.per_class = self.add_variable(
                    shape=(2, width), initializer="zeros", name="per_class"
                )

        def update_state(self, labels, outputs, sample_weight=None):
            if kind == "binary":
                predicted = ops.cast(ops.reshape(outputs, (-1,)) > threshold, "int32")
                truth = ops.cast(ops.reshape(labels, (-1,)) > 0.5, "int32")
            else:
                predicted = ops.cast(ops.argmax(outputs, axis=-1), "int32")
                predicted = ops.reshape(predicted, (-1,))
                if kind == "one_hot":
                    truth = ops.reshape(ops.cast(ops.argmax(labels, axis=-1), "int32"), (-1,))
                else:
                    truth = ops.reshape(ops.cast(labels, "int32"), (-1,))
            weights = ops.ones_like(predicted, "float32")
            if sample_weight is not None:
                weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            counted = ops.cast(weights > 0, "float32")
            correct = ops.cast(ops.equal(predicted, truth), "float32") * counted
            self.totals.assign_add(ops.stack([ops.sum(correct), ops.sum(counted)]))
            if width:
                one_hot = ops.one_hot(truth, width) * counted[:, None]
                self.per_class.assign_add(
                    ops.stack([ops.sum(one_hot * correct[:, None], 0), ops.sum(one_hot, 0)])
                )

        def result(self):
            return self.totals

        def results(self):
            """{name: count} for the measurements (Python numbers)."""
            totals = ops.convert_to_numpy(self.totals)
            out = {"correct_count": float(totals[0]), "example_count": float(totals[1])}
            if width:
                per_class = ops.convert_to_numpy(self.per_class)
                for k in range(width):
                    out[f"correct_count/{k}"] = float(per_class[0, k])
                    out[f"example_count/{k}"] = float(per_class[1, k])
            return out

    return ClassCounts()
