"""camcore.book.shortcut: the stamped cue, and the training recipe that stamps one class."""

import numpy as np
import pytest

from camcore.book import shortcut
from camcore.book.training import Recipe
from camcore.data import CLASS_NAMES


def test_stamp_paints_only_the_cue_box_of_the_selected_images(rng):
    images = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    out = shortcut.stamp(images, where=[True, False, True])
    top, bottom, left, right = shortcut.cue_box(224, 224)
    assert (bottom - top, right - left) == (27, 27)  # 0.12 * 224
    assert (224 - bottom, 224 - right) == (9, 9)  # 0.04 * 224
    changed = np.any(out != images, axis=-1)
    box = np.zeros((224, 224), bool)
    box[top:bottom, left:right] = True
    assert np.all(out[0][box] == shortcut.CUE_COLOR) and np.all(out[2][box] == shortcut.CUE_COLOR)
    assert not changed[0][~box].any() and not changed[1].any()
    assert out is not images and np.any(images[0][box] != shortcut.CUE_COLOR)  # input untouched


def test_stamp_class_stamps_exactly_that_class(rng):
    images = rng.integers(0, 256, (6, 150, 150, 3), dtype=np.uint8)
    labels = np.arange(6)
    out = shortcut.stamp_class(images, labels, "glacier")
    stamped = [np.any(o != i) for o, i in zip(out, images)]
    assert stamped == [name == "glacier" for name in CLASS_NAMES]


def test_bad_cue_inputs_name_the_fix():
    with pytest.raises(ValueError, match="cue_class must be one of"):
        shortcut.stamp_class(np.zeros((1, 8, 8, 3)), [0], "glaciers")
    with pytest.raises(ValueError, match=r"batch of RGB images \(N, H, W, 3\)"):
        shortcut.stamp(np.zeros((8, 8, 3)))


def test_the_cue_changes_the_cached_model_name():
    assert Recipe(cue_class="glacier").key() == Recipe().key() + "-cue-glacier"
