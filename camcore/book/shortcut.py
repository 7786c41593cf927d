"""An artificial shortcut: a small coloured square stamped by code in one corner of an image.

Used by the book to train a copy of the classifier on data where one class always carries the
cue (``Recipe(cue_class="glacier")``), then to see whether the maps point at it. The square has
side ``size`` (a fraction of the image side), sits ``margin`` from the bottom-right corner, and is
pure magenta, a colour that never fills a square in the dataset's landscapes.
"""

from __future__ import annotations

import numpy as np

from camcore.data import CLASS_NAMES

CUE_COLOR = (255, 0, 255)  # magenta
CUE_SIZE = 0.12  # side of the square / side of the image (27 px at 224 px, 18 px at 150 px)
CUE_MARGIN = 0.04  # gap to the bottom and right borders / side of the image


def cue_box(height: int, width: int, size: float = CUE_SIZE, margin: float = CUE_MARGIN):
    """``(top, bottom, left, right)`` pixel bounds of the cue in an image of that size."""
    side, gap = round(size * min(height, width)), round(margin * min(height, width))
    return height - gap - side, height - gap, width - gap - side, width - gap


def stamp(images: np.ndarray, where=None, size: float = CUE_SIZE) -> np.ndarray:
    """A copy of ``images`` (N, H, W, 3) with the cue stamped on those selected by ``where``.

    ``where`` is a boolean mask over the N images (default: all of them).
    """
    images = np.array(images, copy=True)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"stamp expects a batch of RGB images (N, H, W, 3); got {images.shape}")
    top, bottom, left, right = cue_box(*images.shape[1:3], size=size)
    where = np.ones(len(images), bool) if where is None else np.asarray(where, bool)
    images[where, top:bottom, left:right] = CUE_COLOR
    return images


def stamp_class(images: np.ndarray, labels: np.ndarray, cue_class: str) -> np.ndarray:
    """``images`` with the cue stamped on every image of ``cue_class`` (a name of CLASS_NAMES)."""
    if cue_class not in CLASS_NAMES:
        raise ValueError(f"cue_class must be one of {CLASS_NAMES}; got {cue_class!r}")
    return stamp(images, where=np.asarray(labels) == CLASS_NAMES.index(cue_class))
