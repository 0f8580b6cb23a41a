"""Model registry: a dict of builders and a getter (no import-time registration magic).

Every builder takes the config's `model` section, the input image shape and the number of classes
and returns a Keras 3 model that maps images to float32 logits. Width, depth, dropout, activation
and normalization (batch, layer, none) come from the config; batch norm's cross-replica behaviour
(`model.batch_norm`: sync, per_replica, ghost) comes from `tfplaybook.batchnorm`.
"""

import keras

from tfplaybook import batchnorm
from tfplaybook.config import ConfigError

NORMALIZATIONS = ("batch", "layer", "none")
APPLICATION_PREFIX = "app:"


def _norm(cfg, name):
    kind = cfg.get("normalization", "batch")
    if kind == "batch":
        return batchnorm.make_batch_norm(
            cfg.get("batch_norm", "sync"),
            cfg.get("virtual_batch_size", 64),
            momentum=cfg.get("bn_momentum", 0.99),
            name=name,
        )
    if kind == "layer":
        return keras.layers.LayerNormalization(name=name)
    if kind == "none":
        return None
    raise ConfigError(f"model.normalization={kind!r} is not one of {', '.join(NORMALIZATIONS)}")


def _apply(layer, x):
    return x if layer is None else layer(x)


def _head(x, cfg, num_classes):
    if cfg.get("dropout", 0.0) > 0:
        x = keras.layers.Dropout(cfg["dropout"])(x)
    return keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)


def mlp(cfg, image_shape, num_classes):
    """A multilayer perceptron: `depth` hidden layers of `width` units."""
    inputs = keras.Input(image_shape)
    x = keras.layers.Flatten()(inputs)
    for i in range(cfg.get("depth", 2)):
        x = keras.layers.Dense(cfg.get("width", 256), name=f"dense{i}")(x)
        x = _apply(_norm(cfg, f"norm{i}"), x)
        x = keras.layers.Activation(cfg.get("activation", "relu"))(x)
        if cfg.get("dropout", 0.0) > 0:
            x = keras.layers.Dropout(cfg["dropout"])(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, dtype="float32")(x), name="mlp")


def cnn(cfg, image_shape, num_classes):
    """`depth` conv-norm-activation blocks of `width` filters (doubling), then a dense layer."""
    inputs = keras.Input(image_shape)
    x = inputs
    width = cfg.get("width", 32)
    for i in range(cfg.get("depth", 2)):
        x = keras.layers.Conv2D(width * 2**i, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = _apply(_norm(cfg, f"norm{i}"), x)
        x = keras.layers.Activation(cfg.get("activation", "relu"))(x)
        if min(x.shape[1], x.shape[2]) >= 4:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(cfg.get("dense_width", 128), name="dense")(x)
    x = keras.layers.Activation(cfg.get("activation", "relu"))(x)
    return keras.Model(inputs, _head(x, cfg, num_classes), name="cnn")


def _residual_block(x, filters, stride, cfg, name):
    """A basic block; `norm_placement` "pre" keeps normalization inside the residual branch,
    x + f(Norm(x)) (checklist 109), "post" is the original conv-norm-add-activation order."""
    act = cfg.get("activation", "relu")
    pre = cfg.get("norm_placement", "pre") == "pre"
    shortcut = x
    if pre:
        x = keras.layers.Activation(act)(_apply(_norm(cfg, f"{name}_norm0"), x))
        shortcut = x if stride > 1 or shortcut.shape[-1] != filters else shortcut
    y = keras.layers.Conv2D(filters, 3, stride, "same", use_bias=False, name=f"{name}_conv1")(x)
    y = _apply(_norm(cfg, f"{name}_norm1"), y)
    y = keras.layers.Activation(act)(y)
    # Zero-initialising the branch's last layer starts every block as the identity (checklist 109).
    init = "zeros" if cfg.get("zero_init_residual", False) else "glorot_uniform"
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


def resnet(cfg, image_shape, num_classes):
    """A CIFAR-style ResNet with depth 6n+2 and 16*width base filters (He et al. 2016)."""
    depth = cfg.get("depth", 20)
    if (depth - 2) % 6:
        raise ConfigError(f"model.depth={depth} for resnet must be 6n+2, e.g. 20, 32, 56")
    blocks = (depth - 2) // 6
    width = 16 * cfg.get("width", 1)
    inputs = keras.Input(image_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    if cfg.get("norm_placement", "pre") != "pre":
        x = keras.layers.Activation(cfg.get("activation", "relu"))(
            _apply(_norm(cfg, "stem_norm"), x)
        )
    for stage in range(3):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, width * 2**stage, stride, cfg, f"s{stage}b{block}")
    if cfg.get("norm_placement", "pre") == "pre":
        x = keras.layers.Activation(cfg.get("activation", "relu"))(
            _apply(_norm(cfg, "final_norm"), x)
        )
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, cfg, num_classes), name=f"resnet{depth}")


def application(name, cfg, image_shape, num_classes):
    """Any `keras.applications` architecture by name, randomly initialised (weights=None)."""
    if not hasattr(keras.applications, name):
        known = sorted(n for n in dir(keras.applications) if n[0].isupper())
        raise ConfigError(
            f"model.name={APPLICATION_PREFIX}{name!r} is not a keras.applications model; "
            f"known: {', '.join(known)}"
        )
    try:
        base = getattr(keras.applications, name)(
            weights=None, include_top=False, input_shape=image_shape, pooling="avg"
        )
    except ValueError as e:
        raise ConfigError(f"model.name={APPLICATION_PREFIX}{name}: {e}".splitlines()[0]) from None
    return keras.Model(base.input, _head(base.output, cfg, num_classes), name=name)


_MODELS = {"mlp": mlp, "cnn": cnn, "resnet": resnet}


def get_model(cfg, image_shape, num_classes):
    """Builds `cfg["name"]`: a registry name or `app:<keras.applications name>`.

    Raises:
      ConfigError: on an unknown name, listing the known ones.
    """
    name = cfg["name"]
    if name.startswith(APPLICATION_PREFIX):
        return application(name[len(APPLICATION_PREFIX) :], cfg, image_shape, num_classes)
    if name not in _MODELS:
        raise ConfigError(
            f"model.name={name!r} is not one of {', '.join(sorted(_MODELS))} "
            f"or {APPLICATION_PREFIX}<keras.applications name>"
        )
    return _MODELS[name](cfg, image_shape, num_classes)
