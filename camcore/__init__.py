"""camcore: class activation maps (CAM, Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM, LayerCAM).

Two parts, one folder each. The general explainer, usable on any Keras classifier, is this
folder (it never imports ``camcore.book``):

* ``camcore.checks``: the input checks every entry point shares (images, classes, counts,
  heatmaps), each error naming the cause and the fix.
* ``camcore.model_split``: cutting a model at a target layer into features and logits.
* ``camcore.methods``: the six methods, each a weight function in one shared pipeline,
  registered with ``camcore.register`` (CONTRIBUTING.md: "Adding a method").
* ``camcore.metrics``: faithfulness metrics (Average Drop, Increase in Confidence, Win %,
  RISE deletion and insertion, ROAD, area-matched masks).
* ``camcore.stats``: the one decision rule for comparisons (family-adjusted intervals, one
  vocabulary of verdicts, a minimum n) and its forest plot.
* ``camcore.sanity``: sanity checks by cascading randomization; Spearman and SSIM of maps.
* ``camcore.overlay``: heatmaps over images.
* ``camcore.progress``: progress lines for long loops.
* ``camcore.data``: the Intel Image Classification dataset (find, load, subsample).
* ``camcore.backbones`` / ``camcore.models``: ImageNet backbones and a classifier built on them;
  ``camcore.cache``: atomic writes, damaged files rebuilt, one process at a time.

What serves the book is ``camcore/book/``: quick mode, the prose helpers and the chapters'
classifiers (``camcore.book``), the fine-tuning recipe (``camcore.book.training``), the shipped
fine-tuned layers (``camcore.book.shipped``), the experiments' material (``confusion``,
``collages``, ``shortcut``) and the exercise checkers (``camcore.book.exercises``).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the methods use tf.GradientTape
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up log quiet

from camcore.data import CLASS_NAMES, find_dataset, load_images, load_split  # noqa: E402
from camcore.methods import (  # noqa: E402
    METHODS,
    CamResult,
    EmptyMapWarning,
    NearPoleWarning,
    cam,
    grad_cam,
    grad_cam_plus_plus,
    hires_cam,
    layer_cam,
    logits_and_probabilities,
    normalize_maps,
    register,
    score_cam,
    upsample,
)
from camcore.model_split import default_target_layer, split_model  # noqa: E402
from camcore.models import build_classifier  # noqa: E402
from camcore.overlay import overlay, show_grid  # noqa: E402

__version__ = "0.2.0"  # the one place the version lives (pyproject.toml reads it)
__all__ = [
    "CLASS_NAMES", "METHODS", "CamResult", "EmptyMapWarning", "NearPoleWarning",
    "build_classifier", "cam", "default_target_layer", "find_dataset", "grad_cam",
    "grad_cam_plus_plus", "hires_cam", "layer_cam", "load_images", "load_split",
    "logits_and_probabilities", "normalize_maps", "overlay", "register", "score_cam",
    "show_grid", "split_model", "upsample",
]

_MOVED = {name: f"camcore.book.{name}" for name in (
    "training", "shipped", "exercises", "collages", "confusion", "shortcut", "prose")}


def __getattr__(name):
    """``camcore.training`` and the other modules that serve only the book live in
    ``camcore.book``: say where, instead of a bare AttributeError."""
    if name in _MOVED:
        raise AttributeError(
            f"camcore has no attribute {name!r}: the module is {_MOVED[name]} "
            f"(it serves the book). Import it with `from camcore.book import {name}`.")
    raise AttributeError(f"module 'camcore' has no attribute {name!r}")
