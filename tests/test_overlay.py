"""Tests for camcore.overlay: blending against OpenCV's colormaps, resizing, validation, grids."""

import cv2
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from camcore import overlay, show_grid  # noqa: E402


def colour(value, colormap=cv2.COLORMAP_JET):
    """The RGB colour OpenCV gives a heatmap value in [0, 1]."""
    bgr = cv2.applyColorMap(np.array([[round(255 * value)]], np.uint8), colormap)[0, 0]
    return bgr[::-1].astype(np.float64)


@pytest.fixture
def image(rng):
    return rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)


def test_alpha_zero_returns_the_image(image):
    out = overlay(image, np.zeros((20, 30)), alpha=0.0)
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, image)
    # whatever the heatmap
    np.testing.assert_array_equal(overlay(image, np.ones((20, 30)), alpha=0.0), image)


def test_alpha_one_returns_the_colormap_colour(image):
    red = overlay(image, np.ones((20, 30)), alpha=1.0)
    assert (red == colour(1.0)).all()
    np.testing.assert_array_equal(colour(1.0), [128, 0, 0])  # JET at 1: dark red, in RGB order
    blue = overlay(image, np.zeros((20, 30)), alpha=1.0)
    assert (blue == colour(0.0)).all()
    np.testing.assert_array_equal(colour(0.0), [0, 0, 128])  # JET at 0: dark blue
    # another colormap
    viridis = overlay(image, np.full((20, 30), 0.5), alpha=1.0, colormap=cv2.COLORMAP_VIRIDIS)
    assert (viridis == colour(0.5, cv2.COLORMAP_VIRIDIS)).all()


def test_blend_formula_by_hand():
    image = np.full((4, 4, 3), [200, 100, 0], np.uint8)
    heatmap = np.array([[0.0, 0.25, 0.5, 1.0]] * 4)
    out = overlay(image, heatmap, alpha=0.4)
    for j, value in enumerate(heatmap[0]):
        expected = np.round(0.6 * np.array([200, 100, 0]) + 0.4 * colour(value))
        np.testing.assert_array_equal(out[:, j], np.broadcast_to(expected, (4, 3)))


def test_small_heatmap_is_resized_to_the_image():
    image = np.zeros((70, 70, 3), np.uint8)
    heatmap = np.zeros((7, 7))
    heatmap[:, 4:] = 1.0  # left part 0, right part 1
    out = overlay(image, heatmap, alpha=1.0)
    assert out.shape == (70, 70, 3)
    assert (out[:, :35] == colour(0.0)).all()  # the 0 cells, away from the edge
    assert (out[:, 45:] == colour(1.0)).all()  # the 1 cells
    # a constant heatmap stays constant whatever the resizing
    np.testing.assert_array_equal(overlay(image, np.full((7, 7), 0.5), alpha=1.0),
                                  np.broadcast_to(colour(0.5), (70, 70, 3)))
    # in between: OpenCV's bilinear resize (half-pixel centres), coloured
    up = cv2.resize(heatmap.astype(np.float32), (70, 70), interpolation=cv2.INTER_LINEAR)
    expected = cv2.applyColorMap(np.uint8(np.round(255 * up)), cv2.COLORMAP_JET)[..., ::-1]
    np.testing.assert_array_equal(out, expected)


def test_non_square_image_is_not_transposed():
    image = np.zeros((10, 40, 3), np.uint8)
    heatmap = np.zeros((2, 8))
    heatmap[0] = 1.0  # top row hot
    out = overlay(image, heatmap, alpha=1.0)
    assert out.shape == (10, 40, 3)
    assert (out[0] == colour(1.0)).all() and (out[-1] == colour(0.0)).all()


@pytest.mark.parametrize("bad, message", [
    (np.nan, r"^heatmap: NaN or infinite values \(1 of them\)"),
    (np.inf, r"^heatmap: NaN or infinite"),
    (-0.01, r"^heatmap values span -0\.01\.\.0, outside \[0, 1\]: normalise them first"),
    (1.0001, r"^heatmap values span 0\.\.1\.0001, outside \[0, 1\]")])
def test_heatmap_must_be_finite_and_in_unit_range(image, bad, message):
    heatmap = np.zeros((20, 30))
    heatmap[3, 4] = bad
    with pytest.raises(ValueError, match=message):
        overlay(image, heatmap)
    in_grid = message.replace("^heatmap", r"^images\[1\] \(a 2-D array, drawn as a heatmap\)")
    with pytest.raises(ValueError, match=in_grid):
        show_grid([image, heatmap])  # not clipped silently by imshow's vmin, vmax


@pytest.mark.parametrize("alpha", [-0.1, 1.5, np.nan, "0.4", None])
def test_alpha_must_be_in_unit_range(image, alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]; got"):
        overlay(image, np.zeros((20, 30)), alpha=alpha)


def test_bad_shapes(image):
    with pytest.raises(ValueError, match=r"non-empty 2-D map \(h, w\); got shape \(1, 20, 30\)"):
        overlay(image, np.zeros((1, 20, 30)))
    with pytest.raises(ValueError, match=r"non-empty 2-D map \(h, w\); got shape \(0, 0\)"):
        overlay(image, np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        overlay(image[..., :1], np.zeros((20, 30)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        overlay(image[None], np.zeros((20, 30)))


@pytest.mark.parametrize("n,kwargs,shape", [
    (5, {}, (1, 5)),
    (7, {}, (2, 6)),
    (6, {"row_titles": ["a", "b"]}, (2, 3)),
    (5, {"ncols": 2}, (3, 2)),
])
def test_show_grid_layout(rng, n, kwargs, shape):
    images = [rng.integers(0, 256, (8, 8, 3)).astype(np.uint8) if i % 2
              else rng.uniform(0, 1, (8, 8))
              for i in range(n)]
    titles = [f"t{i}" for i in range(n)]
    fig = show_grid(images, titles=titles, **kwargs)
    try:
        assert isinstance(fig, Figure)
        axes = fig.get_axes()
        assert len(axes) == shape[0] * shape[1]
        shown = [ax for ax in axes if ax.images]
        assert len(shown) == n
        assert [ax.get_title() for ax in shown] == titles
        # an RGB image is drawn as is; a 2-D map with the jet colormap on [0, 1]
        np.testing.assert_array_equal(shown[1].images[0].get_array(), images[1])
        assert shown[0].images[0].get_cmap().name == "jet"
        assert shown[0].images[0].get_clim() == (0, 1)
        if "row_titles" in kwargs:
            ncols = shape[1]
            assert [axes[r * ncols].get_ylabel() for r in range(shape[0])] == ["a", "b"]
    finally:
        plt.close(fig)


def test_show_grid_needs_one_title_per_image(rng):
    with pytest.raises(ValueError, match="3 images but 2 titles"):
        show_grid([rng.uniform(0, 1, (4, 4))] * 3, titles=["a", "b"])


def test_show_grid_needs_images():
    with pytest.raises(ValueError, match="show_grid got no images"):
        show_grid([])


@pytest.mark.parametrize("n, row_titles, ncols, rows", [
    (6, ["a", "b", "c"], 3, 2),   # 6 images, 3 per row: 2 rows, not 3
    (12, ["a", "b", "c", "d", "e"], None, 4),  # 12 / 5 rounded up: 3 per row, 4 rows
    (4, ["a"], 2, 2),
])
def test_row_titles_must_match_the_rows(rng, n, row_titles, ncols, rows):
    images = [rng.uniform(0, 1, (4, 4)) for _ in range(n)]
    with pytest.raises(ValueError, match=rf"{len(row_titles)} row titles for {rows} rows "
                                         rf"\({n} images, \d+ per row\): give one title per row"):
        show_grid(images, row_titles=row_titles, ncols=ncols)


def test_show_grid_bad_entries(rng):
    with pytest.raises(ValueError, match=r"images\[0\] has shape \(1, 4, 4, 3\): show_grid "
                                         r"draws RGB images"):
        show_grid([np.zeros((1, 4, 4, 3))])
    with pytest.raises(ValueError, match=r"ncols must be an integer >= 1; got 0"):
        show_grid([rng.uniform(0, 1, (4, 4))], ncols=0)
