"""Keep the chapter notebooks readable in the three places they are read: web, Colab, JupyterLab.

    python scripts/notebook_edition.py [--check] [chapters/05_grad_cam.ipynb ...]

Without ``--check`` it sets, in place (outputs untouched), what each kind of cell needs:

* a prose cell (its code calls ``book.md``, ``book.note`` or ``book.chapter_note``): code hidden
  everywhere: tag ``remove-input`` (web book), ``"cellView": "form"`` (Colab, with the cell's
  ``# @title`` first line), ``"jupyter": {"source_hidden": true}`` (JupyterLab);
* a solution code cell (tag ``solution``): folded everywhere: tag ``hide-input`` (web book),
  ``cellView`` form and ``source_hidden`` (Colab, JupyterLab);
* the Colab badge: points at the notebook itself, under ``prose.COLAB_URL``.

With ``--check`` it changes nothing and lists every problem (exit 1), including what it cannot
fix: raw MyST in Markdown, a prose or solution cell without its ``# @title`` line, a cell tagged
``raises-exception`` (Colab's "Run all" ignores the tag and stops), exercises numbered out of
order, links to the book that do not start with ``html.baseurl`` of ``_config.yml``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _prose_constants():
    """BOOK_URL and COLAB_URL from camcore/book/prose.py, read without importing camcore (and
    TensorFlow with it)."""
    text = (ROOT / "camcore" / "book" / "prose.py").read_text()
    return [re.search(rf'^{name} = "([^"]+)"', text, re.M).group(1)
            for name in ("BOOK_URL", "COLAB_URL")]


BOOK_URL, COLAB_URL = _prose_constants()

PROSE_CALL = re.compile(r"\bbook\.(md|note|chapter_note)\(")
RAW_MYST = [  # (pattern, what it is)
    (re.compile(r"\{[a-z][a-z:-]*\}`"), "a MyST role such as {glue:text}` or {cite}`"),
    (re.compile(r"^\s*(:::+|```+)\s*\{", re.M), "a MyST directive fence such as :::{exercise}"),
    (re.compile(r"^\([A-Za-z0-9_-]+\)=\s*$", re.M), "a MyST label such as (ch5-softmax)="),
    (re.compile(r"\{(glue|ref|cite|doc|numref|eq)[:}]"), "a MyST role name"),
]
EXERCISE = re.compile(r"\*\*Exercise (\d+)\.(\d+)\b")
BOOK_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")


def chapter_notebooks() -> list[Path]:
    return sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def source(cell) -> str:
    return "".join(cell.get("source", ""))


def is_prose(cell) -> bool:
    return cell["cell_type"] == "code" and bool(PROSE_CALL.search(source(cell)))


def tags(cell) -> list:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def fix(nb: dict, path: Path) -> None:
    """Set the hiding metadata of prose and solution cells, and the badge's URL."""
    for cell in nb["cells"]:
        meta = cell.setdefault("metadata", {})
        solution = cell["cell_type"] == "code" and "solution" in meta.get("tags", [])
        if is_prose(cell) or solution:
            tag = "hide-input" if solution else "remove-input"
            if tag not in tags(cell):
                tags(cell).append(tag)
            meta["cellView"] = "form"
            meta.setdefault("jupyter", {})["source_hidden"] = True
        if cell["cell_type"] == "markdown" and "colab.research.google.com" in source(cell):
            text = re.sub(r"https://colab\.research\.google\.com/github/[^)\s]+\.ipynb",
                          COLAB_URL + path.name, source(cell))
            cell["source"] = text.splitlines(keepends=True)


def problems(nb: dict, path: Path) -> list[str]:
    """What a reader outside the web book would trip on, cell by cell."""
    found = []
    baseurl = yaml.safe_load((ROOT / "_config.yml").read_text()).get("html", {}).get("baseurl")
    if baseurl != BOOK_URL:
        found.append(f"_config.yml html.baseurl is {baseurl!r}, camcore.book.prose.BOOK_URL is "
                     f"{BOOK_URL!r}: make them equal")
    numbers = []
    for i, cell in enumerate(nb["cells"]):
        text, meta = source(cell), cell.get("metadata", {})
        where = f"{path.name} cell {i}"
        if "raises-exception" in meta.get("tags", []):
            found.append(f"{where}: tagged raises-exception; catch and print the error instead")
        if cell["cell_type"] == "markdown":
            for pattern, what in RAW_MYST:
                hit = pattern.search(text)
                if hit:
                    found.append(f"{where}: {what}: {hit.group(0)!r}")
            numbers += [(int(a), int(b)) for a, b in EXERCISE.findall(text)]
            for url in BOOK_LINK.findall(text):
                if "camcore.github.io" in url and not url.startswith(BOOK_URL):
                    found.append(f"{where}: a link to the book outside {BOOK_URL}: {url}")
        solution = cell["cell_type"] == "code" and "solution" in meta.get("tags", [])
        if is_prose(cell) or solution:
            if not text.lstrip().startswith("# @title"):
                found.append(f"{where}: a hidden cell needs a first line '# @title ...' (Colab)")
            hidden = meta.get("cellView") == "form" and meta.get("jupyter", {}).get(
                "source_hidden") is True
            web = ("hide-input" if solution else "remove-input") in meta.get("tags", [])
            if not (hidden and web):
                found.append(f"{where}: hiding metadata missing; run scripts/notebook_edition.py")
    chapter = int(path.name[:2]) if path.name[:2].isdigit() else None
    expected = [(chapter, k + 1) for k in range(len(numbers))]
    if chapter is not None and numbers != expected:
        found.append(f"{path.name}: exercises numbered {numbers}, expected {expected}")
    return found


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(p).resolve() for p in argv if p != "--check"] or chapter_notebooks()
    found = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if check:
            found += problems(nb, path)
        else:
            fix(nb, path)
            nbformat.write(nb, path)
    print("\n".join(found) if found else f"{len(paths)} notebooks: clean")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
