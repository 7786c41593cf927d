"""The explorer page's data: every method's map, at three layers, for two classes, computed here.

Writes ``chapters/data/explorer/explorer.json``, which the book's explorer page embeds
(``_ext/explorer.py``) and draws (``_ext/explorer_static/explorer.js``). It holds, for the test
images chapter 8 shows (the first two of each class in its grids):

* the image as a small WebP (``data:`` URL), its true class and file name;
* its six class probabilities from the book's classifier (``book.classifier()``);
* for its top-1 and top-2 classes, the low-resolution map of each method at the 7x7, 14x14 and
  28x28 layers of chapter 9 (CAM at 7x7 only: it needs the Dense layer right after the pooling).
  Score-CAM scores every channel (no top-k variant). A map L^c is stored as 8-bit numbers,
  round(255 L^c) row by row, base64-encoded; the page upsamples it bilinearly, renormalises it
  and blends it in OpenCV's jet colours over the image, as ``camcore.overlay`` does;
* Grad-CAM++'s pole share at each layer, for each of the two classes: the part of its weight
  that float32 rounding moves (``camcore.methods.grad_cam_plus_plus_pole_share``); above the
  share at which camcore warns, the page says that the map is not stable.

    CAMCORE_DATA=path/to/intel-image-classification .venv/bin/python scripts/explorer.py

About 10 minutes on 2 CPU cores, most of it Score-CAM at 7x7 (1,280 channels an image).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import camcore
from camcore.methods import POLE_SHARE, NearPoleWarning, activations_and_gradients
from camcore.methods import grad_cam_plus_plus_pole_share as pole_share

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "chapters" / "data" / "explorer" / "explorer.json"
LAYERS = {"7x7": "efficientnet_lite0/top_activation",  # chapter 9's three layers
          "14x14": "efficientnet_lite0/block5c_add",
          "28x28": "efficientnet_lite0/block3b_add"}
SAMPLE = {"per_class": 4, "seed": 1}  # chapter 8's test sample (full mode)
SHOWN = 2  # the first two of each class in chapter 8's grids (which show three): 12 images
RANKS = ("top-1", "top-2")  # the classes explained: the most and second most probable
ALPHA = 0.4  # camcore.overlay's default blend
WEBP_QUALITY = 80  # about 13 kB an image at 224x224


def encode_map(L: np.ndarray) -> str:
    """A [0, 1] map L^c as base64 of its 8-bit values round(255 L^c), row by row."""
    return base64.b64encode(np.round(255 * np.asarray(L, np.float64)).astype(np.uint8)
                            .tobytes()).decode("ascii")


def decode_map(text: str, shape) -> np.ndarray:
    """The inverse of ``encode_map``: a float32 map in [0, 1] of ``shape``."""
    values = np.frombuffer(base64.b64decode(text), np.uint8)
    return (values.reshape(shape) / np.float32(255)).astype(np.float32)


def image_data_url(image: np.ndarray, quality: int = WEBP_QUALITY) -> str:
    """An RGB image as a ``data:`` URL of a lossy WebP (smaller than a JPEG of the same look)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, "WEBP", quality=quality)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jet_colours() -> str:
    """OpenCV's jet colormap as 256 RGB triples (base64 of 768 bytes): the overlay's colours."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)
    return base64.b64encode(lut[:, 0, ::-1].tobytes()).decode("ascii")


def explain(model, images, layers: dict, score_cam_max_n=None, log=print) -> dict:
    """``{layer key: {method: (N, 2, h, w) maps}}`` for each image's top-1 and top-2 classes.

    Also returns the probabilities (N, classes) and the two classes (N, 2) as ``"probabilities"``
    and ``"classes"``, and Grad-CAM++'s pole share (``"poles"``: {layer key: (N, 2)}), the part
    of its weight that float32 rounding moves. CAM is left out where it is not defined
    (``camcore.cam`` says why).
    """
    _, probabilities = camcore.logits_and_probabilities(model, images)
    classes = np.argsort(-probabilities, axis=1, kind="stable")[:, :len(RANKS)]
    maps, poles = {}, {}
    for key, layer in layers.items():
        maps[key] = {}
        poles[key] = np.stack([pole_share(*activations_and_gradients(
            model, images, classes[:, r], layer)[:2]) for r in range(len(RANKS))], axis=1)
        for name, method in camcore.METHODS.items():
            start = time.perf_counter()
            options = {"max_n": score_cam_max_n, "progress": False} if name == "Score-CAM" else {}
            try:
                with warnings.catch_warnings():  # an empty map is data here: the page says so
                    warnings.simplefilter("ignore", camcore.EmptyMapWarning)
                    warnings.simplefilter("ignore", NearPoleWarning)  # its share is stored
                    per_rank = [method(model, images, classes[:, r], layer, **options).maps
                                for r in range(len(RANKS))]
            except ValueError as error:
                if name != "CAM":
                    raise
                log(f"{key}: CAM left out ({str(error).split(';')[0]})")
                continue
            maps[key][name] = np.stack(per_rank, axis=1)
            log(f"{key}: {name} in {time.perf_counter() - start:.1f} s")
    return {"maps": maps, "probabilities": probabilities, "classes": classes, "poles": poles}


def explorer_data(model, images, labels, files, layers: dict, class_names, model_note: str,
                  score_cam_max_n=None, log=print) -> dict:
    """The JSON document the explorer page reads (see the module docstring)."""
    found = explain(model, images, layers, score_cam_max_n, log)
    maps = found["maps"]
    channels = {key: camcore.split_model(model, layer).channels for key, layer in layers.items()}
    score_cam = "every channel" if score_cam_max_n is None else f"top-{score_cam_max_n} channels"
    return {
        "about": "Maps computed by scripts/explorer.py; see its docstring for the encoding.",
        "model": model_note,
        "class_names": list(class_names),
        "ranks": list(RANKS),
        "methods": [m for m in camcore.METHODS if any(m in maps[k] for k in maps)],
        "score_cam": score_cam,
        "layers": [{"key": key, "name": layer, "shape": list(next(iter(maps[key].values()))
                                                             .shape[2:]),
                    "channels": channels[key], "methods": list(maps[key])}
                   for key, layer in layers.items()],
        "overlay": {"alpha": ALPHA, "colours": jet_colours()},
        "pole_share_limit": POLE_SHARE,  # above it camcore warns: the map is not stable
        "images": [{
            "file": file,
            "label": int(label),
            "image": image_data_url(image),
            "probabilities": [round(float(p), 4) for p in found["probabilities"][i]],
            "classes": [int(c) for c in found["classes"][i]],
            "pole_share": {key: [round(float(s), 3) for s in found["poles"][key][i]]
                           for key in layers},
            "maps": {key: {name: [encode_map(m) for m in per_method[i]]
                           for name, per_method in maps[key].items()} for key in maps},
        } for i, (image, label, file) in enumerate(zip(images, labels, files))],
    }


def chapter8_images():
    """The test images chapter 8 shows: the first ``SHOWN`` of each class of its sample."""
    test = camcore.load_split("test", **SAMPLE)
    keep = [i for c in range(len(camcore.CLASS_NAMES))
            for i in np.flatnonzero(test.labels == c)[:SHOWN]]
    files = [f"{Path(test.paths[i]).parent.name}/{Path(test.paths[i]).name}" for i in keep]
    return test.images[keep], test.labels[keep], files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from camcore import book

    start = time.perf_counter()
    model, report = book.classifier()
    note = (f"the book's classifier ({book.BACKBONE}, test accuracy {report.test_accuracy:.1%} "
            f"on {report.test_images} images)")
    images, labels, files = chapter8_images()
    print(f"{len(images)} test images; layers {', '.join(LAYERS)}; classes {', '.join(RANKS)}")
    data = explorer_data(model, images, labels, files, LAYERS, camcore.CLASS_NAMES, note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"))
    args.out.write_text(text)
    print(f"wrote {args.out}: {len(text.encode()) / 1024:.0f} kB, in "
          f"{(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
