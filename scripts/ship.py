"""Ship the book's classifiers: export the cached models of the book's recipes into the package.

    python scripts/ship.py [KIND ...]     (default: main; KIND is one of camcore.book.KINDS)

Run it with the CAMCORE_CACHE and CAMCORE_DATA the models were trained with
(``scripts/fine_tune.py --kind KIND``). For each kind, writes camcore/book/weights/<name>.npz
(the layers fine-tuning changed) and <name>.json (what the model is, its recipe, data
fingerprint, accuracy, seconds, storage), then records both files' SHA-256 in
camcore.book.shipped.SHA256.

The main classifier is stored in float32 (a re-executed chapter reproduces the committed outputs
exactly). The others are stored in float16 if, on 10 test images per class, the float16 model's
top-1 classes equal the float32 model's, its probabilities differ by at most PROBABILITY_TOL and
its Grad-CAM, Grad-CAM++ and LayerCAM heatmaps by at most HEATMAP_TOL (of the [0, 1] range);
else in float32. The figures are recorded in the report's ``storage``.
"""

import re
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import camcore
from camcore import book
from camcore.book import shipped
from camcore.book.shortcut import stamp_class
from camcore.book.training import Recipe, load_cached
from camcore.data import list_images

HEATMAP_TOL = 0.01  # fixed before measuring
PROBABILITY_TOL = 1e-3
METHODS = {"Grad-CAM": camcore.grad_cam, "Grad-CAM++": camcore.grad_cam_plus_plus,
           "LayerCAM": camcore.layer_cam}


def float16_check(kind, model, report) -> dict:
    """Export ``model`` in float16 to a temporary folder, load it back, and compare it with the
    float32 model on 10 test images per class: the figures and whether they are within the
    tolerances."""
    recipe = Recipe(**report.recipe)
    test = camcore.load_split("test", recipe.input_size, per_class=10, seed=1)
    x = test.images
    if recipe.cue_class:
        x = stamp_class(x, test.labels, recipe.cue_class)
    x = x.astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        digests = shipped.export(model, report, kind, folder, dtype="float16")
        half = shipped.load_shipped(kind, folder, digests)
    p32, p16 = model.predict(x, verbose=0), half.predict(x, verbose=0)
    figures = {"images": len(x), "same_top1": float((p32.argmax(1) == p16.argmax(1)).mean()),
               "max_probability_difference": float(np.abs(p32 - p16).max())}
    for name, method in METHODS.items():
        a = method(model, x)
        b = method(half, x, classes=a.classes)
        figures[f"max_heatmap_difference {name}"] = float(np.abs(a.heatmaps - b.heatmaps).max())
    figures["within_tolerance"] = bool(
        figures["same_top1"] == 1.0 and figures["max_probability_difference"] <= PROBABILITY_TOL
        and all(v <= HEATMAP_TOL for k, v in figures.items() if k.startswith("max_heatmap")))
    figures["tolerance"] = {"heatmap": HEATMAP_TOL, "probability": PROBABILITY_TOL,
                            "top1": "identical"}
    return figures


def what(kind, report) -> str:
    text = (f"The book's {book.KINDS[kind]}, shipped for book.classifier({kind!r}): "
            f"{report.description}.")
    if report.seconds.get("frozen activations") == 0.0:
        text += (" Its frozen layers' activations were reused from the model trained just before "
                 "it in the same process (scripts/fine_tune.py), so its seconds leave them out.")
    return text


def ship(kind) -> dict:
    """Export the cached model of ``book.recipe(kind)``; ``{file name: SHA-256}``."""
    recipe = book.recipe(kind)
    cached = load_cached(recipe)
    if cached is None:
        raise SystemExit(f"no cached model of book.recipe({kind!r}) on this data: run "
                         f"`scripts/fine_tune.py --kind {kind}` with the same CAMCORE_CACHE")
    model, report = cached
    report = replace(report, recipe=asdict(Recipe(**report.recipe)))  # every field, today's
    n = sum(len(list_images(report.data_dir, split)[0]) for split in ("train", "test"))
    report.data_dir = f"Intel Image Classification, a {n:,}-image subset in Kaggle's layout"
    if not report.description:
        report.description = book.training.describe(recipe)
    storage = {}
    dtype = "float32"
    if kind != "main":
        storage = {"float16_check": float16_check(kind, model, report)}
        dtype = "float16" if storage["float16_check"]["within_tolerance"] else "float32"
    digests = shipped.export(model, report, kind, what=what(kind, report), dtype=dtype,
                             storage=storage)
    weights, _ = shipped.paths(kind)
    print(f"{kind}: {weights} {dtype}, {weights.stat().st_size / 2**20:.2f} MB, test accuracy "
          f"{report.test_accuracy:.4f} on {report.test_images} images, "
          f"{report.seconds['total']:.0f} s; {storage}", flush=True)
    return digests


def record(digests: dict) -> None:
    """Set the checksums in camcore/book/shipped.py (others kept)."""
    source = Path(shipped.__file__)
    merged = {**shipped.SHA256, **digests}
    lines = "".join(f'    "{name}":\n        "{digest}",\n'
                    for name, digest in sorted(merged.items()))
    text = re.sub(r"SHA256 = \{\n.*?\n\}\n", f"SHA256 = {{\n{lines}}}\n", source.read_text(),
                  flags=re.S)
    source.write_text(text)
    shipped.SHA256.update(digests)


def main():
    if book.QUICK:
        raise SystemExit("unset CAMCORE_QUICK: the shipped models use the full recipes")
    kinds = sys.argv[1:] or ["main"]
    for kind in kinds:
        record(ship(kind))
    files = sorted(shipped.FOLDER.iterdir())
    total = sum(f.stat().st_size for f in files)
    for f in files:
        print(f"  {f.name:<32} {f.stat().st_size / 2**20:6.2f} MB")
    print(f"  {'total':<32} {total / 2**20:6.2f} MB")


if __name__ == "__main__":
    main()
