"""Faithfulness metrics on a model whose answer is known: it scores exactly the pixels of a mask."""

import keras
import numpy as np
import pytest

from camcore import metrics
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


@pytest.mark.parametrize("step, batch_size", [(5, 3), (1, 32), (64, 2), (100, 4)])
def test_curves_match_a_state_by_state_reference(mask_model, step, batch_size):
    """Batched across images, ends scored once: the same curves as scoring every state of
    every image on its own (step 5 leaves a short last step; 64 and 100 give one step)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)
    x[:, MASK > 0] = 255.0 * rng.uniform(0.8, 1.0, (5, 4, 1))  # p_0 away from 0 and 1
    maps, classes = random_maps(5, seed=4), np.array([0, 1, 0, 0, 1])
    deletion, insertion = deletion_insertion(mask_model, x, maps, classes, step=step,
                                             batch_size=batch_size, progress=False)
    blurred = metrics.blur(x)
    n_steps = -(-SIZE * SIZE // step)
    assert deletion.shape == insertion.shape == (5, n_steps + 1)
    for i in range(5):
        order = np.argsort(-maps[i].ravel(), kind="stable")
        for t in range(n_steps + 1):
            shown = np.zeros(SIZE * SIZE, bool)
            shown[order[:t * step]] = True
            shown = shown.reshape(SIZE, SIZE, 1)
            states = np.stack([np.where(shown, 0.0, x[i]), np.where(shown, x[i], blurred[i])])
            p = mask_model(states).numpy()[:, classes[i]]
            np.testing.assert_allclose([deletion[i, t], insertion[i, t]], p, atol=1e-6)


def test_auc_and_win_percent_by_hand():
    assert auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert auc([0.0, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.875)
    assert win_percent([0.5, 0.2, 0.9], [0.4, 0.2, 0.95]) == pytest.approx(50.0)  # win, tie, loss
    assert average_drop([0.5, 0.8], [0.25, 0.9]) == pytest.approx(25.0)  # (50 % + 0 %) / 2
    assert increase_in_confidence([0.5, 0.8], [0.25, 0.9]) == 50.0


# --------------------------------------------------------------------------------------------
# Misuse: every case answered with the cause and the fix
# --------------------------------------------------------------------------------------------
Y, O = np.array([0.8, 0.5, 0.9, 0.6]), np.array([0.4, 0.6, 0.9, 0.3])
NAN = np.array([0.8, np.nan, 0.9, 0.6])
SCORE_MISUSE = {  # call -> the message it must raise
    "drop, o of 1 image (broadcast before)": (lambda: average_drop(Y, O[:1]),
                                              r"o has 1 values but the other argument 4"),
    "win, o_b of 1 image (broadcast before)": (lambda: win_percent(O, O[:1]),
                                               r"o_b has 1 values but the other argument 4"),
    "drop, lengths 4 and 3": (lambda: average_drop(Y, O[:3]), r"o has 3 values.*4"),
    "increase, lengths 4 and 3": (lambda: increase_in_confidence(Y, O[:3]), r"o has 3 values"),
    "drop, empty": (lambda: average_drop([], []), r"y is empty: there are no images"),
    "drop, Y = 0 (NaN before)": (lambda: average_drop([0.0, 0.5], [0.1, 0.4]),
                                 r"y #0: Y = 0.*undefined"),
    "drop, NaN": (lambda: average_drop(NAN, O), r"y #1: NaN or infinite"),
    "drop, logits given": (lambda: average_drop(Y * 5, O), r"probabilities p_c in \[0, 1\].*"
                                                          r"Logits\?"),
    "drop, 2-D": (lambda: average_drop(Y[None], O[None]), r"one value per image, a 1-D array"),
    "drop, strings": (lambda: average_drop(["a", "b"], O[:2]), r"y must be numbers; got list"),
    "top fraction, a 2-D map": (lambda: metrics.top_fraction_masks(random_maps(1)[0], 0.5),
                                r"one map of shape \(8, 8\)\. Add a batch axis"),
    "top fraction, 0": (lambda: metrics.top_fraction_masks(random_maps(2), 0),
                        r"fraction must be a number in \(0, 1\]"),
    "top fraction, '0.5'": (lambda: metrics.top_fraction_masks(random_maps(2), "0.5"),
                            r"fraction must be a number"),
    "top fraction, keeps nothing": (lambda: metrics.top_fraction_masks(random_maps(2), 0.001),
                                    r"keeps no pixel: give at least 0\.0078"),
    "top fraction, NaN map": (lambda: metrics.top_fraction_masks(np.full((1, 4, 4), np.nan),
                                                                 0.5), r"NaN or infinite"),
    "auc, one point": (lambda: auc([1.0]), r"at least 2 points"),
}


@pytest.mark.parametrize("case", SCORE_MISUSE)
def test_score_misuse_is_answered(case):
    call, message = SCORE_MISUSE[case]
    with pytest.raises(ValueError, match=message):
        call()


WHITE = np.full((2, SIZE, SIZE, 3), 255.0)
NAN_MAPS = np.where(np.arange(2 * SIZE * SIZE).reshape(2, SIZE, SIZE) == 9, np.nan,
                    random_maps(2))
MODEL_MISUSE = {  # (function, heatmaps, classes, keyword arguments) -> message
    "7x7 maps, not heatmaps": (random_maps(2)[:, :7, :7], 0, {},
                               r"heatmaps are 7x7; the images are 8x8\. These look like the maps"
                               r".*result\.heatmaps"),
    "NaN heatmaps (curves before)": (NAN_MAPS, 0, {}, r"heatmaps: NaN or infinite values \(1 "),
    "heatmaps above 1": (2 * random_maps(2), 0, {}, r"heatmaps values span .*outside \[0, 1\]"),
    "heatmaps of 1 image for 2": (random_maps(1), 0, {}, r"1 heatmaps for 2 images"),
    "class 7 of 2 (IndexError before)": (random_maps(2), 7, {},
                                         r"class index 7 is out of range: the model has 2 "
                                         r"classes"),
    "classes None": (random_maps(2), None, {}, r"classes must be given here.*result\.classes"),
    "classes of 3 for 2 images": (random_maps(2), [0, 1, 1], {}, r"one int or 2 ints"),
    "step 0 (the default before)": (random_maps(2), 0, {"step": 0},
                                    r"step must be an integer >= 1; got 0"),
    "step 2.5": (random_maps(2), 0, {"step": 2.5}, r"step must be an integer >= 1; got 2\.5"),
    "empty batch": (random_maps(2)[:0], 0, {}, r"empty batch"),
}


@pytest.mark.parametrize("function, case", [
    (f, case) for f in ("explanation_scores", "deletion_insertion", "road")
    for case in MODEL_MISUSE if f == "deletion_insertion" or "step" not in case])
def test_model_metric_misuse_is_answered(mask_model, function, case):
    heatmaps, classes, kwargs, message = MODEL_MISUSE[case]
    images = WHITE[:len(heatmaps)] if case == "empty batch" else WHITE
    with pytest.raises(ValueError, match=message):
        getattr(metrics, function)(mask_model, images, heatmaps, classes, **kwargs)


@pytest.mark.parametrize("fractions, message", [
    ((), r"non-empty sequence"), (0.5, r"non-empty sequence"), ("0.5", "non-empty sequence"),
    ((0.1, 0), r"each of fractions must be a number in \(0, 1\]; got 0"),
    ((0.1, 1.5), r"got 1\.5"), ((0.1, np.nan), r"got nan")])
def test_road_fractions_are_checked(mask_model, fractions, message):
    with pytest.raises(ValueError, match=message):
        metrics.road(mask_model, WHITE, random_maps(2), 0, fractions, progress=False)


def test_class_probabilities_checks_classes(mask_model):
    with pytest.raises(ValueError, match=r"class index 2 is out of range"):
        class_probabilities(mask_model, WHITE, [0, 2])
    np.testing.assert_allclose(class_probabilities(mask_model, WHITE, [0, 1]),
                               mask_model(WHITE).numpy()[[0, 1], [0, 1]], atol=1e-6)


def test_per_image_drop_averages_to_average_drop():
    from camcore import metrics

    y, o = np.array([0.8, 0.5, 0.9]), np.array([0.4, 0.6, 0.9])
    np.testing.assert_allclose(metrics.per_image_drop(y, o), [50.0, 0.0, 0.0])
    assert metrics.average_drop(y, o) == pytest.approx(50 / 3)


# --------------------------------------------------------------------------------------------
# Area-matched masks, ROAD
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_top_fraction_masks_keep_exactly_that_share(rng, fraction):
    from camcore import metrics

    maps = rng.uniform(0, 1, (3, 10, 10))
    maps[2] = 0.5  # a flat map: ties, still exactly that many pixels
    masks = metrics.top_fraction_masks(maps, fraction)
    keep = round(fraction * 100)
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), keep)
    for m, mask in zip(maps[:2], masks[:2]):  # the kept pixels are the largest
        assert m[mask == 1].min() >= m[mask == 0].max(initial=-1)


def imputation_by_loops(image, removed):
    """Noisy linear imputation without noise, written out pixel by pixel and solved densely."""
    h, w, c = image.shape
    unknown = list(zip(*np.nonzero(removed)))
    where = {p: i for i, p in enumerate(unknown)}
    matrix, rhs = np.zeros((len(unknown), len(unknown))), np.zeros((len(unknown), c))
    for i, (y, x) in enumerate(unknown):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy, dx) == (0, 0) or not (0 <= y + dy < h and 0 <= x + dx < w):
                    continue
                weight = 1 / 6 if dy == 0 or dx == 0 else 1 / 12
                matrix[i, i] += weight
                if (y + dy, x + dx) in where:
                    matrix[i, where[(y + dy, x + dx)]] -= weight
                else:
                    rhs[i] += weight * image[y + dy, x + dx]
    out = image.astype(np.float64).copy()
    out[removed] = np.linalg.solve(matrix, rhs)
    return out


def test_noisy_linear_imputation_known_answers(rng):
    from camcore import metrics

    image = rng.uniform(0, 255, (9, 11, 3))
    removed = rng.uniform(size=(9, 11)) < 0.4
    np.testing.assert_allclose(metrics.noisy_linear_imputation(image, removed, noise=0),
                               imputation_by_loops(image, removed), atol=1e-3)
    # a linear ramp is reproduced exactly inside (the neighbour weights are symmetric)
    yy, xx = np.mgrid[0:9, 0:11]
    ramp = np.repeat((10 + 7 * yy + 3 * xx)[..., None], 3, axis=-1).astype(np.float64)
    hole = np.zeros((9, 11), bool)
    hole[2:7, 3:8] = True
    np.testing.assert_allclose(metrics.noisy_linear_imputation(ramp, hole, noise=0), ramp,
                               atol=1e-3)
    # the noise: that standard deviation on the imputed pixels only, nothing else touched
    noisy = metrics.noisy_linear_imputation(np.full((40, 40, 3), 100.0), np.ones((40, 40), bool)
                                            & (np.arange(40)[:, None] > 5), noise=5)
    assert noisy[6:].std() == pytest.approx(5, rel=0.1)
    np.testing.assert_array_equal(noisy[:6], 100.0)


def test_road_ranks_the_perfect_map_above_random_maps(mask_model):
    """On images whose four mask pixels are white and the rest black, imputing the mask pixels
    from their black neighbours kills p_0 (MoRF, perfect map) while random maps keep it longer;
    LeRF with the perfect map keeps the mask pixels until the very end."""
    from camcore import metrics

    only_mask = np.repeat((255 * MASK)[None, ..., None], 3, axis=-1).repeat(3, axis=0)
    perfect = np.repeat(MASK[None], 3, axis=0)
    fractions = (0.05, 0.3, 0.6, 0.9)
    morf, lerf = metrics.road(mask_model, only_mask, perfect, 0, fractions, progress=False)
    morf_r, lerf_r = metrics.road(mask_model, only_mask, random_maps(3), 0, fractions,
                                  progress=False)
    assert morf.shape == lerf.shape == (3, 4)
    assert morf.max() < 0.01  # the first 5 % (3 pixels) already takes mask pixels away
    assert lerf[:, :3].min() > 0.99  # 90 % removed = 58 pixels: the mask's 4 are still there
    assert morf.mean() < morf_r.mean() and lerf.mean() > lerf_r.mean()
