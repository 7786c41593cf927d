"""Faithfulness metrics: do the pixels a map points at carry the model's confidence?

All scores are the softmax probability p_c of the explained class c (one softmax over the
logits), on raw RGB images in [0, 255], where a masked pixel is black.

* Grad-CAM++ paper (Chattopadhay et al., 2018), with the explanation image E = L o I (the map,
  in [0, 1], times the image), Y_i = p_c(I_i) and O_i = p_c(E_i):

      Average Drop % = 100 * mean_i max(0, Y_i - O_i) / Y_i
      % Increase in Confidence = 100 * mean_i 1[O_i > Y_i]
      Win % of method a over b = 100 * mean_i 1[O_i^a > O_i^b]   (ties count one half each)

* Spread: a percentile bootstrap interval over images for the mean of any per-image score, and
  for the mean of a paired difference between two methods on the same images.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import keras
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from camcore.checks import check_images
from camcore.methods import logits_and_probabilities


def class_probabilities(model: keras.Model, images, classes, batch_size: int = 32,
                        value_range=(0, 255)) -> np.ndarray:
    """p_c for each image and its class: softmax of the logits, ``batch_size`` images at a time.

    ``value_range=None`` skips the pixel checks: the metrics use it for the masked images they
    derive from checked ones (a mostly deleted image may look like a [0, 1] image).
    """
    _, probs = logits_and_probabilities(model, images, batch_size, value_range)
    classes = np.broadcast_to(np.asarray(classes), (len(probs),))
    return probs[np.arange(len(probs)), classes]


def explanation_scores(model, images, heatmaps, classes, batch_size: int = 32):
    """``(Y, O)``: p_c of each image, and of its explanation image E = heatmap * image."""
    x = check_images(images, tuple(model.inputs[0].shape[1:]))
    maps = np.asarray(heatmaps, np.float32)
    if maps.shape != x.shape[:3] or maps.min() < 0 or maps.max() > 1:
        raise ValueError(f"heatmaps must be (N, H, W) = {x.shape[:3]} in [0, 1]; got "
                         f"{maps.shape}. Use the heatmaps of a CamResult.")
    return (class_probabilities(model, x, classes, batch_size),
            class_probabilities(model, x * maps[..., None], classes, batch_size, None))


def average_drop(y, o) -> float:
    """Average Drop % = 100 * mean max(0, Y - O) / Y (lower is better)."""
    return float(np.mean(per_image_drop(y, o)))


def increase_in_confidence(y, o) -> float:
    """% Increase in Confidence = 100 * mean 1[O > Y] (higher is better)."""
    return float(100 * np.mean(np.asarray(o) > np.asarray(y)))


def win_percent(o_a, o_b) -> float:
    """Share (%) of images where method a's explanation keeps more confidence than b's.

    The same image's Y is subtracted on both sides, so a smaller drop is a larger O. Ties count
    one half, so win_percent(a, b) + win_percent(b, a) = 100.
    """
    o_a, o_b = np.asarray(o_a), np.asarray(o_b)
    return float(100 * np.mean((o_a > o_b) + 0.5 * (o_a == o_b)))


def per_image_drop(y, o) -> np.ndarray:
    """Each image's share of Average Drop: 100 * max(0, Y - O) / Y (their mean is Average Drop)."""
    y, o = np.asarray(y, np.float64), np.asarray(o, np.float64)
    return 100 * np.maximum(0.0, y - o) / y


def bootstrap_ci(values, level: float = 0.95, n_resamples: int = 2000, seed: int = 0):
    """Percentile bootstrap interval ``(low, high)`` for the mean of per-image ``values``.

    Images are resampled with replacement ``n_resamples`` times; the interval holds the central
    ``level`` of the resampled means (Efron's percentile method).
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"bootstrap_ci needs a 1-D array of at least 2 per-image values; got "
                         f"shape {values.shape}")
    idx = np.random.default_rng(seed).integers(0, len(values), (n_resamples, len(values)))
    means = values[idx].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


@dataclass(frozen=True)
class PairedDifference:
    """The mean over images of a - b (two methods' per-image scores), with its interval."""

    mean: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of 0: the two methods differ."""
        return self.low > 0 or self.high < 0


def paired_difference(a, b, level: float = 0.95, n_resamples: int = 2000,
                      seed: int = 0) -> PairedDifference:
    """Mean of the per-image differences a_i - b_i and its percentile bootstrap interval.

    Pairing by image removes the images' own spread (some are hard for every method), so the
    interval is that of the difference, not of two overlapping means.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference needs one value per image for both methods; got "
                         f"shapes {a.shape} and {b.shape}")
    d = a - b
    return PairedDifference(float(d.mean()), *bootstrap_ci(d, level, n_resamples, seed))


def top_fraction_masks(heatmaps, fraction: float) -> np.ndarray:
    """Binary masks keeping each map's top ``fraction`` of pixels: exactly round(f * H * W) ones.

    Ties are broken by position (stable sort), so a flat map still keeps exactly that many.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    maps = np.asarray(heatmaps, np.float32)
    n, h, w = maps.shape
    keep = int(round(fraction * h * w))
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")[:, :keep]
    masks = np.zeros((n, h * w), np.float32)
    np.put_along_axis(masks, order, 1.0, axis=1)
    return masks.reshape(n, h, w)


def auc(curve) -> float:
    """Trapezoid area under scores taken at n + 1 equally spaced points of [0, 1]."""
    curve = np.asarray(curve, np.float64)
    n = curve.shape[-1] - 1
    return (curve.sum(axis=-1) - (curve[..., 0] + curve[..., -1]) / 2) / n


def blur(images: np.ndarray) -> np.ndarray:
    """RISE's insertion baseline: a Gaussian blur, 11x11 kernel, sigma 5, per channel."""
    return np.stack([cv2.GaussianBlur(np.asarray(im, np.float32), (11, 11), 5) for im in images])


def deletion_insertion(model, images, heatmaps, classes, step: int | None = None,
                       batch_size: int = 32, progress: bool = True):
    """RISE deletion and insertion curves, ``(deletion, insertion)``, each (N, n_steps + 1).

    ``step`` pixels change per step (default: H*W/32, rounded up, so 33 points per curve).
    Pixel order: decreasing heatmap value, ties broken by position (stable sort).
    """
    x = np.asarray(check_images(images, tuple(model.inputs[0].shape[1:])), np.float32)
    maps = np.asarray(heatmaps, np.float32)
    n, h, w, _ = x.shape
    step = step or -(-h * w // 32)
    n_steps = -(-h * w // step)
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None], axis=1)
    rank = rank.reshape(n, h, w, 1)
    blurred = blur(x)
    curves = np.zeros((2, n, n_steps + 1))
    bar = keras.utils.Progbar(n, unit_name="image") if progress and n * n_steps > 2048 else None
    for i in range(n):
        shown = rank[i][None] < (np.arange(n_steps + 1) * step)[:, None, None, None]
        deleted = np.where(shown, 0.0, x[i])  # the top-ranked pixels turn black
        inserted = np.where(shown, x[i], blurred[i])  # the top-ranked pixels come back
        for k, states in enumerate((deleted, inserted)):
            curves[k, i] = class_probabilities(model, states, classes[i] if np.ndim(classes)
                                               else classes, batch_size, None)
        if bar is not None:
            bar.add(1)
    return curves[0], curves[1]


# --------------------------------------------------------------------------------------------
# ROAD: remove and debias
# --------------------------------------------------------------------------------------------
_NEIGHBOURS = [((-1, 0), 1 / 6), ((1, 0), 1 / 6), ((0, -1), 1 / 6), ((0, 1), 1 / 6),
               ((-1, -1), 1 / 12), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((1, 1), 1 / 12)]


def noisy_linear_imputation(image, removed, noise: float = 2.55, seed: int = 0) -> np.ndarray:
    """ROAD's imputation of the ``removed`` pixels (bool (H, W)) of one image (H, W, C).

    Each removed pixel x_p satisfies sum_q w_q (x_p - x_q) = 0 over its neighbours q in the image
    (w = 1/6 direct, 1/12 diagonal): one sparse linear system for all removed pixels, the known
    pixels on the right-hand side. Then Gaussian noise of std ``noise`` (default 1 % of the 0..255
    range) is added to the imputed pixels.
    """
    image = np.asarray(image, np.float64)
    removed = np.asarray(removed, bool)
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
    """ROAD curves ``(morf, lerf)``, each (N, len(fractions)): p_c after imputing that fraction.

    MoRF removes the pixels of highest heatmap value first, LeRF the lowest first (ties broken
    by position). Their means over the fractions summarise them (MoRF: lower is better; LeRF:
    higher is better).
    """
    x = np.asarray(check_images(images, tuple(model.inputs[0].shape[1:])), np.float32)
    maps = np.asarray(heatmaps, np.float32)
    n, h, w, _ = x.shape
    if maps.shape != (n, h, w):
        raise ValueError(f"heatmaps must be (N, H, W) = {(n, h, w)}; got {maps.shape}")
    classes = np.broadcast_to(np.asarray(classes), (n,))
    curves = np.zeros((2, n, len(fractions)))
    bar = keras.utils.Progbar(n, unit_name="image") if progress and n > 4 else None
    for i in range(n):
        states = []
        for order in (maps[i], -maps[i]):  # MoRF (top pixels first), then LeRF
            for f in fractions:
                removed = top_fraction_masks(order[None], f)[0].astype(bool)
                states.append(noisy_linear_imputation(x[i], removed, seed=i))
        scores = class_probabilities(model, np.stack(states), classes[i], batch_size, None)
        curves[:, i] = scores.reshape(2, len(fractions))
        if bar is not None:
            bar.add(1)
    return curves[0], curves[1]
