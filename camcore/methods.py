"""CAM, Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM and LayerCAM on a Keras classifier's logits.

Notation: A^k is channel k of the target layer's activations (h x w), y^c the logit (pre-softmax
score) of class c, Z = h*w. Every method is one shared pipeline with its own *weight function*:

    split the model at the layer -> A, y (and dy^c/dA where needed), a batch at a time
    -> w = the method's weights -> L^c = ReLU(sum_k w_k^c o A^k) -> normalise to [0, 1]

where w_k^c is one number per channel (CAM, Grad-CAM, Grad-CAM++, Score-CAM) or one per channel
and position, w_k^c(i, j) (HiResCAM, LayerCAM), and o multiplies element by element.

The weight functions (``cam_weights``, ``grad_cam_weights``, ...) are public and take plain
arrays, so each can be read beside its formula and checked by hand.

Parameters every method shares:

* ``model``: a built, single-input Keras classifier taking raw RGB images. It may end in a
  softmax or sigmoid (left out: the methods work on the logits) and nest its backbone.
* ``images``: a batch (N, H, W, 3) of RGB pixels in ``value_range`` (default 0..255, as uint8
  or float); one image is ``image[None]``.
* ``classes``: the class to explain for each image: None (the predicted class), one int for
  all, N ints (shape (N,) or (N, 1)), or class names when the model records them.
* ``layer``: the target layer's name or path through nested models (``"outer/inner"``); default
  the last 4-D activation before pooling (``camcore.default_target_layer``).
* ``batch_size``: images (Score-CAM: masked images) per forward pass; memory grows with it, not
  with N.
* ``value_range``: the pixel range the model takes, ``(0, 255)`` or ``(0, 1)``.

Each returns a :class:`CamResult`.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from dataclasses import dataclass
from functools import cached_property

import keras
import numpy as np
import tensorflow as tf

from camcore.checks import check_classes, check_count, check_images
from camcore.model_split import SplitModel, split_model


class EmptyMapWarning(UserWarning):
    """A class activation map with no positive value: it is returned as zeros."""


@dataclass(frozen=True)
class CamResult:
    """What a method computed for a batch of N images.

    maps: (N, h, w) in [0, 1]; classes: (N,) the explained class; scores: (N,) its probability on
    the unmasked image; channel_weights: (N, K) the weight each channel of A got (for methods
    with a weight per position, its mean over positions). ``heatmaps`` (N, H, W) in [0, 1], the
    maps upsampled to the input size, are computed on first use (they hold H*W/(h*w) times more
    numbers than the maps).
    """

    method: str
    layer: str
    maps: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    channel_weights: np.ndarray
    input_size: tuple

    @cached_property
    def heatmaps(self) -> np.ndarray:
        return heatmaps_of(self.maps, self.input_size)


# --------------------------------------------------------------------------------------------
# Compiled steps, one set per split (the cache lives here, not on the split)
# --------------------------------------------------------------------------------------------
_COMPILED: weakref.WeakKeyDictionary[SplitModel, dict] = weakref.WeakKeyDictionary()


def _forward(split, x, wanted):
    """A, y, and the explained classes (``wanted``, or the predicted class where it is -1)."""
    a = split.features(x)
    y = split.head(a)
    classes = tf.where(wanted < 0, tf.argmax(y, axis=1, output_type=tf.int64), wanted)
    return a, y, classes


def _forward_and_gradients(split, x, wanted):
    """A, y, classes, and g = dy^c/dA. The tape starts at A: the backward pass crosses the head."""
    a = split.features(x)
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = split.head(a)
        classes = tf.where(wanted < 0, tf.argmax(y, axis=1, output_type=tf.int64), wanted)
        target = tf.gather(y, classes, axis=1, batch_dims=1)
    return a, y, classes, tape.gradient(target, a)


def _masked_probabilities(split, x, a, image_idx, channel_idx, classes):
    """p_c(X o H^k) for a chunk of (image, channel) pairs (see score_cam_masks)."""
    masks = score_cam_masks(tf.gather(tf.gather(a, image_idx), channel_idx, axis=3, batch_dims=1),
                            tf.shape(x)[1:3])
    probs = split.probabilities(split.logits(tf.gather(x, image_idx) * masks[..., None]))
    return tf.gather(probs, classes, axis=1, batch_dims=1)


def compiled(split: SplitModel, step):
    """``step`` traced with tf.function for this split, once (kept while the split lives).

    Wrapped in ``functools.partial`` so TensorFlow counts retracing per split: explaining several
    models or layers in one session does not trigger its retracing warning.
    """
    per_split = _COMPILED.setdefault(split, {})
    if step not in per_split:
        per_split[step] = tf.function(functools.partial(step, split), reduce_retracing=True)
    return per_split[step]


def logits_and_probabilities(model: keras.Model, images, batch_size: int = 32,
                             value_range=(0, 255)):
    """``(logits, probabilities)``, each (N, classes), ``batch_size`` images at a time."""
    split = split_model(model)
    x = check_images(images, tuple(model.inputs[0].shape[1:]), value_range)
    return _class_scores(split, x, check_count(batch_size, "batch_size"))


def _class_scores(split, x, batch_size):
    run = compiled(split, _forward)
    logits = []
    for start in range(0, len(x), batch_size):
        _, y, _ = run(tf.constant(x[start:start + batch_size], tf.float32),
                      tf.constant(np.full(min(batch_size, len(x) - start), -1, np.int64)))
        logits.append(y.numpy())
    logits = np.concatenate(logits)
    return logits, keras.ops.convert_to_numpy(split.probabilities(logits))


# --------------------------------------------------------------------------------------------
# The shared pipeline
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerBatch:
    """What a weight function may use, for a batch of b images (tensors).

    images (b, H, W, 3); activations A (b, h, w, K); gradients dy^c/dA (b, h, w, K) or None;
    classes (b,); split: the model cut at the layer.
    """

    images: tf.Tensor
    activations: tf.Tensor
    gradients: tf.Tensor | None
    classes: tf.Tensor
    split: SplitModel


def _prepare(model, images, classes, layer, batch_size, value_range):
    """The checked inputs of every method: ``(split, images, classes, batch_size)``."""
    split = split_model(model, layer)
    x = check_images(images, tuple(model.inputs[0].shape[1:]), value_range)
    return split, x, check_classes(classes, len(x), split), check_count(batch_size, "batch_size")


def _explain(method: str, weights, split, x, wanted, batch_size, gradients: bool) -> CamResult:
    """Run ``weights(batch) -> w`` batch by batch: L^c = ReLU(sum_k w_k A^k), normalised.

    ``w`` is (b, K), one weight per channel, or (b, h, w, K), one per channel and position.
    Memory holds one batch of activations at a time, in float32.
    """
    run = compiled(split, _forward_and_gradients if gradients else _forward)
    maps, channel_weights, explained, scores = [], [], [], []
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size], tf.float32)
        a, y, cls, *g = run(xb, tf.constant(wanted[start:start + batch_size]))
        if start == 0:
            _warn_if_probabilities(split, y.numpy())
        w = tf.cast(weights(LayerBatch(xb, a, g[0] if g else None, cls, split)), tf.float32)
        full = w if w.shape.rank == 4 else w[:, None, None, :]
        maps.append(tf.nn.relu(tf.reduce_sum(full * a, axis=-1)).numpy())
        channel_weights.append((w if w.shape.rank == 2 else tf.reduce_mean(w, (1, 2))).numpy())
        explained.append(cls.numpy())
        scores.append(tf.gather(split.probabilities(y), cls, axis=1, batch_dims=1).numpy())
    explained = np.concatenate(explained)
    return CamResult(method, split.layer, normalize_maps(np.concatenate(maps), method, explained),
                     explained, np.concatenate(scores), np.concatenate(channel_weights),
                     tuple(x.shape[1:3]))


def _warn_if_probabilities(split, logits: np.ndarray):
    """A softmax hidden where camcore cannot see it (a Lambda, a custom layer) is reported."""
    if split.sigmoid:
        return
    if np.all(logits >= 0) and np.allclose(logits.sum(axis=1), 1, atol=1e-4):
        kind = "probabilities (non-negative, rows sum to 1)"
    elif np.all(logits <= 0) and np.allclose(np.exp(logits).sum(axis=1), 1, atol=1e-4):
        kind = "log-probabilities (exp of each row sums to 1)"
    else:
        return
    warnings.warn(
        f"the model output camcore took for logits looks like {kind}: a softmax "
        "may be hidden in a custom layer, and the maps would explain it instead of the logits. "
        "Make the model end in a Dense layer without activation followed by a Softmax layer.",
        stacklevel=4)


def normalize_maps(maps: np.ndarray, method: str = "", classes=None,
                   warn: bool = True) -> np.ndarray:
    """Min-max normalise each map to [0, 1]: (M - min M) / (max M - min M).

    A map with no range (all zeros after the ReLU, or constant) becomes zeros, with one
    :class:`EmptyMapWarning` naming the images, instead of a division by zero. A map counts as
    flat when its range is below float32 precision of its own magnitude, so valid maps of a tiny
    scale (a randomised network's, ~1e-13) are normalised like any other.
    """
    maps = np.asarray(maps, dtype=np.float32)
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    span = high - low
    flat = span <= 1e-6 * np.maximum(np.abs(high), np.abs(low))
    out = np.where(flat, 0.0, (maps - low) / np.where(flat, 1.0, span)).astype(np.float32)
    if warn and flat.any():
        idx = np.flatnonzero(flat.reshape(len(maps)))
        which = "" if classes is None else f" (classes {np.asarray(classes)[idx][:10].tolist()})"
        warnings.warn(
            f"{method} map of image(s) {idx[:10].tolist()}{which} has no positive value: no "
            "channel of the target layer carries evidence for that class, so it is returned as "
            "zeros. Check the class index, or try an earlier layer.",
            EmptyMapWarning, stacklevel=4)
    return out


def upsample(maps: np.ndarray, size) -> np.ndarray:
    """Bilinear upsampling (half-pixel centres, as OpenCV) of (N, h, w) maps to ``size`` (H, W)."""
    return tf.image.resize(np.asarray(maps, np.float32)[..., None], size,
                           method="bilinear").numpy()[..., 0]


def heatmaps_of(maps: np.ndarray, size, batch_size: int = 256) -> np.ndarray:
    """(N, h, w) maps upsampled to ``size`` and renormalised to [0, 1], a batch at a time."""
    out = np.empty((len(maps), *size), np.float32)
    for start in range(0, len(maps), batch_size):
        out[start:start + batch_size] = normalize_maps(
            upsample(maps[start:start + batch_size], size), warn=False)
    return out


# --------------------------------------------------------------------------------------------
# The weight functions: arrays in, weights out
# --------------------------------------------------------------------------------------------
def cam_weights(dense_kernel, classes):
    """CAM: w_k^c = W_kc, the final Dense kernel's column for class c. (K, C), (N,) -> (N, K)."""
    return tf.transpose(tf.gather(tf.convert_to_tensor(dense_kernel), classes, axis=1))


def grad_cam_weights(gradients):
    """Grad-CAM: alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij. (N, h, w, K) -> (N, K)."""
    return tf.reduce_mean(gradients, axis=(1, 2))


def grad_cam_plus_plus_alpha(activations, gradients):
    """Grad-CAM++'s pixel weights (their Eq. 19, first-order gradients g = dy^c/dA^k_ij):

        alpha_ij^kc = g^2 / (2 g^2 + sum_ab A^k_ab g^3)   (0 where the denominator is 0)

    (N, h, w, K), (N, h, w, K) -> (N, h, w, K). Where g is the same at every position (a pooling
    -> Dense head at its last layer) alpha is too: 1 / (2 + g sum_ab A^k_ab).
    """
    a_sum = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
    g2 = tf.square(gradients)
    return tf.math.divide_no_nan(g2, 2 * g2 + a_sum * g2 * gradients)


def grad_cam_plus_plus_weights(activations, gradients):
    """Grad-CAM++: w_k^c = sum_ij alpha_ij^kc ReLU(dy^c/dA^k_ij). -> (N, K)."""
    alpha = grad_cam_plus_plus_alpha(activations, gradients)
    return tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2))


def hires_cam_weights(gradients):
    """HiResCAM: one weight per channel *and position*, the gradient itself, w_ij^k = dy^c/dA^k_ij.

    The map sum_k w^k o A^k is the first-order (gradient x input) term of y^c at the layer, so
    it is faithful to the model there; where the gradient is the same at every position it is
    Z times Grad-CAM's map. (N, h, w, K) -> (N, h, w, K).
    """
    return tf.convert_to_tensor(gradients)


def layer_cam_weights(gradients):
    """LayerCAM: the positive part of the gradient, per channel and position,
    w_ij^k = ReLU(dy^c/dA^k_ij). (N, h, w, K) -> (N, h, w, K)."""
    return tf.nn.relu(gradients)


def score_cam_masks(channel_maps, size):
    """Score-CAM's masks H^k = s(Up(A^k)): bilinear to ``size``, then min-max to [0, 1].

    s(M) = (M - min M) / (max M - min M); a constant map (no range) gives a zero mask.
    (M, h, w) -> (M, H, W).
    """
    up = tf.image.resize(tf.convert_to_tensor(channel_maps, tf.float32)[..., None], size,
                         method="bilinear")[..., 0]
    low = tf.reduce_min(up, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(up, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(up - low, high - low)


def score_cam_weights(activations, class_probability, max_n: int | None = None,
                      chunk: int = 32, progress=None):
    """Score-CAM: alpha_k^c = p_c(X o H^k), the class probability of the image masked by H^k.

    ``class_probability(image_idx, channel_idx)`` scores a chunk of (image, channel) pairs.
    Channels whose activation is constant get weight 0 (their mask is undefined). ``max_n``
    keeps only the ``max_n`` channels of largest spatial variance per image (Faster Score-CAM).
    ``progress(count)`` is told how many masked images were scored. (N, h, w, K) -> (N, K).
    """
    a = np.asarray(activations)
    n, _, _, channels = a.shape
    variance = a.var(axis=(1, 2), dtype=np.float64)
    order = np.argsort(-variance, axis=1, kind="stable")
    keep = channels if max_n is None else min(max_n, channels)
    pairs = np.array([(i, k) for i in range(n) for k in order[i, :keep] if variance[i, k] > 0],
                     np.int64).reshape(-1, 2)
    weights = np.zeros((n, channels), np.float32)
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        count = len(part)
        if count < chunk:  # pad the last chunk so the compiled function keeps one shape
            part = np.concatenate([part, np.repeat(part[-1:], chunk - count, axis=0)])
        probs = np.asarray(class_probability(part[:, 0], part[:, 1]))
        weights[part[:count, 0], part[:count, 1]] = probs[:count]
        if progress is not None:
            progress(count)
    return weights


# --------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------
def cam(model: keras.Model, images, classes=None, layer: str | None = None,
        batch_size: int = 32, value_range=(0, 255)) -> CamResult:
    """Class Activation Mapping (Zhou et al., 2016): M_c = ReLU(sum_k w_k^c A^k).

    w^c is the column of the final Dense kernel for class c (``cam_weights``), so the model must
    end in feature map -> global average pooling -> (dropout) -> Dense. The ReLU follows the
    Score-CAM paper's restatement of CAM, so all methods are displayed alike.
    """
    split, x, wanted, batch_size = _prepare(model, images, classes, layer, batch_size,
                                            value_range)
    kinds = [type(l) for l in split.head_layers if not isinstance(l, keras.layers.Dropout)]
    if kinds != [keras.layers.GlobalAveragePooling2D, keras.layers.Dense]:
        names = " -> ".join(getattr(l, "name", "?") for l in split.head_layers) or "nothing"
        raise ValueError(
            f"CAM needs the layer {split.layer!r} to be followed by GlobalAveragePooling2D -> "
            f"(Dropout) -> Dense(classes); {model.name!r} has {names}. Use grad_cam, which works "
            "on any head (it equals CAM only on a pooling -> Dense head).")
    kernel = split.head_layers[-1].kernel
    if split.binary:  # one logit z: class 0 is explained by -z, class 1 by +z
        kernel = keras.ops.concatenate([-kernel, kernel], axis=1)
    return _explain("CAM", lambda b: cam_weights(kernel, b.classes), split, x, wanted,
                    batch_size, gradients=False)


def grad_cam(model: keras.Model, images, classes=None, layer: str | None = None,
             batch_size: int = 32, value_range=(0, 255)) -> CamResult:
    """Grad-CAM (Selvaraju et al., 2017) on the logit y^c:

        alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij,    L^c = ReLU(sum_k alpha_k^c A^k).
    """
    return _explain("Grad-CAM", lambda b: grad_cam_weights(b.gradients),
                    *_prepare(model, images, classes, layer, batch_size, value_range),
                    gradients=True)


def grad_cam_plus_plus(model: keras.Model, images, classes=None, layer: str | None = None,
                       batch_size: int = 32, value_range=(0, 255)) -> CamResult:
    """Grad-CAM++ (Chattopadhay et al., 2018), the closed form of their Eq. 19 on the logit y^c.

    L^c = ReLU(sum_k w_k^c A^k) with w from ``grad_cam_plus_plus_weights``: first-order
    gradients only (the exp(S^c) of the paper's exponential trick cancels), and *without* the
    renormalisation of alpha by its spatial sum that the authors' code and tf-keras-vis add
    (pytorch-grad-cam also omits it). On a pooling -> Dense head that renormalisation would turn
    Grad-CAM++ into CAM with its negative weights zeroed.
    """
    return _explain("Grad-CAM++", lambda b: grad_cam_plus_plus_weights(b.activations, b.gradients),
                    *_prepare(model, images, classes, layer, batch_size, value_range),
                    gradients=True)


def hires_cam(model: keras.Model, images, classes=None, layer: str | None = None,
              batch_size: int = 32, value_range=(0, 255)) -> CamResult:
    """HiResCAM (Draelos & Carin, 2020): L^c = ReLU(sum_k dy^c/dA^k o A^k), element-wise.

    Equals Grad-CAM where the gradient is spatially constant (a pooling -> Dense head at its last
    layer); differs at earlier layers, where it keeps the gradient's spatial detail.
    ``channel_weights`` holds each channel's mean gradient (Grad-CAM's weight).
    """
    return _explain("HiResCAM", lambda b: hires_cam_weights(b.gradients),
                    *_prepare(model, images, classes, layer, batch_size, value_range),
                    gradients=True)


def layer_cam(model: keras.Model, images, classes=None, layer: str | None = None,
              batch_size: int = 32, value_range=(0, 255)) -> CamResult:
    """LayerCAM (Jiang et al., 2021): L^c = ReLU(sum_k ReLU(dy^c/dA^k) o A^k), element-wise.

    Designed for shallow layers, where negative gradients would cancel fine detail; the paper
    also fuses several layers' maps, which camcore leaves to the caller (one layer per call).
    ``channel_weights`` holds each channel's mean positive gradient.
    """
    return _explain("LayerCAM", lambda b: layer_cam_weights(b.gradients),
                    *_prepare(model, images, classes, layer, batch_size, value_range),
                    gradients=True)


def activations_and_gradients(model: keras.Model, images, classes=None,
                              layer: str | None = None, batch_size: int = 32,
                              value_range=(0, 255)):
    """``(A, dy^c/dA, classes)`` at ``layer`` for each image: what the weight functions take.

    A and the gradients are (N, h, w, K) float32 numpy arrays, the gradient of the explained
    class's logit; for a few images (all N are held in memory).
    """
    split, x, wanted, batch_size = _prepare(model, images, classes, layer, batch_size,
                                            value_range)
    run = compiled(split, _forward_and_gradients)
    parts = [run(tf.constant(x[i:i + batch_size], tf.float32),
                 tf.constant(wanted[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    a, _, classes, g = (np.concatenate([p[j].numpy() for p in parts]) for j in range(4))
    return a, g, classes


def score_cam(model: keras.Model, images, classes=None, layer: str | None = None,
              max_n: int | None = None, batch_size: int = 32, progress: bool = True,
              value_range=(0, 255)) -> CamResult:
    """Score-CAM (Wang et al., 2020), streaming the masked images.

    alpha_k^c = p_c(X o H^k) (``score_cam_weights``), with the masks H^k of
    ``score_cam_masks``, and L^c = ReLU(sum_k alpha_k^c A^k). This is the variant of the
    authors' code (whose numbers fill the paper's tables): the probability after one softmax over
    the logits, no baseline subtracted. ``max_n`` keeps the ``max_n`` channels of largest
    spatial variance per image (Faster Score-CAM). The cost is one forward pass per image and
    channel scored: N x K passes with ``max_n=None`` (K = 1280 on the book's model, about 10 s
    an image on 2 CPU cores), N x ``max_n`` otherwise (the book uses 16 to 64). Masked images are
    built and scored ``batch_size`` at a time, so memory does not grow with K. With
    ``progress=True`` a progress bar counts the masked images when there are more than 2048.
    """
    split, x, wanted, batch_size = _prepare(model, images, classes, layer, batch_size,
                                            value_range)
    channels = split.feature_parts[-1].outputs[0].shape[-1]
    max_n = channels if max_n is None else min(check_count(max_n, "max_n"), channels)
    total = len(x) * max_n
    bar = (keras.utils.Progbar(total, unit_name="masked image")
           if progress and total > 2048 else None)
    score = compiled(split, _masked_probabilities)

    def weights(b: LayerBatch):
        def class_probability(image_idx, channel_idx):
            return score(b.images, b.activations, tf.constant(image_idx),
                         tf.constant(channel_idx), tf.gather(b.classes, image_idx)).numpy()
        return score_cam_weights(b.activations.numpy(), class_probability, max_n, batch_size,
                                 None if bar is None else bar.add)

    result = _explain("Score-CAM", weights, split, x, wanted, batch_size, gradients=False)
    if bar is not None:  # constant channels were skipped: close the bar at its target
        bar.update(total, finalize=True)
    return result


METHODS = {"CAM": cam, "Grad-CAM": grad_cam, "Grad-CAM++": grad_cam_plus_plus,
           "Score-CAM": score_cam, "HiResCAM": hires_cam, "LayerCAM": layer_cam}
