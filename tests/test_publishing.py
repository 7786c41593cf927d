"""Publishing: the GitHub Actions workflows and the student copy of the chapters.

The workflows must pass actionlint and run the README's own commands; scripts/student_copy.py
must drop every solution (tagged, or only gated by sphinx-exercise's directives) and every
output, and refuse a solution-start without its solution-end.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
STUDENT_COPY = ROOT / "scripts" / "student_copy.py"
SOLUTION_CODE = "answer = secret_solution()"
UNTAGGED_CODE = "hidden = untagged_solution()"


def readme_commands():
    """The commands of the README's "Two commands" code block, comments removed."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1]
    block = re.search(r"```\w*\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def load(name):
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def run_lines(job):
    return [line.strip() for step in job["steps"] for line in step.get("run", "").splitlines()]


def test_workflows_pass_actionlint(tmp_path):
    assert {p.name for p in WORKFLOWS} >= {"book.yml", "scheduled.yml"}
    actionlint = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent))
    if not actionlint:
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed: the test extra should provide it")
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")

    def lint(*paths):
        return subprocess.run([actionlint, "-no-color", "-oneline", *map(str, paths)],
                              cwd=ROOT, capture_output=True, text=True)

    result = lint(*WORKFLOWS)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # and it does read the files it is given
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.nope }}\n")
    assert lint(broken).returncode == 1


def test_book_workflow_runs_the_readme_commands_and_deploys():
    build, test = readme_commands()[:2]  # "make book", "make test" as the README now says
    jobs = load("book.yml")["jobs"]
    publishing = [job for job in jobs.values()
                  if any("upload-pages-artifact" in step.get("uses", "") for step in job["steps"])]
    assert len(publishing) == 1 and build in run_lines(publishing[0])
    upload = next(s for s in publishing[0]["steps"] if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "_build/html"
    deploy = next(job for job in jobs.values()
                  if any("deploy-pages" in step.get("uses", "") for step in job["steps"]))
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(test in run_lines(job) for job in jobs.values())  # pull requests
    assert test in run_lines(load("scheduled.yml")["jobs"]["newest-tensorflow"])


def test_actions_are_pinned_to_major_versions():
    for path in WORKFLOWS:
        uses = re.findall(r"uses:\s*(\S+)", path.read_text())
        assert uses and all(re.fullmatch(r"[\w-]+/[\w-]+@v\d+", u) for u in uses), (path, uses)


# ---- the student copy ----

def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def exercise_notebook():
    v4 = nbformat.v4
    out = [v4.new_output("stream", name="stdout", text="42\n")]
    cells = [
        v4.new_markdown_cell("# A chapter"),
        v4.new_code_cell("x = 41 + 1\nprint(x)", execution_count=1, outputs=out),
        v4.new_markdown_cell("```{exercise}\n:label: ex-answer\n\nCompute the answer.\n```"),
        tagged(v4.new_markdown_cell("```{solution-start} ex-answer\n:class: dropdown\n```"),
               "solution"),
        tagged(v4.new_code_cell(SOLUTION_CODE, execution_count=2, outputs=out), "solution"),
        tagged(v4.new_markdown_cell("The answer is 42."), "solution"),
        tagged(v4.new_markdown_cell("```{solution-end}\n```"), "solution"),
        v4.new_markdown_cell("A normal cell between two exercises."),
        v4.new_markdown_cell(":::{solution-start} ex-answer\n:::"),  # gated but untagged
        v4.new_code_cell(UNTAGGED_CODE, execution_count=3, outputs=out),
        v4.new_markdown_cell(":::{solution-end}\n:::"),
        tagged(v4.new_code_cell("print('last')", execution_count=4, outputs=out), "hide-input"),
    ]
    return v4.new_notebook(cells=cells)


def student_copy(src, dest):
    return subprocess.run([sys.executable, str(STUDENT_COPY), str(src), str(dest)],
                          capture_output=True, text=True)


def test_student_copy_drops_solutions_and_outputs(tmp_path):
    src, dest = tmp_path / "chapters", tmp_path / "student"
    (src / "images").mkdir(parents=True)
    (src / "images" / "figure.svg").write_text("<svg/>")
    nbformat.write(exercise_notebook(), src / "01_chapter.ipynb")
    for teachers_page in ("teachers_guide.ipynb", "claims.ipynb"):
        nbformat.write(exercise_notebook(), src / teachers_page)

    result = student_copy(src, dest)
    assert result.returncode == 0, result.stderr
    assert (dest / "images" / "figure.svg").exists()
    assert sorted(p.name for p in dest.glob("*.ipynb")) == ["01_chapter.ipynb"]
    cells = nbformat.read(dest / "01_chapter.ipynb", as_version=4).cells
    assert not any("solution" in c.metadata.get("tags", []) for c in cells)
    for text in ("solution-start", "solution-end", SOLUTION_CODE, UNTAGGED_CODE, "is 42"):
        assert not any(text in c.source for c in cells), text
    code = [c for c in cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert [c.source.splitlines()[0] for c in cells] == [
        "# A chapter", "x = 41 + 1", "```{exercise}", "A normal cell between two exercises.",
        "print('last')"]
    assert cells[-1].metadata["tags"] == ["hide-input"]


def test_student_copy_refuses_an_unmatched_solution_start(tmp_path):
    src = tmp_path / "chapters"
    src.mkdir()
    nb = exercise_notebook()
    del nb.cells[10]  # the untagged block's {solution-end}: its start is cell 8
    nbformat.write(nb, src / "02_broken.ipynb")

    result = student_copy(src, tmp_path / "student")
    assert result.returncode != 0
    assert "02_broken.ipynb, cell 8" in result.stderr
    assert "{solution-start} has no matching {solution-end}" in result.stderr
    assert not (tmp_path / "student" / "02_broken.ipynb").exists()
