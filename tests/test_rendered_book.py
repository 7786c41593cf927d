"""The book builds with warnings as errors, and every page renders in headless Chromium.

The build uses the committed notebooks' outputs (no execution). Each chapter page must load
without console errors and show its figures at a non-zero size; a screenshot of each page is
written to _build/screenshots/ for people to look at.
"""

import functools
import http.server
import os
import re
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
# Every numbered chapter but the introduction (prose, a plan and a table of notation) shows figures
FIGURE_CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")
                         if p.stem != "01_introduction")
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
    """Every solution (a <details> block in prose, a folded code cell) is closed when the page
    opens, its text hidden, and a click on its summary shows it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/chapters/{page_name}.html", wait_until="networkidle")
    folded = page.locator("article details")
    assert folded.count() > 0, f"{page_name}: no folded solution"
    texts = page.locator("article").inner_text()
    assert "Exercise" in texts, f"{page_name}: exercises not shown"
    for i in range(folded.count()):
        block = folded.nth(i)
        assert block.get_attribute("open") is None, f"{page_name}: block {i} open at first"
        body = block.locator(":scope > :not(summary)")
        if body.count() == 0:
            continue
        assert not any(body.nth(k).is_visible() for k in range(body.count())), \
            f"{page_name}: block {i} is visible before a click"
        block.locator(":scope > summary").first.click()
        page.wait_for_timeout(100)
        assert any(body.nth(k).is_visible() for k in range(body.count())), \
            f"{page_name}: block {i} does not open"
    page.close()


def notebook_images(path: Path) -> int:
    """How many figures Jupyter shows for a notebook (nbconvert's HTML, Jupyter's renderer)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    return len(re.findall(r'<img[^>]*\bsrc="data:image/', body))


@pytest.mark.parametrize("page_name", FIGURE_CHAPTERS)
def test_the_notebook_shows_every_figure_of_the_web_page(built_book, page_name):
    """Colab and JupyterLab readers see at least the figures the web page shows."""
    _, html = built_book
    web = (html / "chapters" / f"{page_name}.html").read_text()
    article = web[web.find("<article"):web.rfind("</article>")]
    web_figures = len([src for src in re.findall(r'<img[^>]+src="([^"]+)"', article)
                       if not src.endswith(".svg")])
    assert notebook_images(ROOT / "chapters" / f"{page_name}.ipynb") >= web_figures


def test_a_notebook_as_jupyterlab_renders_it(browser, tmp_path):
    """One chapter exported as Jupyter renders it (nbconvert's lab template), opened in Chromium:
    prose computed by code reads as text, and a screenshot shows it."""
    import nbformat
    from nbconvert import HTMLExporter

    path = ROOT / "chapters" / "05_grad_cam.ipynb"
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    out = tmp_path / "05_grad_cam.html"
    out.write_text(body)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(out.as_uri(), wait_until="load")
    text = page.locator("body").inner_text()
    assert "{glue" not in text and ":::" not in text
    assert "After this chapter you can" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab_05_grad_cam.png"), full_page=False)
    page.close()
