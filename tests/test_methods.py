"""Tests for camcore.methods: the four methods against identities and hand-computed answers.

Every reference here is computed independently of camcore: activations from a plain Keras
sub-model, gradients derived analytically from weights chosen by hand, Score-CAM by a brute-force
loop with OpenCV resizing, and normalisation written out in numpy.
"""

import doctest
import importlib
import inspect
import re
import warnings
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from toys import (
    CHANNELS,
    NUM_CLASSES,
    SIZE,
    copy_weights,
    make_flat,
    make_nested,
    make_sequential,
    smooth_images,
)

import camcore
from camcore import (
    EmptyMapWarning,
    NearPoleWarning,
    cam,
    grad_cam,
    grad_cam_plus_plus,
    methods,
    score_cam,
)

H = W = SIZE - 2  # the toy target layer: 3x3 "valid" convolution -> 30x30
Z = H * W
ALL_METHODS = list(camcore.METHODS.items())


# --------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------
def activations_of(model, layer, x):
    """A = the output of ``layer`` (a flat model's own layer), from a plain Keras sub-model."""
    return np.asarray(keras.Model(model.input, model.get_layer(layer).output)(x), np.float64)


def toy_activations(gap_dense_model, x):
    return activations_of(gap_dense_model, "conv", x)


def normalise(m):
    """Min-max to [0, 1] per image; a map with no range becomes zeros."""
    m = np.asarray(m, np.float64)
    low = m.min(axis=(1, 2), keepdims=True)
    span = m.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (m - low) / np.where(span > 0, span, 1), 0.0)


def relu_sum(weights, a):
    return np.maximum(np.einsum("nk,nhwk->nhw", weights, a), 0.0)


def dense_kernel(model, name="logits"):
    return np.asarray(model.get_layer(name).kernel, np.float64)


def probabilities(model, x):
    return np.asarray(model(x), np.float64)


def score_cam_reference(model, x, classes, a, max_n=None):
    """Score-CAM by brute force: one masked image per (image, channel), OpenCV bilinear upsampling.

    ``model`` outputs probabilities (it ends in a softmax), so model(masked)[c] is the weight:
    exactly one softmax over the logits.
    """
    n, h, w, k = a.shape
    size = x.shape[1:3]
    weights = np.zeros((n, k))
    for i in range(n):
        variance = a[i].var(axis=(0, 1))
        kept = range(k) if max_n is None else np.argsort(-variance, kind="stable")[:max_n]
        masked, channels = [], []
        for ch in kept:
            if variance[ch] == 0:  # constant channel: undefined mask, weight 0
                continue
            up = cv2.resize(a[i, :, :, ch].astype(np.float32), (size[1], size[0]),
                            interpolation=cv2.INTER_LINEAR).astype(np.float64)
            mask = (up - up.min()) / (up.max() - up.min())
            masked.append(x[i] * mask[..., None])
            channels.append(ch)
        if masked:
            probs = probabilities(model, np.stack(masked).astype(np.float32))
            weights[i, channels] = probs[:, classes[i]]
    return normalise(relu_sum(weights, a)), weights


def run(method, model, x, **kwargs):
    """Run a method, turning an EmptyMapWarning or NearPoleWarning into an error (these maps must
    not be empty, and the toys' layers follow a ReLU: no Grad-CAM++ term near its pole)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyMapWarning)
        warnings.simplefilter("error", NearPoleWarning)
        return method(model, x, **kwargs)


# --------------------------------------------------------------------------------------------
# CAM and Grad-CAM on GAP -> Dense
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["flat", "nested", "sequential"])
@pytest.mark.parametrize("target", [None, 0, 1, 2, 3])
def test_grad_cam_equals_cam_on_gap_dense(toy_models, gap_dense_model, images, variant, target):
    """The Grad-CAM paper's identity: on GAP -> Dense, Grad-CAM weights are the CAM weights / Z."""
    model, layer = toy_models[variant]
    c_result = run(cam, model, images, classes=target)
    g_result = run(grad_cam, model, images, classes=target)
    assert c_result.layer == g_result.layer == layer
    np.testing.assert_array_equal(c_result.classes, g_result.classes)
    assert np.abs(c_result.maps - g_result.maps).max() <= 1e-5

    # ... and both are the CAM computed by hand from the activations and the Dense kernel
    classes = probabilities(model, images).argmax(1) if target is None else np.full(3, target)
    np.testing.assert_array_equal(c_result.classes, classes)
    a = toy_activations(gap_dense_model, images)
    kernel = dense_kernel(gap_dense_model)
    expected = normalise(relu_sum(kernel[:, classes].T, a))
    np.testing.assert_allclose(c_result.maps, expected, atol=1e-5)
    np.testing.assert_allclose(g_result.maps, expected, atol=1e-5)
    np.testing.assert_allclose(c_result.channel_weights, kernel[:, classes].T, rtol=1e-6)


@pytest.mark.parametrize("variant", ["flat", "nested", "sequential"])
@pytest.mark.parametrize("c", range(NUM_CLASSES))
def test_grad_cam_weights_are_dense_column_over_z(toy_models, gap_dense_model, images, variant,
                                                  c):
    model, _ = toy_models[variant]
    kernel = dense_kernel(gap_dense_model)
    result = run(grad_cam, model, images, classes=c)
    expected = np.broadcast_to(kernel[:, c] / Z, (3, CHANNELS))
    np.testing.assert_allclose(result.channel_weights, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("variant", ["flat", "sequential"])
@pytest.mark.parametrize("c", range(NUM_CLASSES))
def test_grad_cam_differentiates_logits_not_probabilities(toy_models, gap_dense_model, images,
                                                          variant, c):
    """The flat model ends in a Softmax layer, the Sequential one in Dense(softmax): both are
    skipped."""
    model, _ = toy_models[variant]
    kernel = dense_kernel(gap_dense_model)
    bias = np.asarray(gap_dense_model.get_layer("logits").bias, np.float64)
    a = toy_activations(gap_dense_model, images)
    result = run(grad_cam, model, images, classes=c)
    logit_weights = np.broadcast_to(kernel[:, c] / Z, (3, CHANNELS))

    # the contrast: the gradient of the *probability*, by GradientTape through the model's own
    # head layers, and analytically: dp_c/dA = p_c (W[:, c] - sum_j p_j W[:, j]) / Z
    a_t = tf.constant(a, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(a_t)
        pooled = model.get_layer("gap")(a_t)
        if variant == "flat":
            p = model.get_layer("probs")(model.get_layer("logits")(pooled))
        else:
            p = model.layers[-1](pooled)  # Dense with its softmax
        target = p[:, c]
    prob_weights = tape.gradient(target, a_t).numpy().mean(axis=(1, 2))
    probs = tf.nn.softmax(a.mean(axis=(1, 2)) @ kernel + bias).numpy()
    analytic = probs[:, [c]] * (kernel[:, c][None] - probs @ kernel.T) / Z
    np.testing.assert_allclose(prob_weights, analytic, rtol=1e-3, atol=1e-8)

    np.testing.assert_allclose(result.channel_weights, logit_weights, rtol=1e-5, atol=1e-9)
    assert not np.allclose(result.channel_weights, prob_weights, rtol=0.1, atol=0)


# --------------------------------------------------------------------------------------------
# Grad-CAM++ by hand
# --------------------------------------------------------------------------------------------
def grad_cam_pp_reference(a, g):
    """Grad-CAM++ from activations and hand-derived gradients, plain numpy."""
    s = a.sum(axis=(1, 2), keepdims=True)
    num, den = g**2, 2 * g**2 + s * g**3
    alpha = np.zeros_like(g)
    np.divide(num, den, out=alpha, where=den != 0)
    w = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    return normalise(relu_sum(w, a)), w, alpha


@pytest.fixture(scope="module")
def flatten_model():
    """Input(5x5x3) -> Conv2D("conv", 3 channels, valid, relu) -> Flatten -> Dense(3) -> Softmax.

    The logit is linear in A with a different coefficient at every position:
    dy_c / dA[i, j, k] = kernel4[i, j, k, c] (Flatten is C order over (i, j, k)). Class 0's
    coefficients are exactly 0 at a third of the positions.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 5, 3))
    a = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(a)
    logits = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(logits), name="flatten_head")
    r = np.random.default_rng(7)
    kernel4 = r.uniform(-1, 1, (3, 3, 3, 3))
    kernel4[:, 1, :, 0] = 0.0  # class 0: the gradient is exactly 0 on column j = 1
    conv_kernel = r.uniform(-1.0, 1.0, (3, 3, 3, 3)) / 255  # the images are raw pixels, 0..255
    model.set_weights([conv_kernel, np.array([0.1, -0.2, 0.05]),
                       kernel4.reshape(27, 3), np.array([0.1, -0.1, 0.0])])
    return model, kernel4


@pytest.mark.parametrize("c", range(3))
def test_grad_cam_plus_plus_by_hand_flatten_head(flatten_model, c):
    model, kernel4 = flatten_model
    x = np.random.default_rng(1).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    a = activations_of(model, "conv", x)
    assert (a == 0).any() and (a > 0).any()  # the ReLU zeroed some activations
    g = np.broadcast_to(kernel4[..., c], a.shape)  # hand-derived dy_c/dA
    maps, w, alpha = grad_cam_pp_reference(a, g)
    result = run(grad_cam_plus_plus, model, x, classes=c)
    assert np.isfinite(result.channel_weights).all() and np.isfinite(result.maps).all()
    np.testing.assert_allclose(result.channel_weights, w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.maps, maps, atol=1e-5)
    if c == 0:  # the zero-gradient column: alpha 0 there in the reference, and no NaN above
        assert (alpha[:, :, 1] == 0).all() and np.isfinite(alpha).all()

    # Grad-CAM on the same head: the mean of the hand-derived gradient (its map may be empty)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        gc = grad_cam(model, x, classes=c)
    np.testing.assert_allclose(gc.channel_weights, g.mean(axis=(1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gc.maps, normalise(relu_sum(g.mean(axis=(1, 2)), a)), atol=1e-5)


@pytest.fixture(scope="module")
def mix_model():
    """Input(8x8x3) -> Conv2D("conv", 4, relu) -> Conv2D("mix", 1x1, 3, relu) -> GAP -> Dense(2).

    dy_c / dA[n, i, j, k] = (1/Z) sum_m V[k, m] [pre[n, i, j, m] > 0] U[m, c] with
    pre = A V + b: the gradient varies over positions and images, and is 0 wherever every
    mixing unit is off.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    m = keras.layers.Conv2D(3, 1, activation="relu", name="mix")(a)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(m)
    logits = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(logits), name="mix_head")
    r = np.random.default_rng(3)
    v = np.array([[1.0, -0.5, 0.3], [0.4, 0.8, -0.6], [-0.7, 0.5, 0.9], [0.2, -0.3, 0.6]])
    b = np.array([-3.0, -2.9, -4.6])  # about the median of A V: each unit is on half the time
    u = np.array([[1.5, -0.5], [-1.0, 2.0], [0.7, 0.4]])
    model.set_weights([r.uniform(-0.4, 1.0, (3, 3, 3, 4)) / 255,  # raw pixels, 0..255
                       np.array([0.0, 0.1, -0.1, 0.05]),
                       v.reshape(1, 1, 4, 3), b, u, np.array([0.0, 0.0])])
    return model, v, b, u


@pytest.mark.parametrize("c", range(2))
def test_grad_cam_plus_plus_by_hand_nonlinear_head(mix_model, c):
    model, v, b, u = mix_model
    x = np.random.default_rng(5).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    a = activations_of(model, "conv", x)
    pre = a @ v + b
    assert np.abs(pre).min() > 1e-4  # no unit sits on the ReLU's kink
    on = (pre > 0).astype(np.float64)
    assert 0 < on.mean() < 1
    z = a.shape[1] * a.shape[2]
    g = np.einsum("km,nijm,m->nijk", v, on, u[:, c]) / z
    assert (g == 0).any() and (g != 0).any()  # both cases exercised
    maps, w, alpha = grad_cam_pp_reference(a, g)
    assert (alpha[g == 0] == 0).all()
    # the default layer would be "mix", the last 4-D layer
    result = run(grad_cam_plus_plus, model, x, classes=c, layer="conv")
    assert np.isfinite(result.maps).all() and np.isfinite(result.channel_weights).all()
    np.testing.assert_allclose(result.channel_weights, w, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.maps, maps, atol=1e-5)

    gc = run(grad_cam, model, x, classes=c, layer="conv")
    np.testing.assert_allclose(gc.channel_weights, g.mean(axis=(1, 2)), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(gc.maps, normalise(relu_sum(g.mean(axis=(1, 2)), a)), atol=1e-5)


@pytest.mark.parametrize("variant", ["flat", "nested", "sequential"])
@pytest.mark.parametrize("c", range(NUM_CLASSES))
def test_grad_cam_plus_plus_on_gap_dense(toy_models, gap_dense_model, images, variant, c):
    """g = W[k, c]/Z everywhere, so alpha = 1/(2 + S_k g) and w_k = Z ReLU(g) / (2 + S_k g)."""
    model, _ = toy_models[variant]
    a = toy_activations(gap_dense_model, images)
    s = a.sum(axis=(1, 2))
    kernel = dense_kernel(gap_dense_model)
    g = kernel[:, c][None] / Z
    w = Z * np.maximum(g, 0) / (2 + s * g)
    result = run(grad_cam_plus_plus, model, images, classes=c)
    np.testing.assert_allclose(result.channel_weights, w, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(result.maps, normalise(relu_sum(w, a)), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Score-CAM by brute force
# --------------------------------------------------------------------------------------------
DEAD = 5  # a channel whose activation is 0 everywhere (constant): its weight must be 0


@pytest.fixture(scope="module")
def score_models():
    """Flat and Sequential(Dense softmax) toy models with channel DEAD switched off by its bias."""
    flat = make_flat()
    weights = flat.get_weights()
    weights[1] = weights[1].copy()
    weights[1][DEAD] = -100.0
    flat.set_weights(weights)
    return {"flat": flat, "sequential": copy_weights(flat, make_sequential())}


@pytest.mark.parametrize("variant", ["flat", "sequential"])
@pytest.mark.parametrize("max_n", [None, 3])
@pytest.mark.parametrize("batch_size", [32, 5])
def test_score_cam_brute_force(score_models, images, variant, max_n, batch_size):
    model = score_models[variant]
    a = toy_activations(score_models["flat"], images)
    assert (a[..., DEAD] == 0).all()
    live = (a.var(axis=(1, 2)) > 0).sum(axis=1)
    assert (live >= 5).all()
    # 3 images x >= 5 live channels (or 3 each with max_n=3): 5 leaves a padded last chunk
    assert (live.sum() if max_n is None else 3 * max_n) % 5 != 0
    classes = np.array([1, 3, 0])
    expected_maps, expected_weights = score_cam_reference(model, images, classes, a, max_n)
    result = run(score_cam, model, images, classes=classes, max_n=max_n, batch_size=batch_size)
    np.testing.assert_allclose(result.channel_weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(result.maps, expected_maps, atol=1e-4)
    assert (result.channel_weights[:, DEAD] == 0).all()
    nonzero = (result.channel_weights > 0).sum(axis=1)
    np.testing.assert_array_equal(nonzero, live if max_n is None else max_n)


def test_score_cam_max_n_keeps_highest_variance_channels(score_models, images):
    model = score_models["flat"]
    a = toy_activations(model, images)
    result = run(score_cam, model, images, max_n=2)
    full = run(score_cam, model, images)
    top2 = np.argsort(-a.var(axis=(1, 2)), axis=1)[:, :2]
    for i in range(3):
        kept = np.flatnonzero(result.channel_weights[i])
        np.testing.assert_array_equal(np.sort(kept), np.sort(top2[i]))
        # the kept channels get the same weight as without max_n
        np.testing.assert_allclose(result.channel_weights[i, kept], full.channel_weights[i, kept],
                                   atol=1e-6)


def test_score_cam_uses_one_softmax(score_models, images):
    """The model already ends in Softmax: the weights are its probabilities, not softmax(probs)."""
    model = score_models["flat"]
    a = toy_activations(model, images)
    classes = np.array([2, 3, 0])
    _, expected = score_cam_reference(model, images, classes, a)
    result = run(score_cam, model, images, classes=classes)
    np.testing.assert_allclose(result.channel_weights, expected, atol=1e-5)
    # the double softmax, for contrast: what applying softmax to the model's output would give
    double = np.zeros_like(expected)
    for i in range(3):
        masked, live = [], [k for k in range(CHANNELS) if a[i, :, :, k].var() > 0]
        for k in live:
            up = cv2.resize(a[i, :, :, k].astype(np.float32), (SIZE, SIZE),
                            interpolation=cv2.INTER_LINEAR)
            masked.append(images[i] * ((up - up.min()) / (up.max() - up.min()))[..., None])
        p = probabilities(model, np.stack(masked))
        double[i, live] = tf.nn.softmax(p).numpy()[:, classes[i]]
        assert np.abs(result.channel_weights[i] - double[i])[live].max() > 0.03


# --------------------------------------------------------------------------------------------
# Consistency across batching, nesting; no mutation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,method", ALL_METHODS)
@pytest.mark.parametrize("classes", [None, [1, 3, 0]])
def test_batch_equals_single_images(gap_dense_model, images, name, method, classes):
    batch = run(method, gap_dense_model, images, classes=classes)
    for i in range(len(images)):
        one = run(method, gap_dense_model, images[i:i + 1],
                  classes=None if classes is None else classes[i])
        np.testing.assert_allclose(batch.maps[i], one.maps[0], atol=1e-5)
        np.testing.assert_allclose(batch.heatmaps[i], one.heatmaps[0], atol=1e-5)
        np.testing.assert_allclose(batch.channel_weights[i], one.channel_weights[0], rtol=1e-5,
                                   atol=1e-8)
        assert batch.classes[i] == one.classes[0]
        np.testing.assert_allclose(batch.scores[i], one.scores[0], atol=1e-6)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_small_batch_size_equals_default(gap_dense_model, images, name, method):
    """batch_size=2 splits the 3 images into uneven batches; the answer must not change."""
    np.testing.assert_allclose(run(method, gap_dense_model, images, batch_size=2).maps,
                               run(method, gap_dense_model, images).maps, atol=1e-5)


@pytest.mark.parametrize("name,method", ALL_METHODS)
@pytest.mark.parametrize("variant", ["nested", "sequential"])
@pytest.mark.parametrize("classes", [None, 1])
def test_nested_backbone_gives_same_results(toy_models, images, name, method, variant, classes):
    flat, _ = toy_models["flat"]
    model, _ = toy_models[variant]
    a = run(method, flat, images, classes=classes)
    b = run(method, model, images, classes=classes)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-5)
    np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=1e-5)
    np.testing.assert_allclose(a.channel_weights, b.channel_weights, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


@pytest.mark.parametrize("factory", [make_flat, make_nested, make_sequential])
def test_model_is_not_mutated(factory, images):
    model = factory()
    before_weights = [w.copy() for w in model.get_weights()]
    before_out = np.asarray(model(images))
    before_config = model.layers[-1].get_config()
    before_activation = getattr(model.layers[-1], "activation", None)
    n_layers = len(model.layers)
    for method in camcore.METHODS.values():
        method(model, images)
        method(model, images, classes=1)
    assert len(model.layers) == n_layers
    assert model.layers[-1].get_config() == before_config
    assert getattr(model.layers[-1], "activation", None) is before_activation
    for w0, w1 in zip(before_weights, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(np.asarray(model(images)), before_out)
    # still a probability distribution: the softmax was not stripped from the model itself
    np.testing.assert_allclose(before_out.sum(axis=1), 1.0, atol=1e-5)
    assert (before_out >= 0).all()


def test_weights_changed_after_a_call_are_used(images):
    """Methods must read the model's current weights, not values frozen at the first call."""
    model = make_flat()
    first = run(cam, model, images, classes=0)
    kernel = model.get_layer("logits").kernel.numpy()
    model.get_layer("logits").kernel.assign(-kernel)  # flip the evidence for every class
    for method in (cam, grad_cam):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyMapWarning)
            result = method(model, images, classes=0)
        np.testing.assert_allclose(result.channel_weights[0] * (1 if method is cam else Z),
                                   -kernel[:, 0], rtol=1e-5)
    assert not np.allclose(first.channel_weights, result.channel_weights * Z)


# --------------------------------------------------------------------------------------------
# Output contract
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_maps_and_heatmaps_ranges_and_sizes(gap_dense_model, images, name, method):
    result = run(method, gap_dense_model, images)
    assert result.method == name and result.layer == "conv"
    assert result.maps.shape == (3, H, W) and result.heatmaps.shape == (3, SIZE, SIZE)
    for arr in (result.maps, result.heatmaps):
        assert arr.min() >= 0 and arr.max() <= 1
        np.testing.assert_allclose(arr.max(axis=(1, 2)), 1.0, atol=1e-6)
        np.testing.assert_allclose(arr.min(axis=(1, 2)), 0.0, atol=1e-6)
    # heatmaps: the maps upsampled bilinearly (half-pixel centres, as cv2), then renormalised
    up = np.stack([cv2.resize(m, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
                   for m in result.maps])
    np.testing.assert_allclose(result.heatmaps, normalise(up), atol=1e-5)


@pytest.mark.parametrize("name,method", ALL_METHODS)
@pytest.mark.parametrize("variant", ["flat", "sequential"])
def test_default_class_is_argmax_and_scores_are_probabilities(toy_models, images, name, method,
                                                              variant):
    model, _ = toy_models[variant]
    probs = probabilities(model, images)
    result = run(method, model, images)
    np.testing.assert_array_equal(result.classes, probs.argmax(axis=1))
    np.testing.assert_array_equal(result.classes, [2, 3, 0])
    np.testing.assert_allclose(result.scores, probs[np.arange(3), result.classes], atol=1e-6)
    explicit = run(method, model, images, classes=[1, 1, 2])
    np.testing.assert_array_equal(explicit.classes, [1, 1, 2])
    np.testing.assert_allclose(explicit.scores, probs[np.arange(3), [1, 1, 2]], atol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_bad_images(gap_dense_model, images, name, method):
    with pytest.raises(ValueError, match="batch"):
        method(gap_dense_model, images[0])
    with pytest.raises(ValueError, match="channels"):
        method(gap_dense_model, images[..., :1])
    with pytest.raises(ValueError, match="channels"):
        method(gap_dense_model, np.concatenate([images, images[..., :1]], axis=-1))
    with pytest.raises(ValueError, match="expects 32x32"):
        method(gap_dense_model, np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        method(gap_dense_model, np.zeros((0, SIZE, SIZE, 3), np.float32))


@pytest.mark.parametrize("name,method", ALL_METHODS)
@pytest.mark.parametrize("bad", [4, -1, [0, 1, 7]], ids=["4", "-1", "list-with-7"])
def test_class_out_of_range(gap_dense_model, images, name, method, bad):
    with pytest.raises(ValueError, match="out of range"):
        method(gap_dense_model, images, classes=bad)


def test_cam_needs_gap_dense_head(flatten_model):
    model, _ = flatten_model
    x = np.zeros((1, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match="grad_cam"):
        cam(model, x)
    # ... but the gradient methods work on it (see the by-hand tests)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_all_zero_activations_give_empty_maps(images, name, method):
    """Conv kernel and bias 0: A = 0, so every method's map is empty."""
    model = make_flat()
    weights = model.get_weights()
    model.set_weights([np.zeros_like(weights[0]), np.zeros_like(weights[1])] + weights[2:])
    with pytest.warns(EmptyMapWarning, match=r"image\(s\) \[0, 1, 2\]"):
        result = method(model, images, classes=1)
    for arr in (result.maps, result.heatmaps, result.channel_weights):
        assert np.isfinite(arr).all()
    np.testing.assert_array_equal(result.maps, 0)
    np.testing.assert_array_equal(result.heatmaps, 0)


@pytest.fixture(scope="module")
def signed_model():
    """Toy model with the Dense column of class 0 all positive and of class 3 all negative.

    A >= 0 (ReLU), so class 3's sum_k w_k A^k <= 0 everywhere: ReLU gives an empty CAM.
    """
    model = make_flat()
    weights = model.get_weights()
    weights[2] = weights[2].copy()
    weights[2][:, 0] = np.abs(weights[2][:, 0])
    weights[2][:, 3] = -np.abs(weights[2][:, 3])
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("method", [cam, grad_cam, grad_cam_plus_plus])
def test_negative_evidence_gives_empty_map_for_that_image_only(signed_model, images, method):
    with pytest.warns(EmptyMapWarning, match=r"image\(s\) \[1\] \(classes \[3\]\)"):
        result = method(signed_model, images[:2], classes=[0, 3])
    np.testing.assert_array_equal(result.maps[1], 0)
    np.testing.assert_array_equal(result.heatmaps[1], 0)
    assert result.maps[0].max() == pytest.approx(1.0)
    assert result.heatmaps[0].max() == pytest.approx(1.0)
    assert np.isfinite(result.maps).all() and np.isfinite(result.heatmaps).all()


def test_score_cam_is_not_empty_for_negative_dense_column(signed_model, images):
    """Score-CAM's weights are probabilities (> 0), whatever the sign of the Dense column."""
    result = run(score_cam, signed_model, images[:2], classes=[0, 3])
    live = toy_activations(signed_model, images[:2]).var(axis=(1, 2)) > 0
    assert (result.channel_weights[live] > 0).all()
    assert (result.channel_weights[~live] == 0).all()
    np.testing.assert_allclose(result.maps.max(axis=(1, 2)), 1.0, atol=1e-6)


def test_one_empty_map_warning_per_call(signed_model, images):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grad_cam(signed_model, images[:2], classes=[0, 3])
    empty = [w for w in caught if issubclass(w.category, EmptyMapWarning)]
    assert len(empty) == 1, [str(w.message) for w in empty]


def test_final_activation_softmax_layer_is_skipped(gap_dense_model, images):
    """A final Activation("softmax") is skipped like a Softmax layer: Grad-CAM on the logits."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(CHANNELS, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    model.set_weights(gap_dense_model.get_weights())
    kernel = dense_kernel(gap_dense_model)
    result = run(grad_cam, model, images, classes=[0, 1, 2])
    np.testing.assert_allclose(result.channel_weights, kernel[:, [0, 1, 2]].T / Z, rtol=1e-5)
    np.testing.assert_allclose(result.scores, probabilities(model, images)[np.arange(3), [0, 1, 2]],
                               atol=1e-6)
    np.testing.assert_allclose(run(cam, model, images).maps, run(grad_cam, model, images).maps,
                               atol=1e-5)


@pytest.fixture(scope="module")
def wrapped_classifier(gap_dense_model):
    """The flat toy classifier (ending in Softmax) used as the last layer of an outer model."""
    inner = copy_weights(gap_dense_model, make_flat())  # a fresh copy: the fixture stays unwrapped
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), inner], name="wrapped")


def test_wrapped_classifier_scores_and_gradients_use_logits(wrapped_classifier, gap_dense_model,
                                                            images):
    result = grad_cam(wrapped_classifier, images, layer="flat/conv")
    probs = probabilities(wrapped_classifier, images)
    np.testing.assert_allclose(result.scores, probs[np.arange(3), result.classes], atol=1e-6)
    kernel = dense_kernel(gap_dense_model)
    np.testing.assert_allclose(result.channel_weights, kernel[:, result.classes].T / Z, rtol=1e-5)


def test_wrapped_classifier_default_layer_and_cam(wrapped_classifier, gap_dense_model, images):
    """The default layer is found inside a wrapped classifier, and CAM reads its Dense kernel."""
    assert camcore.default_target_layer(wrapped_classifier) == "flat/conv"
    np.testing.assert_allclose(run(cam, wrapped_classifier, images).maps,
                               run(cam, gap_dense_model, images).maps, atol=1e-6)


def test_hidden_softmax_is_reported(gap_dense_model, images):
    """A softmax camcore cannot see (inside a custom layer) is reported, not silently used."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(CHANNELS, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Lambda(keras.ops.softmax, name="hidden")(x))
    model.set_weights(gap_dense_model.get_weights())
    with pytest.warns(UserWarning, match="looks like probabilities"):
        grad_cam(model, images)


def test_normalize_maps_is_scale_free():
    """A valid map of tiny magnitude (a random network's) normalises like the same map at scale 1;
    a map that is constant up to float32 precision is flat."""
    from camcore.methods import normalize_maps

    base = np.array([[[0.0, 1.0], [2.0, 4.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyMapWarning)
        np.testing.assert_allclose(normalize_maps(1e-13 * base), normalize_maps(base), atol=1e-6)
    with pytest.warns(EmptyMapWarning):
        out = normalize_maps(np.array([[[3.0, 3.0 + 1e-8], [3.0, 3.0]]]))
    np.testing.assert_array_equal(out, 0.0)


# --------------------------------------------------------------------------------------------
# The weight functions on arrays worked out by hand
# --------------------------------------------------------------------------------------------
def test_cam_weights_are_the_dense_columns():
    kernel = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # K = 3 channels, 2 classes
    np.testing.assert_array_equal(methods.cam_weights(kernel, [1, 0, 1]),
                                  [[2, 4, 6], [1, 3, 5], [2, 4, 6]])


def test_grad_cam_weights_are_the_mean_gradient():
    g = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)  # channel 0: 1, 3, 5, 7; channel 1: 2, 4, 6, 8
    np.testing.assert_array_equal(methods.grad_cam_weights(g), [[4.0, 5.0]])


def test_grad_cam_plus_plus_weights_by_hand():
    """One channel, two positions: A = (1, 3), so sum A = 4; g = (0.5, -1), then a zero gradient.

    alpha = g^2 / (2 g^2 + 4 g^3): 0.25 / (0.5 + 0.5) = 0.25 and 1 / (2 - 4) = -0.5;
    w = 0.25 ReLU(0.5) - 0.5 ReLU(-1) = 0.125. Where g = 0 the denominator is 0: alpha 0, no NaN.
    """
    a = np.array([1.0, 3.0]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(
        methods.grad_cam_plus_plus_weights(a, np.array([0.5, -1.0]).reshape(1, 1, 2, 1)), [[0.125]])
    np.testing.assert_array_equal(
        methods.grad_cam_plus_plus_weights(a, np.array([0.0, 0.0]).reshape(1, 1, 2, 1)), [[0.0]])


def test_score_cam_masks_subtract_the_minimum():
    maps = np.array([[[1.0, 2.0], [3.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]])  # varying; constant
    masks = methods.score_cam_masks(maps, (2, 2)).numpy()
    np.testing.assert_allclose(masks[0], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(masks[1], 0.0)  # no range: a zero mask, not 0/0


@pytest.mark.parametrize("chunk", [1, 2, 32])
def test_score_cam_weights_by_hand(chunk):
    """Channel 1 is constant (weight 0, never scored); the others get the score function's value;
    max_n=1 keeps the channel of largest spatial variance (channel 2)."""
    a = np.zeros((1, 2, 2, 3))
    a[0, :, :, 0] = [[0, 1], [0, 1]]  # variance 0.25
    a[0, :, :, 1] = 5.0  # constant
    a[0, :, :, 2] = [[0, 4], [0, 0]]  # variance 3
    scored = []

    def class_probability(image_idx, channel_idx):
        scored.extend(channel_idx.tolist())
        return 0.1 * (np.asarray(channel_idx) + 1)

    counts = []
    w = methods.score_cam_weights(a, class_probability, chunk=chunk, progress=counts.append)
    np.testing.assert_allclose(w, [[0.1, 0.0, 0.3]])
    assert 1 not in scored
    assert counts == ([2, 1] if chunk > 1 else [1, 1, 1])  # 2 scored, then 1 skipped: all done
    np.testing.assert_allclose(methods.score_cam_weights(a, class_probability, max_n=1,
                                                         chunk=chunk), [[0.0, 0.0, 0.3]])


# --------------------------------------------------------------------------------------------
# HiResCAM and LayerCAM: element-wise gradient weights
# --------------------------------------------------------------------------------------------
def relu_elementwise(g, a):
    return np.maximum((g * a).sum(axis=-1), 0.0)


@pytest.mark.parametrize("variant", ["flat", "nested", "sequential"])
@pytest.mark.parametrize("c", range(NUM_CLASSES))
def test_hires_cam_equals_grad_cam_and_layer_cam_drops_negative_weights_on_gap_dense(
        toy_models, gap_dense_model, images, variant, c):
    """At a GAP -> Dense head's last layer g = W[k, c]/Z everywhere: HiResCAM is Grad-CAM (times
    Z), LayerCAM is CAM with the negative weights zeroed."""
    model, _ = toy_models[variant]
    a = toy_activations(gap_dense_model, images)
    kernel = dense_kernel(gap_dense_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        hires, grad, layer = (m(model, images, classes=c)
                              for m in (camcore.hires_cam, grad_cam, camcore.layer_cam))
    np.testing.assert_allclose(hires.maps, grad.maps, atol=1e-5)
    w = np.maximum(kernel[:, c], 0)[None]
    np.testing.assert_allclose(layer.maps, normalise(relu_sum(np.repeat(w, 3, 0), a)), atol=1e-5)
    np.testing.assert_allclose(layer.channel_weights, np.repeat(w / Z, 3, 0), rtol=1e-5,
                               atol=1e-9)


@pytest.mark.parametrize("which, c", [("flatten", 0), ("flatten", 1), ("flatten", 2),
                                      ("nonlinear", 0), ("nonlinear", 1)])
def test_hires_cam_and_layer_cam_by_hand_with_a_varying_gradient(flatten_model, mix_model, which,
                                                                 c):
    """Heads whose gradient differs from position to position (derived by hand above): the maps
    keep that detail, and differ from Grad-CAM's. Every class of each head is a case."""
    if which == "flatten":
        model, kernel4 = flatten_model
        x = np.random.default_rng(1).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
        a = activations_of(model, "conv", x)
        g = np.broadcast_to(kernel4[..., c], a.shape)
    else:
        model, v, b, u = mix_model
        x = np.random.default_rng(5).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
        a = activations_of(model, "conv", x)
        on = (a @ v + b > 0).astype(np.float64)
        g = np.einsum("km,nijm,m->nijk", v, on, u[:, c]) / (a.shape[1] * a.shape[2])
    layer = "conv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        hires = camcore.hires_cam(model, x, classes=c, layer=layer)
        layer_cam = camcore.layer_cam(model, x, classes=c, layer=layer)
        grad = grad_cam(model, x, classes=c, layer=layer)
    np.testing.assert_allclose(hires.maps, normalise(relu_elementwise(g, a)), atol=1e-5)
    np.testing.assert_allclose(layer_cam.maps, normalise(relu_elementwise(np.maximum(g, 0), a)),
                               atol=1e-5)
    np.testing.assert_allclose(hires.channel_weights, g.mean(axis=(1, 2)), rtol=1e-5, atol=1e-9)
    assert np.abs(hires.maps - grad.maps).max() > 0.05  # the spatial detail matters here


def test_hires_cam_sums_to_the_first_order_term():
    """sum_ijk dy/dA o A, before the ReLU, is the gradient x input term of y^c at the layer: for
    a head linear in A (GAP -> Dense: y^c = sum_k W_kc mean_ij A^k + b_c) it is y^c - b_c."""
    model = make_flat()
    x = smooth_images(2, seed=3)
    a, g, classes = camcore.methods.activations_and_gradients(model, x, classes=[1, 2])
    logits = dense_kernel(model)[:, [1, 2]].T * a.mean(axis=(1, 2))  # GAP -> Dense, no bias
    np.testing.assert_allclose((g * a).sum(axis=(1, 2, 3)), logits.sum(axis=1), rtol=1e-4)
    np.testing.assert_array_equal(classes, [1, 2])


def test_grad_cam_plus_plus_gamma_is_constant_on_gap_dense_and_varies_elsewhere(
        gap_dense_model, images, mix_model):
    a, g, _ = camcore.methods.activations_and_gradients(gap_dense_model, images)
    gamma = camcore.methods.grad_cam_plus_plus_gamma(a, g).numpy()
    np.testing.assert_allclose(gamma, gamma[:, :1, :1, :] * np.ones_like(gamma), rtol=1e-5)
    model = mix_model[0]
    x = np.random.default_rng(5).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    a, g, _ = camcore.methods.activations_and_gradients(model, x, classes=0, layer="conv")
    gamma = camcore.methods.grad_cam_plus_plus_gamma(a, g).numpy()
    assert gamma.std(axis=(1, 2)).max() > 0.01


# --------------------------------------------------------------------------------------------
# Grad-CAM++ near the pole of gamma
# --------------------------------------------------------------------------------------------
def test_pole_share_by_hand():
    """One channel, S = -4: g = 0.4975 gives 2 + S g = 0.01 (gamma = 100, term 49.75); g = 0.1
    gives 1.6 (term 0.0625); a negative g adds no term (ReLU)."""
    a = np.array([-1.0, -3.0, 0.0]).reshape(1, 1, 3, 1)
    g = np.array([0.4975, 0.1, -0.3]).reshape(1, 1, 3, 1)
    share = methods.grad_cam_plus_plus_pole_share(a, g)
    np.testing.assert_allclose(share, [49.75 / (49.75 + 0.0625)])
    assert methods.grad_cam_plus_plus_pole_share(a, g, margin=0.005)[0] == 0.0
    # the terms are those of the weight: sum = 49.75 + 0.0625 in both
    np.testing.assert_allclose(methods.grad_cam_plus_plus_weights(a, g), [[49.8125]], rtol=1e-6)
    # after a ReLU (A >= 0) no positive gradient reaches the pole; no weight at all gives 0
    assert methods.grad_cam_plus_plus_pole_share(np.abs(a), g)[0] == 0.0
    assert methods.grad_cam_plus_plus_pole_share(a, np.zeros_like(g))[0] == 0.0


@pytest.fixture(scope="module")
def signed_layer_model():
    """Input(4x4x3) -> Conv2D("conv", 2, 1x1, linear: signed A) -> Flatten -> Dense("logits", 2).

    dy_c/dA[i, j, k] = kernel[(4 i + j) 2 + k, c] exactly. For image 0 the class-0 gradient at
    position (0, 0) of channel 0 is set to g* = (0.01 - 2) / S_0, so 2 + S_0 g* = 0.01: a term
    near the pole of gamma, 100 times the size of the others. Class 1 has small gradients only.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    a = keras.layers.Conv2D(2, 1, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(
        keras.layers.Flatten()(a)), name="signed")
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    conv = np.array([[0.01, -0.01], [-0.03, 0.01], [0.0, 0.01]], np.float32)  # RGB -> 2
    model.get_layer("conv").set_weights([conv.reshape(1, 1, 3, 2), np.zeros(2, np.float32)])
    a0 = keras.Model(inputs, a)(x[:1]).numpy()[0, :, :, 0]
    assert a0.min() < 0 < a0.max() and a0.sum() < 0  # signed, S_0 < 0: g* > 0
    s0 = float(a0.sum())
    kernel = np.random.default_rng(1).uniform(-1e-3, 1e-3, (32, 2)).astype(np.float32)
    kernel[0, 0] = (0.01 - 2) / s0
    model.get_layer("logits").set_weights([kernel, np.zeros(2, np.float32)])
    return model, x, kernel


def test_near_pole_terms_are_warned(signed_layer_model):
    model, x, kernel = signed_layer_model
    a, g, _ = methods.activations_and_gradients(model, x, classes=0)
    np.testing.assert_allclose(g, np.broadcast_to(kernel[:, 0].reshape(4, 4, 2), g.shape),
                               rtol=1e-6)
    share = methods.grad_cam_plus_plus_pole_share(a, g)
    assert share[0] > 0.9 and share[1] < 0.01  # image 1 has another S_0: far from the pole
    with pytest.warns(NearPoleWarning, match=r"image\(s\) \[0\] \(1 of 2\), \d+% \(at most\) of "
                                             r"the weight "
                                             r"comes from terms near the pole"):
        grad_cam_plus_plus(model, x, classes=0)
    with pytest.warns(NearPoleWarning, match=r"image\(s\) \[1\]"):  # named in the whole batch
        grad_cam_plus_plus(model, x[::-1], classes=0, batch_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearPoleWarning)
        grad_cam_plus_plus(model, x, classes=1)
        grad_cam(model, x, classes=0)  # only Grad-CAM++ has gamma


# --------------------------------------------------------------------------------------------
# Mixed precision
# --------------------------------------------------------------------------------------------
@pytest.fixture
def mixed_float16():
    """The global policy set to mixed_float16 for one test, then put back."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(before)


@pytest.mark.parametrize("name,method", ALL_METHODS)
def test_mixed_precision_model(gap_dense_model, images, mixed_float16, name, method):
    """A model built under mixed_float16 computes in float16 inside; camcore takes A, g and y
    in float32, and the maps agree with the float32 model's within float16 precision."""
    model = copy_weights(gap_dense_model, make_flat())
    assert model.get_layer("conv").compute_dtype == "float16"
    half, full = run(method, model, images), run(method, gap_dense_model, images)
    assert half.maps.dtype == half.channel_weights.dtype == np.float32
    np.testing.assert_array_equal(half.classes, full.classes)
    difference = np.abs(half.maps - full.maps).max()
    assert 0 < difference < 5e-3  # float16 ran (not 0), to a few of its steps of 1e-3
    np.testing.assert_allclose(half.channel_weights, full.channel_weights, rtol=0,
                               atol=3e-3 * np.abs(full.channel_weights).max())
    np.testing.assert_allclose(half.scores, full.scores, atol=2e-3)


# --------------------------------------------------------------------------------------------
# Progress lines
# --------------------------------------------------------------------------------------------
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # any control character but the newline


def test_score_cam_progress_lines_are_plain(score_models, images, capsys, monkeypatch):
    model = score_models["flat"]
    run(score_cam, model, images)  # 3 images x 8 channels = 24 masked images: no lines
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(methods, "PROGRESS_AFTER", 10)
    run(score_cam, model, images, progress=False)
    assert capsys.readouterr().out == ""
    run(score_cam, model, images)  # 24 > 10: the start and the end (the DEAD channel counted)
    out = capsys.readouterr().out
    assert CONTROL.search(out) is None
    assert out.splitlines() == ["Score-CAM: 24 masked images to go",
                                "Score-CAM: 24 masked images done in 0 s"]
    run(grad_cam, model, np.concatenate([images] * 4))  # 12 images > 10: images counted
    assert capsys.readouterr().out.splitlines() == ["Grad-CAM: 12 images to go",
                                                    "Grad-CAM: 12 images done in 0 s"]


# --------------------------------------------------------------------------------------------
# One call shape, one registry
# --------------------------------------------------------------------------------------------
def test_every_method_has_the_one_call_shape():
    shared = ["model", "images", "classes", "layer", "batch_size", "value_range", "progress"]
    for name, method in camcore.METHODS.items():
        parameters = inspect.signature(method).parameters
        assert list(parameters)[:7] == shared, name
        assert method.method.name == name
    assert list(inspect.signature(score_cam).parameters)[7:] == ["max_n"]
    assert list(camcore.METHODS) == ["CAM", "Grad-CAM", "Grad-CAM++", "Score-CAM", "HiResCAM",
                                     "LayerCAM"]


def contributing_example():
    """The Python block of CONTRIBUTING.md's "Adding a method" section, as source text."""
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    section = text.split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one Python example"
    return blocks[0]


def test_the_contributing_example_adds_a_method(gap_dense_model, images, mix_model):
    """The worked example (XGrad-CAM) registers, runs, and gives its formula's answer:
    alpha_k^c = sum_ij (A^k_ij / sum_ab A^k_ab) g^kc_ij, which is Grad-CAM's weight wherever g is
    the same at every position (a GAP -> Dense head)."""
    namespace = {}
    try:
        exec(contributing_example(), namespace)
        xgrad_cam = namespace["xgrad_cam"]
        for function in (namespace["xgrad_cam_weights"], xgrad_cam):  # their examples run
            for test in doctest.DocTestFinder().find(function, "example", globs={
                    **namespace, "model": gap_dense_model, "images": images * 100}):
                doctest.DocTestRunner().run(test, out=lambda text: pytest.fail(text))
        assert camcore.METHODS["XGrad-CAM"] is xgrad_cam
        assert "Parameters" in xgrad_cam.__doc__ and "Examples" in xgrad_cam.__doc__
        np.testing.assert_allclose(run(xgrad_cam, gap_dense_model, images).maps,
                                   run(grad_cam, gap_dense_model, images).maps, atol=1e-5)
        model = mix_model[0]
        x = np.random.default_rng(5).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
        a, g, _ = methods.activations_and_gradients(model, x, classes=1, layer="conv")
        alpha = (a / a.sum(axis=(1, 2), keepdims=True) * g).sum(axis=(1, 2))
        result = run(xgrad_cam, model, x, classes=1, layer="conv")
        np.testing.assert_allclose(result.channel_weights, alpha, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(result.maps, normalise(relu_sum(alpha, a)), atol=1e-5)
        assert not np.allclose(alpha, g.mean(axis=(1, 2)), rtol=0.05)  # not Grad-CAM here
    finally:
        camcore.METHODS.pop("XGrad-CAM", None)


def test_registration_refuses_a_taken_name_and_unknown_options(gap_dense_model, images):
    with pytest.raises(ValueError, match="'Grad-CAM' is already registered"):
        methods.register("Grad-CAM", gradients=True)(lambda batch: batch.gradients)
    with pytest.raises(TypeError, match="grad_cam\\(\\) got an unexpected keyword argument "
                                        "'max_n'"):
        grad_cam(gap_dense_model, images, max_n=3)


# --------------------------------------------------------------------------------------------
# Documentation: numpydoc sections, and examples that run
# --------------------------------------------------------------------------------------------
GENERAL_MODULES = ["checks", "methods", "model_split", "metrics", "overlay", "sanity", "data",
                   "pth", "progress"]


def public_functions(module):
    return [(name, obj) for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj)
            and obj.__module__ == module.__name__]


@pytest.mark.parametrize("module_name", GENERAL_MODULES)
def test_public_functions_have_numpydoc_sections(module_name):
    module = importlib.import_module(f"camcore.{module_name}")
    missing = []
    for name, function in public_functions(module):
        doc = inspect.getdoc(function) or ""
        sections = ["Parameters\n---", "Examples\n---",
                    "Yields\n---" if inspect.isgeneratorfunction(function) else "Returns\n---"]
        missing += [f"{name}: {s.split()[0]}" for s in sections if s not in doc]
    assert not missing, missing


@pytest.fixture(scope="module")
def doctest_globals(gap_dense_model, nested_model, images, tmp_path_factory):
    import matplotlib

    matplotlib.use("Agg")
    return {"camcore": camcore, "np": np, "tf": tf, "keras": keras, "model": gap_dense_model,
            "nested_model": nested_model, "images": images * 100,  # raw pixels, 0..250
            "split_model": camcore.split_model, "tmp": tmp_path_factory.mktemp("doctest")}


@pytest.mark.parametrize("module_name", GENERAL_MODULES)
def test_docstring_examples_run(module_name, doctest_globals):
    module = importlib.import_module(f"camcore.{module_name}")
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, globs={**vars(module), **doctest_globals})
    assert sum(len(t.examples) for t in tests) >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        for test in tests:
            runner.run(test, out=lambda text: pytest.fail(text))


def test_the_general_part_never_imports_the_book():
    """camcore/*.py (the general explainer) sits below camcore/book/: no import points up."""
    import ast

    package = Path(camcore.__file__).parent
    upward = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            upward += [f"{path.name}: {n}" for n in names
                       if n.startswith("camcore.book") or n == "camcore.book"]
    assert not upward, upward
