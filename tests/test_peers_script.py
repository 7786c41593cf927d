"""The pure helpers of scripts/peers.py (the script itself needs tf-keras-vis and the real data)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "peers.py"
_spec = importlib.util.spec_from_file_location("peers_script", _PATH)
peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers)


def test_minmax_per_map_and_constant_map():
    maps = np.array([[[0, 1], [2, 3]], [[5, 5], [5, 5]]])
    np.testing.assert_allclose(peers.minmax(maps), [[[0, 1 / 3], [2 / 3, 1]], [[0, 0], [0, 0]]])


def test_pearson_by_hand():
    # centred [-1, 0, 1] and [-1, 1, 0]: r = 1 / sqrt(2 * 2) = 0.5, unchanged by min-max scaling
    a = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    b = np.array([[1.0, 3.0, 2.0], [7.0, 9.0, 11.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    r = peers.pearson(a, b)
    np.testing.assert_allclose(r[:3], [0.5, 1.0, -1.0])
    assert np.isnan(r[3])  # a constant map has no correlation


def test_pearson_on_2d_maps_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 7, 7)), rng.random((3, 7, 7))
    expected = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(peers.pearson(a, 10 * b + 3), expected)


@pytest.mark.parametrize("a, b, expected", [(2.0, 4.0, 0.5), (1.0, 0.0, None), (None, 1.0, None)])
def test_ratio(a, b, expected):
    assert peers.ratio(a, b) == expected
