"""Faithfulness metrics: do the pixels a map points at carry the model's confidence?

All scores are the softmax probability p_c of the explained class c (one softmax over the
logits), on raw RGB images in [0, 255], where a masked pixel is black.

* Grad-CAM++ paper (Chattopadhay et al., 2018), with the explanation image E = heatmap o X (the
  heatmap, in [0, 1], times the image X), Y_i = p_c(X_i) and O_i = p_c(E_i):

      Average Drop % = 100 * mean_i max(0, Y_i - O_i) / Y_i
      % Increase in Confidence = 100 * mean_i 1[O_i > Y_i]
      Win % of method a over b = 100 * mean_i 1[O_i^a > O_i^b]   (ties count one half each)

* Comparing two methods on these scores is ``camcore.stats``'s job (the book's one decision
  rule: paired, family-corrected intervals and verdicts).

* Area-matched removal: Average Drop keeps the image under the whole map, so a method with
  larger maps keeps more of the image. ``top_fraction_masks`` gives every method the same share
  of pixels (its top fraction), so the comparison is about *where* the map points, not how much.

* RISE (Petsiuk et al., 2018): pixels are ranked by decreasing saliency and, ``step`` pixels at
  a time, deleted (set to black) from the image, or inserted into a blurred copy of it (Gaussian,
  11x11, sigma 5). The score after each step gives a curve on [0, 1]; its trapezoid area is the
  Deletion AUC (lower is better) or the Insertion AUC (higher is better). Both remove the same
  number of pixels per step for every method, so they are area-matched by construction.

* ROAD (Rong et al., 2022): the removed pixels are not set to a fixed value (whose pattern the
  model can read) but imputed from their neighbours, "noisy linear imputation": each removed
  pixel is the weighted mean of its 8 neighbours (1/6 for the 4 direct ones, 1/12 for the
  diagonals; neighbours outside the image dropped), all removed pixels solved jointly as one
  sparse linear system, plus Gaussian noise. Pixels are removed most relevant first (MoRF: the
  probability should fall fast, lower is better) or least relevant first (LeRF: higher is better).

Every function checks its input as the methods do (``camcore.checks``): equal lengths, finite
values, classes in range, heatmaps in [0, 1] at the images' size, valid ``step`` and
``fractions``, a non-empty batch.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from camcore.checks import (
    check_classes,
    check_count,
    check_heatmaps,
    check_images,
    check_number,
    check_scores,
)
from camcore.methods import logits_and_probabilities
from camcore.model_split import split_model
from camcore.progress import Progress

PROGRESS_AFTER = 2048  # deletion/insertion: progress lines for more images x steps than this


def _checked(model: keras.Model, images, heatmaps, classes):
    """Images, heatmaps at their size and classes in range: ``(x float32, maps, classes)``."""
    split = split_model(model)
    x = check_images(images, split.input_shape)
    maps = check_heatmaps(heatmaps, x.shape[1:3], len(x))
    return np.asarray(x, np.float32), maps, check_classes(classes, len(x), split,
                                                          predicted_ok=False)


def class_probabilities(model: keras.Model, images, classes, batch_size: int = 32,
                        value_range=(0, 255)) -> np.ndarray:
    """p_c for each image and its class c: softmax of the logits, ``batch_size`` at a time.

    Parameters
    ----------
    model : keras.Model
        A built, single-input Keras classifier.
    images : array-like (N, H, W, 3)
        RGB pixels in ``value_range``.
    classes : int or N ints
        The class c of each image (or one for all).
    batch_size : int
        Images per forward pass.
    value_range : (low, high) or None
        None skips the pixel checks: the metrics use it for the masked images they derive
        from checked ones (a mostly deleted image may look like a [0, 1] image).

    Returns
    -------
    numpy.ndarray, float32 (N,)

    Examples
    --------
    >>> class_probabilities(model, images, [2, 3, 0]).shape
    (3,)
    """
    split = split_model(model)
    x = check_images(images, split.input_shape, value_range)
    classes = check_classes(classes, len(x), split, predicted_ok=False)
    _, probs = logits_and_probabilities(model, x, batch_size, None)
    return probs[np.arange(len(probs)), classes]


def explanation_scores(model, images, heatmaps, classes, batch_size: int = 32):
    """``(Y, O)``: p_c of each image, and of its explanation image E = heatmap * image.

    Parameters
    ----------
    model : keras.Model
        A built, single-input Keras classifier taking pixels in 0..255.
    images : array-like (N, H, W, 3)
    heatmaps : array-like (N, H, W)
        In [0, 1], at the images' size (``CamResult.heatmaps``).
    classes : int or N ints
        The class each heatmap explains (``CamResult.classes``).
    batch_size : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Y and O, each (N,).

    Examples
    --------
    >>> result = camcore.grad_cam(model, images)
    >>> y, o = explanation_scores(model, images, result.heatmaps, result.classes)
    >>> y.shape, o.shape
    ((3,), (3,))
    """
    x, maps, classes = _checked(model, images, heatmaps, classes)
    return (class_probabilities(model, x, classes, batch_size),
            class_probabilities(model, x * maps[..., None], classes, batch_size, None))


def average_drop(y, o) -> float:
    """Average Drop % = 100 * mean_i max(0, Y_i - O_i) / Y_i (lower is better).

    Parameters
    ----------
    y : array-like (N,)
        p_c of each image, Y_i > 0.
    o : array-like (N,)
        p_c of each explanation image.

    Returns
    -------
    float

    Examples
    --------
    >>> average_drop([0.5, 0.8], [0.25, 0.9])     # (50 % + 0 %) / 2
    25.0
    """
    return float(np.mean(per_image_drop(y, o)))


def increase_in_confidence(y, o) -> float:
    """% Increase in Confidence = 100 * mean_i 1[O_i > Y_i] (higher is better).

    Parameters
    ----------
    y : array-like (N,)
        p_c of each image.
    o : array-like (N,)
        p_c of each explanation image.

    Returns
    -------
    float

    Examples
    --------
    >>> increase_in_confidence([0.5, 0.8], [0.25, 0.9])
    50.0
    """
    y = check_scores(y, "y")
    return float(100 * np.mean(check_scores(o, "o", len(y)) > y))


def win_percent(o_a, o_b) -> float:
    """Share (%) of images where method a's explanation keeps more confidence than b's.

    Win % = 100 * mean_i (1[O_i^a > O_i^b] + 1/2 1[O_i^a = O_i^b]). The same image's Y is
    subtracted on both sides, so a smaller drop is a larger O. Ties count one half, so
    win_percent(a, b) + win_percent(b, a) = 100.

    Parameters
    ----------
    o_a, o_b : array-like (N,)
        p_c of the explanation images of methods a and b, for the same images.

    Returns
    -------
    float

    Examples
    --------
    >>> win_percent([0.5, 0.2, 0.9], [0.4, 0.2, 0.95])   # a win, a tie, a loss
    50.0
    """
    o_a = check_scores(o_a, "o_a")
    o_b = check_scores(o_b, "o_b", len(o_a))
    return float(100 * np.mean((o_a > o_b) + 0.5 * (o_a == o_b)))


def per_image_drop(y, o) -> np.ndarray:
    """Each image's share of Average Drop: 100 * max(0, Y_i - O_i) / Y_i.

    Parameters
    ----------
    y : array-like (N,)
        p_c of each image, Y_i > 0 (the drop is relative to it).
    o : array-like (N,)
        p_c of each explanation image.

    Returns
    -------
    numpy.ndarray, float64 (N,)
        Their mean is Average Drop.

    Examples
    --------
    >>> per_image_drop([0.8, 0.5], [0.4, 0.6])
    array([50.,  0.])
    """
    y = check_scores(y, "y")
    o = check_scores(o, "o", len(y))
    zero = np.flatnonzero(y == 0)
    if zero.size:
        raise ValueError(f"y #{', #'.join(map(str, zero[:10]))}: Y = 0, the model gives the "
                         "class no probability on the image itself, so a drop relative to Y is "
                         "undefined. Explain the predicted class, or leave those images out.")
    return 100 * np.maximum(0.0, y - o) / y


def top_fraction_masks(heatmaps, fraction: float) -> np.ndarray:
    """Binary masks keeping each map's top ``fraction`` of pixels: exactly round(f * H * W) ones.

    Ties are broken by position (stable sort), so a flat map still keeps exactly that many.

    Parameters
    ----------
    heatmaps : array-like (N, H, W)
        In [0, 1].
    fraction : float in (0, 1]

    Returns
    -------
    numpy.ndarray, float32 (N, H, W)

    Examples
    --------
    >>> top_fraction_masks(np.array([[[0.1, 0.9], [0.5, 0.2]]]), 0.5)
    array([[[0., 1.],
            [1., 0.]]], dtype=float32)
    """
    fraction = check_number(fraction, "fraction", 0, 1, low_open=True)
    maps = check_heatmaps(heatmaps)
    _, h, w = maps.shape
    if round(fraction * h * w) == 0:
        raise ValueError(f"fraction {fraction:g} of {h}x{w} pixels keeps no pixel: give at "
                         f"least {0.5 / (h * w):.2g}")
    return _top_fraction(maps, fraction)


def _top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Masks of the round(f * H * W) highest ``scores`` (N, H, W) per image, ties by position."""
    n, h, w = scores.shape
    keep = int(round(fraction * h * w))
    order = np.argsort(-scores.reshape(n, -1), axis=1, kind="stable")[:, :keep]
    masks = np.zeros((n, h * w), np.float32)
    np.put_along_axis(masks, order, 1.0, axis=1)
    return masks.reshape(n, h, w)


def auc(curve) -> float:
    """Trapezoid area under scores s_0..s_n taken at n + 1 equally spaced points of [0, 1].

    AUC = (sum_t s_t - (s_0 + s_n) / 2) / n, along the last axis.

    Parameters
    ----------
    curve : array-like (..., n + 1), n >= 1

    Returns
    -------
    float or numpy.ndarray
        One area per curve.

    Examples
    --------
    >>> float(auc([1.0, 0.5, 0.0]))
    0.5
    """
    curve = np.asarray(curve, np.float64)
    if curve.ndim == 0 or curve.shape[-1] < 2 or not np.isfinite(curve).all():
        raise ValueError(f"auc needs finite curves of at least 2 points (last axis); got shape "
                         f"{curve.shape}")
    n = curve.shape[-1] - 1
    return (curve.sum(axis=-1) - (curve[..., 0] + curve[..., -1]) / 2) / n


def blur(images: np.ndarray) -> np.ndarray:
    """RISE's insertion baseline: a Gaussian blur, 11x11 kernel, sigma 5, per channel.

    Parameters
    ----------
    images : array-like (N, H, W, C)

    Returns
    -------
    numpy.ndarray, float32 (N, H, W, C)

    Examples
    --------
    >>> float(blur(np.full((1, 8, 8, 3), 7.0)).max().round(4))   # a constant image stays
    7.0
    """
    return np.stack([cv2.GaussianBlur(np.asarray(im, np.float32), (11, 11), 5) for im in images])


def deletion_insertion(model, images, heatmaps, classes, step: int | None = None,
                       batch_size: int = 32, progress: bool = True):
    """RISE deletion and insertion curves, ``(deletion, insertion)``.

    Pixel order: decreasing heatmap value, ties broken by position (stable sort); ``step``
    pixels change per step. The states of several images go through the model together,
    ``batch_size`` at a time, and the ends every map shares (the image, its blurred copy,
    the black image) are scored once.

    Parameters
    ----------
    model : keras.Model
        A built, single-input Keras classifier taking pixels in 0..255.
    images : array-like (N, H, W, 3)
    heatmaps : array-like (N, H, W)
        In [0, 1], at the images' size (``CamResult.heatmaps``, not the maps).
    classes : int or N ints
        The class each heatmap explains (``CamResult.classes``).
    step : int, optional
        Pixels per step; default H*W/32 rounded up (33 points per curve).
    batch_size : int
    progress : bool
        Plain progress lines for more than 2048 images x steps.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Each (N, n_steps + 1): p_c after each step; ``auc`` gives their areas.

    Examples
    --------
    >>> result = camcore.grad_cam(model, images)
    >>> deletion, insertion = deletion_insertion(model, images, result.heatmaps,
    ...                                          result.classes, step=128)
    >>> deletion.shape                               # 32 x 32 / 128 = 8 steps
    (3, 9)
    """
    x, maps, classes = _checked(model, images, heatmaps, classes)
    n, h, w, _ = x.shape
    step = -(-h * w // 32) if step is None else check_count(step, "step")
    n_steps = -(-h * w // step)
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None], axis=1)
    rank = rank.reshape(n, h, w, 1)
    blurred = blur(x)
    curves = np.zeros((2, n, n_steps + 1))
    # The ends are the same for every map: deletion starts at the image and ends black,
    # insertion starts blurred and ends at the image. They are scored once each.
    _, black = logits_and_probabilities(model, np.zeros((1, h, w, 3), np.float32), 1, None)
    curves[0, :, n_steps] = black[0, classes]
    ends = np.concatenate([x, blurred])
    p_ends = class_probabilities(model, ends, np.concatenate([classes, classes]),
                                 batch_size, None)
    curves[0, :, 0] = curves[1, :, n_steps] = p_ends[:n]
    curves[1, :, 0] = p_ends[n:]
    # The steps in between, batch_size states at a time across images.
    inner = np.arange(1, n_steps) * step
    pending, rows = [], []
    bar = Progress(n, "images", label="Deletion and insertion",
                   quiet=not progress or n * n_steps <= PROGRESS_AFTER)

    def score(count):
        states, where = np.concatenate(pending), np.concatenate(rows)
        p = class_probabilities(model, states[:count], classes[where[:count, 1]],
                                batch_size, None)
        curves[where[:count, 0], where[:count, 1], where[:count, 2]] = p
        pending[:], rows[:] = [states[count:]], [where[count:]]

    for i in range(n):
        shown = rank[i][None] < inner[:, None, None, None]
        pending += [np.where(shown, 0.0, x[i]),  # the top-ranked pixels turn black
                    np.where(shown, x[i], blurred[i])]  # the top-ranked pixels come back
        rows += [np.array([(kind, i, t) for t in range(1, n_steps)], np.int64).reshape(-1, 3)
                 for kind in (0, 1)]
        waiting = sum(len(part) for part in pending)
        if waiting >= batch_size:
            score(waiting - waiting % batch_size)
        bar.add(1)
    waiting = sum(len(part) for part in pending)
    if waiting:
        score(waiting)
    bar.close()
    return curves[0], curves[1]


# --------------------------------------------------------------------------------------------
# ROAD: remove and debias
# --------------------------------------------------------------------------------------------
_NEIGHBOURS = [((-1, 0), 1 / 6), ((1, 0), 1 / 6), ((0, -1), 1 / 6), ((0, 1), 1 / 6),
               ((-1, -1), 1 / 12), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((1, 1), 1 / 12)]


def noisy_linear_imputation(image, removed, noise: float = 2.55, seed: int = 0) -> np.ndarray:
    """ROAD's imputation of the ``removed`` pixels of one image.

    Each removed pixel x_p satisfies sum_q w_q (x_p - x_q) = 0 over its neighbours q in the image
    (w = 1/6 direct, 1/12 diagonal): one sparse linear system for all removed pixels, the known
    pixels on the right-hand side. Then Gaussian noise of std ``noise`` (default 1 % of the 0..255
    range) is added to the imputed pixels, and the result clipped to 0..255.

    Parameters
    ----------
    image : array-like (H, W, C)
    removed : array-like of bool (H, W)
    noise : float
        The noise's standard deviation.
    seed : int

    Returns
    -------
    numpy.ndarray, float32 (H, W, C)

    Examples
    --------
    >>> image = np.full((3, 3, 1), 100.0); image[1, 1] = 0
    >>> hole = np.zeros((3, 3), bool); hole[1, 1] = True
    >>> float(noisy_linear_imputation(image, hole, noise=0)[1, 1, 0])   # its neighbours' mean
    100.0
    """
    image = np.asarray(image, np.float64)
    removed = np.asarray(removed, bool)
    if image.ndim != 3 or removed.shape != image.shape[:2]:
        raise ValueError(f"noisy_linear_imputation takes one image (H, W, C) and a mask (H, W); "
                         f"got shapes {image.shape} and {removed.shape}")
    h, w, _ = image.shape
    index = -np.ones((h, w), np.int64)
    ys, xs = np.nonzero(removed)
    index[ys, xs] = np.arange(len(ys))
    if len(ys) == 0:
        return image.astype(np.float32)
    rows, cols, vals = [], [], []
    diagonal = np.zeros(len(ys))
    rhs = np.zeros((len(ys), image.shape[2]))
    for (dy, dx), weight in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        diagonal[inside] += weight
        unknown = np.zeros_like(inside)
        unknown[inside] = removed[ny[inside], nx[inside]]
        rows.append(np.flatnonzero(unknown))
        cols.append(index[ny[unknown], nx[unknown]])
        vals.append(np.full(unknown.sum(), -weight))
        known = inside & ~unknown
        rhs[known] += weight * image[ny[known], nx[known]]
    own = np.arange(len(ys))
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate([diagonal, *vals]),
         (np.concatenate([own, *rows]), np.concatenate([own, *cols]))), shape=(len(ys), len(ys)))
    solved = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs).reshape(len(ys), -1)
    out = image.copy()
    out[ys, xs] = solved + np.random.default_rng(seed).normal(0, noise, solved.shape)
    return np.clip(out, 0, 255).astype(np.float32)


def road(model, images, heatmaps, classes, fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
         batch_size: int = 32, progress: bool = True):
    """ROAD curves ``(morf, lerf)``: p_c after imputing each fraction of the pixels.

    MoRF removes the pixels of highest heatmap value first, LeRF the lowest first (ties broken
    by position), each removal imputed by ``noisy_linear_imputation``. Their means over the
    fractions summarise them (MoRF: lower is better; LeRF: higher is better).

    Parameters
    ----------
    model : keras.Model
        A built, single-input Keras classifier taking pixels in 0..255.
    images : array-like (N, H, W, 3)
    heatmaps : array-like (N, H, W)
        In [0, 1], at the images' size (``CamResult.heatmaps``).
    classes : int or N ints
        The class each heatmap explains (``CamResult.classes``).
    fractions : sequence of floats in (0, 1]
        The shares of pixels removed.
    batch_size : int
    progress : bool
        Plain progress lines for more than 4 images.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        MoRF and LeRF, each (N, len(fractions)).

    Examples
    --------
    >>> result = camcore.grad_cam(model, images)
    >>> morf, lerf = road(model, images, result.heatmaps, result.classes, fractions=(0.2, 0.6))
    >>> morf.shape, lerf.shape
    ((3, 2), (3, 2))
    """
    x, maps, classes = _checked(model, images, heatmaps, classes)
    if isinstance(fractions, (str, bytes)) or not np.iterable(fractions) or not len(fractions):
        raise ValueError(f"fractions must be a non-empty sequence of numbers in (0, 1], e.g. "
                         f"(0.1, 0.3, 0.5, 0.7, 0.9); got {fractions!r}")
    fractions = [check_number(f, "each of fractions", 0, 1, low_open=True) for f in fractions]
    n = len(x)
    curves = np.zeros((2, n, len(fractions)))
    bar = Progress(n, "images", label="ROAD", quiet=not progress or n <= 4)
    for i in range(n):
        states = []
        for order in (maps[i], -maps[i]):  # MoRF (top pixels first), then LeRF
            for f in fractions:
                removed = _top_fraction(order[None], f)[0].astype(bool)
                states.append(noisy_linear_imputation(x[i], removed, seed=i))
        scores = class_probabilities(model, np.stack(states), classes[i], batch_size, None)
        curves[:, i] = scores.reshape(2, len(fractions))
        bar.add(1)
    bar.close()
    return curves[0], curves[1]
