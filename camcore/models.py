"""A classifier on an ImageNet backbone, with the head the class activation maps explain.

    raw RGB in [0, 255] -> preprocess -> backbone -> global average pooling -> dropout
    -> Dense ("logits") -> ClassSoftmax ("probs", records the class names)

or, with ``hidden_units``, a hidden layer between the pooling and the logits:

    ... -> global average pooling -> dropout -> Dense ("hidden", ReLU) -> dropout
    ("hidden_dropout") -> Dense ("logits") -> ClassSoftmax ("probs")

The preprocessing lives inside the model, so masking a pixel to 0 (Score-CAM, the metrics) means
black whatever the backbone. The Dense layer has no activation: its output is the logits, which
the gradient methods differentiate; the softmax is a separate layer. On the first head, CAM =
Grad-CAM = HiResCAM at the last layer (the logit is linear in the pooled activations); on the
hidden-layer head they differ, and CAM is not defined (``camcore.cam`` says so).
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


def build_classifier(backbone: str = "efficientnet_lite0", class_names=None,
                     input_size: int = INPUT_SIZE, dropout: float = 0.2,
                     weights: str | None = "imagenet", seed: int = 0,
                     hidden_units: int | None = None) -> keras.Model:
    """Build a classifier on an ImageNet backbone (``"efficientnet_lite0"`` or ``"resnet50"``).

    ``class_names`` (required): the names of the C classes, in label order; the logits layer has
    C units and the softmax layer records the names. ``hidden_units``: None for the head pooling
    -> dropout -> Dense(C), or a number of units for pooling -> dropout -> Dense(hidden_units,
    ReLU) -> dropout -> Dense(C). ``weights=None`` gives random backbone weights (no download),
    for tests. ``seed`` fixes the dropout and the new Dense layers' initial weights.
    """
    names = _check_class_names(class_names)
    if hidden_units is not None and (isinstance(hidden_units, bool)
                                     or not isinstance(hidden_units, int) or hidden_units < 1):
        raise ValueError(f"hidden_units must be None (no hidden layer) or a positive integer, "
                         f"got {hidden_units!r}")
    spec = get_backbone(backbone)
    shape = (input_size, input_size, 3)
    inputs = keras.Input(shape, name="image")
    x = spec.preprocess()(inputs)
    x = spec.build(shape, weights)(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    if hidden_units is not None:
        x = keras.layers.Dense(hidden_units, activation="relu", name="hidden",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(x)
        x = keras.layers.Dropout(dropout, seed=seed + 1, name="hidden_dropout")(x)
    logits = keras.layers.Dense(len(names), name="logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    probs = ClassSoftmax(names, name="probs")(logits)
    return keras.Model(inputs, probs, name=f"{backbone}_classifier")
