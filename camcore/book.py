"""What the book's notebooks share: quick mode, the fine-tuned model, glue, and timing.

Quick mode (environment variable ``CAMCORE_QUICK=1``, used by the test suite) runs every chapter
on a small stratified subset with a short fine-tuning, so that all notebooks execute in minutes;
the committed notebooks are executed in full mode on the real data. ``CAMCORE_BACKBONE=resnet50``
switches the whole book to the article's backbone (its ImageNet weights need the internet).
"""

from __future__ import annotations

import os
import time

from camcore.training import Recipe, load_or_train

QUICK = os.environ.get("CAMCORE_QUICK") == "1"
BACKBONE = os.environ.get("CAMCORE_BACKBONE", "efficientnet_lite0")  # "resnet50": the article's
_STARTED = time.perf_counter()


def recipe() -> Recipe:
    """The book's fine-tuning recipe on ``BACKBONE`` (the default; a tiny one in quick mode)."""
    if QUICK:
        return Recipe(backbone=BACKBONE, per_class=40, test_per_class=20, epochs=2)
    return Recipe(backbone=BACKBONE)


def classifier(verbose: int = 1):
    """The fine-tuned classifier of the book: ``(model, report)``, cached or trained on the spot."""
    return load_or_train(recipe(), verbose=verbose)


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


def finish(name: str = "runtime_minutes"):
    """Glue and print how long the notebook took from the import of camcore.book to here."""
    minutes = (time.perf_counter() - _STARTED) / 60
    glue(name, minutes)
    print(f"This notebook ran in {minutes:.1f} minutes{' (quick mode)' if QUICK else ''}.")
