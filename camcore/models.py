"""The classifier the book explains.

    raw RGB in [0, 255] -> preprocess -> backbone -> global average pooling -> dropout
    -> Dense ("logits") -> Softmax ("probs")

The preprocessing lives inside the model, so masking a pixel to 0 (Score-CAM, the metrics) means
black whatever the backbone. The Dense layer has no activation: its output is the logits, which
the gradient methods differentiate; the softmax is a separate layer.
"""

from __future__ import annotations

import keras

from camcore.backbones import get_backbone
from camcore.data import CLASS_NAMES

INPUT_SIZE = 224


def build_classifier(backbone: str = "efficientnet_lite0", num_classes: int = len(CLASS_NAMES),
                     input_size: int = INPUT_SIZE, dropout: float = 0.2,
                     weights: str | None = "imagenet", seed: int = 0) -> keras.Model:
    """Build the classifier on an ImageNet backbone (``"efficientnet_lite0"`` or ``"resnet50"``).

    ``weights=None`` gives random backbone weights (no download), for tests.
    """
    spec = get_backbone(backbone)
    shape = (input_size, input_size, 3)
    inputs = keras.Input(shape, name="image")
    x = spec.preprocess()(inputs)
    x = spec.build(shape, weights)(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    probs = keras.layers.Softmax(name="probs")(logits)
    return keras.Model(inputs, probs, name=f"{backbone}_classifier")


def backbone_of(model: keras.Model) -> str | None:
    """Name of the camcore backbone nested in ``model`` (None for a model camcore did not build)."""
    from camcore.backbones import BACKBONES

    names = {layer.name for layer in model.layers}
    return next((name for name in BACKBONES if name in names), None)


def default_target_layer(model: keras.Model) -> str:
    """``"<backbone>/<layer>"`` for a camcore classifier, else the last 4-D layer found."""
    name = backbone_of(model)
    if name is not None:
        return f"{name}/{get_backbone(name).target_layer}"
    from camcore.model_split import last_feature_layer

    return last_feature_layer(model)
