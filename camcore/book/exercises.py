"""Checkers for the course's exercises: run a student's function on small known inputs.

Each checker calls the student's function on two small, seeded test cases of different shapes
(maps that are not square, a class that is not the predicted one, values at the scale a real
network gives), compares the answer with the formula's, prints one short verdict and returns
True or False. A wrong answer that matches one of the typical wrong variants (the ones the book
discusses among them) is named, with its fix; any other shows where it differs, and the formula.
A checker never raises: an untouched stub (returning None, ``raise NotImplementedError`` or
``raise NotImplemented``) prints "not written yet", so a notebook holding the stub runs cleanly
under nbval.

A chapter's exercise is a stub cell and a checker call::

    from camcore.book.exercises import check_grad_cam_weights

    def my_grad_cam_weights(gradients):
        # alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij: (N, h, w, K) -> (N, K)
        return None  # your code here

    check_grad_cam_weights(my_grad_cam_weights)

which prints, once the function is right, ``✓ correct: ...``, and otherwise ``✗ not yet: ...``
with the likely mistake, e.g. a sum where the mean belongs. Every call gets fresh float32 numpy
arrays (and a fresh model, in the gradient exercise), so a function that writes into its inputs
or changes the model spoils no later attempt. The student may return numpy arrays, TensorFlow
tensors or Python numbers, in any float precision; text is refused. The returned True or False
is for solution notebooks and tests (``assert check_...(solution)``); a notebook echoes it under
the verdict when the call is the cell's last line.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import re
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from camcore.methods import (
    cam_weights,
    grad_cam_plus_plus_gamma,
    grad_cam_weights,
    layer_cam_weights,
    score_cam_masks,
)
from camcore.model_split import split_model

__all__ = ["check_average_drop", "check_cam_map", "check_grad_cam_plus_plus_gamma",
           "check_grad_cam_weights", "check_layer_cam_fusion", "check_layer_cam_weights",
           "check_logit_gradients", "check_score_cam_mask", "toy_classifier"]

STUB = "not written yet"


# --------------------------------------------------------------------------------------------
# The shared machinery: run the student's function safely, then judge its answer
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Case:
    """One test case. ``args()`` makes fresh arguments for each call; ``mistakes`` lists
    ``(wrong, message)``, where ``wrong`` is a wrong variant's value (an array), a shape (a
    tuple) that alone names the mistake, or a test ``wrong(got, close) -> bool``."""

    args: Callable[[], tuple]
    expected: np.ndarray
    mistakes: list
    label: str  # what the case holds, said when an earlier case passed
    also: tuple = ()  # other answers accepted as right


def _case(args, expected, mistakes, label: str, also: tuple = ()) -> _Case:
    """A case whose listed mistakes are all wrong on its input and differ from each other: a
    variant that gives the right answer here (the minimum not subtracted, on a map whose
    minimum is 0) or repeats an earlier one is left out."""
    expected = _f64(expected)
    atol = 1e-6 * (float(np.abs(expected).max()) or 1.0)
    kept, values = [], [expected]
    for wrong, message in mistakes:
        if not (isinstance(wrong, tuple) or callable(wrong)):
            wrong = _f64(wrong)
            if any(_matches(wrong, v, 1e-4, atol) for v in values):
                continue
            values.append(wrong)
        kept.append((wrong, message))
    return _Case(args, expected, kept, label, also)


def _first_line(error: Exception) -> str:
    """The error's first line, without TensorFlow's ``{{function_node ...}}`` prefix."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error)).strip()
    line = text.splitlines()[0] if text else ""
    return re.sub(r"\s*name:\s*$", "", line)[:300]


def _function_node(fn):
    """``fn``'s parsed definition (a def or a lambda), or None if its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    return next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.Lambda)), None)


def _is_none(node) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id == "NotImplemented")


def _idle(statement) -> bool:
    """A stub's statement: pass, a docstring, return None, raise NotImplemented(Error)."""
    if isinstance(statement, ast.Return):
        return statement.value is None or _is_none(statement.value)
    if isinstance(statement, ast.Raise):
        return "NotImplemented" in ast.unparse(statement)
    return isinstance(statement, ast.Pass) or (isinstance(statement, ast.Expr)
                                               and isinstance(statement.value, ast.Constant))


def _is_stub(fn) -> bool | None:
    """True if ``fn`` does nothing but what a stub does; None if its source cannot be read."""
    node = _function_node(fn)
    if node is None:
        return None
    return _is_none(node.body) if isinstance(node, ast.Lambda) else all(map(_idle, node.body))


def _raised_not_implemented(error: Exception) -> bool:
    """``raise NotImplemented`` (not an exception: Python raises a TypeError instead)."""
    frames = traceback.extract_tb(error.__traceback__)
    return (isinstance(error, TypeError) and "must derive from BaseException" in str(error)
            and bool(frames) and "NotImplemented" in (frames[-1].line or ""))


def _numbers(out):
    """The answer as a float64 array, or None after saying why it is not numbers."""
    if isinstance(out, str | bytes):
        print(f"✗ not yet: your function returned text ({out!r:.40}), not numbers: return the "
              "number or array itself (e.g. 41.9, not '41.9' or an f-string).")
        return None
    try:
        got = np.asarray(out)
    except Exception as e:  # noqa: BLE001 - ragged lists, symbolic tensors, ...
        print(f"✗ not yet: your function returned a {type(out).__name__} that is not an array "
              f"of numbers ({_first_line(e)}).")
        return None
    if got.dtype.kind not in "iuf":
        what = {"b": "True/False values", "U": "text", "S": "text", "c": "complex numbers"}.get(
            got.dtype.kind, f"a {type(out).__name__} of {got.dtype} values")
        print(f"✗ not yet: your function returned {what}, not real numbers: return the values "
              "themselves, as a numpy array, a tensor or a float.")
        return None
    return got.astype(np.float64)


def _call(fn, args, hint: str, none_hint=None):
    """The student's answer as a float64 array, or None after printing why there is none."""
    try:
        out = fn(*args)
    except NotImplementedError:
        print(f"{STUB}: replace `raise NotImplementedError` with your code, then run the cell "
              "again.")
        return None
    except Exception as e:  # noqa: BLE001 - a student's bug is reported, never raised
        if _raised_not_implemented(e):
            print(f"{STUB}: replace `raise NotImplemented` with your code, then run the cell "
                  "again.")
            return None
        print(f"✗ not yet: your function raised {type(e).__name__}: {_first_line(e)}")
        print(f"  hint: {hint}")
        return None
    if out is None or out is NotImplemented:
        stub = _is_stub(fn)
        if stub:
            print(f"{STUB}: your function returns {out}, as the stub does: write your code in "
                  "its place, then run the cell again.")
        elif stub is None:
            print(f"{STUB}: your function returned {out} (still the stub, or a missing "
                  "`return`?).")
        else:
            print(f"✗ not yet: your function returned {out}: "
                  f"{none_hint and none_hint(fn) or 'a missing `return` before the result?'}")
        return None
    return _numbers(out)


def _matches(got, value, rtol, atol) -> bool:
    """``got`` equals ``value`` (NaN equal to NaN), or does up to length-1 axes."""
    if got.shape != value.shape and got.squeeze().shape != value.squeeze().shape:
        return False
    return bool(np.allclose(got.reshape(value.shape), value, rtol, atol, equal_nan=True))


def _factors(got, expected, close):
    """Per-image factors s, ``got[n] = s[n] * expected[n]``, or None if there are none."""
    if got.shape != expected.shape or got.ndim < 2:
        return None
    e, g = expected.reshape(len(expected), -1), got.reshape(len(got), -1)
    norms = (e * e).sum(axis=1)
    if (norms == 0).any():
        return None
    s = (g * e).sum(axis=1) / norms
    if not close(got, s.reshape(-1, *[1] * (got.ndim - 1)) * expected):
        return None
    if np.allclose(s, s[0], rtol=1e-3):
        return f"{s[0]:.3g} everywhere"
    return "a different factor for each image (" + ", ".join(f"{v:.3g}" for v in s) + ")"


def _judge(got, case: _Case, formula: str, shape_note: str, rescaled: str, rtol: float,
           atol: float) -> bool:
    """True if ``got`` is right; else print the mistake it matches, or where it differs.

    ``atol`` is relative to the largest expected value, so small values are judged at their
    own scale.
    """
    expected = case.expected
    atol = atol * (float(np.abs(expected).max()) or 1.0)

    def close(a, b):
        return _matches(a, np.asarray(b, np.float64), rtol, atol)

    if got.shape == expected.shape and any(close(got, ok) for ok in (expected, *case.also)):
        return True
    for wrong, message in case.mistakes:
        if isinstance(wrong, tuple):
            hit = got.shape == wrong
        elif callable(wrong):
            hit = got.shape == expected.shape and bool(wrong(got, close))
        else:
            hit = close(got, wrong)
        if hit:
            print(f"✗ not yet: {message}")
            return False
    if got.shape != expected.shape:
        if close(got, expected):
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
    if np.isinf(got).any():
        print(f"✗ not yet: your result is infinite in {int(np.isinf(got).sum())} of {got.size} "
              "places: a division by 0?")
        return False
    if got.size > 1 and not got.any():
        print(f"✗ not yet: your result is all zeros. The formula: {formula}")
        return False
    factors = _factors(got, expected, close)
    if factors:
        print(f"✗ not yet: your result is the expected one multiplied by {factors}: "
              f"{rescaled or 'a factor too many or too few?'} The formula: {formula}")
        return False
    bad = np.argwhere(~np.isclose(got, expected, rtol, atol))
    where = tuple(int(i) for i in bad[0]) if len(bad) else ()
    at = f" at index {where}" if where else ""
    print(f"✗ not yet: your values differ from the expected ones, e.g.{at} {got[where]:.6g} "
          f"instead of {expected[where]:.6g}. The formula: {formula}")
    return False


def _changed(models) -> bool:
    """Whether the student's function changed any of these models' weights."""
    return any(not np.array_equal(w, b) for model, before in models
               for w, b in zip(model.get_weights(), before))


CHANGED_NOTE = ("  note: your function changed the model's weights (set_weights, fit, an "
                "assignment?). The checker gives every call a fresh copy, but in your own "
                "notebook the model stays changed: compute the gradient without touching it.")


def _check(fn, cases, formula: str, shape_note: str, hint: str, none_hint=None,
           rescaled: str = "", rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Run ``fn`` on each case, fresh arguments each time; print one verdict."""
    noted = False
    for i, case in enumerate(cases):
        args = case.args()
        models = [(a, a.get_weights()) for a in args if isinstance(a, keras.Model)]
        got = _call(fn, args, hint, none_hint)
        right = got is not None and _judge(got, case, formula, shape_note, rescaled, rtol, atol)
        if not noted and _changed(models):
            print(CHANGED_NOTE)  # once per check, not once per case
            noted = True
        if not right:
            if i:
                print(f"  (your function passed the first test case; this one has {case.label}.)")
            return False
    print(f"✓ correct: {formula}")
    return True


def _fresh(*args):
    """A function giving fresh copies of ``args``: a function that writes into its inputs
    (an array, a list of arrays) cannot change the next call's."""
    return lambda: copy.deepcopy(args)


def _rng(seed):
    return np.random.default_rng(seed)


def _f64(x):
    return np.asarray(x, np.float64)


def _relu(x):
    return np.maximum(x, 0.0)


def _minmax(m, axes=(-2, -1)):
    low, high = m.min(axis=axes, keepdims=True), m.max(axis=axes, keepdims=True)
    return (m - low) / (high - low)


def _resize(m, size, corners: bool = False):
    """Bilinear resizing of the last two axes of ``m`` to ``size``, in float64: half-pixel
    centres (tf.image.resize, cv2.resize, camcore) or, with ``corners``, corner-aligned
    (``align_corners=True``)."""
    out = _f64(m)
    for axis, n in ((-2, size[0]), (-1, size[1])):
        n_in = out.shape[axis]
        if corners:
            x = np.linspace(0.0, n_in - 1, n)
        else:
            x = np.clip((np.arange(n) + 0.5) * n_in / n - 0.5, 0, n_in - 1)
        low = np.floor(x).astype(int)
        t = (x - low).reshape((-1, 1) if axis == -2 else -1)
        out = (np.take(out, low, axis) * (1 - t)
               + np.take(out, np.minimum(low + 1, n_in - 1), axis) * t)
    return out


def _nearest(m, size, half_pixel: bool):
    """Nearest-neighbour resizing: tf.image.resize's (half-pixel) or cv2.INTER_NEAREST's."""
    rows, cols = (np.minimum(((np.arange(n) + 0.5 * half_pixel) * n_in / n).astype(int), n_in - 1)
                  for n, n_in in zip(size, m.shape[-2:]))
    return _f64(m)[..., rows[:, None], cols]


_BILINEAR = ("use bilinear: tf.image.resize(..., method='bilinear') or cv2.resize(..., "
             "interpolation=cv2.INTER_LINEAR).")
_CORNERS = ("you upsampled with corner-aligned bilinear interpolation (align_corners=True); the "
            "exercise, like camcore, tf.image.resize and cv2.resize, puts the pixel centres at "
            "half-pixel positions: tf.image.resize(m[..., None], size)[..., 0].")


def _wrong_upsamplings(m, size) -> list:
    """``(Up(m), message)`` for the typical wrong upsamplings of ``m`` (..., h, w) to ``size``:
    corner-aligned bilinear, nearest neighbour (TensorFlow's, OpenCV's), bicubic (both)."""
    stack = np.asarray(m, np.float32).reshape(-1, *np.shape(m)[-2:])
    cubic = [tf.image.resize(stack[..., None], size, method="bicubic").numpy()[..., 0],
             np.stack([cv2.resize(s, size[::-1], interpolation=cv2.INTER_CUBIC) for s in stack])]
    nearest = f"you upsampled with nearest-neighbour interpolation; {_BILINEAR}"
    return [(_resize(m, size, corners=True), _CORNERS),
            (_nearest(m, size, True), nearest), (_nearest(m, size, False), nearest),
            *[(_f64(u).reshape(*np.shape(m)[:-2], *size),
               f"you upsampled with bicubic interpolation; {_BILINEAR}") for u in cubic]]


# --------------------------------------------------------------------------------------------
# 1. CAM's map
# --------------------------------------------------------------------------------------------
@functools.cache
def _cam_map_cases():
    cases = []
    for seed, (n, h, w, k, classes, c) in enumerate([(2, 4, 5, 4, 4, 1), (3, 6, 3, 6, 2, 0)]):
        r = _rng(seed)
        a = r.uniform(-2, 6, (n, h, w, k)).clip(0, 6).astype(np.float32)  # after a ReLU6
        kernel = r.normal(0, 0.3, (k, classes)).astype(np.float32)
        kernel[0, c], kernel[1, c] = 0.5, -0.5  # evidence for and against c: negative sums
        raw = np.einsum("nhwk,nk->nhw", _f64(a), _f64(cam_weights(kernel, np.full(n, c))))
        right = _relu(raw)
        mistakes = [
            (right / k, "you averaged over the channels; CAM sums them: sum_k w_k^c A^k is K "
                        "times your map."),
            (_minmax(right), "your map is min-max normalised to [0, 1]; the exercise asks for "
                             "the raw ReLU(sum_k w_k^c A^k). Normalising is for display "
                             "(camcore does it in a later step): it throws away the map's scale."),
            (_minmax(raw), "your map is min-max normalised and has no ReLU; return the raw "
                           "ReLU(sum_k w_k^c A^k), without normalising."),
            (raw, "your map has negative values: apply the ReLU, np.maximum(m, 0), to keep only "
                  "the evidence for class c."),
            ((n, h, w, classes), "you computed one map per class, shape (N, h, w, C): keep only "
                                 "class c, whose weights w_k^c are the column W[:, c]."),
        ]
        if k == classes:  # a square kernel: its row for c can be used by mistake
            row = np.einsum("nhwk,k->nhw", _f64(a), _f64(kernel[c]))
            mistakes[:0] = [
                (_relu(row), "you took the row W[c] of the kernel; the weights w_k^c of class c "
                             "are its column W[:, c] (the kernel is K channels x C classes)."),
                (row, "you took the row W[c] of the kernel (and no ReLU); the weights of class "
                      "c are its column W[:, c], and the map needs a ReLU.")]
        cases.append(_case(_fresh(a, kernel, c), right, mistakes,
                           f"N={n} maps of {h}x{w} with K={k} channels, C={classes}, c={c}"))
    return tuple(cases)


def check_cam_map(fn) -> bool:
    """Check ``fn(activations, dense_kernel, c) -> maps``, CAM's map of class ``c``:

        L^c = ReLU(sum_k w_k^c A^k),  w_k^c = W[k, c]    (the raw map: not normalised)

    activations A (N, h, w, K), the final Dense kernel W (K channels, C classes), c an int;
    the result is (N, h, w).
    """
    return _check(fn, _cam_map_cases(),
                  "L^c = ReLU(sum_k w_k^c A^k) with w_k^c = W[k, c], the raw CAM map of class c.",
                  "(N, h, w): one map per image",
                  "A is (N, h, w, K) and W is (K, C): class c's weights are the column W[:, c], "
                  "one per channel; weight each channel of A by its own and sum over the last "
                  "axis.",
                  rescaled="did you divide by the maximum, or normalise? The exercise asks for "
                           "the raw map.")


# --------------------------------------------------------------------------------------------
# 2. Grad-CAM's weights
# --------------------------------------------------------------------------------------------
@functools.cache
def _grad_cam_weight_cases():
    cases = []
    for seed, shape, scale in [(2, (2, 3, 5, 6), 1e-3), (12, (3, 7, 4, 3), 0.3)]:
        g = _rng(seed).normal(0.2 * scale, scale, shape).astype(np.float32)  # signed
        g64 = _f64(g)
        n, h, w, k = shape
        wrong_z = ("you divided the sum by {}, not by Z = h*w, the number of positions (right "
                   "only on square maps): g.shape[1] * g.shape[2], or a mean over axes (1, 2).")
        mistakes = [
            (g64.sum(axis=(1, 2)) / h**2, wrong_z.format("h*h")),
            (g64.sum(axis=(1, 2)) / w**2, wrong_z.format("w*w")),
            (g64.sum(axis=(1, 2)),
             "you summed the gradients over the positions; Grad-CAM averages them (divide by "
             "Z = h*w, or use a mean). The map would look the same after normalisation, but "
             "these are not the alpha_k^c of the paper: they are Z times larger."),
            (_relu(g64).mean(axis=(1, 2)),
             "you applied a ReLU to the gradients before averaging; Grad-CAM averages the raw "
             "gradients, negative ones included (clipping each position is LayerCAM's idea)."),
            (_relu(g64.mean(axis=(1, 2))),
             "you applied a ReLU to the weights; Grad-CAM keeps their sign (the ReLU comes "
             "later, on the map sum_k alpha_k^c A^k)."),
            (np.abs(g64).mean(axis=(1, 2)),
             "you averaged the absolute values of the gradients; Grad-CAM averages the signed "
             "gradients: a negative gradient is evidence against class c."),
            (g64.mean(axis=-1), "you averaged over the channels (the last axis); average over "
                                "the positions instead, axis=(1, 2): one weight per channel."),
            (g64.mean(axis=(1, 2, 3)), "you averaged over the channels too; average over the "
                                       "positions only, axis=(1, 2): one weight per channel."),
            (g64.mean(axis=(0, 1, 2)), "you averaged over the images too; keep the batch "
                                       "axis: axis=(1, 2), one row of weights per image, "
                                       "(N, K)."),
        ]
        cases.append(_case(_fresh(g), _f64(grad_cam_weights(g)), mistakes,
                           f"N={n} images, {h}x{w} positions, K={k} channels"))
    return tuple(cases)


def check_grad_cam_weights(fn) -> bool:
    """Check ``fn(gradients) -> weights``, Grad-CAM's channel weights:

        alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij    (Z = h*w, the mean over positions)

    gradients (N, h, w, K) -> weights (N, K).
    """
    return _check(fn, _grad_cam_weight_cases(),
                  "alpha_k^c = (1/Z) sum_ij dy^c/dA^k_ij, each channel's mean gradient over "
                  "the Z = h*w positions.",
                  "(N, K): one weight per image and channel",
                  "gradients are (N, h, w, K); average over the position axes, 1 and 2, to "
                  "get one weight per image and channel, (N, K).",
                  rescaled="did you normalise the gradients first (g / ||g||, or g / "
                           "sqrt(mean g^2) as old Keras tutorials do)? Grad-CAM averages the "
                           "raw gradients.")


# --------------------------------------------------------------------------------------------
# 3. The logit's gradient with tf.GradientTape
# --------------------------------------------------------------------------------------------
_TOYS = ({"size": (12, 10), "channels": 5, "hidden": 8, "classes": 4, "seed": 7},
         {"size": (7, 11), "channels": 3, "hidden": 6, "classes": 5, "seed": 8})
_TOY_MEANS, _TOY_SCALES = (0, 0.1, 0, 0, 0, 0), (0.5, 0.1, 0.1, 0.3, 1.0, 0.3)


def toy_classifier(which: int = 0) -> keras.Model:
    """A new copy of one of the exercises' tiny classifiers, with fixed weights (a new model at
    every call, so that a function that changes its model changes only its own copy).

    ``toy_classifier(0)``: 12x10 RGB in [0, 1] -> Conv2D("conv", 5 channels, ReLU), A of shape
    (N, 10, 8, 5) -> Flatten -> Dense("hidden", 8, tanh) -> Dropout -> Dense("logits", C = 4)
    -> Softmax("probs"). ``toy_classifier(1)``: 7x11 RGB, A (N, 5, 9, 3), 6 hidden units, C = 5.
    The hidden layer makes dy^c/dA differ from image to image and from position to position.
    ``camcore.split_model(model)`` cuts it at "conv": ``split.features(x)`` gives A,
    ``split.head(A)`` the logits y (N, C), the softmax left out.
    """
    spec = _TOYS[which]
    inputs = keras.Input((*spec["size"], 3), name="image")
    x = keras.layers.Conv2D(spec["channels"], 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(spec["hidden"], activation="tanh", name="hidden")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Dense(spec["classes"], name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(x), name="toy_classifier")
    r = _rng(spec["seed"])  # kernels and biases: conv, hidden, logits
    model.set_weights([r.normal(mean, scale, w.shape).astype(np.float32) for w, mean, scale in
                       zip(model.get_weights(), _TOY_MEANS, _TOY_SCALES)])
    return model


def _gradient_case(which: int, n: int, seed: int) -> _Case:
    model = toy_classifier(which)
    split = split_model(model)
    images = _rng(seed).uniform(0, 1, (n, *model.input_shape[1:])).astype(np.float32)

    def grad(target, x=images):
        with tf.GradientTape() as tape:
            a = split.features(tf.constant(x))
            tape.watch(a)
            score = target(split.head(a))
        return tape.gradient(score, a).numpy().astype(np.float64)

    logits = split.head(split.features(images)).numpy()
    predicted = logits.argmax(axis=1)
    c = min(set(range(logits.shape[1])) - set(predicted.tolist()))  # a class none predicts
    right = grad(lambda y: y[:, c])
    h, w, k = right.shape[1:]
    argmax = ("you explained the predicted class (argmax of the model's output, as the Keras "
              "tutorial does when no class is given), not class c: the exercise gives c, take "
              "y[:, c].")
    mistakes = [
        (grad(lambda y: tf.nn.softmax(y)[:, c]),
         "you took the gradient of the softmax probability p_c (the model's output), not of "
         "the logit y^c. Use split.head(A), which leaves the softmax out: the probability's "
         "gradient also depends on the other classes and vanishes as p_c nears 1."),
        (grad(lambda y: tf.nn.log_softmax(y)[:, c]),
         "you took the gradient of log p_c (a log-softmax, or a cross-entropy loss), not of "
         "the logit y^c: d log p_c / dA = dy^c/dA - sum_c' p_c' dy^c'/dA mixes in the other "
         "classes. Take tape.gradient(y[:, c], A) with y = split.head(A)."),
        (grad(tf.reduce_sum),
         "you took the gradient of all the logits summed (tape.gradient(y, A) sums over the "
         "classes); pick class c first: tape.gradient(y[:, c], A)."),
        (grad(lambda y: y[:, int(predicted[0])]), argmax),
        (grad(lambda y: tf.gather(y, predicted, batch_dims=1)), argmax),
        *[(grad(lambda y, i=i: tf.gather(tf.nn.softmax(y), i, batch_dims=1)),
           "you took the gradient of the softmax probability of the predicted class (the Keras "
           "tutorial's grad model: its output and its argmax): take the logit y^c of the class "
           "c you are given, y = split.head(A), then y[:, c].")
          for i in (np.full(n, predicted[0]), predicted)],
        (right * (np.arange(n) == 0)[:, None, None, None],
         "you took the gradient of y[0, c], the first image's logit only: the others get a zero "
         "gradient. Take y[:, c], one logit per image (the images do not interact)."),
        (right / n, "you took the gradient of the batch mean of y^c, which divides every "
                    "image's gradient by N: take tape.gradient(y[:, c], A)."),
        (np.repeat(right[:1], n, axis=0),
         "every image got the first image's gradient (images[:1], repeated?): compute A and y "
         "for the whole batch, one gradient per image."),
        (grad(lambda y: y[:, c], np.zeros_like(images)),
         "your gradient is the one of an all-black image (zeros): compute A = "
         "split.features(images) from the images you are given."),
        ((n, w, h, k), f"your gradient has shape (N, w, h, K) = {(n, w, h, k)}, h and w "
                       "swapped: return it as tape.gradient gives it, (N, h, w, K)."),
        ((n, *images.shape[1:]),
         "your gradient has the images' shape (N, H, W, 3): you differentiated with respect to "
         "the input. Differentiate with respect to A = split.features(images), (N, h, w, K)."),
    ]
    return _case(lambda: (toy_classifier(which), images.copy(), c), right, mistakes,
                 f"toy_classifier({which}): N={n} images of {images.shape[1]}x{images.shape[2]}, "
                 f"A of {h}x{w}x{k}, c={c}")


@functools.cache
def _logit_gradient_cases():
    return _gradient_case(0, 2, 3), _gradient_case(1, 3, 4)


def _none_gradient(fn) -> str | None:
    """Why tape.gradient gave None: y[:, c] taken after the tape closed, or another break
    (None if ``fn`` uses no tape)."""
    node = _function_node(fn)
    if node is not None and "GradientTape" not in ast.unparse(node):
        return None
    inside = set() if node is None else {id(n) for w in ast.walk(node) if isinstance(w, ast.With)
                                         for s in w.body for n in ast.walk(s)}
    made_inside = {n.id for n in ast.walk(node or ast.Pass()) if id(n) in inside
                   and isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for n in ast.walk(node or ast.Pass()):
        if (isinstance(n, ast.Subscript) and id(n) not in inside
                and isinstance(n.value, ast.Name) and n.value.id in made_inside):
            return (f"you took {ast.unparse(n)} after the `with tf.GradientTape()` block: the "
                    "tape records only what runs inside it, so tape.gradient does not know "
                    f"that {ast.unparse(n)} comes from A, and gives None. Move that line into "
                    "the block.")
    return ("tape.gradient gives None when the tape did not record the path from A to y^c: "
            "inside the `with tf.GradientTape() as tape:` block, A = split.features(images), "
            "tape.watch(A), y = split.head(A) from that A (y = model(images) recomputes A), and "
            "y[:, c] too; then return tape.gradient(y[:, c], A).")


def check_logit_gradients(fn) -> bool:
    """Check ``fn(model, images, c) -> gradients``: g = dy^c/dA, the gradient of class c's
    *logit* with respect to the activations A of the model's target layer (its last conv
    layer), for every image.

    ``model`` is a ``toy_classifier()`` (ending in a Softmax layer), ``images`` (N, H, W, 3)
    floats in [0, 1], ``c`` an int (a class the model does not predict); the result is
    (N, h, w, K). Cut the model with ``split = camcore.split_model(model)``; then, inside a
    ``tf.GradientTape``, ``A = split.features(images)``, ``tape.watch(A)``,
    ``y = split.head(A)`` (the logits, the softmax left out), and ``tape.gradient(y[:, c], A)``.
    """
    return _check(fn, _logit_gradient_cases(),
                  "g = dy^c/dA^k_ij, the gradient of the logit y^c (not of p_c) with respect "
                  "to A, one (h, w, K) gradient per image.",
                  "(N, h, w, K): the shape of A",
                  "split = camcore.split_model(model); with tf.GradientTape() as tape: "
                  "A = split.features(images); tape.watch(A); y = split.head(A); then "
                  "return tape.gradient(y[:, c], A).",
                  none_hint=_none_gradient,
                  rescaled="did you normalise the gradient (g / ||g||, as old Keras tutorials "
                           "did)? Return the raw gradient, tape.gradient(y[:, c], A).")


# --------------------------------------------------------------------------------------------
# 4. Grad-CAM++'s position weight gamma
# --------------------------------------------------------------------------------------------
def _gamma_case(seed: int, shape: tuple, signed: bool) -> _Case:
    r = _rng(seed)
    n, h, w, k = shape
    if signed:  # a swish layer's output: slightly negative values too
        x = r.normal(0.5, 1.5, shape)
        a = x / (1 + np.exp(-x))
    else:  # after a ReLU: zeros and positive values
        a = r.uniform(-1, 4, shape).clip(0, None)
    a = a.astype(np.float32)
    # gradients of every size a real network gives, from 1e-4 to 0.02, of both signs
    g = (10 ** r.uniform(-4, -1.7, shape) * r.choice([-1, 1], shape)).astype(np.float32)
    g[0, 1, 2, :] = 0.0  # zero gradients: 0 / 0, defined as gamma = 0
    g[-1, 0, 0, 1] = 0.0
    a64, g64 = _f64(a), _f64(g)
    s = a64.sum(axis=(1, 2), keepdims=True)
    den = 2 * g64**2 + s * g64**3
    zero = g64 == 0

    def gamma(a_term, g=g64):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(g**2 / (2 * g**2 + a_term * g**3), nan=0.0)

    def epsilon_added(got, close):
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.median(g64[~zero] ** 2 / got[~zero] - den[~zero])
        return np.isfinite(e) and e > 0 and close(got, np.where(zero, 0, g64**2 / (den + e)))

    right = _f64(grad_cam_plus_plus_gamma(a, g))
    total = right.sum(axis=(1, 2), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        nan_at_zero = g64**2 / den
        simplified = 1 / (2 + s * g64)
    mistakes = [
        (nan_at_zero, "your gamma has NaN where the gradient is 0 (0 / 0); define gamma as 0 "
                      "there: tf.math.divide_no_nan, or np.where(denominator != 0, numerator "
                      "/ denominator, 0)."),
        (simplified, "where g = 0 your gamma is 1/2: the simplified 1 / (2 + S_k g) holds only "
                     "where g != 0. Eq. 19 gives 0 / 0 there, defined as gamma = 0: compute "
                     "g^2 / (2 g^2 + S_k g^3) with a division that gives 0 for 0 / 0."),
        (epsilon_added,
         "you added a small epsilon to the denominator (as pytorch-grad-cam does, 1e-7): with "
         "gradients of 1e-3, g^2 is 1e-6, so the epsilon changes gamma by 10%. Leave it out and "
         "define gamma as 0 where the denominator is 0 (tf.math.divide_no_nan)."),
        (gamma(a64), "you used A at each position in the denominator; Eq. 19 has its spatial "
                     "sum, S_k = sum_ab A^k_ab: np.sum(A, axis=(1, 2), keepdims=True), one "
                     "number per image and channel."),
        (gamma(s / (h * w)), "you used the spatial mean of A, (1/Z) sum_ab A^k_ab (xplique's "
                             "variant, chapter 6's (c)); Eq. 19 has the sum S_k = sum_ab "
                             "A^k_ab."),
        (gamma(1.0), "your denominator has no A in it (g^2 / (2 g^2 + g^3)); multiply g^3 by "
                     "the spatial sum of the activations, S_k = sum_ab A^k_ab."),
        (gamma(a64.sum(axis=-1, keepdims=True)),
         "you summed A over the channels (the last axis); Eq. 19 sums each channel over the "
         "positions: axis=(1, 2)."),
        (np.divide(right, total, out=np.zeros_like(right), where=total != 0),
         "you renormalised gamma by its spatial sum (as the authors' code and tf-keras-vis do, "
         "chapter 6's (b)); the exercise, like camcore, uses Eq. 19 as it stands. On a pooling "
         "-> Dense head that renormalisation turns Grad-CAM++ into CAM with its negative "
         "weights zeroed."),
        (gamma(s, _relu(g64)), "you used ReLU(g) in gamma; Eq. 19 uses the signed gradient g. "
                               "The ReLU belongs to the channel weight, alpha_k^c = sum_ij "
                               "gamma_ij^kc ReLU(g_ij^kc)."),
        (right * _relu(g64), "you returned gamma * ReLU(g), the terms of the channel weight "
                             "alpha_k^c; the exercise asks for gamma_ij^kc alone."),
        ((n, k), "you returned one number per image and channel, (N, K): the channel weight "
                 "alpha_k^c? The exercise asks for gamma_ij^kc, one per position: (N, h, w, K)."),
    ]
    return _case(_fresh(a, g), right, mistakes,
                 f"N={n}, {h}x{w} positions, K={k} channels"
                 + (", signed activations (a swish layer)" if signed else ""))


@functools.cache
def _gamma_cases():
    return _gamma_case(4, (2, 3, 5, 4), signed=False), _gamma_case(14, (3, 6, 4, 2), signed=True)


def check_grad_cam_plus_plus_gamma(fn) -> bool:
    """Check ``fn(activations, gradients) -> gamma``, Grad-CAM++'s position weights (Eq. 19;
    the paper's alpha_ij^kc):

        gamma_ij^kc = g^2 / (2 g^2 + S_k g^3),  S_k = sum_ab A^k_ab   (0 where g = 0)

    with g = dy^c/dA^k_ij. activations and gradients (N, h, w, K) -> gamma (N, h, w, K).
    """
    return _check(fn, _gamma_cases(),
                  "gamma_ij^kc = g^2 / (2 g^2 + S_k g^3) with S_k = sum_ab A^k_ab and g = "
                  "dy^c/dA^k_ij, and 0 where the denominator is 0 (Grad-CAM++, Eq. 19; the "
                  "paper's alpha_ij^kc).",
                  "(N, h, w, K): one gamma per position and channel",
                  "sum A over the positions keeping the axes, so it broadcasts against g: "
                  "np.sum(A, axis=(1, 2), keepdims=True).")




# --------------------------------------------------------------------------------------------
# 5. Score-CAM's mask
# --------------------------------------------------------------------------------------------
def _mask_case(seed: int, small: tuple, size: tuple, low: float) -> _Case:
    m = _rng(seed).uniform(low, 6, small).clip(0, 6).astype(np.float32)  # a ReLU6 channel
    m[1, 1] = 6.0  # the extremes inside: upsampling does not reach them exactly
    up = _resize(m, size)
    low, high = up.min(), up.max()
    mistakes = [
        ((up - low) / high, "you divided by the maximum, not by (max M - min M): s(M) = "
                            "(M - min M) / (max M - min M)."),
        (up / (high - low),
         "you divided by (max - min) without subtracting the minimum; s(M) = (M - min M) / "
         "(max M - min M). Without the subtraction the masks never reach 0 (a variant found in "
         "a popular article), so every mask lets some of every pixel through."),
        (up / high, "you divided by the maximum only (M / max M); subtract the minimum first: "
                    "(M - min M) / (max M - min M), so that each mask spans [0, 1]."),
        (_resize(_minmax(_f64(m)), size),
         "you normalised before upsampling; the order is upsample first, then normalise. Close, "
         "but bilinear upsampling does not reach the map's exact minimum and maximum, so your "
         "mask does not span [0, 1]."),
        *[(_minmax(wrong), message) for wrong, message in _wrong_upsamplings(m, size)],
        (up, "you upsampled but did not normalise; rescale to [0, 1]: "
             "(M - min M) / (max M - min M)."),
        (small, "your mask has the channel map's own size (h, w); upsample it to size (H, W) "
                "first (bilinear), then normalise."),
        (size[::-1], "your mask is (W, H), transposed: cv2.resize takes the size as (width, "
                     "height), i.e. cv2.resize(m, (W, H)) for size = (H, W)."),
    ]
    return _case(_fresh(m, size), _f64(score_cam_masks(m[None], size)[0]), mistakes,
                 f"a {small[0]}x{small[1]} channel map and size = {size}")


@functools.cache
def _mask_cases():
    return (_mask_case(5, (3, 5), (12, 20), low=-2.0),  # zeros in it, as most channels have
            _mask_case(15, (6, 4), (17, 14), low=0.5))  # active everywhere: its minimum > 0


def check_score_cam_mask(fn) -> bool:
    """Check ``fn(channel_map, size) -> mask``, Score-CAM's mask of one channel:

        M^k = s(Up(A^k)),  Up = bilinear upsampling to ``size`` (half-pixel centres),
        s(M) = (M - min M) / (max M - min M)

    channel_map A^k (h, w), size (H, W) -> mask (H, W) in [0, 1].
    """
    return _check(fn, _mask_cases(),
                  "M^k = s(Up(A^k)): bilinear upsampling to size (half-pixel centres, as "
                  "tf.image.resize and cv2.resize do), then s(M) = (M - min M) / (max M - "
                  "min M).",
                  "(H, W) = size, the argument you are given (not a fixed size)",
                  "channel_map is (h, w) and size is (H, W): tf.image.resize(m[..., None], size)"
                  "[..., 0], or cv2.resize(m, (W, H)) (width first), then min-max.",
                  atol=1e-5)


# --------------------------------------------------------------------------------------------
# 6. LayerCAM's weights
# --------------------------------------------------------------------------------------------
def _layer_cam_case(seed: int, shape: tuple, mean: float, scale: float) -> _Case:
    g = _rng(seed).normal(mean, scale, shape).astype(np.float32)
    g64 = _f64(g)
    right = _f64(layer_cam_weights(g))
    positive, big = g64 > 0, g64 > 6

    def floor_not_zero(got, close):  # right where g > 0, not 0 where g <= 0
        return close(got[positive], right[positive]) and not close(got[~positive], 0 * g64[
            ~positive])

    def capped(got, close):
        return big.any() and close(got[~big], right[~big]) and close(got[big], np.full(
            big.sum(), 6.0))

    mean_g = g64.mean(axis=(1, 2))
    mistakes = [
        (mean_g, "you averaged the gradients over the positions: that is Grad-CAM's weight. "
                 "LayerCAM keeps one weight per position: ReLU(g), (N, h, w, K)."),
        (mean_g[:, None, None, :], "you averaged the gradients over the positions: that is "
                                   "Grad-CAM's weight. LayerCAM keeps one weight per position: "
                                   "ReLU(g), (N, h, w, K)."),
        (_relu(mean_g), "you applied the ReLU after averaging over the positions; LayerCAM "
                        "applies it to each position's gradient and does not average: ReLU(g)."),
        (_relu(g64).mean(axis=(1, 2)),
         "you averaged the positive gradients over the positions (camcore reports that as "
         "LayerCAM's channel_weights); the weights themselves are per position: ReLU(g)."),
        (g64, "you returned the gradients unchanged: that is HiResCAM's weight. LayerCAM keeps "
              "only their positive part: np.maximum(g, 0)."),
        (np.abs(g64), "you took the absolute value of the gradients; LayerCAM sets the negative "
                      "ones to 0: np.maximum(g, 0)."),
        (capped, "your weights stop at 6 (tf.nn.relu6?); LayerCAM's ReLU has no cap: "
                 "np.maximum(g, 0) or tf.nn.relu(g)."),
        (floor_not_zero,
         "your weights are right where g > 0 but not 0 where g <= 0 (np.maximum(g, 1e-7)? a "
         "leaky ReLU?). With gradients of 1e-3 such a floor is not negligible: LayerCAM's "
         "weight is exactly max(g, 0)."),
    ]
    n, h, w, k = shape
    return _case(_fresh(g), right, mistakes, f"N={n}, {h}x{w} positions, K={k} channels, "
                                             f"gradients up to {np.abs(g).max():.2g}")


@functools.cache
def _layer_cam_weight_cases():
    return _layer_cam_case(6, (2, 3, 5, 6), 0.0, 1e-3), _layer_cam_case(16, (3, 4, 2, 5), 1, 4)


def check_layer_cam_weights(fn) -> bool:
    """Check ``fn(gradients) -> weights``, LayerCAM's weights, one per channel and position:

        ReLU(g) = max(dy^c/dA^k_ij, 0)

    gradients (N, h, w, K) -> weights (N, h, w, K).
    """
    return _check(fn, _layer_cam_weight_cases(),
                  "ReLU(g) = max(dy^c/dA^k_ij, 0), the positive part of the gradient at every "
                  "position and channel.",
                  "(N, h, w, K): the shape of the gradients",
                  "apply the ReLU to each gradient and keep the shape (N, h, w, K).",
                  rescaled="did you normalise the gradients? LayerCAM's weight is ReLU(g) "
                           "itself.")


# --------------------------------------------------------------------------------------------
# 7. LayerCAM's fusion of several layers
# --------------------------------------------------------------------------------------------
GAMMA_S = 2.0  # LayerCAM's scale factor for the maps of shallow layers (Jiang et al., 2021)


def _fusion_case(seed: int, n: int, sizes: list, shallow: list, size: tuple) -> _Case:
    r = _rng(seed)
    maps = []
    for (h, w), is_shallow in zip(sizes, shallow):
        m = _relu(r.normal(0, 1, (n, h, w)))
        m[:, 0, 0] = 0.0
        if is_shallow:  # small values, a different scale per image
            m *= 10 ** r.uniform(-2.5, -0.5, (n, 1, 1))
        else:  # the deepest map as camcore gives it: in [0, 1]
            m = _minmax(m)
        maps.append(m.astype(np.float32))
    ms = [_f64(m) for m in maps]

    def scaled(m, yes, top=None):
        top = m.max(axis=(1, 2), keepdims=True) if top is None else top
        return np.tanh(GAMMA_S * m / top) if yes else m

    def fuse(layers, reduce=np.max):  # layers at the size asked for
        return reduce(layers, axis=0)

    ups = [_resize(scaled(m, s), size) for m, s in zip(ms, shallow)]
    right = fuse(ups)
    largest = max(sizes, key=lambda hw: hw[0] * hw[1])
    tops = [m.max(axis=(1, 2), keepdims=True) for m in ms]
    wrong_ups = zip(*[_wrong_upsamplings(scaled(m, s), size) for m, s in zip(ms, shallow)])
    mistakes = [
        (fuse([_resize(m / top if s else m, size) for m, top, s in zip(ms, tops, shallow)]),
         "you divided the shallow maps by their maximum but left out the tanh: scale them by "
         "tanh(kappa L_l / max L_l), kappa = 2."),
        (fuse([_resize(m, size) for m in ms]),
         "you fused the maps without scaling the shallow ones: their values are small, so the "
         "deepest map hides them. Scale each shallow map first: tanh(kappa L_l / max L_l), "
         "kappa = 2."),
        (fuse([_resize(scaled(m, s, 1.0), size) for m, s in zip(ms, shallow)]),
         "you took tanh(kappa L_l) without dividing by max L_l, each image's maximum of that "
         "layer's map: tanh(kappa L_l / max L_l)."),
        (fuse([_resize(np.tanh(m / top) if s else m, size)
               for m, top, s in zip(ms, tops, shallow)]),
         "you used kappa = 1; LayerCAM scales the shallow maps by tanh(2 L_l / max L_l)."),
        (fuse([_resize(scaled(m, s, m.max()), size) for m, s in zip(ms, shallow)]),
         "you divided by the maximum over the whole batch; divide each image's map by its own "
         "maximum: max over axes (1, 2), keepdims=True."),
        (fuse([_resize(scaled(m, True), size) for m in ms]),
         "you scaled the deepest layer's map too; only the shallow layers' maps (shallow[l] "
         "True) get tanh(kappa L_l / max L_l): the deepest is used as it is."),
        (fuse([_resize(scaled(m, i < len(ms) - 1), size) for i, m in enumerate(ms)]),
         "you chose the layers to scale by their place in the list; scale those with "
         "shallow[l] True, wherever they are."),
        (fuse(ups, reduce=np.mean), "you averaged the layers' maps; LayerCAM fuses them by the "
                                    "element-wise maximum: np.max(np.stack(maps), axis=0)."),
        (fuse(ups, reduce=np.sum), "you summed the layers' maps; LayerCAM fuses them by the "
                                   "element-wise maximum: np.max(np.stack(maps), axis=0)."),
        (_resize(fuse([_resize(scaled(m, s), largest) for m, s in zip(ms, shallow)]), size),
         f"you fused the maps at the largest layer's size {largest}, then upsampled the fused "
         "map: upsample each scaled map to size first, then take the maximum (two bilinear "
         "steps are not one)."),
        (fuse([scaled(_resize(m, size), s) for m, s in zip(ms, shallow)]),
         "you scaled after upsampling (tanh of Up(L_l) / max Up(L_l)); scale each layer's map "
         "at its own size, then upsample: Up(tanh(kappa L_l / max L_l))."),
        *[(fuse([up for up, _ in layers]), layers[0][1]) for layers in wrong_ups],
        ((len(ms), n, *size), "you returned the upsampled maps stacked, one per layer: take "
                              "their maximum over the layers, axis=0."),
    ]
    label = ", ".join(f"{h}x{w}" + (" (shallow)" if s else "") for (h, w), s in
                      zip(sizes, shallow))
    return _case(_fresh(maps, size, shallow), right, mistakes,
                 f"N={n} and layers {label}, size = {size}", also=(_minmax(right),))


@functools.cache
def _fusion_cases():
    return (_fusion_case(9, 2, [(12, 16), (6, 8), (3, 4)], [True, True, False], (24, 32)),
            _fusion_case(19, 3, [(4, 3), (8, 6)], [False, True], (20, 15)))


def check_layer_cam_fusion(fn) -> bool:
    """Check ``fn(maps, size, shallow) -> fused``, LayerCAM's fusion of several layers' maps
    (Jiang et al., 2021):

        L = max_l Up(L'_l),  L'_l = tanh(kappa L_l / max_ij L_l) for a shallow layer
        (kappa = 2), L'_l = L_l for the deepest;  Up = bilinear to size (half-pixel centres)

    ``maps`` is a list of the layers' LayerCAM maps L_l (N, h_l, w_l), non-negative: the
    deepest as camcore gives it (in [0, 1]), the shallow ones at any scale (their values are
    small; max_ij L_l is each image's maximum). ``size`` is (H, W); ``shallow`` a list of bools,
    True for the layers to scale. The result is (N, H, W), the element-wise maximum over the
    layers; normalised to [0, 1] or not, both are accepted.
    """
    return _check(fn, _fusion_cases(),
                  "L = max_l Up(L'_l): each shallow layer's map scaled, L'_l = "
                  "tanh(kappa L_l / max_ij L_l) with kappa = 2 (the deepest used as it is), "
                  "upsampled to size (bilinear, half-pixel centres), then the element-wise "
                  "maximum over the layers.",
                  "(N, H, W): one fused map per image, at size",
                  "maps is a list of (N, h_l, w_l) arrays: for each layer, scale it if "
                  "shallow[l] (max over axes (1, 2), keepdims=True), upsample it with "
                  "tf.image.resize(m[..., None], size)[..., 0], then np.max(np.stack(ups), "
                  "axis=0).",
                  rescaled="did you divide the fused map by something? Return it as the "
                           "maximum gives it (or min-max normalised).",
                  atol=1e-5)


# --------------------------------------------------------------------------------------------
# 8. Average Drop
# --------------------------------------------------------------------------------------------
def _drop_case(y, o) -> _Case:
    y, o = np.array(y, np.float32), np.array(o, np.float32)
    y64, o64 = _f64(y), _f64(o)
    drop = _relu(y64 - o64)
    per_image = 100 * drop / y64
    ratio_of_means = ("you took a ratio of means; Average Drop is the mean of the per-image "
                      "ratios, mean_i (max(0, Y_i - O_i) / Y_i), so each image counts alike.")
    mistakes = [
        (100 * np.mean((y64 - o64) / y64),
         "you let increases count as negative drops; clip each drop at 0 first: "
         "max(0, Y_i - O_i). An image whose explanation raises the confidence counts as no "
         "drop (% Increase in Confidence counts those)."),
        (100 * np.mean(drop / o64), "you divided by O (the explanation's score); the drop is "
                                    "relative to the image's own score: max(0, Y_i - O_i) / Y_i."),
        (100 * np.mean(drop / y64.max()), "you divided by the largest score, max_i Y_i; divide "
                                          "each image's drop by its own score Y_i."),
        (100 * np.mean(drop), "you left out the division by Y_i: Average Drop is the drop "
                              "relative to the image's own score, max(0, Y_i - O_i) / Y_i."),
        (np.mean(drop / y64), "your answer is a fraction; Average Drop is a percentage: "
                              "multiply by 100."),
        (100 * drop.mean() / y64.mean(), ratio_of_means),
        (100 * max(0.0, (y64 - o64).mean()) / y64.mean(), ratio_of_means),
        (100 * np.mean(_relu(o64 - y64) / y64), "you computed max(0, O_i - Y_i), the increases; "
                                                "the drop is max(0, Y_i - O_i)."),
        (100 * np.sum(drop / y64), "you summed over the images; Average Drop is the mean."),
        (per_image, "you returned one drop per image; Average Drop is their mean, one number."),
    ]
    return _case(_fresh(y, o), np.float64(per_image.mean()), mistakes,
                 f"N={len(y)} images")


@functools.cache
def _drop_cases():
    return (_drop_case([0.92, 0.81, 0.62, 0.97, 0.34, 0.71], [0.23, 0.86, 0.11, 0.49, 0.58, 0.4]),
            _drop_case([0.999, 0.55, 0.08, 0.77], [0.9, 0.02, 0.09, 0.41]))


def check_average_drop(fn) -> bool:
    """Check ``fn(y, o) -> float``, Average Drop in percent (lower is better):

        Average Drop % = 100 * (1/N) sum_i max(0, Y_i - O_i) / Y_i

    y: (N,) Y_i, the class probability p_c on each image; o: (N,) O_i, on its explanation image.
    """
    return _check(fn, _drop_cases(),
                  "Average Drop % = 100 * (1/N) sum_i max(0, Y_i - O_i) / Y_i, with Y_i = p_c "
                  "on image i and O_i = p_c on its explanation image.",
                  "one number",
                  "y and o are numpy arrays of N probabilities: work element-wise with numpy "
                  "(np.maximum, not Python's max or np.max) and return a float.")
