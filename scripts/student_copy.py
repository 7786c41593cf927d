"""Write a student copy of the chapter notebooks: outputs cleared, solutions removed.

    python scripts/student_copy.py [SOURCE] [DEST]      # defaults: chapters _build/student
    make student

Exercises use sphinx-exercise's gated solutions: a Markdown cell starting with
```{solution-start} <label>``` (or :::{solution-start}), any cells, then a Markdown cell with
{solution-end}; every cell of the block, both gating cells included, carries the tag "solution".
This script drops every cell tagged "solution" and, as a safety net, every cell from a
solution-start directive to its solution-end even if untagged. An unmatched or nested directive
is an error naming the notebook and the cell (exit status 1), and nothing is written. The
folders images/ and data/ beside the notebooks are copied too, so that the copy renders.
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
START = re.compile(r"^\s*(`{3,}|:{3,})\{solution-start\}", re.MULTILINE)
END = re.compile(r"^\s*(`{3,}|:{3,})\{solution-end\}", re.MULTILINE)
ASSETS = ("images", "data")


class SolutionError(ValueError):
    """A solution-start without its solution-end, or the other way round."""


def where(path, index, cell):
    return f"{path}, cell {index} (id {cell.get('id', '?')})"


def student_cells(nb, path):
    """The cells a student sees: no solution, no outputs, no execution counts."""
    kept, opened = [], None  # opened: (index, cell) of the solution-start being skipped
    for index, cell in enumerate(nb.cells):
        is_md = cell.cell_type == "markdown"
        starts = is_md and bool(START.search(cell.source))
        ends = is_md and bool(END.search(cell.source))
        if starts and opened is not None:
            raise SolutionError(f"{where(path, index, cell)}: {{solution-start}} inside the "
                                f"solution opened at {where(path, *opened)}")
        if ends and not starts and opened is None:
            raise SolutionError(f"{where(path, index, cell)}: {{solution-end}} without a "
                                "{solution-start} before it")
        if starts and not ends:
            opened = (index, cell)
            continue
        if ends:
            opened = None
            continue
        if opened is not None or "solution" in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)  # nbclient's timings
        kept.append(cell)
    if opened is not None:
        raise SolutionError(f"{where(path, *opened)}: {{solution-start}} has no matching "
                            "{solution-end}")
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
