"""Publishing: the GitHub Actions workflows and the dependencies they install.

The workflows must pass actionlint and run the README's own commands; the lower-bounds workflow
installs exactly pyproject.toml's lower bounds (ci/lower-bounds.txt pins each one), and every
package a chapter imports is a plain dependency, which is all that Colab's install cell installs.
(The student copy is tested in test_student_copy.py.)
"""

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LOWER_BOUNDS = ROOT / "ci" / "lower-bounds.txt"


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
    assert {p.name for p in WORKFLOWS} >= {"book.yml", "scheduled.yml", "lower-bounds.yml"}
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


# ---- the lower bounds ----

def dependencies():
    """pyproject.toml's plain dependencies (what `pip install camcore` installs), parsed."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def lower_bound_pins():
    """{canonical name: pinned version} of ci/lower-bounds.txt."""
    pins = {}
    for line in LOWER_BOUNDS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"ci/lower-bounds.txt: {line!r} is not an exact pin (name==version)"
            assert canonicalize_name(name) not in pins, f"ci/lower-bounds.txt pins {name} twice"
            pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def test_lower_bounds_file_pins_exactly_the_pyproject_bounds():
    bounds = {}
    for req in dependencies():
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"pyproject.toml: {req} needs one lower bound (>=)"
        bounds[canonicalize_name(req.name)] = Version(lower[0])
    pins = lower_bound_pins()
    assert pins == bounds, (
        "ci/lower-bounds.txt must pin each lower bound of pyproject.toml's dependencies, and "
        f"nothing else: in pyproject only {set(bounds.items()) - set(pins.items())}, "
        f"in ci/lower-bounds.txt only {set(pins.items()) - set(bounds.items())}")


def test_no_cap_makes_colab_reinstall_tensorflow_or_numpy():
    """Lower bounds only; a cap is allowed only as a next-major bound (keras<4)."""
    for req in dependencies():
        operators = {s.operator for s in req.specifier}
        assert operators <= {">=", "<"}, req
        if canonicalize_name(req.name) in {"tensorflow", "numpy"}:
            assert operators == {">="}, req
        for s in req.specifier:
            assert s.operator != "<" or re.fullmatch(r"\d+", s.version), req


def test_lower_bounds_workflow_installs_the_pins_and_runs_tests_and_chapters():
    workflow = load("lower-bounds.yml")
    assert "schedule" in workflow[True]  # YAML reads the key `on` as True
    job = workflow["jobs"]["lower-bounds"]
    lines = run_lines(job)
    install = next(line for line in lines if "--constraint" in line)
    assert "ci/lower-bounds.txt" in install and '".[test]"' in install
    assert any(line.startswith(".venv/bin/python -m pytest tests ") for line in lines)
    chapters = re.findall(r"chapters/[\w.-]+\.ipynb", " ".join(lines))
    assert len(chapters) == 2, chapters
    for chapter in chapters:
        assert (ROOT / chapter).exists(), f"lower-bounds.yml runs {chapter}, which is gone"
    quick = next(step for step in job["steps"] if chapters[0] in step.get("run", ""))
    assert quick["env"]["CAMCORE_QUICK"] == "1"


def imported_modules(source):
    """The top-level modules a code cell imports (IPython magics ignored)."""
    lines = [line[:len(line) - len(line.lstrip())] + "pass"  # an IPython magic
             if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:  # a cell being written: nbval reports it; read its import lines
        return set(re.findall(r"^\s*(?:from|import)\s+(\w+)", source, re.MULTILINE))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module)
    return {name.split(".")[0] for name in names}


def chapter_imports():
    """{top-level module: {notebooks importing it}} over every notebook of the book."""
    imports = {}
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for module in imported_modules(cell.source):
                    imports.setdefault(module, set()).add(path.name)
    return imports


def test_imported_modules_reads_magics_and_unfinished_cells():
    cell = 'if ready:\n    %pip install -q camcore\nimport numpy as np\nfrom PIL import Image'
    assert imported_modules(cell) == {"numpy", "PIL"}
    assert imported_modules("import cv2\nx = [1,") == {"cv2"}


# provided by the notebook environment itself: Colab's own module, the kernel
ENVIRONMENT_MODULES = {"google", "IPython", "ipykernel"}


def test_every_package_a_chapter_imports_is_a_plain_dependency():
    """Colab's install cell installs camcore's plain dependencies only: no extra is there."""
    plain = {canonicalize_name(req.name) for req in dependencies()}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, notebooks in chapter_imports().items():
        if module in sys.stdlib_module_names or module in ENVIRONMENT_MODULES:
            continue
        if module == "camcore":
            continue
        provided_by = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not provided_by & plain:
            missing[module] = (sorted(provided_by) or "not installed", sorted(notebooks))
    assert not missing, ("chapters import packages that pyproject.toml's dependencies do not "
                         "install: add each there with a lower bound, and pin that bound in "
                         f"ci/lower-bounds.txt: {missing}")
