"""Pictures: a heatmap over its image, and a small matplotlib grid."""

from __future__ import annotations

import cv2
import numpy as np

from camcore.checks import check_images


def overlay(image, heatmap, alpha: float = 0.4, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with an OpenCV colormap, over an RGB image.

    ``image`` is (H, W, 3) in [0, 255]; ``heatmap`` is (h, w) in [0, 1] and is resized to the
    image if needed. Returns uint8 RGB: (1 - alpha) * image + alpha * colour(heatmap).
    """
    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB; got shape {image.shape}")
    image = check_images(image[None], name="image")[0].astype(np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w); got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all() or heatmap.min() < 0 or heatmap.max() > 1:
        raise ValueError("heatmap must be finite and in [0, 1]; normalise it first "
                         "(camcore results already are)")
    if heatmap.shape != image.shape[:2]:
        heatmap = cv2.resize(heatmap, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.round(255 * heatmap)), colormap)[..., ::-1]
    blended = (1 - alpha) * image + alpha * colour.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def show_grid(images, titles=None, row_titles=None, ncols: int | None = None,
              size: float = 2.2, title: str | None = None):
    """Show images in a grid (one row per ``row_titles`` entry if given); returns the Figure.

    2-D arrays are drawn as [0, 1] heatmaps with the jet colormap, 3-D ones as RGB images with
    pixels in 0..255 (checked as the methods check them).
    """
    import matplotlib.pyplot as plt

    images = [np.asarray(im) for im in images]
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_grid got {len(images)} images but {len(titles)} titles: give one "
                         "title per image, or titles=None")
    for i, im in enumerate(images):
        if im.ndim == 3:
            check_images(im[None], name=f"images[{i}]")
    ncols = ncols or (len(images) // len(row_titles) if row_titles else min(len(images), 6))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
        if i < len(images):
            ax.imshow(images[i].astype(np.uint8) if images[i].ndim == 3 else images[i],
                      cmap="jet", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    for r, label in enumerate(row_titles or []):
        axes[r, 0].set_ylabel(label, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
