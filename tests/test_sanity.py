"""camcore.sanity: rank correlation and SSIM against scipy/scikit-image, cascading randomisation."""

import keras
import numpy as np
import pytest
import scipy.stats
import skimage.metrics

from camcore import sanity


def staged_model(seed=0):
    """stem -> block1a -> block1b -> block2a -> GAP -> logits, with seeded initialisers."""
    init = keras.initializers.GlorotUniform(seed=seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="stem_conv", kernel_initializer=init)(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    for name in ("block1a", "block1b", "block2a"):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=f"{name}_conv",
                                kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits", kernel_initializer=init)(x))


def trained_like(seed=0):
    """A staged model whose weights moved away from their initial values (as training does)."""
    model = staged_model(seed)
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.normal(0, 0.1, w.shape) for w in model.get_weights()])
    return model


def test_layer_groups_go_from_the_output_down_by_stage():
    groups = sanity.layer_groups(staged_model())
    assert [(g, [l.name for l in layers]) for g, layers in groups] == [
        ("logits", ["logits"]), ("block2", ["block2a_conv"]),
        ("block1", ["block1a_conv", "block1b_conv"]), ("stem", ["stem_conv", "stem_bn"])]


def test_layer_groups_look_inside_nested_models(nested_model):
    assert [g for g, _ in sanity.layer_groups(nested_model)] == ["logits", "conv"]


def test_cascading_randomization_is_cumulative_and_leaves_the_original_alone():
    model = trained_like()
    original = {l.name: [w.copy() for w in l.get_weights()] for l in model.layers}
    fresh_init = {l.name: l.get_weights() for l in staged_model().layers}
    seen = []
    for group, randomised in sanity.cascading_randomization(model):
        seen.append(group)
        for g, layers in sanity.layer_groups(randomised):
            for layer in layers:
                after, before = layer.get_weights(), original[layer.name]
                if g not in seen:  # not reached yet: untouched
                    for a, b in zip(after, before):
                        np.testing.assert_array_equal(a, b)
                elif isinstance(layer, keras.layers.BatchNormalization):  # back to its start
                    gamma, beta, mean, var = after
                    assert np.all(gamma == 1) and np.all(beta == 0)
                    assert np.all(mean == 0) and np.all(var == 1)
                else:  # a fresh draw: neither the trained kernel nor the build's initial one
                    assert not np.allclose(after[0], before[0]), (group, layer.name)
                    assert not np.allclose(after[0], fresh_init[layer.name][0])
    assert seen == ["logits", "block2", "block1", "stem"]
    for layer in model.layers:
        for a, b in zip(layer.get_weights(), original[layer.name]):
            np.testing.assert_array_equal(a, b)


def test_cascading_randomization_is_reproducible():
    model = trained_like()
    runs = [[w.copy() for _, m in sanity.cascading_randomization(model, seed=3)
             for w in m.get_weights()] for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_spearman_matches_scipy_with_ties(rng):
    a = np.round(rng.uniform(size=(20, 30)), 1)  # many ties, like a ReLU map's zeros
    b = np.maximum(0, np.round(a + rng.normal(0, 0.3, a.shape), 1))
    assert sanity.spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a.ravel(), b.ravel())[0])


def test_spearman_known_answers(rng):
    a = rng.uniform(size=(7, 7))
    assert sanity.spearman(a, a) == pytest.approx(1.0)
    assert sanity.spearman(a, -a) == pytest.approx(-1.0)
    assert sanity.spearman(a, a**3) == pytest.approx(1.0)  # only the order counts
    assert sanity.spearman(a, np.zeros_like(a)) == 0.0  # an all-zero map ranks nothing


def test_ssim_matches_scikit_image(rng):
    a = rng.uniform(size=(64, 64))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    expected = skimage.metrics.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert sanity.ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert sanity.ssim(a, a) == pytest.approx(1.0)


@pytest.mark.parametrize("a, b, message", [
    (np.zeros((12, 12)), np.zeros((12, 13)), r"a and b must have one shape; got \(12, 12\) and "
                                             r"\(12, 13\)"),
    (np.zeros((7, 7)), np.zeros((7, 7)), r"at least 11x11.*got 7x7\. Compare the heatmaps"),
    (np.zeros((2, 12, 12)), np.zeros((2, 12, 12)), r"two 2-D maps"),
    (np.full((12, 12), np.nan), np.zeros((12, 12)), r"a: NaN or infinite"),
])
def test_ssim_misuse(a, b, message):
    with pytest.raises(ValueError, match=message):
        sanity.ssim(a, b)


@pytest.mark.parametrize("a, b, message", [
    (np.zeros((7, 7)), np.zeros((7, 8)), r"a and b must have one shape"),
    (np.zeros((7, 7)), np.full((7, 7), np.inf), r"b: NaN or infinite"),
])
def test_spearman_misuse(a, b, message):
    with pytest.raises(ValueError, match=message):
        sanity.spearman(a, b)


def preprocessing_model():
    """Normalization (data statistics, no initialiser) -> DepthwiseConv2D -> SeparableConv2D ->
    GAP -> Dense: the layers whose weights are not all called "kernel_initializer"'s."""
    inputs = keras.Input((8, 8, 3))
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)))
    x = keras.layers.DepthwiseConv2D(3, name="dw_conv")(norm(inputs))
    x = keras.layers.SeparableConv2D(4, 3, name="sep_conv")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(
        keras.layers.GlobalAveragePooling2D()(x)))


def test_cascading_randomization_with_preprocessing_and_depthwise_layers():
    """A Normalization layer (AttributeError 'depthwise_initializer' before) is left as it is;
    depthwise and separable kernels are drawn again from their own initialisers."""
    model = preprocessing_model()
    trained = [w + 0.5 for w in model.get_weights()]  # away from any initial value
    model.set_weights(trained)
    norm_before = [w.copy() for w in model.get_layer("norm").get_weights()]
    assert [g for g, _ in sanity.layer_groups(model)] == ["logits", "sep", "dw"]
    steps = list(sanity.cascading_randomization(model))
    randomised = steps[-1][1]
    for a, b in zip(randomised.get_layer("norm").get_weights(), norm_before):
        np.testing.assert_array_equal(a, b)  # statistics of the data: untouched
    dw_kernel, dw_bias = randomised.get_layer("dw_conv").get_weights()
    depthwise, pointwise, sep_bias = randomised.get_layer("sep_conv").get_weights()
    # Glorot uniform: |w| <= sqrt(6 / (fan_in + fan_out)); 3x3 depthwise on 3 channels: fans
    # 27 and 9; the 1x1 pointwise kernel from 3 to 4 channels: fans 3 and 4
    limits = [np.sqrt(6 / 36), np.sqrt(6 / 36), np.sqrt(6 / 7)]
    trained_kernels = [trained[3], trained[5], trained[6]]
    for kernel, before, limit in zip((dw_kernel, depthwise, pointwise), trained_kernels, limits):
        assert kernel.shape == before.shape
        assert np.abs(kernel).max() <= limit < np.abs(before).max()  # drawn again, not kept
        assert len(np.unique(kernel)) == kernel.size  # random, not a constant
    np.testing.assert_array_equal(dw_bias, 0.0)
    np.testing.assert_array_equal(sep_bias, 0.0)


def test_cascading_randomization_checks_its_seed():
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0"):
        next(sanity.cascading_randomization(staged_model(), seed="abc"))
