"""Collages with known ground truth: several instances of a class in one image.

The Grad-CAM++ paper's main claim is that it covers several instances of a class where Grad-CAM
tends to light only one. A 2x2 collage of test images, two quadrants of the target class and two
of other classes, tests it with a known answer: a map explaining the target class should put its
mass on the two target quadrants, and split it evenly between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Collages:
    """N collages (N, S, S, 3) uint8; ``quadrant_labels`` (N, 4): the class in each quadrant, in
    the order top-left, top-right, bottom-left, bottom-right; ``target``: the class they hold
    twice; ``sources`` (N, 4): the index of each quadrant's image in the images given."""

    images: np.ndarray
    quadrant_labels: np.ndarray
    target: np.ndarray
    sources: np.ndarray

    @property
    def is_target(self) -> np.ndarray:
        """(N, 4) booleans: which quadrants hold the target class."""
        return self.quadrant_labels == self.target[:, None]


def make_collages(images, labels, n: int, seed: int = 0) -> Collages:
    """``n`` 2x2 collages of ``images`` (M, S, S, 3): two quadrants of a target class, two of two
    other classes, in random positions. Targets cycle through the classes; each quadrant is an
    image resized to S/2 (area interpolation), no image used twice in a collage."""
    images, labels = np.asarray(images), np.asarray(labels)
    size = images.shape[1]
    half = size // 2
    classes = np.unique(labels)
    if len(classes) < 3:
        raise ValueError(f"collages need images of at least 3 classes; got {len(classes)}")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 3), np.uint8)
    quadrant_labels = np.zeros((n, 4), np.int64)
    sources = np.zeros((n, 4), np.int64)
    targets = classes[np.arange(n) % len(classes)]
    for i, target in enumerate(targets):
        others = rng.choice(classes[classes != target], 2, replace=False)
        picks = list(rng.choice(np.flatnonzero(labels == target), 2, replace=False))
        picks += [rng.choice(np.flatnonzero(labels == c)) for c in others]
        order = rng.permutation(4)
        for quadrant, source in zip(order, picks):
            row, col = divmod(quadrant, 2)
            out[i, row * half:(row + 1) * half, col * half:(col + 1) * half] = cv2.resize(
                images[source], (half, half), interpolation=cv2.INTER_AREA)
            quadrant_labels[i, quadrant] = labels[source]
            sources[i, quadrant] = source
    return Collages(out, quadrant_labels, targets, sources)


def quadrant_mass(heatmaps) -> np.ndarray:
    """(N, 4) share of each map's mass in each quadrant (same order as ``Collages``); rows sum
    to 1 (an empty map gives 0.25 each)."""
    maps = np.asarray(heatmaps, np.float64)
    h, w = maps.shape[1] // 2, maps.shape[2] // 2
    mass = np.stack([maps[:, :h, :w].sum((1, 2)), maps[:, :h, w:].sum((1, 2)),
                     maps[:, h:, :w].sum((1, 2)), maps[:, h:, w:].sum((1, 2))], axis=1)
    total = mass.sum(axis=1, keepdims=True)
    return np.where(total > 0, mass / np.where(total > 0, total, 1), 0.25)


def target_share_and_balance(heatmaps, collages: Collages):
    """Per collage: the share of map mass on the two target quadrants, and their balance
    (the smaller target quadrant's mass over the larger's: 1 is an even split, 0 one lit)."""
    mass = quadrant_mass(heatmaps)
    on_target = mass[collages.is_target].reshape(len(mass), 2)
    low, high = on_target.min(axis=1), on_target.max(axis=1)
    return on_target.sum(axis=1), np.where(high > 0, low / np.where(high > 0, high, 1), 1.0)
