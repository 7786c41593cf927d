"""What a user's mistakes get: every bad input to a method, to overlay and to show_grid is answered
with an error (or a warning) naming the cause and the fix, never a silent wrong map.

The supported model shapes that used to go wrong are here too: softmax in any spelling, a Dense
without bias, log-softmax, and binary (sigmoid) classifiers, each against a hand-computed answer.
"""

import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from toys import CHANNELS, NUM_CLASSES, SIZE, make_backbone, make_flat

import camcore
from camcore import (
    EmptyMapWarning,
    cam,
    grad_cam,
    grad_cam_plus_plus,
    overlay,
    score_cam,
    show_grid,
)
from camcore.models import ClassSoftmax

Z = (SIZE - 2) ** 2
ALL_METHODS = list(camcore.METHODS.items())


def quiet(method, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        return method(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def pixels(images, kind):
    """The toy images (values in [0, 2.5]) turned into one kind of bad input."""
    x = np.asarray(images, np.float32)
    return {
        "unit range": x / x.max(),
        "NaN": np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x),
        "inf": np.where(np.arange(x.size).reshape(x.shape) == 7, np.inf, x),
        "uint16": (x * 1000).astype(np.uint16),
        "int beyond 255": (x * 1000).astype(np.int32),
        "negative (preprocessed)": x - 1.0,
        "grey batch": x[..., 0],
        "channels first": x.transpose(0, 3, 1, 2),
        "one image": x[0],
        "boolean": x > 1,
    }[kind]


BAD_PIXELS = {
    "unit range": r": pixel values in \[0, 1\].*IMAGES \* 255.*value_range=\(0, 1\)",
    "NaN": r": NaN or infinite",
    "inf": r": NaN or infinite",
    "uint16": r"uint16.*\(IMAGES // 257\)",
    "int beyond 255": r"integer pixels in 0\.\.2\d{3}",
    "negative (preprocessed)": r"outside 0\.\.255.*before any preprocess_input",
    "grey batch": r"grey images.*np\.repeat",
    "channels first": r"channels first.*transpose\(0, 2, 3, 1\)",
    "one image": r"one image.*\[None\]",
    "boolean": r"dtype bool",
}


@pytest.mark.parametrize("kind", BAD_PIXELS)
@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_bad_pixels_are_refused_by_every_method(gap_dense_model, images, name, method, kind):
    with pytest.raises(ValueError, match=BAD_PIXELS[kind].replace("IMAGES", "images")):
        method(gap_dense_model, pixels(images, kind))


@pytest.mark.parametrize("kind", ["unit range", "NaN", "uint16", "negative (preprocessed)"])
def test_bad_pixels_are_refused_by_overlay_and_show_grid(images, kind):
    bad = pixels(images, kind)
    heat = np.zeros((SIZE, SIZE), np.float32)
    pattern = "^image: .*" + BAD_PIXELS[kind].removeprefix(": ").replace("IMAGES", "image")
    with pytest.raises(ValueError, match=pattern):
        overlay(bad[0], heat)
    with pytest.raises(ValueError, match=BAD_PIXELS[kind].replace("IMAGES", r"images\[0\]")):
        show_grid([bad[0], heat])


def test_the_bad_images_are_named(gap_dense_model, images):
    x = np.array(images)
    x[1, 3, 4, 0] = np.nan
    x[2] /= x[2].max()
    with pytest.raises(ValueError, match=r"^images #1 \(of 3\): NaN"):
        grad_cam(gap_dense_model, x)
    x[1, 3, 4, 0] = 1
    with pytest.raises(ValueError, match=r"^images #2 \(of 3\): pixel values in \[0, 1\]"):
        grad_cam(gap_dense_model, x)


def test_unit_range_opt_in_and_integer_pixels(gap_dense_model, images):
    """value_range=(0, 1) accepts [0, 1] images; integer pixels in 0..255 equal the same floats."""
    x = np.asarray(images)
    unit = x / x.max()
    np.testing.assert_array_equal(grad_cam(gap_dense_model, unit, value_range=(0, 1)).maps,
                                  grad_cam(gap_dense_model, unit.astype(np.float64),
                                           value_range=(0, 1)).maps)
    whole = np.round(x * 60)
    np.testing.assert_array_equal(grad_cam(gap_dense_model, whole.astype(np.int64)).maps,
                                  grad_cam(gap_dense_model, whole.astype(np.float32)).maps)
    # an all-black image is valid in either range (the [0, 1] check needs a positive maximum)
    quiet(grad_cam, gap_dense_model, np.zeros((1, SIZE, SIZE, 3), np.float32))


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------
BAD_CLASSES = {
    "float array": (np.array([2.0, 1.0, 0.0]), r"integer class indices.*argmax"),
    "probabilities": (np.array([0.9, 0.7, 0.8]), r"not probs\.max"),
    "float scalar": (2.7, r"integer class indices"),
    "one-hot": (np.eye(NUM_CLASSES, dtype=int)[[2, 1, 0]], r"one-hot.*argmax\(axis=1\)"),
    "wrong length": ([1, 2], r"one int or 3 ints.*shape \(3,\).*got shape \(2,\)"),
    "2-D": (np.zeros((3, 2), int), r"one int or 3 ints"),
    "name without names": ("glacier", r"does not record its class names.*integer indices"),
    "out of range": (4, r"out of range.*0\.\.3"),
}


@pytest.mark.parametrize("case", BAD_CLASSES)
@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_bad_classes(gap_dense_model, images, name, method, case):
    classes, message = BAD_CLASSES[case]
    with pytest.raises(ValueError, match=message):
        method(gap_dense_model, images, classes=classes)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_classes_as_a_column(gap_dense_model, images, name, method):
    column = quiet(method, gap_dense_model, images, classes=np.array([[2], [1], [0]]))
    flat = quiet(method, gap_dense_model, images, classes=[2, 1, 0])
    np.testing.assert_array_equal(column.classes, [2, 1, 0])
    np.testing.assert_allclose(column.maps, flat.maps, atol=1e-6)


@pytest.fixture(scope="module")
def named_model(gap_dense_model):
    """The flat toy model ending in a ClassSoftmax that records four class names (saved too)."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(CHANNELS, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Dense(NUM_CLASSES, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, ClassSoftmax(["a", "b", "c", "d"], name="probs")(x))
    model.set_weights(gap_dense_model.get_weights())
    return model


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_class_names_where_the_model_records_them(named_model, images, name, method, tmp_path):
    by_name = quiet(method, named_model, images, classes=["c", "b", "a"])
    np.testing.assert_array_equal(by_name.classes, [2, 1, 0])
    np.testing.assert_array_equal(quiet(method, named_model, images, classes="d").classes, 3)
    with pytest.raises(ValueError, match=r"unknown class name 'z'.*a, b, c, d"):
        method(named_model, images, classes="z")
    if name == "Grad-CAM":  # the names survive saving
        named_model.save(tmp_path / "m.keras")
        again = keras.saving.load_model(tmp_path / "m.keras")
        np.testing.assert_array_equal(quiet(grad_cam, again, images, classes="b").classes, 1)


BAD_COUNTS = {"batch_size": [0, -1, 2.5, "8", True], "max_n": [0, -3, 1.5]}


@pytest.mark.parametrize("argument,value", [(a, v) for a, vs in BAD_COUNTS.items() for v in vs])
def test_bad_counts(gap_dense_model, images, argument, value):
    method = score_cam if argument == "max_n" else grad_cam
    with pytest.raises(ValueError, match=rf"{argument} must be an integer >= 1; got"):
        method(gap_dense_model, images, **{argument: value})


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
def head_model(weights, final):
    """conv -> GAP -> ``final`` (a Dense or a Dense + activation layer), with ``weights``."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(CHANNELS, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, final(x))
    model.set_weights(weights)
    return model


SOFTMAXES = {"string": "softmax", "tf.nn.softmax": tf.nn.softmax,
             "keras.activations.softmax": keras.activations.softmax,
             "keras.ops.softmax": keras.ops.softmax,
             "log_softmax": tf.nn.log_softmax}


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("spelling", SOFTMAXES)
def test_dense_with_softmax_in_any_spelling_is_explained_on_its_logits(
        gap_dense_model, images, spelling, use_bias):
    def final(x):
        return keras.layers.Dense(NUM_CLASSES, activation=SOFTMAXES[spelling],
                                  use_bias=use_bias)(x)
    weights = gap_dense_model.get_weights()
    model = head_model(weights if use_bias else weights[:3], final)
    kernel = np.asarray(gap_dense_model.get_layer("logits").kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "looks like probabilities" warning either
        result = grad_cam(model, images, classes=[0, 1, 2])
    np.testing.assert_allclose(result.channel_weights, kernel[:, [0, 1, 2]].T / Z, rtol=1e-5)
    out = np.asarray(model(images))
    probs = np.exp(out) if spelling == "log_softmax" else out
    np.testing.assert_allclose(result.scores, probs[np.arange(3), [0, 1, 2]], atol=1e-6)


def test_hidden_log_softmax_is_warned(gap_dense_model, images):
    def final(x):
        return keras.layers.Lambda(tf.nn.log_softmax)(keras.layers.Dense(NUM_CLASSES)(x))
    model = head_model(gap_dense_model.get_weights(), final)
    with pytest.warns(UserWarning, match="looks like log-probabilities"):
        grad_cam(model, images)


@pytest.fixture(scope="module")
def binary_models(gap_dense_model):
    """Binary toy classifiers: Dense(1, sigmoid), and Dense(1) -> Activation("sigmoid").

    Their one logit z uses column 0 of the toy Dense kernel.
    """
    conv_kernel, conv_bias, kernel, bias = gap_dense_model.get_weights()
    weights = [conv_kernel, conv_bias, kernel[:, :1], bias[:1]]
    models = {
        "Dense(sigmoid)": head_model(weights,
                                     lambda x: keras.layers.Dense(1, activation="sigmoid")(x)),
        "Activation": head_model(weights, lambda x: keras.layers.Activation("sigmoid")(
            keras.layers.Dense(1)(x))),
    }
    return models, kernel[:, 0]


BINARY_VARIANTS = ["Dense(sigmoid)", "Activation"]


@pytest.mark.parametrize("variant", BINARY_VARIANTS)
@pytest.mark.parametrize("method", [grad_cam, cam], ids=["Grad-CAM", "CAM"])
@pytest.mark.parametrize("c, sign", [(1, 1), (0, -1)], ids=["class-1", "class-0"])
def test_binary_classifier(binary_models, images, variant, method, c, sign):
    """Class 1 is explained by +z, class 0 by -z; scores are the sigmoid probabilities."""
    models, w = binary_models
    model = models[variant]
    p1 = np.asarray(model(images))[:, 0]
    expected = w / Z if method is grad_cam else w
    result = quiet(method, model, images, classes=c)
    np.testing.assert_allclose(result.channel_weights,
                               np.broadcast_to(sign * expected, (3, CHANNELS)), rtol=1e-5)
    np.testing.assert_allclose(result.scores, p1 if c == 1 else 1 - p1, atol=1e-6)


@pytest.mark.parametrize("variant", BINARY_VARIANTS)
def test_binary_classifier_default_class_and_range(binary_models, images, variant):
    """The default class is 1 where sigmoid > 0.5; a binary model has 2 classes, 0 and 1."""
    models, _ = binary_models
    model = models[variant]
    p1 = np.asarray(model(images))[:, 0]
    predicted = quiet(grad_cam, model, images)
    np.testing.assert_array_equal(predicted.classes, (p1 > 0.5).astype(int))
    with pytest.raises(ValueError, match=r"out of range.*2 classes"):
        grad_cam(model, images, classes=2)


@pytest.mark.parametrize("c", [1, 0])
def test_binary_score_cam_uses_sigmoid_probabilities(binary_models, images, c):
    """Score-CAM's weight is p_c of the masked image: sigmoid(z) for class 1, 1 - sigmoid for 0."""
    model = binary_models[0]["Dense(sigmoid)"]
    a = np.asarray(keras.Model(model.input, model.get_layer("conv").output)(images))
    masks = camcore.methods.score_cam_masks(np.moveaxis(a[0], -1, 0), (SIZE, SIZE)).numpy()
    live = a[0].var(axis=(0, 1)) > 0
    p1 = np.asarray(model(images[0] * masks[..., None]))[:, 0]
    expected = p1 if c == 1 else 1 - p1
    result = quiet(score_cam, model, images[:1], classes=c)
    np.testing.assert_allclose(result.channel_weights[0][live], expected[live], atol=1e-5)


def test_unbuilt_sequential_model(images):
    model = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"not built.*keras\.Input.*model\.build"):
        grad_cam(model, images)


def test_backbone_called_twice(images):
    """A backbone called on two views: its layers are not offered, and asking for one says why."""
    backbone = make_backbone()
    inputs = keras.Input((SIZE, SIZE, 3))
    flipped = keras.layers.Lambda(lambda t: t[:, ::-1], name="flip")(inputs)
    views = [backbone(inputs), backbone(flipped)]
    pooled = [keras.layers.GlobalAveragePooling2D()(v) for v in views]
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Concatenate()(pooled)))
    with pytest.raises(ValueError) as error:
        grad_cam(model, images, layer="backbone/conv")
    message = str(error.value)
    assert "'backbone' is called 2 times" in message
    assert "candidates are: flip " in message and "default: 'flip'" in message
    # the one 4-D layer left (the flip) does not separate the model: said, with nothing to offer
    with pytest.raises(ValueError, match=r"'flip' does not separate.*No other layer"):
        grad_cam(model, images)

    # with a merge layer after the two calls, that layer is what is suggested
    merged = keras.layers.Add(name="merge")(views)
    model = keras.Model(inputs, keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling2D()(merged)))
    with pytest.raises(ValueError,
                       match=r"called 2 times.*candidates are: flip, merge \(default: 'merge'\)"):
        grad_cam(model, images, layer="backbone/conv")
    assert grad_cam(model, images).layer == "merge"


def test_no_retracing_warning_for_several_models_and_layers(images, caplog):
    """Seven models x two layers in one session: TensorFlow never warns about retracing."""
    caplog.set_level(logging.WARNING, logger="tensorflow")
    for seed in range(7):
        model = make_flat()
        model.get_layer("conv").kernel.assign(
            np.random.default_rng(seed).normal(0, 0.3, (3, 3, 3, CHANNELS)))
        for layer in ("conv", None):
            for method in (grad_cam, grad_cam_plus_plus):
                quiet(method, model, images, layer=layer)
    assert "retracing" not in caplog.text
