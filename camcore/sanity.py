"""Sanity checks for saliency maps (Adebayo et al., 2018): does the map depend on the model?

Cascading randomisation re-initialises a copy of the trained classifier from the top down, one
layer group at a time, and recomputes the maps; a map that stays the same while the weights it
should explain are destroyed is not explaining the model. Two similarity scores, between the
map of the trained model and the map after each step:

* Spearman rank correlation: the Pearson correlation of the pixels' ranks (ties get the mean
  of their ranks), rho = cov(R(a), R(b)) / (sigma_R(a) sigma_R(b)).
* SSIM (Wang et al., 2004) with a Gaussian window (sigma 1.5), data range 1:
  SSIM = mean over windows of (2 mu_a mu_b + C1)(2 sigma_ab + C2) /
  ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2)), C1 = (0.01)^2, C2 = (0.03)^2.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import cv2
import keras
import numpy as np


def _weighted_layers(layer) -> Iterator[keras.layers.Layer]:
    """Layers that own weights, in graph order, looking inside nested models."""
    for sub in getattr(layer, "layers", []):
        if isinstance(sub, keras.Model):
            yield from _weighted_layers(sub)
        elif sub.weights:
            yield sub


def _group_name(layer_name: str) -> str:
    """``block6a_expand_conv`` -> ``block6``, ``conv5_block3_out`` -> ``conv5``, ``logits``."""
    return re.sub(r"(\d)[a-z]$", r"\1", layer_name.split("_")[0])


def layer_groups(model: keras.Model) -> list[tuple[str, list]]:
    """The model's weighted layers grouped by stage, from the output down to the input."""
    groups: dict[str, list] = {}
    for layer in _weighted_layers(model):
        groups.setdefault(_group_name(layer.name), []).append(layer)
    return list(groups.items())[::-1]


def _reinitialize(layer, seed: list[int]):
    """Draw every weight of ``layer`` again from the initialiser it was built with.

    Convolution and dense kernels get their random initialisers (Glorot uniform for most);
    biases and batch-norm parameters return to their initial values (0, 1).
    """
    for k, variable in enumerate(layer.weights):
        name = variable.path.split("/")[-1]
        init = getattr(layer, f"{name}_initializer", None) or layer.depthwise_initializer
        config = init.get_config()
        if "seed" in config:
            draw = int(np.random.default_rng([*seed, k]).integers(2**31))  # not the build seed
            init = type(init).from_config({**config, "seed": draw})
        variable.assign(init(variable.shape, variable.dtype))


def cascading_randomization(model: keras.Model, seed: int = 0):
    """Yield ``(group, randomised)`` after re-initialising each layer group, top down, cumulatively.

    ``randomised`` is one copy of ``model`` (the original is untouched) that accumulates the
    randomisation: after the group ``"block6"``, every group above it is random too.
    """
    randomised = keras.models.clone_model(model)
    randomised.set_weights(model.get_weights())
    for g, (group, layers) in enumerate(layer_groups(randomised)):
        for i, layer in enumerate(layers):
            _reinitialize(layer, seed=[seed, g, i])
        yield group, randomised


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a flat array, ties replaced by the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (first + (counts - 1) / 2)[inverse.ravel()]


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps; 0.0 when either map is constant (no ranking).

    A constant map (e.g. a Grad-CAM that ReLU turned all-zero) ranks nothing, so it shares no
    ranking with anything: 0 is returned rather than the undefined 0/0.
    """
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def ssim(a, b, data_range: float = 1.0) -> float:
    """Mean structural similarity of two maps (Gaussian window, sigma 1.5, 11x11)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim compares two 2-D maps of one shape; got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def smooth(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = smooth(a), smooth(b)
    var_a = smooth(a * a) - mu_a**2
    var_b = smooth(b * b) - mu_b**2
    cov = smooth(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
         / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(s[5:-5, 5:-5].mean())  # skimage's convention: drop the border of half a window
