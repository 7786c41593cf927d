"""What the book's notebooks share: quick mode, the fine-tuned model, glue, and timing.

Quick mode (environment variable ``CAMCORE_QUICK=1``, used by the test suite) runs every chapter
on a small stratified subset with a short fine-tuning, so that all notebooks execute in minutes;
the committed notebooks are executed in full mode on the real data.
"""

from __future__ import annotations

import os
import time

from camcore.training import Recipe, load_or_train

QUICK = os.environ.get("CAMCORE_QUICK") == "1"
_STARTED = time.perf_counter()


def recipe() -> Recipe:
    """The book's fine-tuning recipe (the default one; a tiny one in quick mode)."""
    return Recipe(per_class=40, test_per_class=20, epochs=2) if QUICK else Recipe()


def classifier(verbose: int = 1):
    """The fine-tuned classifier of the book: ``(model, report)``, cached or trained on the spot."""
    return load_or_train(recipe(), verbose=verbose)


def per_class(full: int, quick: int = 1) -> int:
    """How many test images per class a chapter uses: ``full`` normally, ``quick`` in quick mode."""
    return quick if QUICK else full


def glue(name: str, value, display: bool = False):
    """``myst_nb.glue`` when myst-nb is installed (the book build), else nothing (e.g. on Colab)."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    return myst_glue(name, value, display=display)


def finish(name: str = "runtime_minutes"):
    """Glue and print how long the notebook took from the import of camcore.book to here."""
    minutes = (time.perf_counter() - _STARTED) / 60
    glue(name, round(minutes, 1))
    print(f"This notebook ran in {minutes:.1f} minutes{' (quick mode)' if QUICK else ''}.")
