"""Re-execute every chapter notebook in place, top to bottom, in full mode, on the real data.

    python scripts/execute_book.py [chapters/04_cam.ipynb ...]

Each notebook runs in a fresh kernel (as on a fresh Colab runtime), in the book's order, so that
the fine-tuning chapter trains the model the later chapters load. Target: about 20 minutes for the
whole book on a 2-core CPU.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main():
    notebooks = ([Path(p).resolve() for p in sys.argv[1:]]
                 or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")))
    if os.environ.get("CAMCORE_QUICK") == "1":
        sys.exit("CAMCORE_QUICK=1 is set: the committed notebooks are executed in full mode only")
    total = time.perf_counter()
    for path in notebooks:
        start = time.perf_counter()
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        print(f"  done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    print(f"all {len(notebooks)} notebooks in {(time.perf_counter() - total) / 60:.1f} min")


if __name__ == "__main__":
    main()
