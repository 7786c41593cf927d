"""Tiny deterministic Keras classifiers whose answers can be worked out by hand.

Every toy model has the same four weight arrays (conv kernel, conv bias, dense kernel, dense
bias, in that order), so ``set_weights`` copies one onto another and the flat, nested and
Sequential variants compute exactly the same function.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

SIZE = 32  # input height and width of the toy models


CHANNELS = 8  # channels of the toy target layer "conv"


NUM_CLASSES = 4


def _conv(name="conv"):
    return keras.layers.Conv2D(CHANNELS, 3, activation="relu", name=name,
                               kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                               bias_initializer=keras.initializers.RandomUniform(0.0, 0.1, seed=2))


def _dense(activation=None, name="logits"):
    return keras.layers.Dense(NUM_CLASSES, activation=activation, name=name,
                              # large weights: a confident softmax, far from uniform
                              kernel_initializer=keras.initializers.RandomUniform(-3, 3, seed=3),
                              bias_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=4))


def make_flat(size=SIZE):
    """Input -> Conv2D("conv", relu) -> GAP -> Dense("logits") -> Softmax("probs")."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    x = _conv()(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = _dense()(x)
    probs = keras.layers.Softmax(name="probs")(logits)
    return keras.Model(inputs, probs, name="flat")


def make_backbone(size=SIZE):
    inputs = keras.Input((size, size, 3), name="backbone_input")
    return keras.Model(inputs, _conv()(inputs), name="backbone")


def make_nested(size=SIZE):
    """Input -> backbone (a sub-model holding "conv") -> GAP -> Dense -> Softmax."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    x = make_backbone(size)(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = _dense()(x)
    probs = keras.layers.Softmax(name="probs")(logits)
    return keras.Model(inputs, probs, name="nested")


def make_sequential(size=SIZE):
    """Sequential([Input, backbone, GAP, Dense(4, activation="softmax")])."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((size, size, 3)), make_backbone(size),
                             keras.layers.GlobalAveragePooling2D(name="gap"),
                             _dense(activation="softmax", name="predictions")],
                            name="sequential_softmax")


def copy_weights(source, target):
    target.set_weights(source.get_weights())
    return target


def smooth_images(n, size=SIZE, seed=123):
    """n smooth random RGB images (upsampled 4x4 noise plus a little pixel noise) in [0, 2.5].

    Smooth images differ from each other after pooling (white noise would average out), and small
    values keep the toy softmax away from saturation.
    """
    import cv2

    r = np.random.default_rng(seed)
    low = r.uniform(0, 1, (n, 4, 4, 3)).astype(np.float32)
    up = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in low])
    return np.clip(2 * up + r.uniform(0, 0.2, up.shape), 0, None).astype(np.float32)
