"""The input checks every entry point of camcore shares: one place, one wording.

Each check returns the value it was given (as an array, unchanged where it can) or raises a
``ValueError`` that names the argument, what was wrong and the fix. ``methods``, ``metrics``,
``overlay``, ``sanity`` and ``data`` call these rather than checking on their own.

This module imports numpy only, so the data loader can use it without Keras.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from camcore.model_split import SplitModel


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def check_value_range(value_range):
    """``value_range`` as a pair of floats ``(low, high)`` with low < high, or None.

    Parameters
    ----------
    value_range : (low, high) or None
        The pixel range a model takes, e.g. ``(0, 255)`` or ``(0, 1)``; None skips pixel checks.

    Returns
    -------
    tuple of two floats, or None

    Examples
    --------
    >>> check_value_range((0, 255))
    (0.0, 255.0)
    """
    if value_range is None:
        return None
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be two numbers (low, high), e.g. (0, 255) or (0, 1); "
                         f"got {value_range!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"value_range must be (low, high) with low < high, e.g. (0, 255) or "
                         f"(0, 1); got {value_range!r}")
    return low, high


def _as_batch(images, name: str) -> np.ndarray:
    """``images`` as an array without copying arrays; a clear error for paths and odd objects."""
    if isinstance(images, (str, Path, bytes)):
        raise ValueError(f"{name} is a file path ({str(images)!r}), not pixels. Load it first: "
                         f"{name}, _ = camcore.load_images({str(images)!r}).")
    if isinstance(images, np.ndarray):
        return images
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{name} is an empty batch (an empty list)")
        if any(isinstance(im, (str, Path)) for im in images):
            raise ValueError(f"{name} is a list of file paths, not pixels. Load them first: "
                             f"{name}, _ = camcore.load_images(paths, size=224).")
        arrays = [np.asarray(im) for im in images]
        shapes = sorted({a.shape for a in arrays})
        if len(shapes) > 1:
            listed = ", ".join(str(s) for s in shapes[:4]) + (", ..." if len(shapes) > 4 else "")
            raise ValueError(f"{name} is a list of {len(arrays)} arrays of different shapes "
                             f"({listed}): a batch needs one size. Resize them to the model's "
                             f"input size, e.g. camcore.load_images(paths, size=224) or "
                             f"cv2.resize.")
        return np.stack(arrays)
    x = np.asarray(images)
    if x.dtype == object:
        raise ValueError(f"{name} must be a numpy array (N, H, W, 3) of pixels, or something "
                         f"np.asarray turns into one (a list of arrays, a tf.Tensor, a PIL "
                         f"image); got a {type(images).__name__}.")
    return x


def check_images(images, expected_shape=None, value_range=(0, 255), name: str = "images"):
    """``images`` as an array (N, H, W, 3), unchanged; a clear error for anything else.

    Not copied (a large uint8 batch stays uint8: the methods convert one batch at a time).
    Pixels must lie in ``value_range``: integer pixels as they are (uint16 images are refused),
    float pixels finite and, for the default ``(0, 255)``, not scaled to [0, 1].

    Parameters
    ----------
    images : array-like (N, H, W, 3)
        A batch of RGB images; a list of equal-sized arrays is stacked.
    expected_shape : tuple (H, W, C), optional
        The model's input shape (None entries: any size); None for any size, 3 channels.
    value_range : (low, high) or None
        The pixel range the model takes; None skips the pixel checks (for images camcore
        derived from checked ones).
    name : str
        The argument's name in the messages.

    Returns
    -------
    numpy.ndarray
        ``images`` itself when it already is an array.

    Examples
    --------
    >>> check_images(np.zeros((2, 32, 32, 3), np.uint8)).shape
    (2, 32, 32, 3)
    >>> check_images(np.zeros((32, 32, 3), np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: images must be a batch (N, H, W, C); got one image of shape (32, 32, 3). ...
    """
    value_range = check_value_range(value_range)
    x = _as_batch(images, name)
    channels = 3 if expected_shape is None else expected_shape[-1]
    if x.ndim == 3 and x.shape[-1] in (1, 3, 4):
        raise ValueError(f"{name} must be a batch (N, H, W, C); got one image of shape "
                         f"{x.shape}. Add a batch axis: {name}[None].")
    if x.ndim == 3:
        raise ValueError(f"{name} has shape {x.shape}: a batch of grey images? The model takes "
                         f"RGB; repeat the grey channel: np.repeat({name}[..., None], 3, axis=-1).")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name} has shape {x.shape}: channels first? The model takes channels "
                         f"last (N, H, W, C); transpose: {name}.transpose(0, 2, 3, 1).")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch (N, H, W, C); got shape {x.shape}")
    if x.shape[-1] != channels:
        raise ValueError(f"{name} have {x.shape[-1]} channels; the model expects {channels} "
                         "(RGB). Convert grey or RGBA images to RGB first.")
    if expected_shape is not None and any(
            e is not None and e != s for e, s in zip(expected_shape[:2], x.shape[1:3])):
        raise ValueError(f"{name} are {x.shape[1]}x{x.shape[2]}; the model expects "
                         f"{expected_shape[0]}x{expected_shape[1]}. Resize them, e.g. with "
                         "camcore.load_images.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if value_range is not None:
        _check_pixel_values(x, value_range, name)
    return x


def _check_pixel_values(x: np.ndarray, value_range, name: str):
    low, high = value_range
    span = f"{low:g}..{high:g}"

    def which(idx):  # "images #3, #7 (of 12)", or just the name for a single image
        listed = ", ".join(f"#{i}" for i in idx[:10]) + (", ..." if len(idx) > 10 else "")
        return name if len(x) == 1 else f"{name} {listed} (of {len(x)})"

    if x.dtype == np.uint8 and low <= 0 and high >= 255:
        return
    if x.dtype == np.uint16:
        raise ValueError(f"{name}: uint16 pixels (16-bit, 0..65535), but the model takes 8-bit "
                         f"values {span}. Convert: ({name} // 257).astype(np.uint8).")
    if np.issubdtype(x.dtype, np.bool_) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name}: dtype {x.dtype}; give uint8 or float pixels")
    per_image = x.reshape(len(x), -1)
    if np.issubdtype(x.dtype, np.floating):
        sums = np.add.reduce(per_image, axis=1, dtype=np.float64)  # NaN/inf propagate; no copy
        bad = np.flatnonzero(~np.isfinite(sums))
        if bad.size:
            raise ValueError(f"{which(bad)}: NaN or infinite pixel values")
    lowest, highest = per_image.min(axis=1), per_image.max(axis=1)
    if np.issubdtype(x.dtype, np.integer):
        if lowest.min() < 0 or highest.max() > 255:
            raise ValueError(f"{name}: integer pixels in {lowest.min()}..{highest.max()}, but "
                             f"the model takes {span}. Give uint8 pixels.")
        if lowest.min() < low or highest.max() > high:
            raise ValueError(
                f"{name}: integer pixels in {lowest.min()}..{highest.max()}, but value_range="
                f"({low:g}, {high:g}) says the model takes {span}. Integer pixels are 0..255: "
                f"pass value_range=(0, 255), or scale them for a [0, 1] model: {name} / 255.")
        return
    if high > 2:  # a 0..255 model given [0, 1] pixels
        scaled = np.flatnonzero((highest > 0) & (highest <= 1.0) & (lowest >= 0))
        if scaled.size:
            raise ValueError(
                f"{which(scaled)}: pixel values in [0, 1], but the model takes {span} (raw "
                f"RGB). Scale them: {name} * 255. If your model really takes [0, 1] pixels, pass "
                "value_range=(0, 1).")
    outside = np.flatnonzero((lowest < low - 1e-3) | (highest > high + 1e-3))
    if outside.size:
        i = outside[0]
        raise ValueError(
            f"{which(outside)}: pixel values outside {span} ({lowest[i]:g}..{highest[i]:g})."
            " camcore's models take raw RGB and preprocess inside: give the pixels before any "
            "preprocess_input. For another range, pass value_range=(low, high).")


# --------------------------------------------------------------------------------------------
# Classes and numbers
# --------------------------------------------------------------------------------------------
def check_classes(classes, n: int, split: SplitModel, predicted_ok: bool = True) -> np.ndarray:
    """The class c to explain (or score) for each of ``n`` images, as int64 (N,).

    Parameters
    ----------
    classes : None, int, N ints (shape (N,) or (N, 1)), or class names
        None means "the predicted class", returned as -1 (only if ``predicted_ok``).
    n : int
        The number of images N.
    split : SplitModel
        The model (its number of classes C and, if recorded, its class names).
    predicted_ok : bool
        Whether None is accepted.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)

    Examples
    --------
    >>> check_classes(2, 3, split_model(model))
    array([2, 2, 2])
    """
    if classes is None:
        if not predicted_ok:
            raise ValueError("classes must be given here: the class each map explains, e.g. "
                             "result.classes of the CamResult")
        return np.full(n, -1, np.int64)
    k = split.num_classes
    if isinstance(classes, str) or np.asarray(classes).dtype.kind in "US":
        classes = _class_indices(classes, split)
    arr = np.asarray(classes)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool):
        raise ValueError(
            f"classes must be integer class indices (0..{k - 1}); got {arr.dtype} values such as "
            f"{np.ravel(arr)[:3].tolist()}. For the predicted class use classes=None, or "
            "probs.argmax(axis=1), not probs.max(axis=1).")
    if arr.ndim == 2 and arr.shape == (n, 1):
        arr = arr[:, 0]
    if arr.ndim == 2 and arr.shape[1] == k and set(np.unique(arr)) <= {0, 1}:
        raise ValueError(f"classes has shape {arr.shape}: one-hot rows? Give class indices, "
                         "e.g. onehot.argmax(axis=1).")
    if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != n):
        raise ValueError(f"classes must be one int or {n} ints (one per image), shape ({n},); "
                         f"got shape {arr.shape}")
    out = np.broadcast_to(arr, (n,)).astype(np.int64)
    bad = out[(out < 0) | (out >= k)]
    if bad.size:
        raise ValueError(f"class index {int(bad[0])} is out of range: the model has "
                         f"{k} classes (0..{k - 1})")
    return out


def _class_indices(classes, split: SplitModel):
    names = split.class_names
    if not names:
        raise ValueError(f"classes given by name ({classes!r}), but this model does not record "
                         "its class names: give integer indices instead.")
    wanted = [classes] if isinstance(classes, str) else list(np.ravel(np.asarray(classes)))
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ValueError(f"unknown class name {unknown[0]!r}; the model's classes are "
                         f"{', '.join(names)}")
    indices = [names.index(c) for c in wanted]
    return indices[0] if isinstance(classes, str) else indices


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_count(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (a float, string or bool is an error).

    Parameters
    ----------
    value : int
    name : str
        The argument's name in the message.
    minimum : int

    Returns
    -------
    int

    Examples
    --------
    >>> check_count(np.int64(8), "batch_size")
    8
    >>> check_count(2.5, "per_class")
    Traceback (most recent call last):
    ...
    ValueError: per_class must be an integer >= 1; got 2.5
    """
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_seed(seed, name: str = "seed") -> int:
    """A random seed: an int >= 0 (the same seed always gives the same draw).

    Parameters
    ----------
    seed : int
    name : str

    Returns
    -------
    int

    Examples
    --------
    >>> check_seed(0)
    0
    """
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{name} must be an integer >= 0 (the same seed gives the same "
                         f"choice); got {seed!r}")
    return int(seed)


def check_number(value, name: str, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a float in [low, high] (or (low, high] with ``low_open``).

    Parameters
    ----------
    value : float
    name : str
    low, high : float
        The bounds, included (``low`` excluded when ``low_open``).
    low_open : bool

    Returns
    -------
    float

    Examples
    --------
    >>> check_number(0.4, "alpha", 0, 1)
    0.4
    >>> check_number(0, "fraction", 0, 1, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: fraction must be a number in (0, 1]; got 0
    """
    bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = np.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        raise ValueError(f"{name} must be a number in {bounds}; got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Heatmaps, maps and per-image scores
# --------------------------------------------------------------------------------------------
def _as_float_array(values, name: str) -> np.ndarray:
    try:
        return np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers; got {type(values).__name__} "
                         f"{str(values)[:40]!r}") from None


def check_heatmaps(heatmaps, size=None, n: int | None = None, name: str = "heatmaps"):
    """Heatmaps (N, H, W), finite and in [0, 1], at the images' size; as float32.

    Parameters
    ----------
    heatmaps : array-like (N, H, W)
        Maps upsampled to the image, such as ``CamResult.heatmaps``.
    size : (H, W), optional
        The images' height and width.
    n : int, optional
        The number of images N.
    name : str

    Returns
    -------
    numpy.ndarray, float32 (N, H, W)

    Examples
    --------
    >>> check_heatmaps(np.ones((2, 8, 8)), size=(8, 8), n=2).dtype
    dtype('float32')
    """
    h = _as_float_array(heatmaps, name)
    if h.ndim == 2:
        raise ValueError(f"{name} must be a batch (N, H, W); got one map of shape {h.shape}. "
                         f"Add a batch axis: {name}[None].")
    if h.ndim != 3 or 0 in h.shape:
        raise ValueError(f"{name} must be a non-empty batch (N, H, W); got shape {h.shape}")
    if n is not None and len(h) != n:
        raise ValueError(f"{len(h)} {name} for {n} images: give one per image")
    if size is not None and tuple(h.shape[1:]) != tuple(size):
        hint = (" These look like the maps at the target layer (h x w): use the heatmaps, "
                "result.heatmaps, upsampled to the images." if h.shape[1] < size[0] else "")
        raise ValueError(f"{name} are {h.shape[1]}x{h.shape[2]}; the images are "
                         f"{size[0]}x{size[1]}.{hint}")
    check_unit_values(h, name)
    return h.astype(np.float32)


def check_unit_values(values: np.ndarray, name: str):
    """Every value finite and in [0, 1], else an error saying which and what they span.

    Parameters
    ----------
    values : numpy.ndarray
    name : str

    Returns
    -------
    numpy.ndarray
        ``values``, unchanged.

    Examples
    --------
    >>> check_unit_values(np.array([0.0, 1.5]), "heatmap")
    Traceback (most recent call last):
    ...
    ValueError: heatmap values span 0..1.5, outside [0, 1]: normalise them first ...
    """
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: NaN or infinite values ({int((~np.isfinite(values)).sum())} "
                         "of them): a map computed from bad pixels or a 0/0?")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name} values span {low:g}..{high:g}, outside [0, 1]: normalise them "
                         "first (camcore.normalize_maps; camcore's results already are)")
    return values


def check_scores(values, name: str, n: int | None = None, probabilities: bool = True):
    """One finite score per image, a non-empty 1-D array (float64); p_c in [0, 1] by default.

    Parameters
    ----------
    values : array-like (N,)
    name : str
    n : int, optional
        The length required (another argument's N).
    probabilities : bool
        Whether the values must be probabilities in [0, 1].

    Returns
    -------
    numpy.ndarray, float64 (N,)

    Examples
    --------
    >>> check_scores([0.5, 0.9], "y")
    array([0.5, 0.9])
    """
    v = _as_float_array(values, name)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one value per image, a 1-D array (N,); got shape "
                         f"{v.shape}")
    if len(v) == 0:
        raise ValueError(f"{name} is empty: there are no images to average over")
    if n is not None and len(v) != n:
        raise ValueError(f"{name} has {len(v)} values but the other argument {n}: both must "
                         "hold one value per image, for the same images in the same order")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"{name} #{', #'.join(map(str, bad[:10]))}: NaN or infinite value(s); "
                         "drop those images or find where they came from")
    if probabilities and (v.min() < 0 or v.max() > 1):
        raise ValueError(f"{name} must be probabilities p_c in [0, 1]; got values in "
                         f"{v.min():g}..{v.max():g}. Logits? Use metrics.class_probabilities or "
                         "metrics.explanation_scores.")
    return v


def check_same_shape(a, b, names: tuple[str, str]):
    """Two maps (or arrays) of one shape, finite, as float64.

    Parameters
    ----------
    a, b : array-like
    names : (str, str)

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)

    Examples
    --------
    >>> [x.shape for x in check_same_shape(np.ones((7, 7)), np.zeros((7, 7)), ("a", "b"))]
    [(7, 7), (7, 7)]
    """
    a, b = _as_float_array(a, names[0]), _as_float_array(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one shape; got {a.shape} and "
                         f"{b.shape}. Compare maps of one layer, or heatmaps of one image size.")
    for x, name in ((a, names[0]), (b, names[1])):
        if not np.isfinite(x).all():
            raise ValueError(f"{name}: NaN or infinite values")
    return a, b
