"""Tests for camcore.book.exercises: each checker passes a right answer and names typical mistakes.

The solutions below are written the way a student would write them (numpy or TensorFlow), not
taken from the checkers' own wrong variants. Every case asserts the verdict (True/False) and
the specific line the checker prints.
"""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

import camcore
from camcore.book import exercises as ex


# --------------------------------------------------------------------------------------------
# Students' solutions, right and wrong
# --------------------------------------------------------------------------------------------
def cam_right(a, kernel, c):
    return np.maximum(np.einsum("nhwk,k->nhw", a, kernel[:, c]), 0)


def cam_right_tf(a, kernel, c):
    return tf.nn.relu(tf.reduce_sum(a * kernel[:, c], axis=-1))


def cam_row(a, kernel, c):
    return np.maximum(a @ kernel[c], 0)


def cam_no_relu(a, kernel, c):
    return a @ kernel[:, c]


def cam_normalised(a, kernel, c):
    return camcore.normalize_maps(cam_right(a, kernel, c), warn=False)


def cam_mean(a, kernel, c):
    return np.maximum(np.mean(a * kernel[:, c], axis=-1), 0)


def cam_every_class(a, kernel, c):
    return np.maximum(a @ kernel, 0)


def grad_cam_right(g):
    return np.mean(g, axis=(1, 2))


def grad_cam_sum(g):
    return tf.reduce_sum(g, axis=(1, 2))


def grad_cam_channels(g):
    return g.mean(axis=-1)


def grad_cam_relu(g):
    return np.maximum(g, 0).mean(axis=(1, 2))


def grad_cam_abs(g):
    return np.abs(g).mean(axis=(1, 2))


def gradients(model, images, c, all_logits=False, wrt="A"):
    """The student's GradientTape code, right (logit, A) or with a slip in what or by what."""
    split = camcore.split_model(model)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        a = split.features(x)
        tape.watch(a)
        y = split.head(a) if all_logits else split.head(a)[:, c]
    return tape.gradient(y, x if wrt == "image" else a)


def gradients_right(model, images, c):
    return gradients(model, images, c)


def gradients_of_probability(model, images, c):
    """The Keras tutorial's "grad model", on a model whose output is the softmax."""
    grad_model = keras.Model(model.input, [model.get_layer("conv").output, model.output])
    with tf.GradientTape() as tape:
        a, probs = grad_model(images)
        y = probs[:, c]
    return tape.gradient(y, a)


def gradients_through_the_model(model, images, c):
    """A from the split, y from the whole model: y is not computed from this A."""
    split = camcore.split_model(model)
    with tf.GradientTape() as tape:
        a = split.features(images)
        tape.watch(a)
        y = model(images)[:, c]
    return tape.gradient(y, a)


def gradients_of_all_logits(model, images, c):
    return gradients(model, images, c, all_logits=True)


def gradients_wrt_image(model, images, c):
    return gradients(model, images, c, wrt="image")


def gradients_unwatched(model, images, c):
    split = camcore.split_model(model)
    a = split.features(images)  # outside the tape: tape.gradient gives None
    with tf.GradientTape() as tape:
        y = split.head(tf.identity(a))[:, c]
    return tape.gradient(y, a)


def alpha(a, g, a_term=None, divide=tf.math.divide_no_nan):
    a_term = tf.reduce_sum(a, axis=(1, 2), keepdims=True) if a_term is None else a_term
    return divide(g**2, 2 * g**2 + a_term * g**3)


def alpha_right(a, g):
    return alpha(a, g)


def alpha_numpy(a, g):
    s = a.sum(axis=(1, 2), keepdims=True)
    den = 2 * g**2 + s * g**3
    return np.where(den != 0, g**2 / np.where(den != 0, den, 1), 0)


def alpha_a_not_summed(a, g):
    return alpha(a, g, a_term=a)


def alpha_no_a(a, g):
    return alpha(a, g, a_term=1.0)


def alpha_nan(a, g):
    return alpha(a, g, divide=tf.math.divide)


def alpha_renormalised(a, g):
    x = alpha(a, g)
    return tf.math.divide_no_nan(x, tf.reduce_sum(x, axis=(1, 2), keepdims=True))


def alpha_channel_sum(a, g):
    return alpha(a, g, a_term=tf.reduce_sum(a, axis=-1, keepdims=True))


def minmax(m):
    return (m - m.min()) / (m.max() - m.min())


def mask_right_tf(m, size):
    return minmax(tf.image.resize(m[..., None], size)[..., 0].numpy())


def mask_right_cv2(m, size):
    return minmax(cv2.resize(m, size[::-1]))


def mask_no_min(m, size):
    up = cv2.resize(m, size[::-1])
    return up / (up.max() - up.min())


def mask_max_only(m, size):
    up = cv2.resize(m, size[::-1])
    return up / up.max()


def mask_normalised_first(m, size):
    return cv2.resize(minmax(m), size[::-1])


def mask_not_upsampled(m, size):
    return minmax(m)


def mask_cv2_transposed(m, size):
    return minmax(cv2.resize(m, size))


def mask_nearest(m, size):
    return minmax(cv2.resize(m, size[::-1], interpolation=cv2.INTER_NEAREST))


def layer_cam_right(g):
    return tf.nn.relu(g)


def layer_cam_mean(g):
    return g.mean(axis=(1, 2), keepdims=True)


def layer_cam_no_relu(g):
    return g


def layer_cam_relu_after_mean(g):
    return np.maximum(g.mean(axis=(1, 2)), 0)


def drop_right(y, o):
    return 100 * np.mean(np.maximum(0, y - o) / y)


def drop_no_max(y, o):
    return 100 * np.mean((y - o) / y)


def drop_by_o(y, o):
    return 100 * np.mean(np.maximum(0, y - o) / o)


def drop_fraction(y, o):
    return np.mean(np.maximum(0, y - o) / y)


def drop_ratio_of_means(y, o):
    return 100 * np.mean(np.maximum(0, y - o)) / np.mean(y)


def drop_per_image(y, o):
    return 100 * np.maximum(0, y - o) / y


def drop_python_max(y, o):
    return 100 * np.mean(max(0, y - o) / y)  # the truth value of an array is ambiguous


# --------------------------------------------------------------------------------------------
# Each checker: right answers pass, typical mistakes are named
# --------------------------------------------------------------------------------------------
CASES = {
    ex.check_cam_map: [
        (cam_right, "✓ correct: ReLU(sum_k W[k, c] A^k)"),
        (cam_right_tf, "✓ correct: ReLU(sum_k W[k, c] A^k)"),
        (cam_row, "✗ not yet: you took the row W[c] of the kernel;"),
        (cam_no_relu, "✗ not yet: your map has negative values: apply the ReLU"),
        (cam_normalised, "✗ not yet: your map is min-max normalised to [0, 1];"),
        (cam_mean, "✗ not yet: you averaged over the channels; CAM sums them"),
        (cam_every_class, "✗ not yet: you computed one map per class"),
    ],
    ex.check_grad_cam_weights: [
        (grad_cam_right, "✓ correct: alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij"),
        (grad_cam_sum, "✗ not yet: you summed the gradients over the positions;"),
        (grad_cam_channels, "✗ not yet: you averaged over the channels (the last axis);"),
        (grad_cam_relu, "✗ not yet: you applied a ReLU to the gradients before averaging;"),
        (grad_cam_abs, "✗ not yet: you averaged the absolute values of the gradients;"),
    ],
    ex.check_logit_gradients: [
        (gradients_right, "✓ correct: dy^c/dA, the gradient of the logit of class c"),
        (gradients_of_probability, "✗ not yet: you took the gradient of the softmax probability"),
        (gradients_of_all_logits, "✗ not yet: you took the gradient of all the logits summed"),
        (gradients_wrt_image, "✗ not yet: your gradient has the images' shape (N, H, W, 3)"),
        (gradients_unwatched, "tape.gradient returns None when A was not computed inside"),
        (gradients_through_the_model, "y = model(images) recomputes A"),
    ],
    ex.check_grad_cam_plus_plus_alpha: [
        (alpha_right, "✓ correct: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)"),
        (alpha_numpy, "✓ correct: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)"),
        (alpha_a_not_summed, "✗ not yet: you used A at each position in the denominator;"),
        (alpha_no_a, "✗ not yet: your denominator has no A in it"),
        (alpha_nan, "✗ not yet: your alpha has NaN where the gradient is 0"),
        (alpha_renormalised, "✗ not yet: you renormalised alpha by its spatial sum"),
        (alpha_channel_sum, "✗ not yet: you summed A over the channels"),
    ],
    ex.check_score_cam_mask: [
        (mask_right_tf, "✓ correct: bilinear upsampling to the image size"),
        (mask_right_cv2, "✓ correct: bilinear upsampling to the image size"),
        (mask_no_min, "✗ not yet: you divided by (max - min) without subtracting the minimum;"),
        (mask_max_only, "✗ not yet: you divided by the maximum only"),
        (mask_normalised_first, "✗ not yet: you normalised before upsampling;"),
        (mask_not_upsampled, "✗ not yet: your mask has the channel map's own size (h, w);"),
        (mask_cv2_transposed, "✗ not yet: your mask is (W, H), transposed"),
        (mask_nearest, "✗ not yet: you upsampled with nearest-neighbour interpolation;"),
    ],
    ex.check_layer_cam_weights: [
        (layer_cam_right, "✓ correct: w_ij^k = ReLU(dy^c/dA^k_ij)"),
        (layer_cam_mean, "✗ not yet: you averaged the gradients over the positions: that is "
                         "Grad-CAM's weight."),
        (layer_cam_no_relu, "✗ not yet: you returned the gradients unchanged: that is "
                            "HiResCAM's weight."),
        (layer_cam_relu_after_mean, "✗ not yet: you applied the ReLU after averaging"),
    ],
    ex.check_average_drop: [
        (drop_right, "✓ correct: Average Drop % = 100 * mean_i max(0, Y_i - O_i) / Y_i."),
        (camcore.metrics.average_drop, "✓ correct: Average Drop %"),
        (drop_no_max, "✗ not yet: you let increases count as negative drops;"),
        (drop_by_o, "✗ not yet: you divided by O (the explanation's score);"),
        (drop_fraction, "✗ not yet: your answer is a fraction;"),
        (drop_ratio_of_means, "✗ not yet: you took a ratio of means;"),
        (drop_per_image, "✗ not yet: you returned one drop per image;"),
        (drop_python_max, "hint: y and o are numpy arrays of N probabilities"),
    ],
}


@pytest.mark.parametrize("checker, solution, line", [
    pytest.param(checker, solution, line, id=f"{checker.__name__}-{solution.__name__}")
    for checker, cases in CASES.items() for solution, line in cases])
def test_verdict(checker, solution, line, capsys):
    passed = checker(solution)
    out = capsys.readouterr().out
    assert line in out
    assert passed is line.startswith("✓")
    assert out.count("✓") + out.count("✗") + out.count("not implemented yet") == 1, out


# --------------------------------------------------------------------------------------------
# Stubs and broken functions: reported, never raised
# --------------------------------------------------------------------------------------------
def stub_returning_none(*args):
    pass


def stub_raising(*args):
    raise NotImplementedError


def broken(*args):
    raise ZeroDivisionError("division by zero")


def returns_text(*args):
    return "my answer"


@pytest.mark.parametrize("checker", list(CASES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("solution, line, printed", [
    (stub_returning_none, "not implemented yet: your function returned None", "✗"),
    (stub_raising, "not implemented yet: replace `raise NotImplementedError`", "✗"),
    (broken, "✗ not yet: your function raised ZeroDivisionError: division by zero", "✓"),
    (returns_text, "✗ not yet: your function returned a str, not an array of numbers", "✓"),
], ids=["returns-None", "NotImplementedError", "other-error", "not-numbers"])
def test_unfinished_functions_are_reported(checker, solution, line, printed, capsys):
    assert checker(solution) is False
    out = capsys.readouterr().out
    assert line in out
    assert printed not in out


@pytest.mark.parametrize("checker", list(CASES), ids=lambda c: c.__name__)
def test_named_mistakes_differ_from_the_answer_and_each_other(checker, monkeypatch, capsys):
    """No wrong variant can be mistaken for the right answer, or for another wrong variant."""
    seen = []
    judge = ex._judge

    def spy(got, expected, mistakes, shape_note, **tolerance):
        seen.append((expected, mistakes, tolerance))
        return judge(got, expected, mistakes, shape_note, **tolerance)

    monkeypatch.setattr(ex, "_judge", spy)
    checker(CASES[checker][0][0])
    assert "✓ correct" in capsys.readouterr().out and seen
    for expected, mistakes, tolerance in seen:
        values = [np.asarray(expected, np.float64)] + [
            np.asarray(w, np.float64) for w, _ in mistakes if not isinstance(w, tuple)]
        for i, a in enumerate(values):
            for b in values[i + 1:]:
                assert not ex._matches(a, b, tolerance.get("rtol", 1e-4),
                                       tolerance.get("atol", 1e-6))


def test_broken_function_gets_a_hint(capsys):
    ex.check_grad_cam_weights(broken)
    assert "  hint: gradients are (N, h, w, K); average over the position axes, 1 and 2" in (
        capsys.readouterr().out)


def test_a_function_writing_into_its_inputs_is_judged_fairly(capsys):
    """The answers are worked out before the student's function runs on copies of the inputs."""
    def right_then_vandal(a, kernel, c):
        out = cam_right(a, kernel, c)
        a[:], kernel[:] = 0, 0
        return out

    assert ex.check_cam_map(right_then_vandal)
    assert "✓ correct" in capsys.readouterr().out


def test_wrong_values_without_a_named_mistake_show_where(capsys):
    assert not ex.check_layer_cam_weights(lambda g: np.maximum(g, 0) + 1)
    assert "✗ not yet: your values differ from the expected ones, e.g. at index (0, 0, 0, 0)" in (
        capsys.readouterr().out)


def test_right_values_in_a_wrong_shape_are_told_apart(capsys):
    assert not ex.check_grad_cam_weights(lambda g: np.mean(g, axis=(1, 2), keepdims=True))
    assert "your values are right, but their shape is (2, 1, 1, 5)" in capsys.readouterr().out


def test_toy_classifier_splits_at_its_conv_layer():
    model = ex.toy_classifier()
    split = camcore.split_model(model)
    assert split.layer == "conv"
    a = split.features(np.zeros((1, 8, 8, 3), np.float32))
    assert tuple(a.shape) == (1, 6, 6, 4) and tuple(split.head(a).shape) == (1, 3)
