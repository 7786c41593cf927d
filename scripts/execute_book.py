"""Re-execute every chapter notebook in place, top to bottom, in full mode, on the real data.

    python scripts/execute_book.py [chapters/04_cam.ipynb ...]

Each notebook runs in a fresh kernel (as on a fresh Colab runtime), in the book's order
(_toc.yml), so that the fine-tuning chapter trains the model the later chapters load, and the
pages that gather the chapters' figures (the claims, the teacher's guide) come after them.
Target: at most 40 minutes for the whole book on a 2-core CPU, no chapter over 10 (the book does
not meet the first today: see the sum of camcore/book/minutes.json). Each chapter's minutes go to
that table, which its first note reads, and the script prints their sum at the end.

The fine-tuning chapter trains with the book's recipe and caches the model, and ``book.classifier``
prefers a model so cached to the shipped one (a reader who trains their own uses it). The committed
book is computed with the shipped classifier, so that a reader who opens any later chapter alone
gets its numbers: that chapter runs with ``CAMCORE_CACHE`` pointed at a temporary folder.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
MINUTES = ROOT / "camcore" / "book" / "minutes.json"  # each chapter's first note reads it
TRAINS = {"03_fine_tuning"}  # caches a model that the later chapters would load


def record_minutes(path: Path, minutes: float, mode: str):
    """Write a chapter's measured minutes (``mode``: "full" or "quick") into MINUTES."""
    table = json.loads(MINUTES.read_text()) if MINUTES.exists() else {}
    if path.name[:2].isdigit():
        table.setdefault(path.stem, {})[mode] = round(minutes, 2)
        MINUTES.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")


def book_notebooks():
    """The book's notebooks in the order of _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [entry["file"] for entry in toc["chapters"]]
    return [ROOT / f"{page}.ipynb" for page in pages if (ROOT / f"{page}.ipynb").exists()]


def main():
    notebooks = [Path(p).resolve() for p in sys.argv[1:]] or book_notebooks()
    if os.environ.get("CAMCORE_QUICK") == "1":
        sys.exit("CAMCORE_QUICK=1 is set: the committed notebooks are executed in full mode only")
    total = time.perf_counter()
    for path in notebooks:
        start = time.perf_counter()
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory(prefix="camcore-cache-") as cache:
            saved = os.environ.get("CAMCORE_CACHE")
            if path.stem in TRAINS:  # the kernel inherits this environment
                os.environ["CAMCORE_CACHE"] = cache
                print(f"  its training is cached in {cache}, not where later chapters look")
            try:
                NotebookClient(nb, timeout=1800, kernel_name="python3",
                               resources={"metadata": {"path": str(path.parent)}}).execute()
            finally:
                if saved is None:
                    os.environ.pop("CAMCORE_CACHE", None)
                else:
                    os.environ["CAMCORE_CACHE"] = saved
        nbformat.write(nb, path)
        minutes = (time.perf_counter() - start) / 60
        record_minutes(path, minutes, "full")
        print(f"  done in {minutes:.1f} min", flush=True)
    print(f"all {len(notebooks)} notebooks in {(time.perf_counter() - total) / 60:.1f} min")


if __name__ == "__main__":
    main()
