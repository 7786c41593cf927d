"""The input checks every entry point of camcore shares: one place, one wording.

Each check returns the value it was given (as an array, unchanged where it can) or raises a
``ValueError`` that names the argument, what was wrong and the fix. ``methods``, ``metrics``,
``overlay`` and ``sanity`` call these rather than checking on their own.
"""

from __future__ import annotations

import numpy as np

from camcore.model_split import SplitModel


def check_images(images, expected_shape=None, value_range=(0, 255), name: str = "images"):
    """``images`` as an array (N, H, W, 3), unchanged; a clear error for anything else.

    Not copied (a large uint8 batch stays uint8: the methods convert one batch at a time).
    Integer pixels are taken as they are if they lie in 0..255 (uint16 images are refused);
    float pixels must be finite and, for the default ``value_range=(0, 255)``, not look scaled
    to [0, 1]. ``expected_shape`` is the model's (H, W, C), None for any size.
    ``value_range=None`` skips the pixel checks (for images camcore derived from checked ones).
    """
    if isinstance(images, (list, tuple)):
        images = np.stack([np.asarray(im) for im in images]) if len(images) else np.empty(0)
    x = images if isinstance(images, np.ndarray) else np.asarray(images)
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

    def which(idx):  # "images #3, #7 (of 12)", or just the name for a single image
        listed = ", ".join(f"#{i}" for i in idx[:10]) + (", ..." if len(idx) > 10 else "")
        return name if len(x) == 1 else f"{name} {listed} (of {len(x)})"

    if x.dtype == np.uint8:
        return
    if x.dtype == np.uint16:
        raise ValueError(f"{name}: uint16 pixels (16-bit, 0..65535), but the model takes 8-bit "
                         f"values {low}..{high}. Convert: ({name} // 257).astype(np.uint8).")
    if np.issubdtype(x.dtype, np.bool_) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name}: dtype {x.dtype}; give uint8 or float pixels")
    per_image = x.reshape(len(x), -1)
    if np.issubdtype(x.dtype, np.floating):
        sums = np.add.reduce(per_image, axis=1, dtype=np.float64)  # NaN/inf propagate; no copy
        bad = np.flatnonzero(~np.isfinite(sums))
        if bad.size:
            raise ValueError(f"{which(bad)}: NaN or infinite pixel values")
    lowest, highest = per_image.min(axis=1), per_image.max(axis=1)
    if np.issubdtype(x.dtype, np.integer) and (lowest.min() < 0 or highest.max() > 255):
        raise ValueError(f"{name}: integer pixels in {lowest.min()}..{highest.max()}, but the "
                         f"model takes {low}..{high}. Give uint8 pixels.")
    if high > 2 and np.issubdtype(x.dtype, np.floating):  # a 0..255 model given [0, 1]
        scaled = np.flatnonzero((highest > 0) & (highest <= 1.0) & (lowest >= 0))
        if scaled.size:
            raise ValueError(
                f"{which(scaled)}: pixel values in [0, 1], but the model takes {low}..{high} (raw "
                f"RGB). Scale them: {name} * 255. If your model really takes [0, 1] pixels, pass "
                "value_range=(0, 1).")
    outside = np.flatnonzero((lowest < low - 1e-3) | (highest > high + 1e-3))
    if outside.size:
        i = outside[0]
        raise ValueError(
            f"{which(outside)}: pixel values outside {low}..{high} ({lowest[i]:g}..{highest[i]:g})."
            " camcore's models take raw RGB and preprocess inside: give the pixels before any "
            "preprocess_input. For another range, pass value_range=(low, high).")


def check_classes(classes, n: int, split: SplitModel) -> np.ndarray:
    """The class to explain for each of ``n`` images, as int64 (N,); -1 means "predicted"."""
    if classes is None:
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


def check_count(value, name: str, minimum: int = 1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
