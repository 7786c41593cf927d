"""Collages: the layout is known, and the mass shares of hand-made maps come out exactly."""

import numpy as np
import pytest

from camcore.book.collages import make_collages, quadrant_mass, target_share_and_balance


@pytest.fixture(scope="module")
def source():
    """12 flat-coloured 8x8 images of 4 classes; image i is filled with the value 10 * i."""
    images = np.stack([np.full((8, 8, 3), 10 * i, np.uint8) for i in range(12)])
    return images, np.arange(12) % 4


def test_collages_hold_two_target_quadrants_from_the_right_images(source):
    images, labels = source
    c = make_collages(images, labels, n=20, seed=1)
    assert c.images.shape == (20, 8, 8, 3)
    np.testing.assert_array_equal(c.target, np.arange(20) % 4)  # targets cycle through classes
    np.testing.assert_array_equal(c.is_target.sum(axis=1), 2)
    for i in range(20):
        assert len(set(c.sources[i])) == 4  # no image twice
        others = c.quadrant_labels[i][~c.is_target[i]]
        assert others[0] != others[1] and c.target[i] not in others
        for q, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            quadrant = c.images[i, 4 * row:4 * row + 4, 4 * col:4 * col + 4]
            np.testing.assert_array_equal(quadrant, 10 * c.sources[i, q])  # the image put there
            assert labels[c.sources[i, q]] == c.quadrant_labels[i, q]


def test_mass_share_and_balance_by_hand(source):
    images, labels = source
    c = make_collages(images, labels, n=2, seed=0)
    maps = np.zeros((2, 8, 8))
    for i in range(2):
        first, second = np.flatnonzero(c.is_target[i])
        for q, value in ((first, 3.0), (second, 1.0)):  # target quadrants: 3 and 1
            row, col = divmod(q, 2)
            maps[i, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = value
        other = np.flatnonzero(~c.is_target[i])[0]
        row, col = divmod(other, 2)
        maps[i, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = 4.0  # one other quadrant: 4
    np.testing.assert_allclose(quadrant_mass(maps).sum(axis=1), 1.0)
    share, balance = target_share_and_balance(maps, c)
    np.testing.assert_allclose(share, 0.5)  # (3 + 1) / (3 + 1 + 4)
    np.testing.assert_allclose(balance, 1 / 3)
    np.testing.assert_allclose(quadrant_mass(np.zeros((1, 8, 8))), 0.25)


def test_too_few_classes():
    with pytest.raises(ValueError, match="at least 3 classes"):
        make_collages(np.zeros((4, 8, 8, 3), np.uint8), [0, 0, 1, 1], n=1)
