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
from dataclasses import fields
from pathlib import Path

from camcore.book import shipped, training  # noqa: F401  (camcore.book.training)
from camcore.book.prose import BOOK_URL, chapter_note, link, md, minutes, note  # noqa: F401
from camcore.book.training import Recipe, TrainingReport, load_cached, load_or_train
from camcore.data import DatasetNotFoundError

QUICK = os.environ.get("CAMCORE_QUICK") == "1"
BACKBONE = os.environ.get("CAMCORE_BACKBONE", "efficientnet_lite0")  # "resnet50": the article's
_STARTED = time.perf_counter()


def recipe() -> Recipe:
    """The book's fine-tuning recipe on ``BACKBONE`` (the default; a tiny one in quick mode)."""
    if QUICK:
        return Recipe(backbone=BACKBONE, per_class=40, test_per_class=20, epochs=2)
    return Recipe(backbone=BACKBONE)


def classifier(verbose: int = 1):
    """The classifier a chapter explains, ``(model, report)``; it prints which one it is.

    1. Yours, if you fine-tuned one with the book's recipe on this data (the fine-tuning chapter,
       or ``make train``; in quick mode, its short recipe): it is in the cache.
    2. Else the book's shipped classifier (EfficientNet-Lite0): loaded in seconds, no training.
    3. Else (another backbone) the book's recipe is trained now, with progress.
    """
    try:  # the book's recipe (the short one in quick mode), on data already here
        own = load_cached(recipe(), verbose=0)
    except DatasetNotFoundError:  # no data here, e.g. explaining your own photos: no download
        own = None
    if own is not None:
        model, report = own
        print(f"Using the classifier fine-tuned with the book's recipe (chapter 3), found in "
              f"the cache: trained on the data in {Path(report.data_dir).name!r}, test "
              f"accuracy {report.test_accuracy:.1%} on {report.test_images} images.")
        return own
    if BACKBONE == shipped.shipped_report()["recipe"]["backbone"]:
        model = shipped.load_shipped()
        saved = shipped.shipped_report()
        report = TrainingReport(**{f.name: saved[f.name] for f in fields(TrainingReport)})
        print(f"Using the book's shipped classifier ({BACKBONE} fine-tuned on "
              f"{report.train_images} images, test accuracy {report.test_accuracy:.1%} on "
              f"{report.test_images}). Run the fine-tuning chapter to train and use your own.")
        return model, report
    model, report = load_or_train(recipe(), verbose=verbose)
    print(f"Using the classifier just fine-tuned here: test accuracy {report.test_accuracy:.1%}.")
    return model, report


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
