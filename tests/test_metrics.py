"""Faithfulness metrics on a model whose answer is known: it scores exactly the pixels of a mask."""

import keras
import numpy as np
import pytest

from camcore.metrics import (
    auc,
    average_drop,
    class_probabilities,
    deletion_insertion,
    explanation_scores,
    increase_in_confidence,
    win_percent,
)

SIZE = 8
MASK = np.zeros((SIZE, SIZE), np.float32)
MASK[2, 3] = MASK[5, 5] = MASK[6, 1] = MASK[1, 6] = 1.0  # the four pixels the model looks at
A, THRESHOLD = 0.1, 3.5 * 255  # p_0 = sigmoid(A * (sum of the masked pixels' grey - THRESHOLD))


@pytest.fixture(scope="module")
def mask_model():
    """p_0 is ~1 when all four mask pixels are white and ~0 as soon as one of them is black."""
    inputs = keras.Input((SIZE, SIZE, 3))
    grey = keras.layers.Conv2D(1, 1, use_bias=False, name="grey")(inputs)
    logits = keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(grey))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.get_layer("grey").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
    kernel = np.zeros((SIZE * SIZE, 2), np.float32)
    kernel[:, 0] = A * MASK.ravel()
    model.get_layer("logits").set_weights([kernel, np.array([-A * THRESHOLD, 0], np.float32)])
    return model


def random_maps(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, SIZE, SIZE)).astype(np.float32)


def test_class_probabilities_match_the_model(mask_model):
    x = np.random.default_rng(1).uniform(0, 255, (5, SIZE, SIZE, 3))
    np.testing.assert_allclose(class_probabilities(mask_model, x, 0), mask_model(x).numpy()[:, 0],
                               atol=1e-6)


def test_perfect_map_has_no_drop_and_random_maps_drop(mask_model):
    white = np.full((4, SIZE, SIZE, 3), 255.0)
    y, o = explanation_scores(mask_model, white, np.repeat(MASK[None], 4, axis=0), 0)
    assert y.min() > 0.99
    assert average_drop(y, o) == pytest.approx(0.0, abs=1e-4)  # E keeps every scored pixel
    assert increase_in_confidence(y, o) == 0.0
    y, o_random = explanation_scores(mask_model, white, random_maps(4), 0)
    assert average_drop(y, o_random) > 50  # dimmed mask pixels: the confidence collapses
    assert win_percent(o, o_random) == 100.0 and win_percent(o_random, o) == 0.0


def test_deletion_ideal_curve(mask_model):
    white = np.full((3, SIZE, SIZE, 3), 255.0)
    deletion, _ = deletion_insertion(mask_model, white, np.repeat(MASK[None], 3, axis=0), 0,
                                     step=1, progress=False)
    assert deletion.shape == (3, SIZE * SIZE + 1)
    assert deletion[:, 0].min() > 0.99 and deletion[:, 1:].max() < 0.01  # one black mask pixel
    ideal = 0.5 / (SIZE * SIZE)  # the smallest area a curve starting at 1 can have
    np.testing.assert_allclose(auc(deletion), ideal, atol=2e-4)
    random, _ = deletion_insertion(mask_model, white, random_maps(3), 0, step=1, progress=False)
    assert auc(random).min() > 3 * ideal


def test_insertion_ideal_curve(mask_model):
    only_mask = np.repeat((255 * MASK)[None, ..., None], 3, axis=-1).repeat(3, axis=0)
    _, insertion = deletion_insertion(mask_model, only_mask, np.repeat(MASK[None], 3, axis=0), 0,
                                      step=1, progress=False)
    assert insertion[:, :4].max() < 0.01 and insertion[:, 4:].min() > 0.99  # all 4 back: p = 1
    n = SIZE * SIZE
    np.testing.assert_allclose(auc(insertion), (n - 4 + 0.5) / n, atol=1e-3)
    _, random = deletion_insertion(mask_model, only_mask, random_maps(3), 0, step=1,
                                   progress=False)
    assert auc(random).max() < auc(insertion).min() - 0.05


def test_auc_and_win_percent_by_hand():
    assert auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert auc([0.0, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.875)
    assert win_percent([0.5, 0.2, 0.9], [0.4, 0.2, 0.95]) == pytest.approx(50.0)  # win, tie, loss
    assert average_drop([0.5, 0.8], [0.25, 0.9]) == pytest.approx(25.0)  # (50 % + 0 %) / 2
    assert increase_in_confidence([0.5, 0.8], [0.25, 0.9]) == 50.0


def test_heatmaps_must_match_the_images(mask_model):
    white = np.full((2, SIZE, SIZE, 3), 255.0)
    with pytest.raises(ValueError, match="heatmaps must be"):
        explanation_scores(mask_model, white, random_maps(2)[:, :4], 0)
    with pytest.raises(ValueError, match="heatmaps must be"):
        explanation_scores(mask_model, white, 2 * random_maps(2), 0)


def test_bootstrap_ci_known_answers(rng):
    from camcore import metrics

    assert metrics.bootstrap_ci(np.full(50, 3.0)) == (3.0, 3.0)  # no spread, no interval
    values = rng.normal(10.0, 2.0, 400)
    low, high = metrics.bootstrap_ci(values)
    half = 1.96 * values.std() / np.sqrt(len(values))  # the normal-theory interval
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    half_low, half_high = metrics.bootstrap_ci(values, level=0.5)
    assert half_high - half_low < high - low
    with pytest.raises(ValueError, match="at least 2 per-image values"):
        metrics.bootstrap_ci([1.0])


def test_per_image_drop_averages_to_average_drop():
    from camcore import metrics

    y, o = np.array([0.8, 0.5, 0.9]), np.array([0.4, 0.6, 0.9])
    np.testing.assert_allclose(metrics.per_image_drop(y, o), [50.0, 0.0, 0.0])
    assert metrics.average_drop(y, o) == pytest.approx(50 / 3)
