"""scripts/student_copy.py: the chapters without outputs and without solutions."""

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "student_copy.py"


def chapter(cells):
    nb = new_notebook(cells=cells)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = 1
            cell.outputs = [new_output("stream", name="stdout", text="42\n")]
    return nb


def solution(cell):
    cell.metadata["tags"] = ["solution"]
    return cell


def run(src, dest):
    return subprocess.run([sys.executable, str(SCRIPT), str(src), str(dest)],
                          capture_output=True, text=True)


def test_drops_solutions_and_outputs_keeps_prose_cells(tmp_path):
    src, dest = tmp_path / "chapters", tmp_path / "student"
    src.mkdir()
    nbformat.write(chapter([
        new_markdown_cell("**Exercise 2.1.** Compute it."),
        new_code_cell("def f():\n    return None  # your code here"),
        solution(new_markdown_cell("<details>\n<summary>Solution</summary>\n\nIt is 42.\n\n"
                                   "</details>")),
        solution(new_code_cell("# @title Solution (try the exercise first)\nf = lambda: 42")),
        new_code_cell("# @title The numbers\nbook.md(f'{len(test)} images')"),
    ]), src / "02_data.ipynb")
    nbformat.write(chapter([new_markdown_cell("# Introduction")]), src / "01_introduction.ipynb")
    nbformat.write(chapter([new_markdown_cell("# Guide")]), src / "teachers_guide.ipynb")
    result = run(src, dest)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.glob("*.ipynb")) == ["01_introduction.ipynb",
                                                           "02_data.ipynb"]
    nb = nbformat.read(dest / "02_data.ipynb", as_version=4)
    sources = [c.source for c in nb.cells]
    assert len(sources) == 3 and not any("Solution" in s for s in sources)
    assert "book.md" in sources[2]  # the prose cell computes its sentence when run
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def test_refuses_an_untagged_solution(tmp_path):
    src = tmp_path / "chapters"
    src.mkdir()
    nbformat.write(chapter([new_markdown_cell("<details><summary>Solution</summary>x</details>")]),
                   src / "02_broken.ipynb")
    result = run(src, tmp_path / "student")
    assert result.returncode == 1
    assert "02_broken.ipynb, cell 0" in result.stderr and "tag it" in result.stderr
    assert not (tmp_path / "student" / "02_broken.ipynb").exists()


def test_the_real_chapters_have_solutions_and_copy_cleanly(tmp_path):
    result = run(ROOT / "chapters", tmp_path / "student")
    assert result.returncode == 0, result.stderr
    copies = sorted((tmp_path / "student").glob("*.ipynb"))
    assert copies[0].name.startswith("01_"), "the introduction belongs in the student copy"
    for path in copies:
        for cell in nbformat.read(path, as_version=4).cells:
            assert "solution" not in cell.metadata.get("tags", [])
            assert "The outputs on this page" not in cell.source
