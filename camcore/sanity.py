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

from camcore.checks import check_number, check_same_shape, check_seed


def _initializer(layer, variable):
    """The initialiser ``layer`` was built with for ``variable``, or None if it has none.

    Keras names them after the variable (``kernel`` -> ``kernel_initializer``), except the
    depthwise kernels (``depthwise_kernel`` or a DepthwiseConv2D's ``kernel`` ->
    ``depthwise_initializer``). Preprocessing layers (``Normalization``: mean, variance) have
    none: their weights are statistics of the data, not learned.
    """
    name = variable.path.split("/")[-1]
    candidates = [f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer"]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        candidates.append("depthwise_initializer")
    return next((init for init in (getattr(layer, c, None) for c in candidates)
                 if init is not None), None)


def _weighted_layers(layer) -> Iterator[keras.layers.Layer]:
    """Layers with weights that can be drawn again, in graph order, inside nested models too."""
    for sub in getattr(layer, "layers", []):
        if isinstance(sub, keras.Model):
            yield from _weighted_layers(sub)
        elif any(_initializer(sub, v) is not None for v in sub.weights):
            yield sub


def _group_name(layer_name: str) -> str:
    """``block6a_expand_conv`` -> ``block6``, ``conv5_block3_out`` -> ``conv5``, ``logits``."""
    return re.sub(r"(\d)[a-z]$", r"\1", layer_name.split("_")[0])


def layer_groups(model: keras.Model) -> list[tuple[str, list]]:
    """The model's layers with weights, grouped by stage, from the output down to the input.

    Layers whose weights have no initialiser (a ``Normalization`` layer's data statistics) are
    left out: they are not learned, so randomising them tests nothing.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of (str, list of keras.layers.Layer)
        The group's name (the layer names' first part, ``block6a_...`` -> ``block6``) and
        its layers, the group nearest the output first.

    Examples
    --------
    >>> [(group, [l.name for l in layers]) for group, layers in layer_groups(model)]
    [('logits', ['logits']), ('conv', ['conv'])]
    """
    groups: dict[str, list] = {}
    for layer in _weighted_layers(model):
        groups.setdefault(_group_name(layer.name), []).append(layer)
    return list(groups.items())[::-1]


def _reinitialize(layer, seed: list[int]):
    """Draw every weight of ``layer`` again from the initialiser it was built with.

    Convolution and dense kernels get their random initialisers (Glorot uniform for most);
    biases and batch-norm parameters return to their initial values (0, 1). A variable
    without an initialiser is left as it is.
    """
    for k, variable in enumerate(layer.weights):
        init = _initializer(layer, variable)
        if init is None:
            continue
        config = init.get_config()
        if "seed" in config:
            draw = int(np.random.default_rng([*seed, k]).integers(2**31))  # not the build seed
            init = type(init).from_config({**config, "seed": draw})
        variable.assign(init(variable.shape, variable.dtype))


def cascading_randomization(model: keras.Model, seed: int = 0):
    """Yield ``(group, randomised)`` after re-initialising each layer group, top down, cumulatively.

    Parameters
    ----------
    model : keras.Model
        A functional or Sequential model (it is cloned; the original is untouched).
    seed : int
        The same seed gives the same random weights.

    Yields
    ------
    (str, keras.Model)
        The group just randomised (``layer_groups``), and one copy of ``model`` that
        accumulates the randomisation: after the group ``"block6"``, every group above it is
        random too.

    Examples
    --------
    >>> [group for group, _ in cascading_randomization(model)]
    ['logits', 'conv']
    """
    seed = check_seed(seed)
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

    rho = cov(R(a), R(b)) / (sigma_R(a) sigma_R(b)), ties given the mean of their ranks. A
    constant map (e.g. a Grad-CAM that ReLU turned all-zero) ranks nothing, so it shares no
    ranking with anything: 0 is returned rather than the undefined 0/0.

    Parameters
    ----------
    a, b : array-like
        Two maps of one shape.

    Returns
    -------
    float

    Examples
    --------
    >>> spearman([[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 400.0]])   # only order counts
    1.0
    """
    a, b = check_same_shape(a, b, ("a", "b"))
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def ssim(a, b, data_range: float = 1.0) -> float:
    """Mean structural similarity of two maps (Gaussian window, sigma 1.5, 11x11).

    The formula is in the module's docstring; the mean leaves out a border of half a window
    (scikit-image's convention), so the maps must be at least 11x11.

    Parameters
    ----------
    a, b : array-like (H, W)
        Two maps of one shape, at least 11x11 (heatmaps, or maps upsampled).
    data_range : float
        The values' range (1 for maps in [0, 1]).

    Returns
    -------
    float

    Examples
    --------
    >>> m = np.random.default_rng(0).uniform(size=(16, 16))
    >>> round(ssim(m, m), 6)
    1.0
    """
    a, b = check_same_shape(a, b, ("a", "b"))
    if a.ndim != 2:
        raise ValueError(f"ssim compares two 2-D maps of one shape; got {a.shape} and {b.shape}")
    if min(a.shape) < 11:
        raise ValueError(f"ssim needs maps of at least 11x11 (its window); got "
                         f"{a.shape[0]}x{a.shape[1]}. Compare the heatmaps (upsampled to the "
                         "image), not the maps at the layer.")
    data_range = check_number(data_range, "data_range", 0, np.inf, low_open=True)
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
