"""Tests for camcore.book.exercises: the audit of the checkers.

Every checker is tried with correct functions written as students write them (numpy or
TensorFlow, einsum or sums, other axis spellings, float64) and with wrong ones: the mistakes
the book discusses, the ones a first version of the checkers accepted, and others. Each case
asserts the verdict (True/False) and the line the checker prints; a correct function must pass,
a wrong one fail, naming its mistake when it is a known one.
"""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage.transform import resize as skimage_resize

import camcore
from camcore import metrics
from camcore.book import exercises as ex

OK = "✓ correct"
# students' grad models pass model.inputs (a list) to a one-input model, as the Keras tutorial does
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")


# --------------------------------------------------------------------------------------------
# CAM's map: fn(A (N, h, w, K), W (K, C), c) -> (N, h, w)
# --------------------------------------------------------------------------------------------
def cam_einsum(a, kernel, c):
    return np.maximum(np.einsum("nhwk,k->nhw", a, kernel[:, c]), 0)


def cam_tf(a, kernel, c):
    return tf.nn.relu(tf.reduce_sum(a * kernel[:, c], axis=-1))


def cam_matmul_float64(a, kernel, c):
    return np.maximum(a.astype(np.float64) @ kernel[:, c].astype(np.float64), 0)


def cam_tensordot(a, kernel, c):
    return keras.ops.relu(np.tensordot(a, kernel[:, c], axes=([3], [0])))


def cam_loop(a, kernel, c):
    total = np.zeros(a.shape[:3])
    for k in range(a.shape[-1]):
        total += kernel[k, c] * a[..., k]
    return np.clip(total, 0, None)


def cam_row(a, kernel, c):
    return np.maximum(a @ kernel[c], 0)


def cam_row_no_relu(a, kernel, c):
    return a @ kernel[c]


def cam_no_relu(a, kernel, c):
    return a @ kernel[:, c]


def cam_normalised(a, kernel, c):
    return camcore.normalize_maps(cam_einsum(a, kernel, c), warn=False)


def cam_normalised_no_relu(a, kernel, c):
    m = a @ kernel[:, c]
    lowest = m.min(axis=(1, 2), keepdims=True)
    return (m - lowest) / (m.max(axis=(1, 2), keepdims=True) - lowest)


def cam_mean(a, kernel, c):
    return np.maximum(np.mean(a * kernel[:, c], axis=-1), 0)


def cam_every_class(a, kernel, c):
    return np.maximum(a @ kernel, 0)


def cam_by_max(a, kernel, c):
    m = cam_einsum(a, kernel, c)
    return m / m.max(axis=(1, 2), keepdims=True)


def cam_class_one(a, kernel, c):
    return cam_einsum(a, kernel, 1)  # the first case's class, hard-coded


def cam_relu_each_channel(a, kernel, c):
    return np.maximum(a * kernel[:, c], 0).sum(axis=-1)


# --------------------------------------------------------------------------------------------
# Grad-CAM's weights: fn(g (N, h, w, K)) -> (N, K)
# --------------------------------------------------------------------------------------------
def gw_mean(g):
    return np.mean(g, axis=(1, 2))


def gw_tf(g):
    return tf.reduce_mean(g, axis=[1, 2])


def gw_einsum(g):
    return np.einsum("nhwk->nk", g.astype(np.float64)) / (g.shape[1] * g.shape[2])


def gw_twice(g):
    return g.mean(axis=1).mean(axis=1)


def gw_reshape(g):
    return keras.ops.mean(np.reshape(g, (len(g), -1, g.shape[-1])), axis=1)


def gw_sum(g):
    return tf.reduce_sum(g, axis=(1, 2))


def gw_channels(g):
    return g.mean(axis=-1)


def gw_relu(g):
    return np.maximum(g, 0).mean(axis=(1, 2))


def gw_abs(g):
    return np.abs(g).mean(axis=(1, 2))


def gw_relu_after(g):
    return np.maximum(g.mean(axis=(1, 2)), 0)


def gw_everything(g):
    return g.mean(axis=(1, 2, 3))


def gw_batch(g):
    return g.mean(axis=(0, 1, 2))


def gw_rms_normalised(g):  # the old Keras blog: grads / (sqrt(mean(grads^2)) + 1e-5)
    rms = np.sqrt(np.mean(g**2, axis=(1, 2, 3), keepdims=True))
    return (g / rms).mean(axis=(1, 2))


def gw_square_only(g):
    return g.sum(axis=(1, 2)) / g.shape[1] ** 2  # Z = h*h: right only on square maps


def gw_rows_only(g):
    return g.mean(axis=1)


# --------------------------------------------------------------------------------------------
# The logit's gradient: fn(model, images, c) -> (N, h, w, K)
# --------------------------------------------------------------------------------------------
def grad_chapter(model, images, c):
    split = camcore.split_model(model)
    with tf.GradientTape() as tape:
        a = split.features(tf.constant(images, tf.float32))
        tape.watch(a)
        y_c = split.head(a)[:, c]
    return tape.gradient(y_c, a)


def grad_unwatched_inner(model, images, c):
    split = camcore.split_model(model)
    with tf.GradientTape() as tape:  # A depends on the model's variables: recorded anyway
        a = split.features(images)
        y = split.head(a)
        y_c = y[:, c]
    return tape.gradient(y_c, a).numpy().astype(np.float64)


def grad_keras_model_on_logits(model, images, c):
    grad_model = keras.Model(model.inputs, [model.get_layer("conv").output,
                                            model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        a, logits = grad_model(images)
        y_c = logits[:, c]
    return tape.gradient(y_c, a)


def grad_one_image_at_a_time(model, images, c):
    return tf.concat([grad_chapter(model, images[i:i + 1], c) for i in range(len(images))], 0)


def grad_persistent_summed(model, images, c):
    split = camcore.split_model(model)
    with tf.GradientTape(persistent=True) as tape:
        a = split.features(images)
        tape.watch(a)
        total = tf.reduce_sum(split.head(a)[:, c])
    return tape.gradient(total, a)


def grad_keras_tutorial(model, images, c):
    """The Keras Grad-CAM tutorial: a grad model on the output (the softmax), its argmax class."""
    grad_model = keras.Model(model.inputs, [model.get_layer("conv").output, model.output])
    with tf.GradientTape() as tape:
        a, preds = grad_model(images)
        pred_index = tf.argmax(preds[0])
        y = preds[:, pred_index]
    return tape.gradient(y, a)


def tape_gradient(model, images, c, score, x=None):
    """The right tape with a slip in what is differentiated, or at which images."""
    split = camcore.split_model(model)
    with tf.GradientTape() as tape:
        a = split.features(images if x is None else x)
        tape.watch(a)
        value = score(split.head(a))
    return tape.gradient(value, a)


def grad_argmax_ignoring_c(model, images, c):
    pred = int(np.argmax(model(images)[0]))
    return tape_gradient(model, images, c, lambda y: y[:, pred])


def grad_of_probability(model, images, c):
    grad_model = keras.Model(model.inputs, [model.get_layer("conv").output, model.output])
    with tf.GradientTape() as tape:
        a, probs = grad_model(images)
        y = probs[:, c]
    return tape.gradient(y, a)


def grad_of_log_softmax(model, images, c):
    return tape_gradient(model, images, c, lambda y: tf.nn.log_softmax(y)[:, c])


def grad_of_cross_entropy(model, images, c):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    g = tape_gradient(model, images, c, lambda y: loss(np.full(len(images), c), y))
    return -g


def grad_of_all_logits(model, images, c):
    return tape_gradient(model, images, c, lambda y: y)


def grad_of_first_image(model, images, c):
    return tape_gradient(model, images, c, lambda y: y[0, c])


def grad_of_batch_mean(model, images, c):
    return tape_gradient(model, images, c, lambda y: tf.reduce_mean(y[:, c]))


def grad_first_image_repeated(model, images, c):
    g = tape_gradient(model, images[:1], c, lambda y: y[:, c])
    return np.repeat(g, len(images), axis=0)


def grad_at_zeros(model, images, c):
    return tape_gradient(model, images, c, lambda y: y[:, c], x=np.zeros_like(images))


def grad_h_w_swapped(model, images, c):
    return tf.transpose(grad_chapter(model, images, c), (0, 2, 1, 3))


def grad_l2_normalised(model, images, c):
    g = grad_chapter(model, images, c)
    return tf.math.l2_normalize(g, axis=(1, 2, 3))


def grad_wrt_image(model, images, c):
    split = camcore.split_model(model)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y_c = split.head(split.features(x))[:, c]
    return tape.gradient(y_c, x)


def grad_with_dropout(model, images, c):
    split = camcore.split_model(model)
    keras.utils.set_random_seed(0)
    with tf.GradientTape() as tape:
        a = split.features(images)
        tape.watch(a)
        y_c = split.head(a, training=True)[:, c]
    return tape.gradient(y_c, a)


def grad_slice_after_tape(model, images, c):
    split = camcore.split_model(model)
    with tf.GradientTape() as tape:
        a = split.features(images)
        tape.watch(a)
        y = split.head(a)
    return tape.gradient(y[:, c], a)


def grad_unwatched(model, images, c):
    split = camcore.split_model(model)
    a = split.features(images)  # outside the tape: tape.gradient gives None
    with tf.GradientTape() as tape:
        y_c = split.head(tf.identity(a))[:, c]
    return tape.gradient(y_c, a)


def grad_through_the_model(model, images, c):
    split = camcore.split_model(model)
    with tf.GradientTape() as tape:
        a = split.features(images)
        tape.watch(a)
        y_c = model(images)[:, c]  # y does not come from this A
    return tape.gradient(y_c, a)


def grad_then_vandalise(model, images, c):
    g = grad_chapter(model, images, c)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    return g


def grad_after_vandalising(model, images, c):
    model.get_layer("logits").kernel.assign(tf.zeros_like(model.get_layer("logits").kernel))
    return grad_chapter(model, images, c)


# --------------------------------------------------------------------------------------------
# Grad-CAM++'s gamma: fn(A, g (N, h, w, K)) -> (N, h, w, K)
# --------------------------------------------------------------------------------------------
def gamma_of(a, g, a_term=None, divide=tf.math.divide_no_nan):
    a_term = tf.reduce_sum(a, axis=(1, 2), keepdims=True) if a_term is None else a_term
    return divide(g**2, 2 * g**2 + a_term * g**3)


def gamma_tf(a, g):
    return gamma_of(a, g)


def gamma_chapter(activations, gradients):
    g2 = gradients**2
    spatial_sum = activations.sum(axis=(1, 2), keepdims=True)
    denominator = 2 * g2 + spatial_sum * g2 * gradients
    return np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)


def gamma_where_float64(a, g):
    a, g = a.astype(np.float64), g.astype(np.float64)
    s = np.einsum("nhwk->nk", a)[:, None, None, :]
    den = 2 * g**2 + s * g**3
    return np.where(den != 0, g**2 / np.where(den != 0, den, 1), 0)


def gamma_simplified_with_zero(a, g):
    s = a.sum(axis=(1, 2), keepdims=True)
    return np.where(g != 0, 1 / np.where(g != 0, 2 + s * g, 1), 0)


def gamma_nan(a, g):
    return gamma_of(a, g, divide=tf.math.divide)


def gamma_simplified(a, g):
    return 1 / (2 + a.sum(axis=(1, 2), keepdims=True) * g)


def gamma_epsilon(a, g):  # pytorch-grad-cam's denominator
    return g**2 / (2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3 + 1e-7)


def gamma_small_epsilon(a, g):
    return gamma_of(a, g, divide=lambda x, y: x / (y + 1e-10))


def gamma_a_not_summed(a, g):
    return gamma_of(a, g, a_term=a)


def gamma_spatial_mean(a, g):  # xplique, chapter 6's (c)
    return gamma_of(a, g, a_term=tf.reduce_mean(a, axis=(1, 2), keepdims=True))


def gamma_no_a(a, g):
    return gamma_of(a, g, a_term=1.0)


def gamma_channel_sum(a, g):
    return gamma_of(a, g, a_term=tf.reduce_sum(a, axis=-1, keepdims=True))


def gamma_renormalised(a, g):  # the authors' code, chapter 6's (b)
    x = gamma_of(a, g)
    return tf.math.divide_no_nan(x, tf.reduce_sum(x, axis=(1, 2), keepdims=True))


def gamma_of_relu(a, g):
    return gamma_of(a, tf.nn.relu(g))


def gamma_times_relu(a, g):
    return gamma_of(a, g) * tf.nn.relu(g)


def gamma_channel_weight(a, g):
    return tf.reduce_sum(gamma_of(a, g) * tf.nn.relu(g), axis=(1, 2))


def gamma_square_only(a, g):
    n, h, _, k = a.shape
    s = a.reshape(n, h * h, k).sum(axis=1)[:, None, None, :]  # right only when h == w
    return gamma_of(a, g, a_term=s)


# --------------------------------------------------------------------------------------------
# Score-CAM's mask: fn(A^k (h, w), size (H, W)) -> (H, W)
# --------------------------------------------------------------------------------------------
def minmax(m):
    return (m - m.min()) / (m.max() - m.min())


def mask_tf(m, size):
    return minmax(tf.image.resize(m[..., None], size)[..., 0].numpy())


def mask_chapter(channel_map, size):
    up = tf.image.resize(channel_map[..., None], size, method="bilinear")[..., 0]
    up = up.numpy()
    return (up - up.min()) / (up.max() - up.min())


def mask_cv2(m, size):
    return minmax(cv2.resize(m, size[::-1]))


def mask_antialias_float64(m, size):
    up = tf.image.resize(tf.constant(m, tf.float64)[None, ..., None], size, antialias=True)
    return minmax(up.numpy()[0, ..., 0])


def mask_skimage_edge(m, size):
    return minmax(skimage_resize(m, size, order=1, mode="edge"))


def mask_by_hand(m, size):
    """Bilinear with half-pixel centres, written out."""
    def axis_weights(n_in, n_out):
        x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        w = np.zeros((n_out, n_in))
        low = np.floor(x).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        np.add.at(w, (np.arange(n_out), low), 1 - (x - low))
        np.add.at(w, (np.arange(n_out), high), x - low)
        return w
    up = axis_weights(m.shape[0], size[0]) @ m @ axis_weights(m.shape[1], size[1]).T
    return minmax(up)


def mask_no_min(m, size):
    up = cv2.resize(m, size[::-1])
    return up / (up.max() - up.min())


def mask_max_only(m, size):
    up = cv2.resize(m, size[::-1])
    return up / up.max()


def mask_min_then_max(m, size):
    up = cv2.resize(m, size[::-1])
    return (up - up.min()) / up.max()


def mask_normalised_first(m, size):
    return cv2.resize(minmax(m), size[::-1])


def mask_not_upsampled(m, size):
    return minmax(m)


def mask_not_normalised(m, size):
    return cv2.resize(m, size[::-1])


def mask_cv2_transposed(m, size):
    return minmax(cv2.resize(m, size))


def mask_nearest_cv2(m, size):
    return minmax(cv2.resize(m, size[::-1], interpolation=cv2.INTER_NEAREST))


def mask_nearest_tf(m, size):
    return minmax(tf.image.resize(m[..., None], size, method="nearest")[..., 0].numpy())


def mask_corner_aligned(m, size):
    up = tf.compat.v1.image.resize_bilinear(m[None, ..., None], size, align_corners=True)
    return minmax(up.numpy()[0, ..., 0])


def mask_bicubic(m, size):
    return minmax(cv2.resize(m, size[::-1], interpolation=cv2.INTER_CUBIC))


def mask_bicubic_tf(m, size):
    return minmax(tf.image.resize(m[..., None], size, method="bicubic")[..., 0].numpy())


def mask_fixed_size(m, size):
    return minmax(cv2.resize(m, (20, 12)))  # the first case's size, not `size`


# --------------------------------------------------------------------------------------------
# LayerCAM's weights: fn(g (N, h, w, K)) -> (N, h, w, K)
# --------------------------------------------------------------------------------------------
def lw_tf(g):
    return tf.nn.relu(g)


def lw_maximum(g):
    return np.maximum(g, 0)


def lw_where_float64(g):
    g = g.astype(np.float64)
    return np.where(g > 0, g, 0)


def lw_mask(g):
    return g * (g > 0)


def lw_clip(g):
    return keras.ops.clip(g, 0, np.inf)


def lw_mean(g):
    return g.mean(axis=(1, 2), keepdims=True)


def lw_no_relu(g):
    return g


def lw_relu_after_mean(g):
    return np.maximum(g.mean(axis=(1, 2)), 0)


def lw_positive_mean(g):
    return np.maximum(g, 0).mean(axis=(1, 2))


def lw_floor(g):
    return np.maximum(g, 1e-7)


def lw_relu6(g):
    return tf.nn.relu6(g)


def lw_leaky(g):
    return tf.nn.leaky_relu(g)


def lw_abs(g):
    return np.abs(g)


def lw_normalised(g):
    r = np.maximum(g, 0)
    return r / np.linalg.norm(r.reshape(len(r), -1), axis=1)[:, None, None, None]


def lw_plus_one(g):
    return np.maximum(g, 0) + 1


# --------------------------------------------------------------------------------------------
# LayerCAM's fusion: fn(maps [(N, h_l, w_l)], size, shallow [bool]) -> (N, H, W)
# --------------------------------------------------------------------------------------------
def up_tf(m, size):
    return tf.image.resize(np.asarray(m, np.float32)[..., None], size)[..., 0].numpy()


def fusion_of(maps, size, shallow, scale=None, up=up_tf, combine=np.max):
    def scaled(m):
        return np.tanh(2 * m / m.max(axis=(1, 2), keepdims=True))
    scale = scale or (lambda m, s: scaled(m) if s else m)
    return combine(np.stack([up(scale(m, s), size) for m, s in zip(maps, shallow)]), axis=0)


def fusion_right(maps, size, shallow):
    return fusion_of(maps, size, shallow)


def fusion_tf(maps, size, shallow):
    ups = []
    for m, s in zip(maps, shallow):
        m = tf.constant(m)
        if s:
            m = tf.tanh(2.0 * m / tf.reduce_max(m, axis=[1, 2], keepdims=True))
        ups.append(tf.image.resize(m[..., None], size)[..., 0])
    return tf.reduce_max(tf.stack(ups), axis=0)


def fusion_cv2_per_image_normalised(maps, size, shallow):
    out = []
    for i in range(len(maps[0])):
        ups = []
        for m, s in zip(maps, shallow):
            one = m[i].astype(np.float64)
            if s:
                one = np.tanh(2 * one / one.max())
            ups.append(cv2.resize(one, size[::-1], interpolation=cv2.INTER_LINEAR))
        out.append(minmax(np.max(ups, axis=0)))
    return np.array(out)


def fusion_no_tanh(maps, size, shallow):
    return fusion_of(maps, size, shallow,
                     scale=lambda m, s: m / m.max(axis=(1, 2), keepdims=True) if s else m)


def fusion_no_scaling(maps, size, shallow):
    return fusion_of(maps, size, shallow, scale=lambda m, s: m)


def fusion_tanh_without_max(maps, size, shallow):
    return fusion_of(maps, size, shallow, scale=lambda m, s: np.tanh(2 * m) if s else m)


def fusion_gamma_one(maps, size, shallow):
    return fusion_of(maps, size, shallow,
                     scale=lambda m, s: np.tanh(m / m.max(axis=(1, 2), keepdims=True)) if s else m)


def fusion_batch_max(maps, size, shallow):
    return fusion_of(maps, size, shallow, scale=lambda m, s: np.tanh(2 * m / m.max()) if s else m)


def fusion_deep_scaled_too(maps, size, shallow):
    return fusion_of(maps, size, [True] * len(maps))


def fusion_all_but_last(maps, size, shallow):
    return fusion_of(maps, size, [True] * (len(maps) - 1) + [False])


def fusion_mean(maps, size, shallow):
    return fusion_of(maps, size, shallow, combine=np.mean)


def fusion_sum(maps, size, shallow):
    return fusion_of(maps, size, shallow, combine=np.sum)


def fusion_upsampled_after(maps, size, shallow):
    largest = max((m.shape[1:] for m in maps), key=lambda hw: hw[0] * hw[1])
    return up_tf(fusion_of(maps, largest, shallow), size)


def fusion_scaled_after_upsampling(maps, size, shallow):
    return fusion_of([up_tf(m, size) for m in maps], size, shallow, up=lambda m, size: m)


def fusion_corner_aligned(maps, size, shallow):
    def up(m, size):
        return tf.compat.v1.image.resize_bilinear(m[..., None], size, align_corners=True)[..., 0]
    return fusion_of(maps, size, shallow, up=up)


def fusion_nearest(maps, size, shallow):
    return fusion_of(maps, size, shallow, up=lambda m, size: tf.image.resize(
        m[..., None], size, method="nearest")[..., 0].numpy())


def fusion_bicubic(maps, size, shallow):
    return fusion_of(maps, size, shallow, up=lambda m, size: np.stack(
        [cv2.resize(one, size[::-1], interpolation=cv2.INTER_CUBIC) for one in m]))


def fusion_stacked(maps, size, shallow):
    return fusion_of(maps, size, shallow, combine=lambda x, axis: x)


# --------------------------------------------------------------------------------------------
# Average Drop: fn(y (N,), o (N,)) -> float
# --------------------------------------------------------------------------------------------
def drop_chapter(y, o):
    return float(100 * np.mean(np.maximum(0.0, y - o) / y))


def drop_tf(y, o):
    return 100 * tf.reduce_mean(tf.nn.relu(y - o) / y)


def drop_loop_float64(y, o):
    total = 0.0
    for yi, oi in zip(y.astype(np.float64), o.astype(np.float64)):
        total += max(0.0, yi - oi) / yi
    return 100 * total / len(y)


def drop_over_larger(y, o):  # max(Y, O) is Y wherever the drop is not 0: the same number
    return 100 * np.mean(np.clip(y - o, 0, None) / np.maximum(y, o))


def drop_no_max(y, o):
    return 100 * np.mean((y - o) / y)


def drop_by_o(y, o):
    return 100 * np.mean(np.maximum(0, y - o) / o)


def drop_by_largest(y, o):
    return 100 * np.mean(np.maximum(0, y - o) / np.max(y))


def drop_not_relative(y, o):
    return 100 * np.mean(np.maximum(0, y - o))


def drop_fraction(y, o):
    return np.mean(np.maximum(0, y - o) / y)


def drop_ratio_of_means(y, o):
    return 100 * np.mean(np.maximum(0, y - o)) / np.mean(y)


def drop_increases(y, o):
    return 100 * np.mean(np.maximum(0, o - y) / y)


def drop_summed(y, o):
    return 100 * np.sum(np.maximum(0, y - o) / y)


def drop_per_image(y, o):
    return 100 * np.maximum(0, y - o) / y


def drop_python_max(y, o):
    return 100 * np.mean(max(0, y - o) / y)  # the truth value of an array is ambiguous


def drop_np_max(y, o):
    return 100 * np.mean(np.max(0, y - o) / y)  # np.max(0, axis=y - o)


def drop_constant(y, o):
    return 41.7341  # the first case's answer, typed in


def drop_string(y, o):
    return f"{100 * np.mean(np.maximum(0, y - o) / y):.4f}"


# --------------------------------------------------------------------------------------------
# The audit: each checker, its correct and wrong functions
# --------------------------------------------------------------------------------------------
CASES = {
    ex.check_cam_map: [
        (cam_einsum, OK), (cam_tf, OK), (cam_matmul_float64, OK), (cam_tensordot, OK),
        (cam_loop, OK),
        (cam_row, "you took the row W[c] of the kernel;"),
        (cam_row_no_relu, "you took the row W[c] of the kernel (and no ReLU);"),
        (cam_no_relu, "your map has negative values: apply the ReLU"),
        (cam_normalised_no_relu, "your map is min-max normalised and has no ReLU;"),
        (cam_normalised, "your map is min-max normalised to [0, 1];"),
        (cam_mean, "you averaged over the channels; CAM sums them"),
        (cam_every_class, "you computed one map per class"),
        (cam_by_max, "your map is min-max normalised to [0, 1];"),
        (cam_class_one, "(your function passed the first test case; this one has N=3 maps"),
        (cam_relu_each_channel, "your values differ from the expected ones, e.g. at index"),
    ],
    ex.check_grad_cam_weights: [
        (gw_mean, OK), (gw_tf, OK), (gw_einsum, OK), (gw_twice, OK), (gw_reshape, OK),
        (gw_sum, "you summed the gradients over the positions;"),
        (gw_channels, "you averaged over the channels (the last axis);"),
        (gw_relu, "you applied a ReLU to the gradients before averaging;"),
        (gw_abs, "you averaged the absolute values of the gradients;"),
        (gw_relu_after, "you applied a ReLU to the weights;"),
        (gw_everything, "you averaged over the channels too;"),
        (gw_batch, "you averaged over the images too;"),
        (gw_rms_normalised, "did you normalise the gradients first"),
        (gw_square_only, "you divided the sum by h*h, not by Z = h*w"),
        (gw_rows_only, "your result has shape (2, 5, 6); expected (2, 6)"),
    ],
    ex.check_logit_gradients: [
        (grad_chapter, OK), (grad_unwatched_inner, OK), (grad_keras_model_on_logits, OK),
        (grad_one_image_at_a_time, OK), (grad_persistent_summed, OK),
        (grad_keras_tutorial, "the softmax probability of the predicted class (the Keras"),
        (grad_argmax_ignoring_c, "you explained the predicted class (argmax"),
        (grad_of_probability, "you took the gradient of the softmax probability p_c"),
        (grad_of_log_softmax, "you took the gradient of log p_c"),
        (grad_of_cross_entropy, "you took the gradient of log p_c"),
        (grad_of_all_logits, "you took the gradient of all the logits summed"),
        (grad_of_first_image, "you took the gradient of y[0, c], the first image's logit only"),
        (grad_of_batch_mean, "you took the gradient of the batch mean of y^c"),
        (grad_first_image_repeated, "every image got the first image's gradient"),
        (grad_at_zeros, "your gradient is the one of an all-black image (zeros)"),
        (grad_h_w_swapped, "h and w swapped"),
        (grad_l2_normalised, "did you normalise the gradient (g / ||g||"),
        (grad_wrt_image, "your gradient has the images' shape (N, H, W, 3)"),
        (grad_with_dropout, "your values differ from the expected ones"),
        (grad_slice_after_tape, "you took y[:, c] after the `with tf.GradientTape()` block"),
        (grad_unwatched, "tape.gradient gives None when the tape did not record the path"),
        (grad_through_the_model, "y = model(images) recomputes A"),
        (grad_after_vandalising, "note: your function changed the model's weights"),
    ],
    ex.check_grad_cam_plus_plus_gamma: [
        (gamma_tf, OK), (gamma_chapter, OK), (gamma_where_float64, OK),
        (gamma_simplified_with_zero, OK),
        (gamma_nan, "your gamma has NaN where the gradient is 0"),
        (gamma_simplified, "where g = 0 your gamma is 1/2"),
        (gamma_epsilon, "you added a small epsilon to the denominator"),
        (gamma_small_epsilon, "you added a small epsilon to the denominator"),
        (gamma_a_not_summed, "you used A at each position in the denominator;"),
        (gamma_spatial_mean, "you used the spatial mean of A"),
        (gamma_no_a, "your denominator has no A in it"),
        (gamma_channel_sum, "you summed A over the channels"),
        (gamma_renormalised, "you renormalised gamma by its spatial sum"),
        (gamma_of_relu, "you used ReLU(g) in gamma"),
        (gamma_times_relu, "you returned gamma * ReLU(g)"),
        (gamma_channel_weight, "you returned one number per image and channel, (N, K)"),
        (gamma_square_only, "your function raised ValueError: cannot reshape array"),
    ],
    ex.check_score_cam_mask: [
        (mask_tf, OK), (mask_chapter, OK), (mask_cv2, OK), (mask_antialias_float64, OK),
        (mask_skimage_edge, OK), (mask_by_hand, OK),
        (mask_no_min, "you divided by (max - min) without subtracting the minimum;"),
        (mask_max_only, "you divided by the maximum only"),
        (mask_min_then_max, "you divided by the maximum, not by (max M - min M)"),
        (mask_normalised_first, "you normalised before upsampling;"),
        (mask_not_upsampled, "your mask has the channel map's own size (h, w);"),
        (mask_not_normalised, "you upsampled but did not normalise;"),
        (mask_cv2_transposed, "your mask is (W, H), transposed"),
        (mask_nearest_cv2, "you upsampled with nearest-neighbour interpolation;"),
        (mask_nearest_tf, "you upsampled with nearest-neighbour interpolation;"),
        (mask_corner_aligned, "corner-aligned bilinear interpolation (align_corners=True)"),
        (mask_bicubic, "you upsampled with bicubic interpolation;"),
        (mask_bicubic_tf, "you upsampled with bicubic interpolation;"),
        (mask_fixed_size, "the argument you are given (not a fixed size)"),
    ],
    ex.check_layer_cam_weights: [
        (lw_tf, OK), (lw_maximum, OK), (lw_where_float64, OK), (lw_mask, OK), (lw_clip, OK),
        (lw_mean, "you averaged the gradients over the positions: that is Grad-CAM's weight."),
        (lw_no_relu, "you returned the gradients unchanged: that is HiResCAM's weight."),
        (lw_relu_after_mean, "you applied the ReLU after averaging"),
        (lw_positive_mean, "you averaged the positive gradients over the positions"),
        (lw_floor, "not 0 where g <= 0 (np.maximum(g, 1e-7)?"),
        (lw_relu6, "your weights stop at 6 (tf.nn.relu6?)"),
        (lw_leaky, "not 0 where g <= 0 (np.maximum(g, 1e-7)? a leaky ReLU?)"),
        (lw_abs, "you took the absolute value of the gradients;"),
        (lw_normalised, "did you normalise the gradients?"),
        (lw_plus_one, "your values differ from the expected ones, e.g. at index (0, 0, 0, 0)"),
    ],
    ex.check_layer_cam_fusion: [
        (fusion_right, OK), (fusion_tf, OK), (fusion_cv2_per_image_normalised, OK),
        (fusion_no_tanh, "you divided the shallow maps by their maximum but left out the tanh"),
        (fusion_no_scaling, "you fused the maps without scaling the shallow ones"),
        (fusion_tanh_without_max, "you took tanh(kappa L_l) without dividing by max L_l"),
        (fusion_gamma_one, "you used kappa = 1"),
        (fusion_batch_max, "you divided by the maximum over the whole batch"),
        (fusion_deep_scaled_too, "you scaled the deepest layer's map too"),
        (fusion_all_but_last, "you chose the layers to scale by their place in the list"),
        (fusion_mean, "you averaged the layers' maps;"),
        (fusion_sum, "you summed the layers' maps;"),
        (fusion_upsampled_after, "you fused the maps at the largest layer's size (12, 16)"),
        (fusion_scaled_after_upsampling, "you scaled after upsampling"),
        (fusion_corner_aligned, "corner-aligned bilinear interpolation (align_corners=True)"),
        (fusion_nearest, "you upsampled with nearest-neighbour interpolation;"),
        (fusion_bicubic, "you upsampled with bicubic interpolation;"),
        (fusion_stacked, "you returned the upsampled maps stacked, one per layer"),
    ],
    ex.check_average_drop: [
        (drop_chapter, OK), (metrics.average_drop, OK), (drop_tf, OK), (drop_loop_float64, OK),
        (drop_over_larger, OK),
        (drop_no_max, "you let increases count as negative drops;"),
        (drop_by_o, "you divided by O (the explanation's score);"),
        (drop_by_largest, "you divided by the largest score, max_i Y_i;"),
        (drop_not_relative, "you left out the division by Y_i"),
        (drop_fraction, "your answer is a fraction;"),
        (drop_ratio_of_means, "you took a ratio of means;"),
        (drop_increases, "you computed max(0, O_i - Y_i), the increases;"),
        (drop_summed, "you summed over the images;"),
        (drop_per_image, "you returned one drop per image;"),
        (drop_python_max, "hint: y and o are numpy arrays of N probabilities"),
        (drop_np_max, "(np.maximum, not Python's max or np.max)"),
        (drop_constant, "(your function passed the first test case; this one has N=4 images.)"),
        (drop_string, "✗ not yet: your function returned text ('41."),
    ],
}

MARKS = ("✓", "✗", ex.STUB)


@pytest.mark.parametrize("checker, solution, line", [
    pytest.param(checker, solution, line, id=f"{checker.__name__[6:]}-{solution.__name__}")
    for checker, cases in CASES.items() for solution, line in cases])
def test_audit(checker, solution, line, capsys):
    passed = checker(solution)
    out = capsys.readouterr().out
    assert line in out, out
    assert passed is (line == OK), out
    assert sum(out.count(mark) for mark in MARKS) == 1, out


def test_a_wrong_variant_that_changes_the_model_spoils_no_later_attempt(capsys):
    """The first version kept one shared model: this vandal passed, then every right answer
    failed until the kernel restarted."""
    assert ex.check_logit_gradients(grad_then_vandalise)
    assert capsys.readouterr().out.count("note: your function changed the model's weights") == 1
    assert ex.check_logit_gradients(grad_chapter)
    assert ex.toy_classifier().get_weights()[4].any()


# --------------------------------------------------------------------------------------------
# Stubs and broken functions: reported, never raised
# --------------------------------------------------------------------------------------------
def stub_returning_none(*args):
    # your code here
    return None


def stub_pass(*args):
    """Return the answer."""
    pass


def stub_raising(*args):
    raise NotImplementedError("your code here")


def stub_raising_not_implemented(*args):
    raise NotImplemented  # noqa: F901 - students write it


def stub_returning_not_implemented(*args):
    return NotImplemented


def forgot_return(*args):
    len(args)


def broken(*args):
    raise ZeroDivisionError("division by zero")


def returns_text(*args):
    return "my answer"


def returns_booleans(*args):
    return np.ones(3, bool)


def returns_a_dict(*args):
    return {"answer": 1.0}


@pytest.mark.parametrize("checker", list(CASES), ids=lambda c: c.__name__[6:])
@pytest.mark.parametrize("solution, line", [
    (stub_returning_none, "not written yet: your function returns None, as the stub does"),
    (stub_pass, "not written yet: your function returns None, as the stub does"),
    (stub_raising, "not written yet: replace `raise NotImplementedError` with your code"),
    (stub_raising_not_implemented, "not written yet: replace `raise NotImplemented` with"),
    (stub_returning_not_implemented, "not written yet: your function returns NotImplemented"),
    (forgot_return, "✗ not yet: your function returned None: "),
    (broken, "✗ not yet: your function raised ZeroDivisionError: division by zero"),
    (returns_text, "✗ not yet: your function returned text ('my answer'), not numbers"),
    (returns_booleans, "✗ not yet: your function returned True/False values, not real numbers"),
    (returns_a_dict, "✗ not yet: your function returned a dict of object values"),
], ids=lambda v: getattr(v, "__name__", "line"))
def test_unfinished_functions_are_reported(checker, solution, line, capsys):
    assert checker(solution) is False
    out = capsys.readouterr().out
    assert line in out
    assert sum(out.count(mark) for mark in MARKS) == 1, out


def test_a_missing_return_is_told_apart_from_the_stub(capsys):
    def weights(g):
        np.mean(g, axis=(1, 2))

    assert not ex.check_grad_cam_weights(weights)
    assert "✗ not yet: your function returned None: a missing `return` before the result?" in (
        capsys.readouterr().out)


def test_an_unreadable_stub_is_still_not_written(capsys):
    assert not ex.check_layer_cam_weights(eval("lambda g: None"))  # no source to read
    assert "not written yet: your function returned None (still the stub" in (
        capsys.readouterr().out)


def test_tensorflow_errors_lose_their_function_node_prefix(capsys):
    def weights(g):
        return tf.reduce_mean(g, axis=(1, 2)) * tf.ones(7)  # (N, K) * (7,): incompatible

    assert not ex.check_grad_cam_weights(weights)
    out = capsys.readouterr().out
    assert "your function raised InvalidArgumentError: Incompatible shapes" in out
    assert "{{function_node" not in out and "name:" not in out


def test_broken_function_gets_a_hint(capsys):
    ex.check_grad_cam_weights(broken)
    assert "  hint: gradients are (N, h, w, K); average over the position axes, 1 and 2" in (
        capsys.readouterr().out)


def cam_then_vandal(a, kernel, c):
    out = cam_einsum(a, kernel, c)
    a[:], kernel[:] = 0, 0
    return out


def fusion_then_vandal(maps, size, shallow):
    out = fusion_right(maps, size, shallow)
    maps[0][:] = 0
    maps.pop()
    shallow.reverse()
    return out


@pytest.mark.parametrize("checker, vandal, right", [
    (ex.check_cam_map, cam_then_vandal, cam_einsum),
    (ex.check_layer_cam_fusion, fusion_then_vandal, fusion_right)], ids=["cam", "fusion"])
def test_a_function_writing_into_its_inputs_spoils_no_later_call(checker, vandal, right, capsys):
    """Every call gets fresh copies of the inputs, lists included."""
    assert checker(vandal) and checker(right)
    assert capsys.readouterr().out.count(OK) == 2


def test_unknown_wrong_values_show_where_and_the_formula(capsys):
    assert not ex.check_layer_cam_weights(lw_plus_one)
    out = capsys.readouterr().out
    assert "e.g. at index (0, 0, 0, 0) 1.00105 instead of 0.00105312." in out
    assert "The formula: ReLU(g) = max(dy^c/dA^k_ij, 0), the positive part" in out


def test_right_values_in_a_wrong_shape_are_told_apart(capsys):
    assert not ex.check_grad_cam_weights(lambda g: np.mean(g, axis=(1, 2), keepdims=True))
    assert "your values are right, but their shape is (2, 1, 1, 6)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# The test cases themselves: not degenerate, and every named mistake tells apart
# --------------------------------------------------------------------------------------------
CASE_SETS = {"cam_map": ex._cam_map_cases, "grad_cam_weights": ex._grad_cam_weight_cases,
             "logit_gradients": ex._logit_gradient_cases, "gamma": ex._gamma_cases,
             "score_cam_mask": ex._mask_cases, "layer_cam_weights": ex._layer_cam_weight_cases,
             "layer_cam_fusion": ex._fusion_cases, "average_drop": ex._drop_cases}


@pytest.mark.parametrize("cases", CASE_SETS.values(), ids=CASE_SETS.keys())
def test_no_named_mistake_accepts_the_answer(cases):
    for case in cases():
        expected = case.expected
        atol = 1e-6 * np.abs(expected).max()

        def close(a, b, atol=atol):
            return ex._matches(a, np.asarray(b, np.float64), 1e-4, atol)

        for wrong, message in case.mistakes:
            if callable(wrong):
                assert not wrong(expected, close), message
            elif isinstance(wrong, tuple):
                assert wrong != expected.shape, message
            else:
                assert not close(expected, wrong), message


def test_a_case_drops_the_variants_that_are_right_or_repeated_on_its_input():
    """On a map whose minimum is 0, "the minimum not subtracted" is the right answer."""
    right = np.array([0.0, 0.5, 1.0])
    case = ex._case(None, right, [(right * 1.00001, "right here"), (right / 2, "half"),
                                  (right / 2, "half again"), ((3, 1), "a shape"),
                                  (lambda got, close: False, "a test")], "label")
    assert [message for _, message in case.mistakes] == ["half", "a shape", "a test"]


@pytest.mark.parametrize("cases", CASE_SETS.values(), ids=CASE_SETS.keys())
def test_every_checker_has_two_differently_shaped_cases(cases):
    first, second = cases()
    assert (first.expected.shape != second.expected.shape
            or np.shape(first.args()[0]) != np.shape(second.args()[0]))


def test_the_gradient_cases_are_not_degenerate():
    for case in ex._logit_gradient_cases():
        model, images, c = case.args()
        g = case.expected
        _, h, w, _ = g.shape
        assert h != w
        assert c not in np.argmax(model(images), axis=1)  # not a predicted class
        assert np.abs(g[0] - g[1]).max() > 0.1 * np.abs(g).max()  # differs from image to image
        assert np.abs(g[:, 0, 0] - g[:, 1, 1]).max() > 0.1 * np.abs(g).max()  # and by position
        assert camcore.split_model(model).layer == "conv"


def test_the_gamma_cases_stay_away_from_the_pole_and_hold_zero_gradients():
    for case in ex._gamma_cases():
        a, g = (x.astype(np.float64) for x in case.args())
        s = a.sum(axis=(1, 2), keepdims=True)
        assert np.abs(2 + s * g).min() > 0.5
        assert (g == 0).any() and np.abs(g[g != 0]).min() < 1e-3


def test_the_layer_cam_cases_hold_small_and_large_gradients():
    small, large = (case.args()[0] for case in ex._layer_cam_weight_cases())
    assert np.abs(small).max() < 0.01 and large.max() > 6 and (large < 0).any()


def test_the_fusion_cases_hold_small_shallow_maps_and_a_deep_map_in_0_1():
    for case in ex._fusion_cases():
        maps, size, shallow = case.args()
        for m, is_shallow in zip(maps, shallow):
            top = m.max(axis=(1, 2))
            if is_shallow:  # small, and a different scale for each image
                assert (top < 0.5).all() and np.ptp(top) > 0
            else:
                assert np.allclose(top, 1) and np.allclose(m.min(axis=(1, 2)), 0)


@pytest.mark.parametrize("small, size", [((3, 5), (12, 20)), ((6, 4), (17, 14)), ((4, 3), (4, 3)),
                                         ((5, 1), (9, 2))])
def test_the_reference_resizings_are_tensorflows(small, size):
    m = np.random.default_rng(0).uniform(0, 6, small).astype(np.float32)
    tf_resize = tf.image.resize(m[..., None], size)[..., 0].numpy()
    corners = tf.compat.v1.image.resize_bilinear(m[None, ..., None], size, align_corners=True)
    nearest = tf.image.resize(m[..., None], size, method="nearest")[..., 0].numpy()
    assert np.allclose(ex._resize(m, size), tf_resize, atol=1e-5)
    assert np.allclose(ex._resize(m, size, corners=True), corners[0, ..., 0], atol=1e-5)
    assert np.array_equal(ex._nearest(m, size, half_pixel=True), nearest)
    assert np.array_equal(ex._nearest(m, size, half_pixel=False),
                          cv2.resize(m, size[::-1], interpolation=cv2.INTER_NEAREST))


def test_toy_classifier_is_a_new_model_each_time():
    first, second = ex.toy_classifier(), ex.toy_classifier()
    assert first is not second
    first.set_weights([np.zeros_like(w) for w in first.get_weights()])
    assert second.get_weights()[0].any() and ex.toy_classifier().get_weights()[0].any()
