"""Write a student copy of the chapter notebooks: outputs cleared, solutions removed.

    python scripts/student_copy.py [SOURCE] [DEST]      # defaults: chapters _build/student
    make student

Every numbered chapter notebook (``NN_*.ipynb``, the introduction included) is copied with its
outputs and execution counts cleared and every cell tagged ``solution`` left out: the solutions
in prose (a Markdown ``<details>`` block) and in code (a folded ``# @title Solution`` cell). As a
safety net, an *untagged* cell that looks like a solution is an error naming the notebook and the
cell (exit status 1), and nothing is written. The prose cells stay: they compute their sentences
when the student runs the notebook. The folders images/ and data/ beside the notebooks are
copied too, so that the copy renders.
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LOOKS_LIKE_SOLUTION = re.compile(r"<summary>\s*Solution|^# @title Solution", re.I | re.M)
ASSETS = ("images", "data")


class SolutionError(ValueError):
    """A cell that holds a solution but is not tagged ``solution``."""


def student_cells(nb, path):
    """The cells a student sees: no solution, no outputs, no execution counts."""
    kept = []
    for index, cell in enumerate(nb.cells):
        if "solution" in cell.metadata.get("tags", []):
            continue
        if LOOKS_LIKE_SOLUTION.search(cell.source):
            raise SolutionError(f"{path}, cell {index} (id {cell.get('id', '?')}): looks like a "
                                "solution but is not tagged 'solution'; tag it")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)  # nbclient's timings
        kept.append(cell)
    return kept


def student_copy(source, dest):
    """Write the student copy of every numbered chapter notebook in ``source`` (``NN_*.ipynb``)
    to ``dest``; return their paths."""
    source, dest = Path(source).resolve(), Path(dest).resolve()
    if source == dest:
        raise ValueError("the destination must differ from the source folder")
    notebooks = {}
    # the numbered chapters only: the teacher's guide and the claims page (the answers to the
    # workshop's closing question) stay with the teacher
    for path in sorted(source.glob("[0-9][0-9]_*.ipynb")):  # all checked before writing
        nb = nbformat.read(path, as_version=4)
        nb.cells = student_cells(nb, path)
        nbformat.validate(nb)
        notebooks[path.name] = nb
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.ipynb"):
        stale.unlink()
    for name, nb in notebooks.items():
        nbformat.write(nb, dest / name)
    for folder in ASSETS:
        if (source / folder).is_dir():
            shutil.copytree(source / folder, dest / folder, dirs_exist_ok=True)
    return [dest / name for name in notebooks]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=ROOT / "chapters")
    parser.add_argument("dest", nargs="?", default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    try:
        written = student_copy(args.source, args.dest)
    except SolutionError as err:
        sys.exit(f"student_copy: {err}")
    print(f"{len(written)} student notebooks (no outputs, no solutions) in {args.dest}")


if __name__ == "__main__":
    main()
