"""Checkers for the course's exercises: run a student's function on small known inputs.

Each checker calls the student's function on small, seeded inputs whose answers are known
(camcore's own functions, or numbers worked out by hand), prints one short verdict and returns
True or False. When the answer is wrong it also computes the typical wrong variants and, if the
student's output matches one, names that mistake and how to fix it. A checker never raises: an
untouched stub (returning None or raising NotImplementedError) prints "not implemented yet", so
a notebook holding the stub runs cleanly under nbval.

A chapter's exercise is a stub cell and a checker call::

    from camcore.book.exercises import check_grad_cam_weights

    def my_grad_cam_weights(gradients):
        # alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij: (N, h, w, K) -> (N, K)
        raise NotImplementedError  # your code here

    check_grad_cam_weights(my_grad_cam_weights)

which prints, once the function is right, ``✓ correct: ...``, and otherwise ``✗ not yet: ...``
with the likely mistake, e.g. a sum where the mean belongs. Inputs are float32 numpy arrays;
the student may return numpy arrays or TensorFlow tensors. The returned True or False is for
solution notebooks and tests (``assert check_...(solution)``); a notebook echoes it under the
verdict when the call is the cell's last line.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from camcore.methods import (
    activations_and_gradients,
    cam_weights,
    grad_cam_plus_plus_alpha,
    grad_cam_weights,
    layer_cam_weights,
    score_cam_masks,
)
from camcore.metrics import average_drop, per_image_drop
from camcore.model_split import split_model

__all__ = ["check_average_drop", "check_cam_map", "check_grad_cam_plus_plus_alpha",
           "check_grad_cam_weights", "check_layer_cam_weights", "check_logit_gradients",
           "check_score_cam_mask", "toy_classifier"]


# --------------------------------------------------------------------------------------------
# The shared machinery: run the student's function safely, then judge its answer
# --------------------------------------------------------------------------------------------
def _call(fn, args, hint: str, none_hint: str = ""):
    """The student's answer as a float64 array, or None after printing why there is none."""
    try:
        out = fn(*args)
    except NotImplementedError:
        print("not implemented yet: replace `raise NotImplementedError` with your code, then "
              "run the cell again.")
        return None
    except Exception as e:  # noqa: BLE001 - a student's bug is reported, never raised
        lines = str(e).strip().splitlines()
        print(f"✗ not yet: your function raised {type(e).__name__}: "
              f"{lines[0][:300] if lines else ''}")
        print(f"  hint: {hint}")
        return None
    if out is None:
        print("not implemented yet: your function returned None (still the stub, or a missing "
              f"`return`?).{' ' + none_hint if none_hint else ''}")
        return None
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as e:
        print(f"✗ not yet: your function returned a {type(out).__name__}, not an array of "
              f"numbers ({e}).")
        return None


def _matches(got, value, rtol, atol) -> bool:
    """``got`` equals ``value`` (NaN equal to NaN), or does up to length-1 axes."""
    if got.shape != value.shape and got.squeeze().shape != value.squeeze().shape:
        return False
    return bool(np.allclose(got.reshape(value.shape), value, rtol, atol, equal_nan=True))


def _judge(got, expected, mistakes, shape_note: str, rtol=1e-4, atol=1e-6) -> bool:
    """True if ``got`` is ``expected``; else print the first mistake it matches, or the gap.

    ``mistakes`` lists ``(wrong, message)``: ``wrong`` is a wrong variant's value, or a shape
    (a tuple) when the shape alone names the mistake.
    """
    expected = np.asarray(expected, np.float64)
    if got.shape == expected.shape and np.allclose(got, expected, rtol, atol):
        return True
    for wrong, message in mistakes:
        if (got.shape == wrong if isinstance(wrong, tuple)
                else _matches(got, np.asarray(wrong, np.float64), rtol, atol)):
            print(f"✗ not yet: {message}")
            return False
    if got.shape != expected.shape:
        if _matches(got, expected, rtol, atol):
            print(f"✗ not yet: your values are right, but their shape is {got.shape}; the "
                  f"exercise asks for {expected.shape}, {shape_note}: drop the length-1 axis.")
        else:
            print(f"✗ not yet: your result has shape {got.shape}; expected {expected.shape}, "
                  f"{shape_note}.")
        return False
    if np.isnan(got).any():
        print(f"✗ not yet: your result has NaN in {int(np.isnan(got).sum())} of {got.size} "
              "places: a division 0 / 0?")
        return False
    where = tuple(int(i) for i in np.argwhere(~np.isclose(got, expected, rtol, atol))[0])
    at = f" at index {where}" if where else ""
    print(f"✗ not yet: your values differ from the expected ones, e.g.{at} {got[where]:.6g} "
          f"instead of {expected[where]:.6g}. Compare your code with the formula in the "
          "checker's docstring.")
    return False


def _check(fn, cases, correct: str, hint: str, none_hint: str = "", **tolerance) -> bool:
    """Run ``fn`` on each case ``(args, expected, mistakes, shape_note)``; one verdict."""
    for args, expected, mistakes, shape_note in cases:
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        got = _call(fn, copies, hint, none_hint)
        if got is None or not _judge(got, expected, mistakes, shape_note, **tolerance):
            return False
    print(f"✓ correct: {correct}")
    return True


def _rng(seed):
    return np.random.default_rng(seed)


def _relu(x):
    return np.maximum(x, 0.0)


def _minmax(m, axes):
    low, high = m.min(axis=axes, keepdims=True), m.max(axis=axes, keepdims=True)
    return (m - low) / (high - low)


def _f64(x):
    return np.asarray(x, np.float64)


# --------------------------------------------------------------------------------------------
# 1. CAM's map
# --------------------------------------------------------------------------------------------
def check_cam_map(fn) -> bool:
    """Check ``fn(activations, dense_kernel, c) -> maps``, CAM's map of class ``c``:

        M^c = ReLU(sum_k W[k, c] A^k)    (the raw map: not normalised)

    activations A (N, h, w, K), the final Dense kernel W (K channels, C classes), c an int;
    the result is (N, h, w).
    """
    cases = []
    for seed, (n, h, w, k, classes, c) in enumerate([(2, 4, 5, 4, 4, 1), (3, 3, 3, 6, 2, 0)]):
        r = _rng(seed)
        a = r.uniform(0, 2, (n, h, w, k)).astype(np.float32)  # after a ReLU: non-negative
        kernel = r.normal(0, 1, (k, classes)).astype(np.float32)
        kernel[0, c], kernel[1, c] = 1.5, -1.5  # evidence for and against c: negative sums
        weights = _f64(cam_weights(kernel, np.full(n, c)))
        raw = np.einsum("nhwk,nk->nhw", _f64(a), weights)
        right = _relu(raw)
        mistakes = [
            (right / k, "you averaged over the channels; CAM sums them: sum_k W[k, c] A^k is K "
                        "times your map."),
            (_minmax(right, (1, 2)),
             "your map is min-max normalised to [0, 1]; the exercise asks for the raw "
             "ReLU(sum_k W[k, c] A^k). Normalising is fine for display (camcore does it in a "
             "later step), but it throws away the map's scale: return the map before it."),
            (_minmax(raw, (1, 2)), "your map is min-max normalised and has no ReLU; return the "
                                   "raw ReLU(sum_k W[k, c] A^k), without normalising."),
            (raw, "your map has negative values: apply the ReLU, np.maximum(m, 0), to keep only "
                  "the evidence for class c."),
            ((n, h, w, classes), "you computed one map per class, shape (N, h, w, C): keep only "
                                 "class c, whose weights are the column W[:, c]."),
        ]
        if k == classes:  # a square kernel: its row for c can be used by mistake
            row = np.einsum("nhwk,k->nhw", _f64(a), _f64(kernel[c]))
            mistakes[:0] = [
                (_relu(row), "you took the row W[c] of the kernel; the weights of class c are "
                             "its column W[:, c] (the kernel is K channels x C classes)."),
                (row, "you took the row W[c] of the kernel (and no ReLU); the weights of class "
                      "c are its column W[:, c], and the map needs a ReLU.")]
        cases.append(((a, kernel, c), right, mistakes, "(N, h, w): one map per image"))
    return _check(fn, cases, "ReLU(sum_k W[k, c] A^k), the raw CAM map of class c.",
                  "A is (N, h, w, K) and W is (K, C): class c's weights are the column W[:, c], "
                  "one per channel; weight each channel of A by its own and sum over the last "
                  "axis.")


# --------------------------------------------------------------------------------------------
# 2. Grad-CAM's weights
# --------------------------------------------------------------------------------------------
def check_grad_cam_weights(fn) -> bool:
    """Check ``fn(gradients) -> weights``, Grad-CAM's channel weights:

        alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij    (Z = h*w, the mean over positions)

    gradients (N, h, w, K) -> weights (N, K).
    """
    g = _rng(2).normal(0.1, 1, (2, 3, 4, 5)).astype(np.float32)  # negative gradients present
    g64 = _f64(g)
    mistakes = [
        (g64.sum(axis=(1, 2)),
         "you summed the gradients over the positions; Grad-CAM averages them (divide by "
         "Z = h*w, or use a mean). The map would look the same after normalisation, but these "
         "are not the alpha_k^c of the paper: they are Z times larger."),
        (_relu(g64).mean(axis=(1, 2)),
         "you applied a ReLU to the gradients before averaging; Grad-CAM averages the raw "
         "gradients, negative ones included (clipping each position is LayerCAM's idea)."),
        (np.abs(g64).mean(axis=(1, 2)),
         "you averaged the absolute values of the gradients; Grad-CAM averages the signed "
         "gradients: a negative gradient is evidence against class c."),
        (g64.mean(axis=-1), "you averaged over the channels (the last axis); average over the "
                            "positions instead, axis=(1, 2): one weight per channel, (N, K)."),
        (g64.mean(axis=(1, 2, 3)), "you averaged over the channels too; average over the "
                                   "positions only, axis=(1, 2): one weight per channel."),
        (g64.mean(axis=(0, 1, 2)), "you averaged over the images too; keep the batch axis: "
                                   "axis=(1, 2), one row of weights per image, (N, K)."),
    ]
    cases = [((g,), grad_cam_weights(g), mistakes, "(N, K): one weight per image and channel")]
    return _check(fn, cases, "alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij, each channel's mean "
                             "gradient.",
                  "gradients are (N, h, w, K); average over the position axes, 1 and 2, to "
                  "get one weight per image and channel, (N, K).")


# --------------------------------------------------------------------------------------------
# 3. The logit's gradient with tf.GradientTape
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def toy_classifier() -> keras.Model:
    """The exercises' tiny classifier, with fixed weights: 8x8 RGB -> Conv2D("conv", 4 channels,
    ReLU) -> GlobalAveragePooling2D -> Dense("logits", 3 classes) -> Softmax("probs").

    ``camcore.split_model(model)`` cuts it at "conv": ``split.features(x)`` gives A (N, 6, 6, 4),
    ``split.head(A)`` the logits (N, 3), the softmax left out.
    """
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(x), name="toy_classifier")
    r = _rng(7)
    model.set_weights([r.normal(0.05, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


@functools.lru_cache(maxsize=1)
def _logit_gradient_case():
    model, c = toy_classifier(), 1
    images = _rng(3).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    _, right, _ = activations_and_gradients(model, images, c, value_range=(0, 1))
    split = split_model(model)
    x = tf.constant(images)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a = split.features(x)
        logits = split.head(a)
        probability = split.probabilities(logits)[:, c]
    mistakes = [
        (tape.gradient(probability, a).numpy(),
         "you took the gradient of the softmax probability p_c (the model's output), not of "
         "the logit y^c. Use split.head(A), which leaves the softmax out: the probability's "
         "gradient also depends on the other classes and vanishes as p_c nears 1."),
        (tape.gradient(logits, a).numpy(),
         "you took the gradient of all the logits summed (tape.gradient(y, A) sums over the "
         "classes); pick class c first: tape.gradient(y[:, c], A)."),
        (tuple(images.shape),
         "your gradient has the images' shape (N, H, W, 3): you differentiated with respect to "
         "the input. Differentiate with respect to A = split.features(images), (N, h, w, K)."),
    ]
    del tape
    return (model, images, c), right, mistakes


def check_logit_gradients(fn) -> bool:
    """Check ``fn(model, images, c) -> gradients``: dy^c/dA, the gradient of class c's *logit*
    with respect to the activations A of the model's target layer (its last conv layer).

    ``model`` is ``toy_classifier()`` (ending in a Softmax layer), ``images`` (N, 8, 8, 3), ``c``
    an int; the result is (N, h, w, K) = (N, 6, 6, 4). Cut the model with
    ``split = camcore.split_model(model)``; then, inside a ``tf.GradientTape``,
    ``A = split.features(images)``, ``tape.watch(A)``, ``y = split.head(A)`` (the logits, the
    softmax left out), and ``tape.gradient(y[:, c], A)``.
    """
    args, right, mistakes = _logit_gradient_case()
    return _check(fn, [(args, right, mistakes, "(N, h, w, K): the shape of A")],
                  "dy^c/dA, the gradient of the logit of class c with respect to A.",
                  "split = camcore.split_model(model); with tf.GradientTape() as tape: "
                  "A = split.features(images); tape.watch(A); y = split.head(A); then "
                  "return tape.gradient(y[:, c], A).",
                  none_hint="If you did write it: tape.gradient returns None when A was not "
                            "computed inside the tape, or y not from that A (y = model(images) "
                            "recomputes A): inside the tape, A = split.features(images), "
                            "tape.watch(A), y = split.head(A).")


# --------------------------------------------------------------------------------------------
# 4. Grad-CAM++'s alpha
# --------------------------------------------------------------------------------------------
def check_grad_cam_plus_plus_alpha(fn) -> bool:
    """Check ``fn(activations, gradients) -> alpha``, Grad-CAM++'s pixel weights (Eq. 19):

        alpha_ij^kc = g_ij^2 / (2 g_ij^2 + sum_ab A^k_ab g_ij^3)   (0 where the denominator is 0)

    with g = dy^c/dA^k. activations and gradients (N, h, w, K) -> alpha (N, h, w, K).
    """
    r = _rng(4)
    a = r.uniform(0, 1, (2, 3, 3, 4)).astype(np.float32)
    g = r.uniform(-0.2, 0.2, a.shape).astype(np.float32)  # |g| <= 0.2: 2 + S g > 0
    g[0, 1, 2, :] = 0.0  # zero gradients: 0 / 0, defined as alpha = 0
    g[1, 0, 0, 1] = 0.0
    a64, g64 = _f64(a), _f64(g)

    def alpha(a_term):
        with np.errstate(divide="ignore", invalid="ignore"):
            return g64**2 / (2 * g64**2 + a_term * g64**3)

    def no_nan(x):
        return np.nan_to_num(x, nan=0.0)

    right = _f64(grad_cam_plus_plus_alpha(a, g))
    spatial_sum = right.sum(axis=(1, 2), keepdims=True)
    mistakes = [
        (alpha(a64.sum(axis=(1, 2), keepdims=True)),
         "your alpha has NaN where the gradient is 0 (0 / 0); define alpha as 0 there: "
         "tf.math.divide_no_nan, or np.where(denominator != 0, numerator / denominator, 0)."),
        (no_nan(alpha(a64)),
         "you used A at each position in the denominator; Eq. 19 has its spatial sum, "
         "sum_ab A^k_ab: np.sum(A, axis=(1, 2), keepdims=True), one number per image and channel."),
        (no_nan(alpha(1.0)),
         "your denominator has no A in it (g^2 / (2 g^2 + g^3)); multiply g^3 by the spatial "
         "sum of the activations, sum_ab A^k_ab."),
        (no_nan(alpha(a64.sum(axis=-1, keepdims=True))),
         "you summed A over the channels (the last axis); Eq. 19 sums each channel over the "
         "positions: axis=(1, 2)."),
        (np.divide(right, spatial_sum, out=np.zeros_like(right), where=spatial_sum != 0),
         "you renormalised alpha by its spatial sum (as the authors' code and tf-keras-vis do); "
         "the exercise, like camcore, uses Eq. 19 as it stands. On a pooling -> Dense head that "
         "renormalisation turns Grad-CAM++ into CAM with its negative weights zeroed."),
    ]
    cases = [((a, g), right, mistakes, "(N, h, w, K): one alpha per position and channel")]
    return _check(fn, cases, "alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), 0 where the denominator "
                             "is 0 (Grad-CAM++, Eq. 19).",
                  "sum A over the positions keeping the axes, so it broadcasts against g: "
                  "np.sum(A, axis=(1, 2), keepdims=True).")


# --------------------------------------------------------------------------------------------
# 5. Score-CAM's mask
# --------------------------------------------------------------------------------------------
def check_score_cam_mask(fn) -> bool:
    """Check ``fn(channel_map, size) -> mask``, Score-CAM's mask of one channel:

        H = s(Up(A^k)),  Up = bilinear upsampling to ``size``,  s(M) = (M - min M) / (max M - min M)

    channel_map (h, w), size (H, W) -> mask (H, W) in [0, 1].
    """
    m = _rng(5).uniform(0.5, 1.5, (3, 5)).astype(np.float32)
    m[1, 1], m[1, 3] = 2.5, 0.2  # extremes inside: upsampling does not reach them exactly
    size = (12, 20)
    up = _f64(tf.image.resize(m[..., None], size, method="bilinear")[..., 0])
    nearest = _f64(tf.image.resize(m[..., None], size, method="nearest")[..., 0])
    low, high = up.min(), up.max()
    mistakes = [
        (up / (high - low),
         "you divided by (max - min) without subtracting the minimum; s(M) = (M - min M) / "
         "(max M - min M). Without the subtraction the masks never reach 0 (a variant found in "
         "a popular article), so every mask lets some of every pixel through."),
        (up / high, "you divided by the maximum only (M / max M); subtract the minimum first: "
                    "(M - min M) / (max M - min M), so that each mask spans [0, 1]."),
        (_f64(tf.image.resize(_minmax(m, (0, 1))[..., None], size)[..., 0]),
         "you normalised before upsampling; the order is upsample first, then normalise. Close, "
         "but bilinear upsampling does not reach the map's exact minimum and maximum, so your "
         "mask does not span [0, 1]."),
        (_minmax(nearest, (0, 1)),
         "you upsampled with nearest-neighbour interpolation; Score-CAM uses bilinear: "
         "tf.image.resize(..., method='bilinear') or cv2.resize(..., interpolation="
         "cv2.INTER_LINEAR)."),
        (up, "you upsampled but did not normalise; rescale to [0, 1]: "
             "(M - min M) / (max M - min M)."),
        (m.shape, "your mask has the channel map's own size (h, w); upsample it to size (H, W) "
                  "first (bilinear), then normalise."),
        (size[::-1], "your mask is (W, H), transposed: cv2.resize takes the size as (width, "
                     "height), i.e. cv2.resize(m, (W, H)) for size = (H, W)."),
    ]
    right = _f64(score_cam_masks(m[None], size)[0])
    cases = [((m, size), right, mistakes, "(H, W): the size asked for")]
    return _check(fn, cases, "bilinear upsampling to the image size, then (M - min M) / "
                             "(max M - min M).",
                  "channel_map is (h, w) and size is (H, W): tf.image.resize(m[..., None], size)"
                  "[..., 0], or cv2.resize(m, (W, H)) (width first), then min-max.",
                  atol=1e-5)


# --------------------------------------------------------------------------------------------
# 6. LayerCAM's weights
# --------------------------------------------------------------------------------------------
def check_layer_cam_weights(fn) -> bool:
    """Check ``fn(gradients) -> weights``, LayerCAM's weights, one per channel and position:

        w_ij^k = ReLU(dy^c/dA^k_ij)

    gradients (N, h, w, K) -> weights (N, h, w, K).
    """
    g = _rng(6).normal(0, 1, (2, 3, 4, 5)).astype(np.float32)
    g64 = _f64(g)
    mean = g64.mean(axis=(1, 2))
    mistakes = [
        (mean, "you averaged the gradients over the positions: that is Grad-CAM's weight. "
               "LayerCAM keeps one weight per position: ReLU(g), (N, h, w, K)."),
        (_relu(mean), "you applied the ReLU after averaging over the positions; LayerCAM "
                      "applies it to each position's gradient and does not average: ReLU(g)."),
        (_relu(g64).mean(axis=(1, 2)),
         "you averaged the positive gradients over the positions (camcore reports that as "
         "LayerCAM's channel_weights); the weights themselves are per position: ReLU(g)."),
        (g64, "you returned the gradients unchanged: that is HiResCAM's weight. LayerCAM keeps "
              "only their positive part: np.maximum(g, 0)."),
        (np.abs(g64), "you took the absolute value of the gradients; LayerCAM sets the negative "
                      "ones to 0: np.maximum(g, 0)."),
    ]
    cases = [((g,), layer_cam_weights(g), mistakes, "(N, h, w, K): the shape of the gradients")]
    return _check(fn, cases, "w_ij^k = ReLU(dy^c/dA^k_ij), the positive gradient at every "
                             "position.",
                  "apply the ReLU to each gradient and keep the shape (N, h, w, K).")


# --------------------------------------------------------------------------------------------
# 7. Average Drop
# --------------------------------------------------------------------------------------------
def check_average_drop(fn) -> bool:
    """Check ``fn(y, o) -> float``, Average Drop in percent (lower is better):

        Average Drop % = 100 * mean_i max(0, Y_i - O_i) / Y_i

    y: (N,) the class probability on each image, o: (N,) on its explanation image.
    """
    y = np.array([0.9, 0.8, 0.6, 0.95, 0.3, 0.7], np.float32)
    o = np.array([0.2, 0.85, 0.1, 0.5, 0.6, 0.4], np.float32)  # images 1 and 4: O > Y
    y64, o64 = _f64(y), _f64(o)
    drop = _relu(y64 - o64)
    mistakes = [
        (100 * np.mean((y64 - o64) / y64),
         "you let increases count as negative drops; clip each drop at 0 first: "
         "max(0, Y_i - O_i). An image whose explanation raises the confidence counts as no "
         "drop (% Increase in Confidence counts those)."),
        (100 * np.mean(drop / o64), "you divided by O (the explanation's score); the drop is "
                                    "relative to the image's own score: max(0, Y - O) / Y."),
        (np.mean(drop / y64), "your answer is a fraction; Average Drop is a percentage: "
                              "multiply by 100."),
        (100 * drop.mean() / y64.mean(),
         "you took a ratio of means; Average Drop is the mean of the per-image ratios, "
         "mean_i (max(0, Y_i - O_i) / Y_i), so each image counts alike."),
        (100 * max(0.0, (y64 - o64).mean()) / y64.mean(),
         "you took a ratio of means; Average Drop is the mean of the per-image ratios, "
         "mean_i (max(0, Y_i - O_i) / Y_i), so each image counts alike."),
        (100 * np.mean(_relu(o64 - y64) / y64), "you computed max(0, O - Y), the increases; "
                                                "the drop is max(0, Y - O)."),
        (100 * np.sum(drop / y64), "you summed over the images; Average Drop is the mean."),
        (per_image_drop(y, o), "you returned one drop per image; Average Drop is their mean, "
                               "one number."),
    ]
    cases = [((y, o), average_drop(y, o), mistakes, "one number")]
    return _check(fn, cases, "Average Drop % = 100 * mean_i max(0, Y_i - O_i) / Y_i.",
                  "y and o are numpy arrays of N probabilities: work element-wise with numpy "
                  "(np.maximum, not Python's max) and return a float.")
