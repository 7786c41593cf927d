"""The book builds with warnings as errors, and every page renders in headless Chromium.

The build uses the committed notebooks' outputs (no execution). Each chapter page must load
without console errors and show its figures at a non-zero size; a screenshot of each page is
written to _build/screenshots/ for people to look at.
"""

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "_build" / "screenshots"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [Path(TOC["root"]).name] + [Path(c["file"]).name for c in TOC["chapters"]]  # every page
FIGURE_CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(ROOT), "-W", "-n", "--keep-going",
                             "--path-output", str(out)], capture_output=True, text=True)
    return result, out / "_build" / "html"


def test_book_builds_without_warnings(built_book):
    result, html = built_book
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (html / "index.html").exists()


@pytest.fixture(scope="module")
def server(built_book):
    _, html = built_book
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed: .ci/run should have installed it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def test_every_chapter_notebook_is_in_the_book():
    notebooks = {p.stem for p in (ROOT / "chapters").glob("*.ipynb")}
    assert notebooks <= set(PAGES), f"not in _toc.yml: {sorted(notebooks - set(PAGES))}"


@pytest.mark.parametrize("page_name", PAGES)
def test_page_renders(built_book, server, browser, page_name):
    result, _ = built_book
    assert result.returncode == 0, "the book did not build"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{server}/chapters/{page_name}.html", wait_until="networkidle")
    assert response.ok, f"{page_name}: HTTP {response.status}"
    assert errors == [], f"{page_name}: console errors {errors}"
    images = page.eval_on_selector_all(
        "article img", "imgs => imgs.map(i => [i.naturalWidth, i.getBoundingClientRect().width,"
        " i.getBoundingClientRect().height, i.src])")
    broken = [i for i in images if not (i[0] > 0 and i[1] > 0 and i[2] > 0)]
    assert not broken, f"{page_name}: images with zero size {broken}"
    figures = [i for i in images if not i[3].endswith(".svg")]  # not the Colab badge
    if page_name in FIGURE_CHAPTERS:
        assert figures, f"{page_name}: no figure on the page"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{page_name}.png"), full_page=True)
    page.close()


SOLUTION_PAGES = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb")
                        if '"solution"' in p.read_text())  # notebooks with solution-tagged cells


def test_some_chapters_have_solutions():
    assert len(SOLUTION_PAGES) >= 10, SOLUTION_PAGES


@pytest.mark.parametrize("page_name", SOLUTION_PAGES)
def test_solutions_stay_folded_until_clicked(built_book, server, browser, page_name):
    """Every solution's text is hidden when the page opens, and shown by a click on its title."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/chapters/{page_name}.html", wait_until="networkidle")
    solutions = page.locator("div.solution")
    assert solutions.count() > 0, f"{page_name}: no rendered solution"
    for i in range(solutions.count()):
        solution = solutions.nth(i)
        body = solution.locator(":scope > :not(.admonition-title)")
        assert body.count() > 0
        shown = [body.nth(k).is_visible() for k in range(body.count())]
        assert not any(shown), f"{page_name}: solution {i} is visible before a click"
        solution.locator(".admonition-title").click()
        page.wait_for_timeout(200)
        assert any(body.nth(k).is_visible() for k in range(body.count())), \
            f"{page_name}: solution {i} does not open"
    page.close()
