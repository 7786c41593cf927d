"""The classifier the book explains.

    raw RGB in [0, 255] -> preprocess -> backbone -> global average pooling -> dropout
    -> Dense ("logits") -> ClassSoftmax ("probs", records the class names)

The preprocessing lives inside the model, so masking a pixel to 0 (Score-CAM, the metrics) means
black whatever the backbone. The Dense layer has no activation: its output is the logits, which
the gradient methods differentiate; the softmax is a separate layer.
"""

from __future__ import annotations

import keras

from camcore.backbones import get_backbone
from camcore.data import CLASS_NAMES

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


def build_classifier(backbone: str = "efficientnet_lite0", class_names=CLASS_NAMES,
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
    logits = keras.layers.Dense(len(class_names), name="logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    probs = ClassSoftmax(class_names, name="probs")(logits)
    return keras.Model(inputs, probs, name=f"{backbone}_classifier")
