"""What a user's mistakes get: every bad input to a method, to overlay and to show_grid is answered
with an error (or a warning) naming the cause and the fix, never a silent wrong map.

The supported model shapes that used to go wrong are here too: softmax in any spelling, a Dense
without bias, log-softmax, and binary (sigmoid) classifiers, each against a hand-computed answer.
"""

import logging
import os
import pickle
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from toys import CHANNELS, NUM_CLASSES, SIZE, make_flat

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


def not_pixels(images, kind):
    """The toy images given as something that is not a batch of pixels."""
    return {
        "a file path": "my_photo.jpg",
        "a Path": Path("photos") / "my_photo.jpg",
        "a list of paths": ["a.jpg", "b.jpg"],
        "a list of sizes": [images[0], images[1, :16, :16]],
        "an object without __array__": object(),
        "a dict": {"image": images[0]},
        "an empty list": [],
    }[kind]


NOT_PIXELS = {
    "a file path": r"^images is a file path \('my_photo\.jpg'\), not pixels\. Load it first: "
                   r"images, _ = camcore\.load_images\('my_photo\.jpg'\)",
    "a Path": r"file path \('photos/my_photo\.jpg'\)",
    "a list of paths": r"a list of file paths, not pixels.*camcore\.load_images\(paths",
    "a list of sizes": r"a list of 2 arrays of different shapes \(\(16, 16, 3\), \(32, 32, 3\)\): "
                       r"a batch needs one size",
    "an object without __array__": r"must be a numpy array \(N, H, W, 3\).*got a object",
    "a dict": r"must be a numpy array.*got a dict",
    "an empty list": r"empty batch",
}


@pytest.mark.parametrize("kind", NOT_PIXELS)
@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_what_is_not_pixels_is_named(gap_dense_model, images, name, method, kind):
    with pytest.raises(ValueError, match=NOT_PIXELS[kind]):
        method(gap_dense_model, not_pixels(images, kind))


BAD_RANGES = {  # (pixels, value_range) -> message
    "uint8 for a [0, 1] model (scores all 1.0 before)": (
        "uint8", (0, 1), r"integer pixels in 0\.\.2\d\d, but value_range=\(0, 1\) says the "
                         r"model takes 0\.\.1\. Integer pixels are 0\.\.255: pass "
                         r"value_range=\(0, 255\), or scale them for a \[0, 1\] model: "
                         r"images / 255"),
    "int64 for a [0, 1] model": ("int64", (0, 1), r"integer pixels in 0\.\.2\d\d, but value_r"),
    "reversed range": ("float", (255, 0), r"value_range must be \(low, high\) with low < high, "
                                          r"e\.g\. \(0, 255\) or \(0, 1\); got \(255, 0\)"),
    "empty range": ("float", (0, 0), r"low < high"),
    "infinite range": ("float", (0, np.inf), r"low < high"),
    "three numbers": ("float", (0, 1, 2), r"value_range must be two numbers"),
    "a string": ("float", "0-255", r"value_range must be two numbers"),
}


@pytest.mark.parametrize("case", BAD_RANGES)
@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_value_range_is_checked(gap_dense_model, images, name, method, case):
    kind, value_range, message = BAD_RANGES[case]
    x = np.round(np.asarray(images) * 100)  # whole values 0..2xx
    x = x.astype(np.uint8 if kind == "uint8" else np.int64 if kind == "int64" else np.float32)
    with pytest.raises(ValueError, match=message):
        method(gap_dense_model, x, value_range=value_range)


def test_integer_pixels_within_a_unit_range_are_accepted(gap_dense_model, images):
    """A binary uint8 mask is valid [0, 1] input: the same maps as its float copy."""
    x = (np.asarray(images) > 1).astype(np.uint8)
    np.testing.assert_array_equal(
        quiet(grad_cam, gap_dense_model, x, value_range=(0, 1)).maps,
        quiet(grad_cam, gap_dense_model, x.astype(np.float32), value_range=(0, 1)).maps)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_one_by_one_map_is_named(images, name, method):
    """A layer with a 1x1 output: said so, with an earlier layer to choose (not "no channel
    carries evidence")."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="early")(inputs)  # 15x15
    x = keras.layers.Conv2D(4, 15, activation="relu", name="late")(x)  # 1x1
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(ValueError, match=r"layer 'late' gives a 1x1 map \(A is 1x1xK\): a map of "
                                         r"one position cannot show where.*e\.g\. 'early'"):
        method(model, images)
    if name != "CAM":  # CAM needs GAP -> Dense after the layer
        assert quiet(method, model, images, layer="early").maps.shape == (3, 15, 15)


def test_a_1x1_map_found_only_when_run_is_named_too(images):
    """A model of free input size: the 1x1 map is only known at run time."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 32, activation="relu", name="whole")(inputs)  # 1x1 on 32x32
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(ValueError, match=r"'whole' gives a 1x1 map.*or larger images"):
        grad_cam(model, images)


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


# --------------------------------------------------------------------------------------------
# Files: the legacy PyTorch reader runs no code
# --------------------------------------------------------------------------------------------
class RunsCode:
    """Pickles as a call of os.system: what a crafted .pth file holds."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("where", ["header", "state dict", "storage keys"])
def test_legacy_pth_refuses_a_pickle_that_runs_code(tmp_path, where):
    from camcore.pth import LEGACY_MAGIC, read_legacy_pth

    proof = tmp_path / "ran"
    evil = RunsCode(f"touch {proof}")
    parts = [LEGACY_MAGIC, 1001, {"protocol_version": 1001}, {}, []]
    parts[{"header": 2, "state dict": 3, "storage keys": 4}[where]] = evil
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for part in parts:
            pickle.dump(part, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=(
            r"evil\.pth: refused to load (posix|nt)\.system: a PyTorch state dict holds only "
            r"tensors "
            r".*nothing in it was run")):
        read_legacy_pth(path)
    assert not proof.exists()


def test_a_book_module_asked_of_camcore_says_where_it_lives():
    moved = r"camcore\.book\.training.*from camcore\.book import training"
    with pytest.raises(AttributeError, match=moved):
        camcore.training  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        camcore.nonsense  # noqa: B018
    from camcore.book import training  # the README's import works

    assert callable(training.load_or_train)
