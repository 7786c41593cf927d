"""camcore.model_split: the cut of a model into features (image -> A) and head (A -> logits y).

Known answers: A from a plain Keras sub-model, y computed by hand from A and the Dense weights,
the class kernel and the binary sign rule written out, and every way of naming a layer wrongly
answered with the cause and the nearest right names.
"""

import re
import warnings

import keras
import numpy as np
import pytest
from toys import CHANNELS, NUM_CLASSES, SIZE, copy_weights, make_backbone, make_flat

import camcore
from camcore import grad_cam
from camcore.model_split import SplitModel, feature_layers, nearest_layers, split_model

ALL_METHODS = list(camcore.METHODS.items())


def toy_logits(model, images):
    """y = GAP(A) W + b, by hand, from the flat toy model's own conv output."""
    a = np.asarray(keras.Model(model.input, model.get_layer("conv").output)(images), np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("logits").get_weights())
    return a, a.mean(axis=(1, 2)) @ kernel + bias


# --------------------------------------------------------------------------------------------
# What a SplitModel exposes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["flat", "nested", "sequential"])
def test_split_attributes_and_logits_by_hand(toy_models, gap_dense_model, images, variant):
    model, layer = toy_models[variant]
    split = split_model(model)
    assert isinstance(split, SplitModel) and split.layer == layer
    assert split.input_shape == (SIZE, SIZE, 3)
    assert split.activation_shape == (SIZE - 2, SIZE - 2, CHANNELS) and split.channels == CHANNELS
    assert split.num_classes == NUM_CLASSES and not split.binary and not split.sigmoid
    a, y = toy_logits(gap_dense_model, images)
    features = split.features(images)
    assert features.dtype == "float32"
    np.testing.assert_allclose(features, a, rtol=1e-5, atol=1e-6)
    logits = split.head(features)
    np.testing.assert_allclose(logits, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(split.probabilities(logits), model(images), atol=1e-6)
    assert split_model(model) is split  # cached


@pytest.mark.parametrize("variant", ["flat", "nested", "sequential"])
def test_class_kernel_is_the_dense_kernel(toy_models, gap_dense_model, variant):
    model, _ = toy_models[variant]
    np.testing.assert_array_equal(split_model(model).class_kernel,
                                  gap_dense_model.get_layer("logits").kernel)


def test_binary_sign_rule_held_once(gap_dense_model, images):
    """A Dense(1, sigmoid) classifier: y = (-z, +z), and the class kernel is (-w, +w)."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(CHANNELS, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="logit")(x))
    conv_kernel, conv_bias, kernel, bias = gap_dense_model.get_weights()
    model.set_weights([conv_kernel, conv_bias, kernel[:, :1], bias[:1]])
    split = split_model(model)
    assert split.binary and split.sigmoid and split.num_classes == 2
    a, _ = toy_logits(gap_dense_model, images)
    z = a.mean(axis=(1, 2)) @ kernel[:, :1] + bias[:1]
    np.testing.assert_allclose(split.logits(images), np.concatenate([-z, z], axis=1), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(split.class_kernel, np.concatenate([-kernel[:, :1],
                                                                   kernel[:, :1]], axis=1))
    np.testing.assert_array_equal(split.two_class_scores(np.array([[2.0]])), [[-2.0, 2.0]])
    flat = split_model(gap_dense_model)
    np.testing.assert_array_equal(flat.two_class_scores(np.array([[2.0, 3.0]])), [[2.0, 3.0]])


def test_class_kernel_needs_a_pooling_dense_head():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(keras.layers.Flatten(
        name="flatten")(x)))
    with pytest.raises(ValueError, match=r"followed by flatten -> logits\. Use grad_cam"):
        split_model(model).class_kernel  # noqa: B018


def test_layers_above_list_every_head_layer_once(nested_model):
    """From "conv" in a model conv -> mix -> GAP -> Dense -> Softmax: mix, gap, logits."""
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    m = keras.layers.Conv2D(3, 1, activation="relu", name="mix")(a)
    x = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D(name="gap")(m))
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(x))
    assert [l.name for l in split_model(model, "conv").layers_above] == ["mix", "gap", "logits"]
    assert [l.name for l in split_model(model).layers_above] == ["gap", "logits"]
    assert [l.name for l in split_model(nested_model).layers_above] == ["gap", "logits"]
    for split in (split_model(model, "conv"), split_model(nested_model)):  # what callers dug out
        dug_out = [l for part in split.head_parts for l in part.layers
                   if not isinstance(l, keras.layers.InputLayer)]
        assert split.layers_above == dug_out


def test_wrapped_classifier_logits_are_found_inside(gap_dense_model, images):
    """Sequential([Input, classifier ending in Softmax]): the logits are the inner Dense's."""
    inner = copy_weights(gap_dense_model, make_flat())
    wrapped = keras.Sequential([keras.Input((SIZE, SIZE, 3)), inner], name="wrapped")
    split = split_model(wrapped)
    assert split.layer == "flat/conv"
    _, y = toy_logits(gap_dense_model, images)
    np.testing.assert_allclose(split.logits(images), y, rtol=1e-5, atol=1e-5)


def test_split_model_wants_a_keras_model():
    with pytest.raises(TypeError, match="must be a keras.Model; got str"):
        split_model("model.keras")


# --------------------------------------------------------------------------------------------
# Naming the layer
# --------------------------------------------------------------------------------------------
def test_feature_layers_and_default(nested_model, gap_dense_model):
    assert feature_layers(nested_model) == ["backbone/conv"]
    assert camcore.default_target_layer(nested_model) == "backbone/conv"
    assert feature_layers(gap_dense_model) == ["conv"]  # not the input layer "image"


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_explicit_bare_and_full_layer_names_agree(nested_model, images, name, method):
    """"conv" (unique, found inside the backbone) and "backbone/conv" are the same layer."""
    a = method(nested_model, images, layer="conv")
    b = method(nested_model, images, layer="backbone/conv")
    assert a.layer == b.layer == "backbone/conv"
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-6)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_unknown_layer_lists_candidates(toy_models, images, name, method):
    model, _ = toy_models["flat"]
    with pytest.raises(ValueError, match=r"no layer 'nope' in model 'flat'\. Choose a conv.*"
                                         r"candidates are: conv"):  # nothing close to suggest
        method(model, images, layer="nope")
    nested, _ = toy_models["nested"]
    with pytest.raises(ValueError, match=r"no layer 'backbone/nope'.*backbone/conv"):
        method(nested, images, layer="backbone/nope")


@pytest.fixture(scope="module")
def deep_model():
    """Twenty 3x3 'same' convolutions block0_conv .. block19_conv, then GAP -> Dense."""
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for i in range(20):
        x = keras.layers.Conv2D(2, 3, padding="same", name=f"block{i}_conv")(x)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)),
                       name="deep")


@pytest.mark.parametrize("wrong, suggested", [
    ("blokc3_conv", "'block3_conv'"),   # an early layer, not among the last 12 listed
    ("block3_cnov", "'block3_conv'"),
    ("Block19_conv", "'block19_conv'"),
])
def test_misspelt_layer_suggests_the_nearest_names(deep_model, wrong, suggested):
    with pytest.raises(ValueError) as error:
        split_model(deep_model, wrong)
    message = str(error.value)
    assert f"no layer {wrong!r} in model 'deep'. Did you mean {suggested}" in message
    assert "candidates are: block8_conv" in message  # the last 12 are still listed


def test_misspelt_nested_path_suggests_the_full_path(nested_model):
    with pytest.raises(ValueError, match=r"Did you mean 'backbone/conv'\?"):
        split_model(nested_model, "backbone/cnov")
    with pytest.raises(ValueError, match=r"Did you mean 'backbone/conv'\?"):
        split_model(nested_model, "cnov")


def test_nearest_layers_known_answers():
    paths = ["resnet50/conv5_block3_out", "resnet50/conv5_block2_out", "resnet50/pool1_pool"]
    assert nearest_layers("conv5_block3_ot", paths) == paths[:2]  # the closer one first
    assert nearest_layers("resnet50/conv5_block2_out", paths)[0] == paths[1]
    assert nearest_layers("dense", paths) == []
    assert nearest_layers("conv5_block3_ot", paths, n=1) == paths[:1]


@pytest.mark.parametrize("variant, layer", [("flat", "image"), ("nested", "backbone_input"),
                                            ("nested", "backbone/backbone_input")])
def test_the_input_layer_is_not_a_target_layer(toy_models, images, variant, layer):
    model, _ = toy_models[variant]
    with pytest.raises(ValueError, match=rf"'{layer}' is the model's input: a map there would "
                                         r"weigh the pixels themselves.*candidates are"):
        grad_cam(model, images, layer=layer)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_non_4d_layer_is_rejected(gap_dense_model, images, name, method):
    with pytest.raises(ValueError, match=r"'logits' has a 2-D output, not 4-D"):
        method(gap_dense_model, images, layer="logits")


def test_ambiguous_bare_layer_name(images):
    inputs = keras.Input((SIZE, SIZE, 3))
    inner_in = keras.Input((SIZE, SIZE, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, name="conv")(inner_in),
                        name="inner")
    x = keras.layers.Conv2D(4, 1, name="conv")(inner(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError, match="ambiguous"):
        grad_cam(model, images, layer="conv")
    # the full path picks one
    assert split_model(model, "inner/conv").layer == "inner/conv"


# --------------------------------------------------------------------------------------------
# Models without a graph to cut
# --------------------------------------------------------------------------------------------
def test_unbuilt_sequential_model(images):
    model = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"not built.*keras\.Input.*model\.build"):
        grad_cam(model, images)


class Subclassed(keras.Model):
    """The flat toy classifier written as a subclassed model (without the softmax)."""

    def __init__(self):
        super().__init__(name="subclassed")
        self.conv = keras.layers.Conv2D(CHANNELS, 3, activation="relu", name="conv")
        self.gap = keras.layers.GlobalAveragePooling2D(name="gap")
        self.dense = keras.layers.Dense(NUM_CLASSES, name="logits")

    def call(self, x):
        return self.dense(self.gap(self.conv(x)))


@pytest.mark.parametrize("state", ["called", "built", "new"])
def test_subclassed_model_gets_the_functional_wrapper(gap_dense_model, images, state):
    """The error says why and shows the wrapper; the wrapper gives the flat model's maps."""
    model = Subclassed()
    if state == "called":
        model(images)
    elif state == "built":
        with warnings.catch_warnings():  # Keras: "build() ... does not have a build() method"
            warnings.simplefilter("ignore", UserWarning)
            model.build((None, SIZE, SIZE, 3))
    shape = "(224, 224, 3)" if state == "new" else f"({SIZE}, {SIZE}, 3)"
    with pytest.raises(ValueError, match=(
            r"'subclassed' is a subclassed keras\.Model: .*no graph of layers to cut.*"
            rf"inputs = keras\.Input\({re.escape(shape)}\); "
            r"model = keras\.Model\(inputs, model\.call\(inputs\)\)")):
        grad_cam(model, images)
    if state == "new":
        return
    inputs = keras.Input((SIZE, SIZE, 3))  # the two lines of the message
    wrapped = keras.Model(inputs, model.call(inputs))
    model.set_weights(gap_dense_model.get_weights())  # shared: the wrapper sees them
    np.testing.assert_allclose(grad_cam(wrapped, images).maps,
                               grad_cam(gap_dense_model, images).maps, atol=1e-6)


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
