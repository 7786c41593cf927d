"""The chapters as Colab and JupyterLab show them: no raw MyST, hidden prose code, links, "Run all".

Each chapter notebook (the file its Colab badge opens) is rendered with nbconvert's HTML exporter,
which uses Jupyter's own Markdown renderer, and its visible text must hold no MyST role or
directive. ``scripts/notebook_edition.py --check`` must be clean (prose and solution cells hidden
in all three places, no ``raises-exception``, exercises numbered in order, links under
``html.baseurl``), and ``scripts/references.py --check`` must be in step with references.bib.
The figures of each web page are compared with the rendered notebook's in
tests/test_rendered_book.py, which builds the book.
"""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
# Every notebook of the book, the pages after the chapters too: none may show raw MyST
PAGES = CHAPTERS + [ROOT / "chapters" / f"{name}.ipynb"
                    for name in ("claims", "teachers_guide", "appendix_peers")]
RAW = re.compile(r"\{(glue|ref|cite|numref|doc|eq|note|warning|tip|important|exercise|solution"
                 r"|admonition|figure|math|bibliography|dropdown)[^}\n]*\}|:::|^\(\w[\w-]*\)=",
                 re.M)


def rendered(path: Path) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    return body


def visible_text(body: str) -> str:
    """The text a reader sees in nbconvert's HTML: not the code inputs, scripts or styles."""
    from bs4 import BeautifulSoup  # nbconvert's own dependency

    soup = BeautifulSoup(body, "html.parser")
    for hidden in soup.select("script, style, .jp-CodeCell .jp-InputArea"):
        hidden.decompose()
    return soup.get_text()


def test_every_chapter_is_checked():
    assert len(CHAPTERS) >= 13, [p.name for p in CHAPTERS]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.stem)
def test_jupyter_shows_no_raw_myst(path):
    text = visible_text(rendered(path))
    hits = sorted({m.group(0) for m in RAW.finditer(text)})
    assert not hits, f"{path.name} shows raw MyST in Jupyter: {hits}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.stem)
def test_prose_cells_and_solutions_are_hidden_everywhere(path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "notebook_edition.py"),
                             "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_badge_opens_this_notebook_and_installs_camcore_on_colab(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source
    assert f"colab.research.google.com/github/camcore/camcore-book/blob/main/chapters/" \
           f"{path.name}" in first, f"{path.name}: the badge does not open this notebook"
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "google.colab" in code[0] and "pip install" in code[0], \
        f"{path.name}: the first code cell must install camcore on Colab"
    assert "book.chapter_note(" in code[1], f"{path.name}: the second code cell is the note"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_learning_objectives_open_the_chapter(path):
    markdown = [c.source for c in nbformat.read(path, as_version=4).cells
                if c.cell_type == "markdown"]
    assert any(m.lstrip().startswith("**After this chapter you can**") for m in markdown[:3]), \
        f"{path.name}: no learning objectives among the first Markdown cells"


def test_base_url_is_one_setting():
    from camcore.book.prose import BOOK_URL

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["html"]["baseurl"] == BOOK_URL


def test_references_page_is_in_step_with_the_bibliography():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "references.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_citation_points_at_an_entry():
    anchors = set(re.findall(r'<a id="([^"]+)"></a>',
                             (ROOT / "chapters" / "references.md").read_text()))
    cited = set()
    for path in CHAPTERS:
        cited |= set(re.findall(r"references\.html#([\w-]+)", path.read_text()))
    assert cited, "no chapter cites anything"
    assert cited <= anchors, f"citations without a reference entry: {sorted(cited - anchors)}"


def test_nothing_relies_on_raises_exception():
    for path in ROOT.glob("chapters/*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            assert "raises-exception" not in cell.metadata.get("tags", []), path.name


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_first_note_states_the_measured_minutes(path):
    """Each chapter's first note reads camcore/book/minutes.json when the chapter runs, and
    scripts/execute_book.py then writes the chapter's new full-mode minutes there: so the
    committed note gives the previous measurement. It must agree with the table within
    run-to-run noise on an idle machine (25 %, or 0.3 min for short chapters); a table
    measured on a loaded machine, or notes left from an older table, fail."""
    import json

    table = json.loads((ROOT / "camcore" / "book" / "minutes.json").read_text())[path.stem]
    nb = nbformat.read(path, as_version=4)
    note = next(cell for cell in nb.cells if "chapter_note(" in cell.source)
    text = "".join(out.get("data", {}).get("text/markdown", "") for out in note.outputs)
    match = re.search(r"about ([\d.]+) min on 2 CPUs in full mode, and\s+>?\s*([\d.]+) min in "
                      r"quick mode", text)
    assert match, f"{path.name}: its first note states no minutes: {text[:200]!r}"
    for stated, mode in zip(map(float, match.groups()), ("full", "quick")):
        measured = table[mode]
        assert abs(stated - measured) <= max(0.3, 0.25 * measured), (
            f"{path.name}: its note says {stated} min in {mode} mode, minutes.json "
            f"{measured}: re-execute the chapter (make execute) on an idle machine")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_committed_chapters_use_the_shipped_classifiers(path):
    """A reader who opens a chapter alone gets the shipped classifier and the committed numbers;
    a book executed after chapter 3 cached its own model would show another model's numbers
    (scripts/execute_book.py runs chapter 3 in a temporary cache to prevent it)."""
    nb = nbformat.read(path, as_version=4)
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for out in cell.outputs if out.get("output_type") == "stream")
    assert "found in the cache: trained on" not in printed, (
        f"{path.name} was executed with a classifier from the cache, not the shipped one: "
        "re-execute it with scripts/execute_book.py")
