"""camcore: class activation maps (CAM, Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM, LayerCAM).

The small, tested core of the camcore book. One module per concern:

* ``camcore.data``: the Intel Image Classification dataset (find, load, subsample).
* ``camcore.backbones`` / ``camcore.models``: ImageNet backbones and the classifier built on them.
* ``camcore.training``: fast fine-tuning on a CPU, and ``load_or_train`` (``camcore.cache``: atomic
  writes, damaged files rebuilt, one process trains while the others wait).
* ``camcore.shipped``: the book's fine-tuned layers, shipped with the package.
* ``camcore.model_split``: cutting a model at a target layer into features and logits.
* ``camcore.methods``: the six methods, each a weight function in one shared pipeline.
* ``camcore.overlay``: heatmaps over images.
* ``camcore.confusion``: which classes the classifier mixes up.
* ``camcore.metrics``: faithfulness metrics (Average Drop, Increase in Confidence, Win %,
  RISE deletion and insertion, ROAD, area-matched masks) and paired bootstrap intervals.
* ``camcore.sanity``: sanity checks by cascading randomization; Spearman and SSIM of maps.
* ``camcore.collages``: 2x2 collages with known answers (several instances of a class).
* ``camcore.shortcut``: an artificial cue stamped on images, for the shortcut experiment.
* ``camcore.exercises``: checkers for the book's exercises, which name the likely mistake.
* ``camcore.book``: what the book's notebooks share (quick mode, the fine-tuned model, glue).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the methods use tf.GradientTape
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up log quiet

from camcore.data import CLASS_NAMES, find_dataset, load_images, load_split  # noqa: E402
from camcore.methods import (  # noqa: E402
    METHODS,
    CamResult,
    EmptyMapWarning,
    cam,
    grad_cam,
    grad_cam_plus_plus,
    hires_cam,
    layer_cam,
    logits_and_probabilities,
    normalize_maps,
    score_cam,
    upsample,
)
from camcore.model_split import default_target_layer, split_model  # noqa: E402
from camcore.models import build_classifier  # noqa: E402
from camcore.overlay import overlay, show_grid  # noqa: E402

__version__ = "0.2.0"  # the one place the version lives (pyproject.toml reads it)
__all__ = [
    "CLASS_NAMES", "METHODS", "CamResult", "EmptyMapWarning", "build_classifier", "cam",
    "default_target_layer", "find_dataset", "grad_cam", "grad_cam_plus_plus", "hires_cam",
    "layer_cam", "load_images",
    "load_split", "logits_and_probabilities", "normalize_maps", "overlay", "score_cam",
    "show_grid", "split_model", "upsample",
]
