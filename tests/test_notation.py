"""One notation (CONTRIBUTING.md) in every chapter and in camcore's docstrings.

The known clashes fail: the logit written S^c, a map written M_c or M^c, Score-CAM's mask
written H^k (H is the image height), Grad-CAM++'s position weight written alpha_ij (alpha is a
channel weight). A line that names the paper's own symbol ("the paper's $H^k$") is allowed.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASHES = {
    "the logit is y^c, not S^c": re.compile(r"\bS\^\{?c\}?|\bS_c\b"),
    "the map is L^c, not M_c / M^c": re.compile(r"\bM_\{?c\}?(?![a-z])|\bM\^\{?c\}?"),
    "Score-CAM's mask is M^k, not H^k": re.compile(r"\bH\^\{?k\}?"),
    "Grad-CAM++'s position weight is gamma, not alpha_ij": re.compile(
        r"alpha\^?\{?kc\}?_\{?ij|\\alpha\^\{kc\}_\{ij\}|alpha_ij"),
}
PAPER = re.compile(r"paper'?s|the paper|papers? (write|call|use)", re.I)


def texts():
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            yield f"{path.name} cell {i}", cell.source
    for path in sorted((ROOT / "chapters").glob("*.md")):
        yield path.name, path.read_text()
    for path in sorted((ROOT / "camcore").rglob("*.py")):
        yield str(path.relative_to(ROOT)), path.read_text()


@pytest.mark.parametrize("rule", sorted(CLASHES))
def test_no_known_clash(rule):
    found = []
    for where, text in texts():
        for line in text.splitlines():
            if CLASHES[rule].search(line) and not PAPER.search(line):
                found.append(f"{where}: {line.strip()[:100]}")
    assert not found, f"{rule}:\n" + "\n".join(found[:20])


def test_the_table_is_in_the_introduction():
    intro = nbformat.read(ROOT / "chapters" / "01_introduction.ipynb", as_version=4)
    text = "\n".join(c.source for c in intro.cells)
    for symbol in ("$y^c$", "$A^k$", "$\\alpha^c_k$", "$\\gamma^{kc}_{ij}$", "$L^c$", "$M^k$"):
        assert symbol in text, f"the introduction's notation table lacks {symbol}"
