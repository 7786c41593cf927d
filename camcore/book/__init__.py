"""What the book's notebooks share: quick mode, the fine-tuned model, glue, and timing.

Quick mode (environment variable ``CAMCORE_QUICK=1``, used by the test suite and for slow
laptops) runs every chapter on a few images, and the fine-tuning chapter with a short recipe, so
that all notebooks execute in minutes; the committed notebooks are executed in full mode on the
real data. ``CAMCORE_BACKBONE=resnet50`` switches the whole book to the article's backbone (its
ImageNet weights need the internet, and it is trained on the spot: there are no shipped weights).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

from camcore.book import shipped, training  # noqa: F401  (camcore.book.training)
from camcore.book.prose import BOOK_URL, chapter_note, link, md, minutes, note  # noqa: F401
from camcore.book.training import Recipe, TrainingReport, load_cached, load_or_train
from camcore.cache import CacheNotWritableError
from camcore.data import DatasetNotFoundError

QUICK = os.environ.get("CAMCORE_QUICK") == "1"
BACKBONE = os.environ.get("CAMCORE_BACKBONE", "efficientnet_lite0")  # "resnet50": the article's
_STARTED = time.perf_counter()


#: The classifiers the book uses, each with a name for the line ``classifier`` prints.
KINDS = {
    "main": "classifier",
    "hidden": "hidden-layer classifier",
    "small_smoothing": "small model with label smoothing 0.1 (chapter 5)",
    "small_no_smoothing": "small model without label smoothing (chapter 5)",
    "shortcut": "shortcut model (chapter 13)",
}
HIDDEN_UNITS = 256  # the hidden-layer classifier's hidden layer (at each position)


def recipe(kind: str = "main") -> Recipe:
    """The fine-tuning recipe of the classifier ``kind`` (one of ``KINDS``) on ``BACKBONE``.

    * ``"main"``: the book's recipe (chapter 3); in quick mode a short one (40 training and 20
      test images per class, 2 epochs): chapter 3 demonstrates training.
    * ``"hidden"``: the same with a hidden layer at each position before the pooling,
      Dense(HIDDEN_UNITS, ReLU) on each of the 7x7 positions of the backbone's last activation
      (a 1x1 convolution) -> pooling -> dropout -> logits. There, the methods' default target
      layer, the ReLU's mask makes dy^c/dA^k_ij depend on the position: CAM is not defined,
      Grad-CAM differs from HiResCAM and Grad-CAM++ from LayerCAM (``camcore.models``).
    * ``"small_smoothing"``, ``"small_no_smoothing"``: chapter 5's small models (100 training
      and 40 test images per class, 10 epochs), label smoothing 0.1 and 0.
    * ``"shortcut"``: chapter 13's, 300 training images per class, the cue on every glacier image.

    Quick mode shortens only ``"main"``: the others keep their recipes, so quick mode uses the
    shipped models and keeps every lesson.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of classifier {kind!r}; choose one of "
                         f"{', '.join(map(repr, KINDS))}")
    base = Recipe(backbone=BACKBONE)
    if kind == "main":
        return replace(base, per_class=40, test_per_class=20, epochs=2) if QUICK else base
    small = replace(base, per_class=100, test_per_class=40, epochs=10)
    return {"hidden": replace(base, hidden_units=HIDDEN_UNITS),
            "small_smoothing": replace(small, label_smoothing=0.1),
            "small_no_smoothing": replace(small, label_smoothing=0.0),
            "shortcut": replace(base, per_class=300, cue_class="glacier")}[kind]


def _own(wanted: Recipe):
    """The reader's cached ``(model, report)`` of ``wanted`` on the data here, or None."""
    try:
        return load_cached(wanted, verbose=0)
    except (DatasetNotFoundError, CacheNotWritableError):  # no data, no download; no cache
        return None


def classifier(kind: str = "main", verbose: int = 1):
    """The classifier ``kind`` (see ``KINDS``) a chapter explains, ``(model, report)``; it prints
    one line saying which model it is.

    1. Yours, if you fine-tuned it with ``recipe(kind)`` on this data (``train(kind)``; for
       "main" also the fine-tuning chapter or ``make train``): it is in the cache.
    2. Else the book's shipped one (EfficientNet-Lite0): loaded in seconds, no training.
    3. Else (another backbone) ``recipe(kind)`` is trained now, with progress lines.
    """
    wanted, name = recipe(kind), KINDS[kind]
    own = _own(wanted)
    if own is not None:
        _, report = own
        how = "the book's recipe (chapter 3)" if kind == "main" else f"book.recipe({kind!r})"
        print(f"Using the {name} fine-tuned with {how}, found in the cache: trained on the data "
              f"in {Path(report.data_dir).name!r}, test accuracy {report.test_accuracy:.1%} on "
              f"{report.test_images} images.")
        return own
    if shipped.available(kind) and BACKBONE == shipped.shipped_report(kind)["recipe"]["backbone"]:
        model = shipped.load_shipped(kind)
        saved = shipped.shipped_report(kind)
        report = TrainingReport(**{f.name: saved[f.name] for f in fields(TrainingReport)})
        yours = ("Run the fine-tuning chapter to train and use your own." if kind == "main" else
                 f"book.train({kind!r}) trains your own, used here from then on.")
        print(f"Using the book's shipped {name} ({BACKBONE} fine-tuned on "
              f"{report.train_images} images, test accuracy {report.test_accuracy:.1%} on "
              f"{report.test_images}). {yours}")
        return model, report
    model, report = load_or_train(wanted, verbose=verbose)
    print(f"Using the {name} just fine-tuned here: test accuracy {report.test_accuracy:.1%}.")
    return model, report


def train(kind: str = "main", verbose: int = 1):
    """Fine-tune the classifier ``kind`` with ``recipe(kind)`` on the data here and cache it,
    printing progress lines; ``(model, report)``. If it is cached already, it is loaded.
    ``classifier(kind)`` then uses it."""
    return load_or_train(recipe(kind), verbose=verbose)


def per_class(full: int, quick: int = 1) -> int:
    """How many test images per class a chapter uses: ``full`` normally, ``quick`` in quick mode."""
    return quick if QUICK else full


def glue(name: str, value, display: bool = False):
    """``myst_nb.glue`` when myst-nb is installed (the book build), else nothing (e.g. on Colab).

    NumPy scalars are glued as plain Python numbers, so format specs like ``:.1%`` work on them.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    return myst_glue(name, value, display=display)


def glued(notebook) -> dict:
    """The values another notebook glued in its committed outputs: ``{name: value}``.

    For pages that gather figures from the chapters (the claims page, the teacher's guide):
    numbers and strings come back as Python values (read from their text form).
    """
    import ast
    import json

    values = {}
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            text = out.get("data", {}).get("application/papermill.record/text/plain")
            if name and text is not None:
                try:
                    values[name] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    values[name] = text
    return values


def finish(name: str = "runtime_minutes"):
    """Glue and print how long the notebook took from the import of camcore.book to here."""
    ran = (time.perf_counter() - _STARTED) / 60
    glue(name, ran)
    print(f"This notebook ran in {ran:.1f} minutes{' (quick mode)' if QUICK else ''}.")


def _resident_mb() -> float:
    """Resident memory in MB, read from /proc (Linux, Colab too); NaN elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


class PeakMemory:
    """``with PeakMemory() as memory: ...`` then ``memory.extra``: the peak resident memory (MB)
    above the level at entry, sampled every 2 ms by a thread. Linux only (Colab included):
    elsewhere the figures are NaN, with a warning."""

    def __enter__(self):
        self.base = self.peak = _resident_mb()
        if self.base != self.base:  # NaN: no /proc
            import warnings

            warnings.warn("PeakMemory measures memory on Linux only (it reads /proc): the "
                          "figures here are NaN", stacklevel=2)
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running and self.base == self.base:
            self.peak = max(self.peak, _resident_mb())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, _resident_mb())
        self.extra = self.peak - self.base
