"""CAM, Grad-CAM, Grad-CAM++ and Score-CAM, batched, on the logits of a Keras classifier.

Notation: A^k is channel k of the target layer's activations (h x w), y^c the logit (pre-softmax
score) of class c, Z = h*w. Every method returns a :class:`CamResult` whose maps are ReLU'd and
min-max normalised to [0, 1] per image, at feature resolution (``maps``) and bilinearly upsampled
to the input size (``heatmaps``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from camcore.model_split import SplitModel, split_model


class EmptyMapWarning(UserWarning):
    """A class activation map with no positive value: it is returned as zeros."""


@dataclass(frozen=True)
class CamResult:
    """What a method computed for a batch of N images.

    maps: (N, h, w) in [0, 1]; heatmaps: (N, H, W) in [0, 1]; classes: (N,) the explained class;
    scores: (N,) the softmax probability of that class on the unmasked image; channel_weights:
    (N, K) the weight each method gave each channel of A.
    """

    method: str
    layer: str
    maps: np.ndarray
    heatmaps: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    channel_weights: np.ndarray


# --------------------------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------------------------
def check_images(model: keras.Model, images) -> np.ndarray:
    """Raw RGB images as float32 (N, H, W, 3); a clear error for any other shape."""
    x = np.asarray(images, dtype=np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != 4:
        hint = " Add a batch axis: images[None]." if x.ndim == 3 else ""
        raise ValueError(f"images must be a batch (N, H, W, C); got shape {x.shape}.{hint}")
    if x.shape[-1] != expected[-1]:
        raise ValueError(f"images have {x.shape[-1]} channels; {model.name!r} expects "
                         f"{expected[-1]} (RGB). Convert grey or RGBA images to RGB first.")
    if any(e is not None and e != s for e, s in zip(expected[:2], x.shape[1:3])):
        raise ValueError(f"images are {x.shape[1]}x{x.shape[2]}; {model.name!r} expects "
                         f"{expected[0]}x{expected[1]}. Resize them, e.g. with camcore.load_images.")
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch")
    return x


def _check_classes(classes, logits: np.ndarray) -> np.ndarray:
    n, num_classes = logits.shape
    if classes is None:
        return logits.argmax(axis=1)
    out = np.broadcast_to(np.asarray(classes), (n,)).astype(np.int64)
    bad = out[(out < 0) | (out >= num_classes)]
    if bad.size:
        raise ValueError(f"class index {int(bad[0])} is out of range: the model has "
                         f"{num_classes} classes (0..{num_classes - 1})")
    return out


def normalize_maps(maps: np.ndarray, method: str = "", classes=None, warn: bool = True) -> np.ndarray:
    """Min-max normalise each map to [0, 1]: (M - min M) / (max M - min M).

    A map with no range (all zeros after the ReLU, or constant) becomes zeros, with an
    :class:`EmptyMapWarning` naming the images, instead of a division by zero.
    """
    maps = np.asarray(maps, dtype=np.float64)
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    span = high - low
    # scale-free: a map is flat when its range is below float32 precision of its own magnitude
    # (a random network can give valid maps of size 1e-13, which are normalised like any other)
    flat = span <= 1e-6 * np.maximum(np.abs(high), np.abs(low))
    out = np.where(flat, 0.0, (maps - low) / np.where(flat, 1.0, span))
    if warn and flat.any():
        idx = np.flatnonzero(flat.reshape(len(maps)))
        which = "" if classes is None else f" (classes {np.asarray(classes)[idx][:10].tolist()})"
        warnings.warn(
            f"{method} map of image(s) {idx[:10].tolist()}{which} has no positive value: no "
            "channel of the target layer carries evidence for that class, so it is returned as "
            "zeros. Check the class index, or try an earlier layer.",
            EmptyMapWarning, stacklevel=3)
    return out.astype(np.float32)


def upsample(maps: np.ndarray, size) -> np.ndarray:
    """Bilinear upsampling of (N, h, w) maps to ``size`` = (H, W)."""
    return tf.image.resize(np.asarray(maps)[..., None], size, method="bilinear").numpy()[..., 0]


def _result(method, split, weighted_sum, images, classes, logits, weights):
    """ReLU, normalise, upsample, and package."""
    maps = normalize_maps(np.maximum(weighted_sum, 0.0), method, classes)
    heatmaps = normalize_maps(upsample(maps, images.shape[1:3]), warn=False)  # warned above
    probs = tf.nn.softmax(logits).numpy()
    return CamResult(method, split.layer, maps, heatmaps, classes,
                     probs[np.arange(len(classes)), classes], np.asarray(weights, np.float32))


def _weighted_sum(weights, activations):
    """sum_k w_k^c A^k for every image: (N, K) x (N, h, w, K) -> (N, h, w)."""
    n, h, w, k = activations.shape
    flat = np.asarray(activations, np.float64).reshape(n, h * w, k)
    return (flat @ np.asarray(weights, np.float64)[:, :, None]).reshape(n, h, w)


def _compiled(split: SplitModel, name: str):
    """The tf.function ``name`` for this split, traced once and kept with the split."""
    if name not in split.compiled:
        split.compiled[name] = tf.function(_KERNELS[name](split), reduce_retracing=True)
    return split.compiled[name]


def _features_and_logits_kernel(split):
    def run(x):
        a = split.features(x)
        return a, split.head(a)
    return run


def _gradient_weights_kernel(split, plus_plus: bool):
    """Channel weights from g = dy^c/dA, taken on the logits (formulas: grad_cam and
    grad_cam_plus_plus). The tape starts at A: the backward pass only crosses the head."""
    def run(a, classes):
        with tf.GradientTape() as tape:
            tape.watch(a)
            target = tf.gather(split.head(a), classes, axis=1, batch_dims=1)
        g = tape.gradient(target, a)
        if not plus_plus:
            return tf.reduce_mean(g, axis=(1, 2))
        a_sum = tf.reduce_sum(a, axis=(1, 2), keepdims=True)
        g2 = tf.square(g)
        alpha = tf.math.divide_no_nan(g2, 2 * g2 + a_sum * g2 * g)  # 0 where the denominator is 0
        return tf.reduce_sum(alpha * tf.nn.relu(g), axis=(1, 2))
    return run


def _masked_scores_kernel(split):
    """softmax(y(X o H^k))_c for a chunk of (image, channel) pairs."""
    def run(x, a, image_idx, channel_idx, classes):
        maps = tf.gather(tf.gather(a, image_idx), channel_idx, axis=3, batch_dims=1)
        up = tf.image.resize(maps[..., None], tf.shape(x)[1:3], method="bilinear")
        low = tf.reduce_min(up, axis=(1, 2, 3), keepdims=True)
        high = tf.reduce_max(up, axis=(1, 2, 3), keepdims=True)
        masks = tf.math.divide_no_nan(up - low, high - low)
        logits = split.logits(tf.gather(x, image_idx) * masks)
        return tf.gather(tf.nn.softmax(logits), classes, axis=1, batch_dims=1)
    return run


_KERNELS = {"features_and_logits": _features_and_logits_kernel,
            "grad_cam_weights": lambda split: _gradient_weights_kernel(split, plus_plus=False),
            "grad_cam_pp_weights": lambda split: _gradient_weights_kernel(split, plus_plus=True),
            "masked_scores": _masked_scores_kernel}


def _in_batches(fn, batch_size, *arrays):
    """Apply ``fn`` to consecutive slices of ``arrays``; concatenate each output as numpy."""
    outs = [fn(*(tf.constant(a[i:i + batch_size]) for a in arrays))
            for i in range(0, len(arrays[0]), batch_size)]
    if isinstance(outs[0], (tuple, list)):
        return tuple(np.concatenate([o[j].numpy() for o in outs]) for j in range(len(outs[0])))
    return np.concatenate([o.numpy() for o in outs])


def _start(model, images, classes, layer, batch_size):
    split = split_model(model, layer)
    x = check_images(model, images)
    activations, logits = _in_batches(_compiled(split, "features_and_logits"), batch_size, x)
    if logits.shape[1] > 1 and np.all(logits >= 0) and np.allclose(logits.sum(axis=1), 1, atol=1e-4):
        warnings.warn(
            f"the output camcore took for logits from {model.name!r} looks like probabilities "
            "(non-negative, rows sum to 1): the softmax may be hidden in a custom layer. Make the "
            "model end in a Dense layer without activation followed by a Softmax layer.",
            stacklevel=3)
    return split, x, activations, logits, _check_classes(classes, logits)


# --------------------------------------------------------------------------------------------
# The four methods
# --------------------------------------------------------------------------------------------
def cam(model: keras.Model, images, classes=None, layer: str | None = None,
        batch_size: int = 32) -> CamResult:
    """Class Activation Mapping (Zhou et al., 2016): M_c = ReLU(sum_k w_k^c A^k).

    w^c is the column of the final Dense kernel for class c, so the model must end in
    feature map -> global average pooling -> (dropout) -> Dense. The ReLU follows the Score-CAM
    paper's restatement of CAM, so the four methods are displayed alike.
    """
    split = split_model(model, layer)
    kinds = [type(l) for l in split.head_layers if not isinstance(l, keras.layers.Dropout)]
    if kinds != [keras.layers.GlobalAveragePooling2D, keras.layers.Dense]:
        names = " -> ".join(getattr(l, "name", "?") for l in split.head_layers) or "nothing"
        raise ValueError(
            f"CAM needs the layer {split.layer!r} to be followed by GlobalAveragePooling2D -> "
            f"(Dropout) -> Dense; {model.name!r} has {names}. Use grad_cam, which equals CAM on "
            "such heads and works on any head.")
    split, x, activations, logits, classes = _start(model, images, classes, layer, batch_size)
    kernel = keras.ops.convert_to_numpy(split.head_layers[-1].kernel)  # (K, num_classes)
    weights = kernel[:, classes].T
    return _result("CAM", split, _weighted_sum(weights, activations), x, classes, logits, weights)


def grad_cam(model: keras.Model, images, classes=None, layer: str | None = None,
             batch_size: int = 32) -> CamResult:
    """Grad-CAM (Selvaraju et al., 2017) on the logit y^c:

        alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij,    L^c = ReLU(sum_k alpha_k^c A^k).
    """
    split, x, activations, logits, classes = _start(model, images, classes, layer, batch_size)
    weights = _in_batches(_compiled(split, "grad_cam_weights"), batch_size, activations, classes)
    return _result("Grad-CAM", split, _weighted_sum(weights, activations), x, classes, logits,
                   weights)


def grad_cam_plus_plus(model: keras.Model, images, classes=None, layer: str | None = None,
                       batch_size: int = 32) -> CamResult:
    """Grad-CAM++ (Chattopadhay et al., 2018), the closed form of their Eq. 19 on the logit S^c.

    With g = dS^c/dA^k_ij (first-order gradients only; the exp(S^c) of the paper's exponential
    trick cancels):

        alpha_ij^kc = g^2 / (2 g^2 + sum_ab A^k_ab g^3)   (0 where the denominator is 0)
        w_k^c = sum_ij alpha_ij^kc ReLU(g),    L^c = ReLU(sum_k w_k^c A^k).

    This is the paper's formula *without* the extra renormalisation of alpha by its spatial sum
    that the authors' code and tf-keras-vis add (pytorch-grad-cam also omits it). On a pooling ->
    Dense head that renormalisation would turn Grad-CAM++ into CAM with negative weights zeroed.
    """
    split, x, activations, logits, classes = _start(model, images, classes, layer, batch_size)
    weights = _in_batches(_compiled(split, "grad_cam_pp_weights"), batch_size, activations,
                          classes)
    return _result("Grad-CAM++", split, _weighted_sum(weights, activations), x, classes, logits,
                   weights)


def score_cam(model: keras.Model, images, classes=None, layer: str | None = None,
              max_n: int | None = None, batch_size: int = 32, progress: bool = True) -> CamResult:
    """Score-CAM (Wang et al., 2020), streaming the masked images.

    For each channel k: H^k = s(Up(A^k)) with Up bilinear to the input size and
    s(M) = (M - min M) / (max M - min M); the channel weight is the class probability of the
    masked *raw* image, one softmax over the logits:

        alpha_k^c = softmax(y(X o H^k))_c,    L^c = ReLU(sum_k alpha_k^c A^k).

    This is the variant of the authors' code (whose numbers fill the paper's tables): probability
    after a softmax over classes, no baseline subtracted. Channels whose activation is constant
    get weight 0 (their mask is undefined). ``max_n`` keeps only the ``max_n`` channels with the
    largest spatial variance per image (Faster Score-CAM). The masked images are built and scored
    ``batch_size`` at a time, so memory does not grow with the number of channels K.
    """
    split, x, activations, logits, classes = _start(model, images, classes, layer, batch_size)
    n, _, _, channels = activations.shape
    variance = activations.var(axis=(1, 2), dtype=np.float64)  # (N, K)
    order = np.argsort(-variance, axis=1, kind="stable")
    keep = channels if max_n is None else min(int(max_n), channels)
    pairs = [(i, k) for i in range(n) for k in order[i, :keep] if variance[i, k] > 0]
    weights = np.zeros((n, channels), np.float64)
    score = _compiled(split, "masked_scores")
    x_t, a_t = tf.constant(x), tf.constant(activations)
    bar = keras.utils.Progbar(len(pairs), unit_name="masked image") if progress and len(pairs) > 2048 else None
    for start in range(0, len(pairs), batch_size):
        chunk = np.array(pairs[start:start + batch_size])
        count = len(chunk)
        if count < batch_size:  # pad the last chunk so the compiled function keeps one shape
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - count, axis=0)])
        probs = score(x_t, a_t, tf.constant(chunk[:, 0]), tf.constant(chunk[:, 1]),
                      tf.constant(classes[chunk[:, 0]])).numpy()
        weights[chunk[:count, 0], chunk[:count, 1]] = probs[:count]
        if bar is not None:
            bar.add(count)
    return _result("Score-CAM", split, _weighted_sum(weights, activations), x, classes, logits,
                   weights)


METHODS = {"CAM": cam, "Grad-CAM": grad_cam, "Grad-CAM++": grad_cam_plus_plus,
           "Score-CAM": score_cam}
