"""Pictures: a heatmap over its image, and a small matplotlib grid."""

from __future__ import annotations

import cv2
import numpy as np

from camcore.checks import check_count, check_images, check_number, check_unit_values


def _heatmap(heatmap, name: str) -> np.ndarray:
    """One non-empty 2-D map, finite and in [0, 1], as float32."""
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2 or 0 in h.shape:
        raise ValueError(f"{name} must be a non-empty 2-D map (h, w); got shape {h.shape}")
    return check_unit_values(h, name)


def overlay(image, heatmap, alpha: float = 0.4, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with an OpenCV colormap, over an RGB image.

    out = (1 - alpha) * X + alpha * colour(heatmap), rounded to uint8. The heatmap is resized
    to the image (bilinear) if needed.

    Parameters
    ----------
    image : array-like (H, W, 3)
        RGB pixels in 0..255.
    heatmap : array-like (h, w)
        In [0, 1] (``CamResult.heatmaps[i]`` or ``.maps[i]``).
    alpha : float in [0, 1]
        The heatmap's weight: 0 gives the image, 1 the coloured heatmap.
    colormap : int
        An OpenCV colormap, e.g. ``cv2.COLORMAP_JET``.

    Returns
    -------
    numpy.ndarray, uint8 (H, W, 3)

    Examples
    --------
    >>> picture = overlay(np.zeros((20, 30, 3), np.uint8), np.ones((2, 3)), alpha=1.0)
    >>> picture.shape, picture[0, 0]                 # jet at 1: dark red
    ((20, 30, 3), array([128,   0,   0], dtype=uint8))
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB; got shape {image.shape}")
    image = check_images(image[None], name="image")[0].astype(np.float32)
    heatmap = _heatmap(heatmap, "heatmap")
    alpha = check_number(alpha, "alpha", 0, 1)
    if heatmap.shape != image.shape[:2]:
        heatmap = cv2.resize(heatmap, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.round(255 * heatmap)), colormap)[..., ::-1]
    blended = (1 - alpha) * image + alpha * colour.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def show_grid(images, titles=None, row_titles=None, ncols: int | None = None,
              size: float = 2.2, title: str | None = None):
    """Show images in a grid; returns the matplotlib Figure.

    2-D arrays are drawn as heatmaps in [0, 1] with the jet colormap (values outside are an
    error, not clipped), 3-D ones as RGB images with pixels in 0..255 (checked as the methods
    check them).

    Parameters
    ----------
    images : list of arrays (H, W, 3) or (h, w)
        At least one.
    titles : list of str, optional
        One per image.
    row_titles : list of str, optional
        One per row: the images fill ``len(row_titles)`` rows of equal length.
    ncols : int, optional
        Images per row; default: len(images) / len(row_titles), else up to 6.
    size : float
        Inches per image.
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = show_grid([np.zeros((8, 8, 3), np.uint8), np.ones((4, 4))], ["image", "map"])
    >>> len(fig.axes)
    2
    """
    import matplotlib.pyplot as plt

    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("show_grid got no images: give a list of RGB images (H, W, 3) and/or "
                         "heatmaps (h, w)")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_grid got {len(images)} images but {len(titles)} titles: give one "
                         "title per image, or titles=None")
    for i, im in enumerate(images):
        if im.ndim not in (2, 3):
            raise ValueError(f"images[{i}] has shape {im.shape}: show_grid draws RGB images "
                             "(H, W, 3) and heatmaps (h, w), one per entry")
        if im.ndim == 3:
            check_images(im[None], name=f"images[{i}]")
        else:
            _heatmap(im, f"images[{i}] (a 2-D array, drawn as a heatmap)")
    rows = len(row_titles) if row_titles else None
    if ncols is not None:
        ncols = check_count(ncols, "ncols")
    elif rows:
        ncols = -(-len(images) // rows)
    else:
        ncols = min(len(images), 6)
    nrows = -(-len(images) // ncols)
    if rows and nrows != rows:
        raise ValueError(f"show_grid got {len(row_titles)} row titles for {nrows} rows "
                         f"({len(images)} images, {ncols} per row): give one title per row")
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
