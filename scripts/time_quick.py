"""Minutes per chapter in quick mode (CAMCORE_QUICK=1), for the teacher's guide.

    python scripts/time_quick.py

Executes every chapter notebook in quick mode, in the book's order, each in a fresh kernel, on
copies (the committed notebooks keep their full-mode outputs), with an empty CAMCORE_CACHE as on
a new laptop; writes each chapter's quick minutes into camcore/book/minutes.json, which the
chapters' first notes and the teacher's guide read.
"""

import os
import tempfile
import time
from pathlib import Path

import nbformat
from execute_book import MINUTES, record_minutes
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main():
    chapters = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    minutes = {}
    with tempfile.TemporaryDirectory(prefix="camcore-quick-cache-") as cache:
        os.environ.update(CAMCORE_QUICK="1", CAMCORE_CACHE=cache)
        for path in chapters:
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            NotebookClient(nb, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            minutes[path.name] = (time.perf_counter() - start) / 60
            record_minutes(path, minutes[path.name], "quick")
            print(f"{path.name:<34} {minutes[path.name]:5.2f} min", flush=True)
    print(f"all chapters: {sum(minutes.values()):.1f} min in quick mode; wrote {MINUTES}")


if __name__ == "__main__":
    main()
