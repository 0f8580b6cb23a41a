"""Model registry: a dict of builders with their default hyperparameters, and a getter.

Every builder follows the task contract (docs/tasks.md): `build(config, data_spec) ->
keras.Model`, where `config` is the merged trial config and `data_spec` a
`tfplaybook.training.data.DataSpec` (element spec, example counts, number of classes). A user's own
`build_model(config, data_spec)` in an experiment file, or one registered with `register_model`, is
called the same way: nothing shipped is special. Each builder's defaults are merged into the
config's `model` section before overrides, so every knob it reads is listed in config.json and can
be overridden.

This module imports no Keras or TensorFlow at import time (the builders import it when called), so
the names and defaults can be checked before TensorFlow loads.
"""

import copy
import dataclasses

from tfplaybook.config import ConfigError

NORMALIZATIONS = ("batch", "layer", "none")
APPLICATION_PREFIX = "app:"


@dataclasses.dataclass(frozen=True)
class Builder:
    """A registered model: the function and the `model` section keys it reads, with defaults."""

    build: object
    defaults: dict


def _norm(cfg, name):
    kind = cfg["normalization"]
    if kind == "batch":
        from tfplaybook.training import batchnorm

        return batchnorm.make_batch_norm(
            cfg["batch_norm"], cfg["virtual_batch_size"], momentum=cfg["bn_momentum"], name=name
        )
    if kind == "layer":
        import keras

        return keras.layers.LayerNormalization(name=name)
    if kind == "none":
        return None
    raise ConfigError(f"model.normalization={kind!r} is not one of {', '.join(NORMALIZATIONS)}")


def _apply(layer, x):
    return x if layer is None else layer(x)


def _head(x, cfg, data_spec):
    import keras

    if cfg["dropout"] > 0:
        x = keras.layers.Dropout(cfg["dropout"])(x)
    return keras.layers.Dense(data_spec.require_num_classes(), dtype="float32", name="logits")(x)


_NORM_DEFAULTS = {
    "normalization": "batch",
    "batch_norm": "sync",
    "virtual_batch_size": 64,
    "bn_momentum": 0.99,
}
_MLP_DEFAULTS = dict(_NORM_DEFAULTS, width=256, depth=2, dropout=0.0, activation="relu")
_CNN_DEFAULTS = dict(
    _NORM_DEFAULTS, width=32, depth=2, dense_width=128, dropout=0.0, activation="relu"
)
_RESNET_DEFAULTS = dict(
    _NORM_DEFAULTS,
    width=1,
    depth=20,
    dropout=0.0,
    activation="relu",
    norm_placement="pre",
    zero_init_residual=False,
)
_APPLICATION_DEFAULTS = {"dropout": 0.0}


def mlp(config, data_spec):
    """A multilayer perceptron: `depth` hidden layers of `width` units."""
    import keras

    cfg = config["model"]
    inputs = keras.Input(data_spec.feature_shape)
    x = keras.layers.Flatten()(inputs)
    for i in range(cfg["depth"]):
        x = keras.layers.Dense(cfg["width"], name=f"dense{i}")(x)
        x = _apply(_norm(cfg, f"norm{i}"), x)
        x = keras.layers.Activation(cfg["activation"])(x)
        if cfg["dropout"] > 0:
            x = keras.layers.Dropout(cfg["dropout"])(x)
    logits = keras.layers.Dense(data_spec.require_num_classes(), dtype="float32")(x)
    return keras.Model(inputs, logits, name="mlp")


def cnn(config, data_spec):
    """`depth` conv-norm-activation blocks of `width` filters (doubling), then a dense layer."""
    import keras

    cfg = config["model"]
    inputs = keras.Input(data_spec.feature_shape)
    x = inputs
    for i in range(cfg["depth"]):
        x = keras.layers.Conv2D(
            cfg["width"] * 2**i, 3, padding="same", use_bias=False, name=f"conv{i}"
        )(x)
        x = _apply(_norm(cfg, f"norm{i}"), x)
        x = keras.layers.Activation(cfg["activation"])(x)
        if min(x.shape[1], x.shape[2]) >= 4:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(cfg["dense_width"], name="dense")(x)
    x = keras.layers.Activation(cfg["activation"])(x)
    return keras.Model(inputs, _head(x, cfg, data_spec), name="cnn")


def _residual_block(x, filters, stride, cfg, name):
    """A basic block; `norm_placement` "pre" keeps normalization inside the residual branch,
    x + f(Norm(x)) (checklist 109), "post" is the original conv-norm-add-activation order."""
    import keras

    act = cfg["activation"]
    pre = cfg["norm_placement"] == "pre"
    shortcut = x
    if pre:
        x = keras.layers.Activation(act)(_apply(_norm(cfg, f"{name}_norm0"), x))
        shortcut = x if stride > 1 or shortcut.shape[-1] != filters else shortcut
    y = keras.layers.Conv2D(filters, 3, stride, "same", use_bias=False, name=f"{name}_conv1")(x)
    y = _apply(_norm(cfg, f"{name}_norm1"), y)
    y = keras.layers.Activation(act)(y)
    # Zero-initialising the branch's last layer starts every block as the identity (checklist 109).
    init = "zeros" if cfg["zero_init_residual"] else "glorot_uniform"
    y = keras.layers.Conv2D(
        filters, 3, 1, "same", use_bias=False, kernel_initializer=init, name=f"{name}_conv2"
    )(y)
    if not pre:
        y = _apply(_norm(cfg, f"{name}_norm2"), y)
    if stride > 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_proj")(
            shortcut
        )
    out = keras.layers.Add()([shortcut, y])
    return out if pre else keras.layers.Activation(act)(out)


def resnet(config, data_spec):
    """A CIFAR-style ResNet with depth 6n+2 and 16*width base filters (He et al. 2016)."""
    import keras

    cfg = config["model"]
    depth = cfg["depth"]
    if (depth - 2) % 6:
        raise ConfigError(f"model.depth={depth} for resnet must be 6n+2, e.g. 20, 32, 56")
    blocks = (depth - 2) // 6
    width = 16 * cfg["width"]
    inputs = keras.Input(data_spec.feature_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    if cfg["norm_placement"] != "pre":
        x = keras.layers.Activation(cfg["activation"])(_apply(_norm(cfg, "stem_norm"), x))
    for stage in range(3):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, width * 2**stage, stride, cfg, f"s{stage}b{block}")
    if cfg["norm_placement"] == "pre":
        x = keras.layers.Activation(cfg["activation"])(_apply(_norm(cfg, "final_norm"), x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, cfg, data_spec), name=f"resnet{depth}")


def application(config, data_spec):
    """Any `keras.applications` architecture by name (`app:NAME`), randomly initialised."""
    import keras

    cfg = config["model"]
    name = cfg["name"][len(APPLICATION_PREFIX) :]
    if not hasattr(keras.applications, name):
        known = sorted(n for n in dir(keras.applications) if n[0].isupper())
        raise ConfigError(
            f"model.name={APPLICATION_PREFIX}{name!r} is not a keras.applications model; "
            f"known: {', '.join(known)}"
        )
    try:
        base = getattr(keras.applications, name)(
            weights=None, include_top=False, input_shape=data_spec.feature_shape, pooling="avg"
        )
    except ValueError as e:
        raise ConfigError(f"model.name={APPLICATION_PREFIX}{name}: {e}".splitlines()[0]) from None
    return keras.Model(base.input, _head(base.output, cfg, data_spec), name=name)


_MODELS = {
    "mlp": Builder(mlp, _MLP_DEFAULTS),
    "cnn": Builder(cnn, _CNN_DEFAULTS),
    "resnet": Builder(resnet, _RESNET_DEFAULTS),
}
_APPLICATION = Builder(application, _APPLICATION_DEFAULTS)


def register_model(name, build, defaults=None):
    """Adds a model to the registry: `model.name=NAME` then builds it with `build`.

    Args:
      name: the registry name (not starting with "app:").
      build: `build(config, data_spec) -> keras.Model`.
      defaults: the `model` section keys `build` reads, with their defaults.
    """
    if not isinstance(name, str) or not name or name.startswith(APPLICATION_PREFIX):
        raise ValueError(f"model name {name!r} must be a non-empty string not starting with 'app:'")
    if not callable(build):
        raise ValueError(f"register_model({name!r}): build must be callable")
    _MODELS[name] = Builder(build, copy.deepcopy(dict(defaults or {})))


def model_names():
    return sorted(_MODELS) + [f"{APPLICATION_PREFIX}<keras.applications name>"]


def get_builder(name):
    """The Builder registered as `name` (or `app:<name>`).

    Raises:
      ConfigError: on an unknown name, listing the known ones.
    """
    if isinstance(name, str) and name.startswith(APPLICATION_PREFIX) and len(name) > 4:
        return _APPLICATION
    if name not in _MODELS:
        raise ConfigError(f"model.name={name!r} is not one of {', '.join(model_names())}")
    return _MODELS[name]
