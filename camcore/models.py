"""A classifier on an ImageNet backbone, with the head the class activation maps explain.

    raw RGB in [0, 255] -> preprocess -> backbone -> global average pooling -> dropout
    -> Dense ("logits") -> ClassSoftmax ("probs", records the class names)

or, with ``hidden_units``, a hidden layer that acts at each position *before* the pooling:

    ... -> backbone, A (h x w x K) -> Reshape ("positions", Z x K) -> Dense ("hidden",
    hidden_units, ReLU) at each of the Z = hw positions -> global average pooling ("avg_pool")
    -> dropout -> Dense ("logits") -> ClassSoftmax ("probs")

The preprocessing lives inside the model, so masking a pixel to 0 (Score-CAM, the metrics) means
black whatever the backbone. The Dense layer has no activation: its output is the logits, which
the gradient methods differentiate; the softmax is a separate layer.

The target layer of every method, by default (``camcore.default_target_layer``), is the
backbone's last activation A (``"efficientnet_lite0/top_activation"``, 7x7x1280 at 224x224), on
both heads. On the first head CAM = Grad-CAM = HiResCAM there: the logit is linear in the pooled
activations, so dy^c/dA^k_ij = w_k^c / Z at every position. On the hidden-layer head
dy^c/dA^k_ij = (1/Z) sum_u W1[k, u] relu'(z_iju) W2[u, c], with z_ij = A_ij W1 + b1 the hidden
layer at position (i, j): the ReLU's mask depends on the position, so the gradient does too, and
Grad-CAM (its spatial mean) differs from HiResCAM (the gradient itself), Grad-CAM++ from
LayerCAM, and CAM is not defined (``camcore.cam`` says so). A head GAP -> Dense -> ReLU -> Dense
would not do this: after the pooling the gradient is the same at every position whatever
follows, so Grad-CAM = HiResCAM there again.

The hidden layer is a 1x1 convolution (one Dense layer applied to the K-vector of each
position), written as a Dense layer on the Z positions so that its output is (N, Z, units), not
4-D: the backbone's last activation then stays the model's last 4-D layer, hence the default
target layer. (A ``Conv2D`` would become the default target, and there, followed by pooling ->
Dense, Grad-CAM would equal HiResCAM again.)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from camcore.backbones import get_backbone

INPUT_SIZE = 224


@keras.saving.register_keras_serializable(package="camcore")
class ClassSoftmax(keras.layers.Softmax):
    """A Softmax layer that records the class names, saved with the model.

    camcore reads them (``camcore.model_split.class_names``), so a class can be given by name:
    ``grad_cam(model, images, classes="glacier")``.
    """

    def __init__(self, class_names=(), **kwargs):
        super().__init__(**kwargs)
        self.class_names = tuple(class_names)

    def get_config(self):
        return {**super().get_config(), "class_names": list(self.class_names)}


def _check_class_names(class_names) -> tuple[str, ...]:
    """``class_names`` as a tuple of at least two distinct strings, or a ValueError saying why."""
    example = ("pass the names of the classes the model predicts, in label order, e.g. "
               "class_names=camcore.CLASS_NAMES (the book's six scenes) or "
               "class_names=('cat', 'dog')")
    if class_names is None:
        raise ValueError(f"build_classifier needs class_names: {example}")
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(f"class_names must be a list or tuple of names, got "
                         f"{type(class_names).__name__} {class_names!r}: {example}")
    names = tuple(class_names)
    if len(names) < 2 or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"class_names must hold at least two non-empty strings, got {names!r}: "
                         f"{example}")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"class_names must be distinct; {repeated} appear more than once")
    return names


def _check_hidden_units(hidden_units):
    if hidden_units is not None and (isinstance(hidden_units, bool)
                                     or not isinstance(hidden_units, int) or hidden_units < 1):
        raise ValueError(f"hidden_units must be None (no hidden layer) or a positive integer, "
                         f"got {hidden_units!r}")


def build_classifier(backbone: str = "efficientnet_lite0", class_names=None,
                     input_size: int = INPUT_SIZE, dropout: float = 0.2,
                     weights: str | None = "imagenet", seed: int = 0,
                     hidden_units: int | None = None) -> keras.Model:
    """Build a classifier on an ImageNet backbone (``"efficientnet_lite0"`` or ``"resnet50"``).

    ``class_names`` (required): the names of the C classes, in label order; the logits layer has
    C units and the softmax layer records the names. ``hidden_units``: None for the head pooling
    -> dropout -> Dense(C), or a number of units for a hidden layer at each position before the
    pooling: Dense(hidden_units, ReLU) on each of the backbone's h x w positions (a 1x1
    convolution) -> pooling -> dropout -> Dense(C) (see the module's docstring for why there).
    ``weights=None`` gives random backbone weights (no download), for tests. ``seed`` fixes the
    dropout and the new Dense layers' initial weights.
    """
    names = _check_class_names(class_names)
    _check_hidden_units(hidden_units)  # before the backbone is built
    spec = get_backbone(backbone)
    shape = (input_size, input_size, 3)
    inputs = keras.Input(shape, name="image")
    x = spec.preprocess()(inputs)
    x = spec.build(shape, weights)(x)
    logits = classifier_head(x, len(names), dropout=dropout, seed=seed,
                             hidden_units=hidden_units)
    probs = ClassSoftmax(names, name="probs")(logits)
    return keras.Model(inputs, probs, name=f"{backbone}_classifier")


def classifier_head(features, num_classes: int, dropout: float = 0.2, seed: int = 0,
                    hidden_units: int | None = None):
    """The logits of ``build_classifier``'s head on a 4-D feature map ``features`` (N, h, w, K).

    Without ``hidden_units``: pooling ("avg_pool") -> dropout ("dropout") -> Dense ("logits").
    With it: Reshape ("positions", (h * w, K)) -> Dense ("hidden", ``hidden_units``, ReLU) at
    each position -> pooling ("avg_pool") -> dropout ("dropout") -> Dense ("logits"). The new
    kernels are Glorot-uniform with seeds ``seed`` (logits) and ``seed + 1`` (hidden).
    """
    _check_hidden_units(hidden_units)
    x = features
    if hidden_units is None:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    else:
        x = keras.layers.Reshape((-1, x.shape[-1]), name="positions")(x)
        x = keras.layers.Dense(hidden_units, activation="relu", name="hidden",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(x)
        x = keras.layers.GlobalAveragePooling1D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    return keras.layers.Dense(num_classes, name="logits",
                              kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
