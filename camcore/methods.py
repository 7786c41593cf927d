"""CAM, Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM and LayerCAM on a Keras classifier's logits.

Notation (CONTRIBUTING.md): A^k is channel k of the target layer's activations (h x w), y^c the
logit (pre-softmax score) of class c, g^kc_ij = dy^c/dA^k_ij its gradient, Z = h*w. Every method
is one shared pipeline with its own *weight function*:

    split the model at the layer -> A, y (and g where needed), a batch at a time
    -> alpha = the method's weights -> L^c = ReLU(sum_k alpha_k^c o A^k) -> normalise to [0, 1]

where alpha_k^c is one number per channel (CAM, Grad-CAM, Grad-CAM++, Score-CAM) or one per
channel and position, alpha_k^c(i, j) (HiResCAM, LayerCAM), and o multiplies element by
element. CAM's alpha_k^c is w_k^c, the final Dense layer's weight.

The array functions (``cam_weights``, ``grad_cam_weights``, ...) take plain arrays, so each can
be read beside its formula and checked by hand. A method is one of them wrapped in a function
of a :class:`LayerBatch` and registered with :func:`register`, which makes the public function
(``grad_cam(model, images, ...)``, one call shape for all) and lists it in :data:`METHODS`;
CONTRIBUTING.md ("Adding a method") shows a new method added that way.

Each method returns a :class:`CamResult`.
"""

from __future__ import annotations

import functools
import inspect
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import keras
import numpy as np
import tensorflow as tf

from camcore.checks import check_classes, check_count, check_images
from camcore.model_split import SplitModel, feature_layers, resolve_layer, split_model
from camcore.progress import Progress

PROGRESS_AFTER = 2048  # progress lines when a call has more units of work (images, masked images)
POLE_MARGIN = 0.05  # Grad-CAM++: a term is near the pole of gamma where |2 + S g| < this
POLE_SHARE = 0.1  # ... and a share of the weight above this from such terms is warned


class EmptyMapWarning(UserWarning):
    """A class activation map with no positive value: it is returned as zeros."""


class NearPoleWarning(UserWarning):
    """Grad-CAM++: much of a channel weight comes from terms near the pole of gamma_ij^kc, where
    float32 rounding moves the map (see ``grad_cam_plus_plus_pole_share``)."""


@dataclass(frozen=True)
class CamResult:
    """What a method computed for a batch of N images.

    Attributes
    ----------
    method : str
        The method's name, e.g. ``"Grad-CAM"``.
    layer : str
        The target layer's path.
    maps : numpy.ndarray (N, h, w)
        L^c at the target layer, in [0, 1].
    classes : numpy.ndarray (N,)
        The explained class c of each image.
    scores : numpy.ndarray (N,)
        p_c on the unmasked image.
    channel_weights : numpy.ndarray (N, K)
        alpha_k^c, the weight each channel of A got (for methods with a weight per position,
        its mean over positions).
    input_size : tuple
        The images' (H, W).
    heatmaps : numpy.ndarray (N, H, W)
        The maps upsampled to the input size, in [0, 1]: computed on first use (they hold
        H*W/(h*w) times more numbers than the maps).

    Examples
    --------
    >>> result = camcore.grad_cam(model, images)
    >>> result.maps.shape, result.heatmaps.shape, result.channel_weights.shape
    ((3, 30, 30), (3, 32, 32), (3, 8))
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
    """p_c(X o M^k) for a chunk of (image, channel) pairs (see score_cam_masks)."""
    masks = score_cam_masks(tf.gather(tf.gather(a, image_idx), channel_idx, axis=3, batch_dims=1),
                            tf.shape(x)[1:3])
    probs = split.probabilities(split.logits(tf.gather(x, image_idx) * masks[..., None]))
    return tf.gather(probs, classes, axis=1, batch_dims=1)


def compiled(split: SplitModel, step):
    """``step`` traced with tf.function for this split, once (kept while the split lives).

    Wrapped in ``functools.partial`` so TensorFlow counts retracing per split: explaining several
    models or layers in one session does not trigger its retracing warning.

    Parameters
    ----------
    split : SplitModel
    step : callable
        ``step(split, *tensors)``, e.g. a weight function's forward pass.

    Returns
    -------
    callable
        ``step`` with ``split`` bound, as a ``tf.function``; the same object on every call.

    Examples
    --------
    >>> def logits(split, x):
    ...     return split.logits(x)
    >>> run = compiled(split_model(model), logits)
    >>> run(tf.constant(images)).shape, run is compiled(split_model(model), logits)
    (TensorShape([3, 4]), True)
    """
    per_split = _COMPILED.setdefault(split, {})
    if step not in per_split:
        per_split[step] = tf.function(functools.partial(step, split), reduce_retracing=True)
    return per_split[step]


def logits_and_probabilities(model: keras.Model, images, batch_size: int = 32,
                             value_range=(0, 255)):
    """The logits y and the probabilities p of each image, ``batch_size`` images at a time.

    p = softmax(y) (sigmoid(y) for a sigmoid classifier), whatever the model ends in.

    Parameters
    ----------
    model : keras.Model
        A built, single-input Keras classifier.
    images : array-like (N, H, W, 3)
        RGB pixels in ``value_range``.
    batch_size : int
        Images per forward pass.
    value_range : (low, high) or None
        The pixel range the model takes; None skips the pixel checks.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        y and p, each (N, C), float32.

    Examples
    --------
    >>> y, p = logits_and_probabilities(model, images)
    >>> y.shape, bool(np.allclose(p.sum(axis=1), 1, atol=1e-6))
    ((3, 4), True)
    """
    split = split_model(model)
    x = check_images(images, split.input_shape, value_range)
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
# The shared pipeline and the registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerBatch:
    """What a weight function may use, for a batch of b images (tensors, float32).

    Attributes
    ----------
    images : tf.Tensor (b, H, W, 3)
        X, as the model takes them.
    activations : tf.Tensor (b, h, w, K)
        A.
    gradients : tf.Tensor (b, h, w, K) or None
        g = dy^c/dA^k_ij, for methods registered with ``gradients=True``.
    classes : tf.Tensor (b,)
        The explained class c of each image.
    split : SplitModel
        The model cut at the layer (``split.class_kernel``, ``split.logits``, ...).
    offset : int
        The index of the batch's first image in the call (to name images in warnings).
    batch_size : int
        The caller's batch size (Score-CAM scores that many masked images at a time).
    progress : Progress
        The call's progress counter, for methods that count their own work.
    """

    images: tf.Tensor
    activations: tf.Tensor
    gradients: tf.Tensor | None
    classes: tf.Tensor
    split: SplitModel
    offset: int = 0
    batch_size: int = 32
    progress: Progress | None = None


@dataclass(frozen=True)
class Method:
    """A registered method: its weight function and what the pipeline must give it."""

    name: str
    weights: Callable  # (LayerBatch, **options) -> alpha, (b, K) or (b, h, w, K)
    gradients: bool
    options: dict  # the weight function's own keyword parameters and their defaults
    work: Callable | None  # (split, **options) -> units of work per image, for progress
    unit: str


METHODS: dict[str, Callable] = {}  # name -> public function, in registration order

_SHARED_PARAMETERS = """\
model : keras.Model
    A built, single-input functional or Sequential Keras classifier taking RGB images. It may
    end in a softmax or sigmoid (left out: the methods work on the logits) and nest its
    backbone.
images : array-like (N, H, W, 3)
    RGB pixels in ``value_range`` (uint8 or float); one image is ``image[None]``.
classes : None, int, N ints, or class names, optional
    The class c to explain for each image: None (the predicted class), one int for all, N
    ints (shape (N,) or (N, 1)), or names when the model records them.
layer : str, optional
    The target layer's name or path through nested models (``"outer/inner"``); default the
    last 4-D activation before pooling (``camcore.default_target_layer``).
batch_size : int, optional
    Images (Score-CAM: masked images) per forward pass; memory grows with it, not with N.
value_range : (low, high), optional
    The pixel range the model takes: ``(0, 255)`` (camcore's models) or ``(0, 1)``.
progress : bool, optional
    Print plain progress lines (``camcore.progress``) when the call has more than 2048
    {unit}."""

_RETURNS = """\
Returns
-------
CamResult
    ``maps`` (N, h, w) and ``heatmaps`` (N, H, W) in [0, 1], ``classes`` (N,) the explained
    class c, ``scores`` (N,) its probability p_c, ``channel_weights`` (N, K) alpha_k^c."""

_EXAMPLE = """\
Examples
--------
>>> result = {name}(model, images)   # a Keras classifier; 3 images (N, H, W, 3) in 0..255
>>> result.maps.shape, result.heatmaps.shape   # (N, h, w) at the layer, (N, H, W)
((3, 30, 30), (3, 32, 32))
>>> result.classes                             # the predicted class of each image
array([2, 3, 0])"""


def _docstring(weights, unit: str) -> str:
    """The public function's numpydoc: the weight function's text, then the shared sections.

    A ``Parameters`` section in the weight function's docstring documents its own options.
    """
    text = inspect.cleandoc(weights.__doc__ or "")
    text, _, options = text.partition("Parameters\n----------\n")
    return (f"{text.rstrip()}\n\nParameters\n----------\n"
            f"{_SHARED_PARAMETERS.format(unit=unit)}\n{options.rstrip()}\n\n{_RETURNS}\n\n"
            f"{_EXAMPLE.format(name=weights.__name__)}\n").replace("\n\n\n", "\n\n")


def register(name: str, *, gradients: bool, work: Callable | None = None,
             unit: str = "images"):
    """Make a weight function into a method: the public function, listed in ``METHODS``.

    The decorated function takes a :class:`LayerBatch` (and, optionally, keyword options with
    defaults) and returns alpha_k^c, (b, K) or (b, h, w, K). It is replaced by the public
    function ``f(model, images, classes=None, layer=None, batch_size=32,
    value_range=(0, 255), *, progress=True, **options) -> CamResult``, whose docstring is the
    weight function's followed by the shared Parameters, Returns and Examples.

    Parameters
    ----------
    name : str
        The method's display name (``CamResult.method``, the key in ``METHODS``); unique.
    gradients : bool
        Whether the weight function needs g = dy^c/dA (``batch.gradients``).
    work : callable, optional
        ``work(split, **options) -> int``, units of work per image, for methods that count
        their own progress with ``batch.progress.add`` (Score-CAM: masked images). Default: the
        pipeline counts images.
    unit : str
        What ``work`` counts, for the progress lines.

    Returns
    -------
    callable
        The decorator.

    Examples
    --------
    >>> @register("Mean-A", gradients=False)       # every channel weighted alike
    ... def mean_a(batch):
    ...     "A toy: alpha_k^c = 1."
    ...     return tf.ones(tf.shape(batch.activations)[::3])
    >>> mean_a(model, images).maps.shape
    (3, 30, 30)
    >>> del METHODS["Mean-A"]
    """
    def decorate(weights):
        if name in METHODS:
            raise ValueError(f"a method named {name!r} is already registered")
        own = list(inspect.signature(weights).parameters.values())[1:]
        spec = Method(name, weights, gradients, {p.name: p.default for p in own}, work, unit)

        def method(model, images, classes=None, layer=None, batch_size=32,
                   value_range=(0, 255), *, progress=True, **options):
            unknown = sorted(set(options) - set(spec.options))
            if unknown:
                raise TypeError(f"{weights.__name__}() got an unexpected keyword argument "
                                f"{unknown[0]!r}")
            return _explain(spec, model, images, classes, layer, batch_size, value_range,
                            progress, {**spec.options, **options})

        shared = list(inspect.signature(method).parameters.values())[:-1]
        method.__signature__ = inspect.Signature(
            shared + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own])
        method.__name__ = method.__qualname__ = weights.__name__
        method.__module__ = weights.__module__
        method.__doc__ = _docstring(weights, unit)
        method.method = spec
        METHODS[name] = method
        return method

    return decorate


def _prepare(model, images, classes, layer, batch_size, value_range):
    """The checked inputs of every method: ``(split, images, classes, batch_size)``."""
    split = split_model(model, layer)
    _check_map_size(model, split)
    x = check_images(images, split.input_shape, value_range)
    return split, x, check_classes(classes, len(x), split), check_count(batch_size, "batch_size")


def _check_map_size(model, split, shape=None):
    """A 1x1 map cannot show where: refuse it, naming layers with a larger output."""
    h, w = (shape or split.activation_shape)[:2]
    if h != 1 or w != 1:
        return
    def positions(path):
        h, w = resolve_layer(model, path)[-1].output.shape[1:3]
        return None if h is None or w is None else h * w

    larger = [path for path in feature_layers(model) if (positions(path) or 0) > 1]
    hint = f"e.g. {larger[-1]!r}" if larger else "or larger images"
    raise ValueError(f"layer {split.layer!r} gives a 1x1 map (A is 1x1xK): a map of one "
                     "position cannot show where the model looked. Choose an earlier layer "
                     f"with a larger output, {hint}.")


def _explain(spec: Method, model, images, classes, layer, batch_size, value_range, progress,
             options) -> CamResult:
    """Run ``spec.weights(batch) -> alpha`` batch by batch: L^c = ReLU(sum_k alpha_k^c A^k).

    alpha is (b, K), one weight per channel, or (b, h, w, K), one per channel and position.
    Memory holds one batch of activations at a time, in float32.
    """
    split, x, wanted, batch_size = _prepare(model, images, classes, layer, batch_size,
                                            value_range)
    per_image = 1 if spec.work is None else int(spec.work(split, **options))
    total = len(x) * per_image
    bar = Progress(total, spec.unit, label=spec.name,
                   quiet=not progress or total <= PROGRESS_AFTER)
    run = compiled(split, _forward_and_gradients if spec.gradients else _forward)
    maps, channel_weights, explained, scores = [], [], [], []
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size], tf.float32)
        a, y, cls, *g = run(xb, tf.constant(wanted[start:start + batch_size]))
        if start == 0:
            _check_map_size(model, split, a.shape[1:])
            _warn_if_probabilities(split, y.numpy())
        batch = LayerBatch(xb, a, g[0] if g else None, cls, split, start, batch_size, bar)
        alpha = tf.cast(spec.weights(batch, **options), tf.float32)
        full = alpha if alpha.shape.rank == 4 else alpha[:, None, None, :]
        maps.append(tf.nn.relu(tf.reduce_sum(full * a, axis=-1)).numpy())
        channel_weights.append(
            (alpha if alpha.shape.rank == 2 else tf.reduce_mean(alpha, (1, 2))).numpy())
        explained.append(cls.numpy())
        scores.append(tf.gather(split.probabilities(y), cls, axis=1, batch_dims=1).numpy())
        if spec.work is None:
            bar.add(len(xb))
    bar.close()
    explained = np.concatenate(explained)
    return CamResult(spec.name, split.layer,
                     normalize_maps(np.concatenate(maps), spec.name, explained),
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
    """Min-max normalise each map to [0, 1]: s(L) = (L - min L) / (max L - min L).

    A map with no range (all zeros after the ReLU, or constant) becomes zeros, with one
    :class:`EmptyMapWarning` naming the images, instead of a division by zero. A map counts as
    flat when its range is below float32 precision of its own magnitude, so valid maps of a tiny
    scale (a randomised network's, ~1e-13) are normalised like any other.

    Parameters
    ----------
    maps : array-like (N, ...)
        One map per image.
    method : str
        The method's name, for the warning.
    classes : array-like (N,), optional
        The explained classes, for the warning.
    warn : bool
        Whether flat maps are warned.

    Returns
    -------
    numpy.ndarray, float32, the shape of ``maps``

    Examples
    --------
    >>> normalize_maps(np.array([[[0.0, 1.0], [2.0, 4.0]]]))
    array([[[0.  , 0.25],
            [0.5 , 1.  ]]], dtype=float32)
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
    """Bilinear upsampling (half-pixel centres, as OpenCV) of maps to ``size``.

    Parameters
    ----------
    maps : array-like (N, h, w)
    size : (H, W)

    Returns
    -------
    numpy.ndarray, float32 (N, H, W)

    Examples
    --------
    >>> upsample(np.array([[[0.0, 1.0]]]), (1, 4))
    array([[[0.  , 0.25, 0.75, 1.  ]]], dtype=float32)
    """
    return tf.image.resize(np.asarray(maps, np.float32)[..., None], size,
                           method="bilinear").numpy()[..., 0]


def heatmaps_of(maps: np.ndarray, size, batch_size: int = 256) -> np.ndarray:
    """The heatmaps: maps upsampled to ``size`` and renormalised to [0, 1], a batch at a time.

    Parameters
    ----------
    maps : array-like (N, h, w)
    size : (H, W)
    batch_size : int
        Maps upsampled at a time.

    Returns
    -------
    numpy.ndarray, float32 (N, H, W)

    Examples
    --------
    >>> heatmaps_of(np.array([[[0.5, 1.0]]]), (1, 4))   # 0.5, 0.625, 0.875, 1 -> [0, 1]
    array([[[0.  , 0.25, 0.75, 1.  ]]], dtype=float32)
    """
    out = np.empty((len(maps), *size), np.float32)
    for start in range(0, len(maps), batch_size):
        out[start:start + batch_size] = normalize_maps(
            upsample(maps[start:start + batch_size], size), warn=False)
    return out


# --------------------------------------------------------------------------------------------
# The weight functions: arrays in, weights out
# --------------------------------------------------------------------------------------------
def cam_weights(dense_kernel, classes):
    """CAM: alpha_k^c = w_k^c, the final Dense kernel's column for class c.

    Parameters
    ----------
    dense_kernel : array-like (K, C)
        The Dense layer's kernel (``SplitModel.class_kernel``).
    classes : array-like (N,)

    Returns
    -------
    tf.Tensor (N, K)

    Examples
    --------
    >>> cam_weights(np.array([[1.0, 2.0], [3.0, 4.0]]), [1, 0]).numpy()
    array([[2., 4.],
           [1., 3.]])
    """
    return tf.transpose(tf.gather(tf.convert_to_tensor(dense_kernel), classes, axis=1))


def grad_cam_weights(gradients):
    """Grad-CAM: alpha_k^c = (1/Z) sum_ij g^kc_ij, the mean gradient.

    Parameters
    ----------
    gradients : array-like (N, h, w, K)
        g = dy^c/dA^k_ij.

    Returns
    -------
    tf.Tensor (N, K)

    Examples
    --------
    >>> grad_cam_weights(np.arange(1.0, 9.0).reshape(1, 2, 2, 2)).numpy()
    array([[4., 5.]])
    """
    return tf.reduce_mean(gradients, axis=(1, 2))


def grad_cam_plus_plus_gamma(activations, gradients):
    """Grad-CAM++'s weight of each position (their Eq. 19, the paper's alpha), first-order:

        gamma_ij^kc = g^2 / (2 g^2 + S_k g^3) = 1 / (2 + S_k g),   S_k = sum_ab A^k_ab,

    with g = g^kc_ij, and gamma = 0 where the denominator is 0 (g = 0). Where g is the same at
    every position (a pooling -> Dense head at its last layer) gamma is too. gamma has a pole
    where 2 + S_k g = 0: see ``grad_cam_plus_plus_pole_share``.

    Parameters
    ----------
    activations : array-like (N, h, w, K)
        A.
    gradients : array-like (N, h, w, K)
        g.

    Returns
    -------
    tf.Tensor (N, h, w, K)

    Examples
    --------
    >>> a = np.array([1.0, 3.0]).reshape(1, 1, 2, 1)     # S = 4
    >>> g = np.array([0.5, -1.0]).reshape(1, 1, 2, 1)
    >>> grad_cam_plus_plus_gamma(a, g).numpy().ravel()   # 1/(2 + 2), 1/(2 - 4)
    array([ 0.25, -0.5 ])
    """
    a_sum = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
    g2 = tf.square(gradients)
    return tf.math.divide_no_nan(g2, 2 * g2 + a_sum * g2 * gradients)


def grad_cam_plus_plus_weights(activations, gradients):
    """Grad-CAM++: alpha_k^c = sum_ij gamma_ij^kc ReLU(g^kc_ij).

    Parameters
    ----------
    activations : array-like (N, h, w, K)
        A.
    gradients : array-like (N, h, w, K)
        g.

    Returns
    -------
    tf.Tensor (N, K)

    Examples
    --------
    >>> a = np.array([1.0, 3.0]).reshape(1, 1, 2, 1)
    >>> g = np.array([0.5, -1.0]).reshape(1, 1, 2, 1)
    >>> grad_cam_plus_plus_weights(a, g).numpy()         # 0.25 * 0.5 - 0.5 * 0
    array([[0.125]])
    """
    gamma = grad_cam_plus_plus_gamma(activations, gradients)
    return tf.reduce_sum(gamma * tf.nn.relu(gradients), axis=(1, 2))


def grad_cam_plus_plus_pole_share(activations, gradients, margin: float = POLE_MARGIN):
    """The share of each image's Grad-CAM++ weight that comes from terms near gamma's pole.

    The terms are t_ijk = gamma_ij^kc ReLU(g^kc_ij), gamma = 1 / (2 + S_k g); a term is near
    the pole when |2 + S_k g| < ``margin``. The share is sum_near |t| / sum_all |t| (0 for an
    image without weight), computed in float64. Near the pole gamma is large and changes
    sign, so the rounding of g and S_k in float32 moves such weights: a large share means the
    map is not stable. With A >= 0 (a layer after a ReLU) S_k >= 0, so a term with ReLU(g) > 0
    has 2 + S_k g >= 2 and the share is 0; it can be large only at layers with signed
    activations (S_k < 0).

    Parameters
    ----------
    activations : array-like (N, h, w, K)
        A.
    gradients : array-like (N, h, w, K)
        g.
    margin : float
        How close to the pole a term counts as near.

    Returns
    -------
    numpy.ndarray, float64 (N,)

    Examples
    --------
    >>> a = np.array([-1.0, -3.0]).reshape(1, 1, 2, 1)   # S = -4
    >>> g = np.array([0.4975, 0.1]).reshape(1, 1, 2, 1)   # 2 + S g = 0.01 and 1.6
    >>> grad_cam_plus_plus_pole_share(a, g).round(4)     # 49.75 / (49.75 + 0.0625)
    array([0.9987])
    """
    a = np.asarray(activations, np.float64)
    g = np.asarray(gradients, np.float64)
    denominator = 2 + a.sum(axis=(1, 2), keepdims=True) * g
    terms = np.abs(np.divide(np.maximum(g, 0), denominator, out=np.zeros_like(g),
                             where=denominator != 0))
    near = np.abs(denominator) < margin
    total = terms.sum(axis=(1, 2, 3))
    return np.divide((terms * near).sum(axis=(1, 2, 3)), total, out=np.zeros_like(total),
                     where=total > 0)


def hires_cam_weights(gradients):
    """HiResCAM: one weight per channel *and position*, the gradient itself,
    alpha_k^c(i, j) = g^kc_ij.

    The map sum_k alpha_k^c o A^k is the first-order (gradient x input) term of y^c at the
    layer, so it is faithful to the model there; where the gradient is the same at every
    position it is Z times Grad-CAM's map.

    Parameters
    ----------
    gradients : array-like (N, h, w, K)
        g.

    Returns
    -------
    tf.Tensor (N, h, w, K)

    Examples
    --------
    >>> hires_cam_weights(np.array([-1.0, 2.0]).reshape(1, 1, 2, 1)).numpy().ravel()
    array([-1.,  2.])
    """
    return tf.convert_to_tensor(gradients)


def layer_cam_weights(gradients):
    """LayerCAM: the positive part of the gradient, per channel and position,
    alpha_k^c(i, j) = ReLU(g^kc_ij).

    Parameters
    ----------
    gradients : array-like (N, h, w, K)
        g.

    Returns
    -------
    tf.Tensor (N, h, w, K)

    Examples
    --------
    >>> layer_cam_weights(np.array([-1.0, 2.0]).reshape(1, 1, 2, 1)).numpy().ravel()
    array([0., 2.])
    """
    return tf.nn.relu(gradients)


def score_cam_masks(channel_maps, size):
    """Score-CAM's masks M^k = s(Up(A^k)) (the paper's H^k): bilinear to ``size``, then
    min-max to [0, 1], s(M) = (M - min M) / (max M - min M); a constant map gives a zero mask.

    Parameters
    ----------
    channel_maps : array-like (M, h, w)
        One channel A^k per mask.
    size : (H, W)

    Returns
    -------
    tf.Tensor, float32 (M, H, W)

    Examples
    --------
    >>> score_cam_masks(np.array([[[1.0, 2.0], [3.0, 5.0]]]), (2, 2)).numpy()
    array([[[0.  , 0.25],
            [0.5 , 1.  ]]], dtype=float32)
    """
    up = tf.image.resize(tf.convert_to_tensor(channel_maps, tf.float32)[..., None], size,
                         method="bilinear")[..., 0]
    low = tf.reduce_min(up, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(up, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(up - low, high - low)


def score_cam_weights(activations, class_probability, max_n: int | None = None,
                      chunk: int = 32, progress=None):
    """Score-CAM: alpha_k^c = p_c(X o M^k), the class probability of the image masked by M^k.

    Channels whose activation is constant get weight 0 (their mask is undefined).

    Parameters
    ----------
    activations : array-like (N, h, w, K)
        A.
    class_probability : callable
        ``class_probability(image_idx, channel_idx)`` scores a chunk of (image, channel) pairs:
        p_c of each image masked by that channel's M^k.
    max_n : int, optional
        Keep only the ``max_n`` channels of largest spatial variance per image (Faster
        Score-CAM).
    chunk : int
        Pairs scored at a time (the last chunk is padded to this size).
    progress : callable, optional
        ``progress(count)`` is told how many of the N x min(max_n, K) (image, channel) pairs
        are done: those scored, a chunk at a time, then those skipped (constant channels).

    Returns
    -------
    numpy.ndarray, float32 (N, K)

    Examples
    --------
    >>> a = np.zeros((1, 2, 2, 2)); a[0, 0, 0, 1] = 1.0        # channel 0 constant
    >>> score_cam_weights(a, lambda i, k: 0.1 * (k + 1))
    array([[0. , 0.2]], dtype=float32)
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
    if progress is not None and n * keep > len(pairs):
        progress(n * keep - len(pairs))
    return weights


# --------------------------------------------------------------------------------------------
# The methods: a weight function of a LayerBatch each, registered
# --------------------------------------------------------------------------------------------
@register("CAM", gradients=False)
def cam(batch: LayerBatch):
    """Class Activation Mapping (Zhou et al., 2016): L^c = ReLU(sum_k w_k^c A^k).

    alpha_k^c = w_k^c, the final Dense layer's weight from channel k to class c
    (``cam_weights``), so the model must end in feature map -> global average pooling ->
    (dropout) -> Dense. The ReLU follows the Score-CAM paper's restatement of CAM, so all
    methods are displayed alike.
    """
    return cam_weights(batch.split.class_kernel, batch.classes)


@register("Grad-CAM", gradients=True)
def grad_cam(batch: LayerBatch):
    """Grad-CAM (Selvaraju et al., 2017) on the logit y^c:

        alpha_k^c = (1/Z) sum_ij g^kc_ij,    L^c = ReLU(sum_k alpha_k^c A^k).
    """
    return grad_cam_weights(batch.gradients)


@register("Grad-CAM++", gradients=True)
def grad_cam_plus_plus(batch: LayerBatch):
    """Grad-CAM++ (Chattopadhay et al., 2018), the closed form of their Eq. 19 on the logit y^c:

        alpha_k^c = sum_ij gamma_ij^kc ReLU(g^kc_ij),  gamma_ij^kc = 1 / (2 + S_k g^kc_ij),

    S_k = sum_ab A^k_ab (``grad_cam_plus_plus_weights``; gamma is the paper's alpha), and
    L^c = ReLU(sum_k alpha_k^c A^k): first-order gradients only (the exp of the paper's
    exponential trick cancels), and *without* the renormalisation of gamma by its spatial sum
    that the authors' code and tf-keras-vis add (pytorch-grad-cam also omits it). On a
    pooling -> Dense head that renormalisation would turn Grad-CAM++ into CAM with its
    negative weights zeroed.

    At layers with signed activations (S_k < 0) gamma has a pole where 2 + S_k g = 0; terms
    near it are large, change sign across it, and are moved by float32 rounding. When more than
    10 % of an image's weight comes from terms with |2 + S_k g| < 0.05, a
    :class:`NearPoleWarning` names the images (``grad_cam_plus_plus_pole_share`` gives the
    share). After a ReLU (A >= 0) this cannot happen. At the book's 28x28 block output
    (``efficientnet_lite0/block3b_add``, signed) the median share over 24 test images was a
    third, and one of the 24 maps changed completely between float32 and float64.
    """
    share = grad_cam_plus_plus_pole_share(batch.activations, batch.gradients)
    near = np.flatnonzero(share > POLE_SHARE)
    if near.size:
        warnings.warn(
            f"Grad-CAM++ at {batch.split.layer!r}: for image(s) "
            f"{(near + batch.offset)[:10].tolist()}{', ...' if near.size > 10 else ''} "
            f"({near.size} of {len(share)}), {share[near].max():.0%} (at most) of the "
            "weight comes from terms near the pole of gamma_ij^kc = 1 / (2 + S_k g) "
            f"(|2 + S_k g| < {POLE_MARGIN}, S_k = sum_ab A^k_ab): there float32 rounding moves "
            "the weights, so the map is not stable. This happens at layers with signed "
            "activations; prefer a layer after a ReLU, or Grad-CAM / HiResCAM. "
            "methods.grad_cam_plus_plus_pole_share gives the share per image.",
            NearPoleWarning, stacklevel=4)
    return grad_cam_plus_plus_weights(batch.activations, batch.gradients)


@register("Score-CAM", gradients=False, unit="masked images",
          work=lambda split, max_n=None: _max_n(split, max_n))
def score_cam(batch: LayerBatch, max_n=None):
    """Score-CAM (Wang et al., 2020), streaming the masked images.

    alpha_k^c = p_c(X o M^k) (``score_cam_weights``), with the masks M^k (the paper's H^k)
    of ``score_cam_masks``, and L^c = ReLU(sum_k alpha_k^c A^k). This is the variant of the
    authors' code (whose numbers fill the paper's tables): the probability after one softmax
    over the logits, no baseline subtracted. The cost is one forward pass per image and channel
    scored: N x K passes with ``max_n=None`` (K = 1280 on the book's model, a few hundred of
    them not constant: about 2.5 s an image on 2 CPU cores), N x ``max_n`` otherwise (the book
    uses 16 to 128). Masked images are built and scored ``batch_size`` at a time, so memory
    does not grow with K.

    Parameters
    ----------
    max_n : int, optional
        Keep the ``max_n`` channels of largest spatial variance per image (Faster Score-CAM);
        None scores all K.
    """
    score = compiled(batch.split, _masked_probabilities)

    def class_probability(image_idx, channel_idx):
        return score(batch.images, batch.activations, tf.constant(image_idx),
                     tf.constant(channel_idx), tf.gather(batch.classes, image_idx)).numpy()

    return score_cam_weights(batch.activations.numpy(), class_probability,
                             _max_n(batch.split, max_n), batch.batch_size,
                             None if batch.progress is None else batch.progress.add)


def _max_n(split: SplitModel, max_n) -> int:
    """Score-CAM's channels scored per image: ``max_n`` (checked), at most K."""
    return split.channels if max_n is None else min(check_count(max_n, "max_n"), split.channels)


@register("HiResCAM", gradients=True)
def hires_cam(batch: LayerBatch):
    """HiResCAM (Draelos & Carin, 2020): L^c = ReLU(sum_k g^kc o A^k), element-wise.

    alpha_k^c(i, j) = g^kc_ij (``hires_cam_weights``). Equals Grad-CAM where the gradient is
    spatially constant (a pooling -> Dense head at its last layer); differs at earlier layers,
    where it keeps the gradient's spatial detail. ``channel_weights`` holds each channel's mean
    gradient (Grad-CAM's weight).
    """
    return hires_cam_weights(batch.gradients)


@register("LayerCAM", gradients=True)
def layer_cam(batch: LayerBatch):
    """LayerCAM (Jiang et al., 2021): L^c = ReLU(sum_k ReLU(g^kc) o A^k), element-wise.

    alpha_k^c(i, j) = ReLU(g^kc_ij) (``layer_cam_weights``). Designed for shallow layers,
    where negative gradients would cancel fine detail; the paper also fuses several layers'
    maps, which camcore leaves to the caller (one layer per call). ``channel_weights`` holds
    each channel's mean positive gradient.
    """
    return layer_cam_weights(batch.gradients)


def activations_and_gradients(model: keras.Model, images, classes=None,
                              layer: str | None = None, batch_size: int = 32,
                              value_range=(0, 255)):
    """A, g = dy^c/dA and the explained classes at ``layer``: what the weight functions take.

    For a few images: all N are held in memory.

    Parameters
    ----------
    model, images, classes, layer, batch_size, value_range
        As for the methods (``help(camcore.grad_cam)``).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        A (N, h, w, K) and g (N, h, w, K), float32, and the classes c (N,).

    Examples
    --------
    >>> a, g, classes = activations_and_gradients(model, images, classes=1)
    >>> a.shape, g.shape, classes
    ((3, 30, 30, 8), (3, 30, 30, 8), array([1, 1, 1]))
    """
    split, x, wanted, batch_size = _prepare(model, images, classes, layer, batch_size,
                                            value_range)
    run = compiled(split, _forward_and_gradients)
    parts = [run(tf.constant(x[i:i + batch_size], tf.float32),
                 tf.constant(wanted[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    a, _, classes, g = (np.concatenate([p[j].numpy() for p in parts]) for j in range(4))
    return a, g, classes
