"""scripts/slides.py: the cells tagged ``slide`` become an offline reveal.js deck.

A small fixture notebook (written here) stands for the chapters: what is tagged goes in, in
order, and nothing else. The deck is then opened in headless Chromium with the network blocked:
every slide is there, the math is typeset, the figures have a size, and no request left the
machine. Screenshots: _build/screenshots/slides-*.png.
"""

import base64
import importlib.util
import io
import os
import shutil
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("slides_script", ROOT / "scripts" / "slides.py")
slides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slides)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def png_of_a_figure() -> str:
    """A small real figure, as a notebook stores it (base64 PNG)."""
    fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
    ax.imshow(np.outer(np.linspace(0, 1, 7), np.linspace(1, 0, 7)), cmap="jet")
    ax.set_title("a 7x7 map")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def cell(kind, source, tags=(), png=None):
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    c = make(source, metadata={"tags": list(tags)} if tags else {})
    if png is not None:
        c.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png}),
                     nbformat.v4.new_output("stream", text="not on a slide\n")]
    return c


@pytest.fixture(scope="module")
def fixture_notebooks(tmp_path_factory):
    """Two chapters: one with three tagged cells among untagged ones, one with none."""
    folder = tmp_path_factory.mktemp("chapters")
    png = png_of_a_figure()
    first = nbformat.v4.new_notebook(cells=[
        cell("markdown", "# Grad-CAM, the fixture\n\nIntroduction, not on a slide."),
        cell("markdown", "Untagged words that stay in the chapter."),
        cell("markdown", "## The weights\n\nThe logit $y^c$ and the map, as in {cite:p}`gradcam`:"
                         "\n\n$$L^c = \\mathrm{ReLU}\\Big(\\sum_k \\alpha_k^c A^k\\Big)$$",
             tags=["slide"]),
        cell("code", "plt.show()", tags=["slide"], png=png),
        cell("code", "plt.show()  # untagged figure", png=png),
        cell("markdown", "```{math}\n:label: eq-alpha\n\\alpha_k^c = \\frac{1}{Z}\\sum_{ij} "
                         "\\frac{\\partial y^c}{\\partial A^k_{ij}}\n```", tags=["slide", "x"]),
    ])
    second = nbformat.v4.new_notebook(cells=[cell("markdown", "# Nothing tagged here")])
    paths = [folder / "05_fixture.ipynb", folder / "06_untagged.ipynb"]
    for path, notebook in zip(paths, [first, second]):
        nbformat.write(notebook, path)
    return paths, png


@pytest.fixture(scope="module")
def deck(fixture_notebooks, tmp_path_factory):
    paths, _ = fixture_notebooks
    out = tmp_path_factory.mktemp("deck") / "slides"
    count = slides.build(paths, out, "A fixture deck")
    return out, count


def test_only_tagged_cells_in_order(deck, fixture_notebooks):
    out, count = deck
    page = (out / "index.html").read_text()
    assert count == 3
    assert page.count("<section") == 1 + 1 + 3  # opening, the chapter's title, its three cells
    assert "Untagged words" not in page and "Introduction, not on a slide" not in page
    assert "not on a slide" not in page and "Nothing tagged here" not in page
    order = [page.index(s) for s in ("Grad-CAM, the fixture", "The weights", "<img", "partial y^c")]
    assert order == sorted(order)


def test_figure_is_the_notebook_output(deck, fixture_notebooks):
    out, _ = deck
    _, png = fixture_notebooks
    figures = sorted((out / "figures").iterdir())
    assert len(figures) == 1  # the untagged cell's figure is left out
    assert figures[0].read_bytes() == base64.b64decode(png)


def test_math_and_roles_become_text_for_mathjax():
    html = slides.markdown_html("Logit $y^c < 1$ {cite:p}`gradcam`\n\n$$a \\& b$$")
    assert "\\(y^c &lt; 1\\)" in html and "\\[a \\&amp; b\\]" in html
    assert "gradcam" in html and "{cite" not in html
    directive = slides.markdown_html("```{math}\n:label: eq\nx^2\n```")
    assert "\\[x^2\\]" in directive and "label" not in directive


def test_glued_values_and_citations_are_filled_in():
    glue = {"ch5_gap": 2.384e-07, "ch5_verdict": "confirms"}
    bib = {"selvaraju2017gradcam": ("Selvaraju et al.", "2017")}
    text = ("(ch5-x)=\nGap {glue:text}`ch5_gap:.1e`, it {glue:}`ch5_verdict` "
            "{cite:p}`selvaraju2017gradcam`; {cite:t}`selvaraju2017gradcam`, {ref}`see <ch5-x>`")
    assert slides.markdown_html(text, glue, bib) == (
        "<p>Gap 2.4e-07, it confirms (Selvaraju et al., 2017); Selvaraju et al. (2017), see</p>\n")
    with pytest.raises(ValueError, match="glues no 'missing'"):
        slides.markdown_html("{glue:text}`missing`", glue, bib)


def test_glue_read_from_the_notebook():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("glue()")])
    notebook.cells[0].outputs = [nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": "0.125"},
        metadata={"scrapbook": {"name": "x", "mime_prefix": "application/papermill.record/"}})]
    assert slides.glued(notebook) == {"x": 0.125}


def test_citations_of_the_books_bibliography():
    bib = slides.citations()
    assert bib["zhou2016cam"] == ("Zhou et al.", "2016")
    assert len(bib) == (ROOT / "references.bib").read_text().count("\n@") + 1


def test_tagged_code_cell_without_figure_is_an_error(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[cell("code", "print(1)", tags=["slide"])])
    nbformat.write(notebook, tmp_path / "bad.ipynb")
    with pytest.raises(ValueError, match="no image output"):
        slides.build([tmp_path / "bad.ipynb"], tmp_path / "out", "t")


def test_the_books_chapters_make_a_deck(tmp_path):
    """Whatever the chapters tag today is valid: one slide per tagged cell."""
    notebooks = slides.toc_notebooks()
    assert len(notebooks) >= 10
    tagged = sum(slides.tagged(c) for p in notebooks for c in nbformat.read(p, 4).cells)
    assert slides.build(notebooks, tmp_path / "slides", "book") == tagged


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


def test_deck_opens_offline_with_math_and_figures(deck, browser):
    out, _ = deck
    context = browser.new_context(viewport={"width": 1280, "height": 760}, offline=True)
    page = context.new_page()
    left, errors = [], []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else (left.append(route.request.url), route.abort()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((out / "index.html").as_uri(), wait_until="load")
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("MathJax.startup.promise")
    assert page.evaluate("Reveal.getTotalSlides()") == 5
    assert page.locator(".reveal mjx-container svg").count() >= 3  # y^c, L^c and alpha
    assert "\\(" not in page.inner_text(".reveal .slides")  # no math left as TeX
    sizes = page.eval_on_selector_all(".reveal img", "imgs => imgs.map(i => i.naturalWidth)")
    assert sizes and all(w > 0 for w in sizes)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for n in range(5):
        page.evaluate(f"Reveal.slide({n})")
        page.wait_for_timeout(400)  # the slide transition
        page.screenshot(path=str(SCREENSHOTS / f"slides-{n + 1}.png"))
    figure = page.locator(".reveal section.present img")
    assert figure.count() == 0 or figure.first.bounding_box()["height"] > 50
    page.evaluate("Reveal.slide(3)")
    page.wait_for_timeout(400)
    assert page.locator(".reveal section.present img").first.bounding_box()["height"] > 50
    assert left == [], f"requests that left the machine: {left}"
    assert errors == [], errors
    context.close()
