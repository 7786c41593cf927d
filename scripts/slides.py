"""The workshop's slides: an offline reveal.js deck of the cells the chapters tag ``slide``.

    .venv/bin/python scripts/slides.py                  # -> _build/slides/index.html (make slides)
    .venv/bin/python scripts/slides.py --out DIR a.ipynb b.ipynb   # other notebooks

The contract with the chapter notebooks: a cell tagged ``slide`` becomes one slide, in notebook
order, the chapters in the book's order (``_toc.yml``). A Markdown cell gives its text, math
included; a code cell gives its image outputs (from the committed run). Each chapter with such
cells opens with a title slide (its first heading). Nothing else goes in: the figures and
equations on the slides are the chapters' own, so the deck stays in step with them.

Offline: the deck loads nothing from the network. reveal.js comes from the PyPI package
sphinx-revealjs, which ships a build of it (only its files are used, not the Sphinx builder);
MathJax (SVG output, its fonts inside the script) from sphinx-mathjax-offline, which the book
already uses. Both are copied beside the deck, which can be opened from disk or served.
"""

from __future__ import annotations

import argparse
import ast
import base64
import html
import importlib.metadata
import importlib.resources
import re
import shutil
from pathlib import Path

import nbformat
import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "slides"
TAG = "slide"
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
REVEAL_FILES = ["LICENSE", "dist/reset.css", "dist/reveal.css", "dist/reveal.js",
                "dist/theme/white.css", "dist/theme/fonts/source-sans-pro/*.css",
                "dist/theme/fonts/source-sans-pro/*.woff"]  # browsers take the WOFF fonts
MATHJAX_FILES = ["tex-svg.js", "input/tex/extensions"]  # the extensions MathJax loads on demand


def _math(content: str, options: dict) -> str:
    """Math as MathJax's delimiters, HTML-escaped: MathJax typesets it when the deck opens."""
    if options.get("display_mode"):
        return f'<div class="math">\\[{html.escape(content)}\\]</div>'
    return f"\\({html.escape(content)}\\)"


MARKDOWN = (MarkdownIt("commonmark", {"html": True}).enable("table")
            .use(dollarmath_plugin, renderer=_math, double_inline=True)
            .use(amsmath_plugin))
ROLE = re.compile(r"\{([\w:.-]+)\}`([^`]*)`")  # a MyST role, e.g. {cite:p}`key`
LABEL = re.compile(r"^\([\w:.-]+\)=[ \t]*$", re.M)  # a MyST target, (name)=
BIB = ROOT / "references.bib"
DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{([\w:.-]+)\}[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def _directive(match: re.Match) -> str:
    """A MyST directive: {math} becomes display math, any other its body (options dropped)."""
    name, body = match[2], re.sub(r"^:[\w-]+:.*\n", "", match[3], flags=re.M)
    return f"$$\n{body.strip()}\n$$\n" if name == "math" else body


def citations(bib: Path = BIB) -> dict:
    """``{key: ("Zhou et al.", "2016")}`` from a BibTeX file: what a slide shows for a citation."""
    found = {}
    for key, body in re.findall(r"@\w+\{([^,\s]+),(.*?)\n\}", bib.read_text(), re.S):
        author = re.search(r"author\s*=\s*\{(.*)\},?\s*$", body, re.M)
        year = re.search(r"year\s*=\s*\{?(\d{4})", body)
        if author is None or year is None:  # a citation without them shows its key
            continue
        surnames = [a.split(",")[0].strip("{} ") for a in author[1].split(" and ")]
        others = " et al." if len(surnames) > 2 else "".join(f" and {n}" for n in surnames[1:])
        found[key] = (surnames[0] + others, year[1])
    return found


def glued(notebook) -> dict:
    """The values a notebook glues (myst-nb), by name: what its {glue} roles show."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = output.get("data", {}).get("application/papermill.record/text/plain")
            if name and text is not None:
                try:
                    values[name] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    values[name] = text
    return values


def _role(match: re.Match, glue: dict, bib: dict) -> str:
    """A MyST role as text: a glued value, a citation, else the role's own text."""
    name, content = match[1], match[2]
    if name.startswith("glue"):
        key, _, spec = content.partition(":")
        if key not in glue:
            raise ValueError(f"{{glue}}`{key}` on a slide, but the notebook glues no {key!r}")
        return format(glue[key], spec)
    if name.startswith("cite"):
        cited = [bib.get(key.strip(), (key.strip(), "")) for key in content.split(",")]
        if name == "cite:t":
            return "; ".join(f"{names} ({year})" for names, year in cited)
        return "(" + "; ".join(f"{names}, {year}" for names, year in cited) + ")"
    return re.sub(r"\s*<[^>]*>$", "", content)  # {ref}`text <target>`: the text


def markdown_html(text: str, glue: dict | None = None, bib: dict | None = None) -> str:
    """A Markdown cell's text as HTML: CommonMark, tables, $ and $$ math; MyST roles become text
    (glued values from ``glue``, citations from ``bib``), targets and directive options go."""
    text = LABEL.sub("", DIRECTIVE.sub(_directive, text))
    return MARKDOWN.render(ROLE.sub(lambda m: _role(m, glue or {}, bib or {}), text))


def chapter_title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if found:
                return ROLE.sub(r"\2", found[1]).strip()
    return "Untitled"


def tagged(cell) -> bool:
    return TAG in cell.get("metadata", {}).get("tags", [])


def chapter_slides(path: Path, figures: Path, bib: dict) -> tuple[str, list[str]]:
    """A notebook's title (HTML) and slides: a title slide, then one per tagged cell (or none)."""
    notebook = nbformat.read(path, as_version=4)
    glue = glued(notebook)
    cells = [cell for cell in notebook.cells if tagged(cell)]
    title = html.escape(chapter_title(notebook))
    if not cells:
        return title, []
    source = f'<p class="source">{html.escape(path.stem)}</p>'
    slides = [f'<section class="chapter"><h2>{title}</h2>{source}</section>']
    for n, cell in enumerate(cells, 1):
        if cell.cell_type == "markdown":
            body = f'<div class="text">{markdown_html(cell.source, glue, bib)}</div>'
        else:
            images = []
            for k, output in enumerate(cell.get("outputs", [])):
                kind = next((t for t in IMAGE_TYPES if t in output.get("data", {})), None)
                if kind is None:
                    continue
                name = f"{path.stem}-{n}-{k}.{IMAGE_TYPES[kind]}"
                data = output["data"][kind]
                figures.mkdir(parents=True, exist_ok=True)
                (figures / name).write_bytes(data.encode() if kind == "image/svg+xml"
                                             else base64.b64decode(data))
                images.append(f'<img src="{figures.name}/{name}" alt="figure from {path.stem}">')
            if not images:
                raise ValueError(f"{path.name}: a code cell tagged {TAG!r} has no image output "
                                 "(run it, or tag a Markdown cell instead)")
            body = f'<div class="figures">{"".join(images)}</div>'
        slides.append(f"<section>{body}{source}</section>")
    return title, slides


def copy_assets(out: Path):
    """reveal.js and MathJax beside the deck: ``out/reveal``, ``out/mathjax``."""
    reveal = importlib.resources.files("sphinx_revealjs") / "_static" / "revealjs"
    mathjax = importlib.metadata.distribution("sphinx-mathjax-offline").locate_file(
        "sphinx-mathjax-offline/static/mathjax")
    for root, files, target in [(Path(str(reveal)), REVEAL_FILES, out / "reveal"),
                                (Path(str(mathjax)), MATHJAX_FILES, out / "mathjax")]:
        for pattern in files:
            sources = sorted(root.glob(pattern))
            if not sources:
                raise FileNotFoundError(f"{root / pattern}: the package's layout changed")
            for source in sources:
                dest = target / source.relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    shutil.copytree(source, dest, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, dest)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="reveal/dist/reset.css">
<link rel="stylesheet" href="reveal/dist/reveal.css">
<link rel="stylesheet" href="reveal/dist/theme/white.css">
<style>
.reveal .slides section {{ height: 100%; }}
.reveal .text {{ text-align: left; font-size: 0.62em; }}
.reveal .figures {{ display: flex; justify-content: center; gap: 0.5em; height: 660px; }}
.reveal .figures img {{ flex: 1 1 0; min-width: 0; height: 100%; margin: 0; object-fit: contain; }}
.reveal .source {{ position: absolute; bottom: -1.2em; left: 0; font-size: 0.35em; color: #888; }}
.reveal section.chapter h2 {{ margin-top: 4em; }}
.reveal .contents {{ text-align: left; font-size: 0.7em; }}
</style>
<script>
window.MathJax = {{tex: {{inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]]}},
                  svg: {{fontCache: "global"}}}};
</script>
<script src="mathjax/tex-svg.js" defer></script>
<script src="reveal/dist/reveal.js"></script>
</head>
<body>
<div class="reveal"><div class="slides">
{slides}
</div></div>
<script>
Reveal.initialize({{hash: true, slideNumber: "c/t", width: 1280, height: 760, margin: 0.05,
                   transition: "none"}});
</script>
</body>
</html>
"""


def toc_notebooks(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The book's notebooks in the book's order."""
    entries = yaml.safe_load(toc.read_text())
    files = [entries["root"]] + [c["file"] for c in entries.get("chapters", [])]
    return [p for f in files if (p := ROOT / f"{f}.ipynb").is_file()]


def build(notebooks: list[Path], out: Path, title: str) -> int:
    """Write ``out/index.html`` and its assets; returns the number of slides from cells."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bib = citations() if BIB.is_file() else {}
    chapters = [chapter_slides(path, out / "figures", bib) for path in notebooks]
    chapters = [(name, slides) for name, slides in chapters if slides]
    contents = "".join(f"<li>{name}</li>" for name, _ in chapters)
    opening = (f"<section><h2>{html.escape(title)}</h2><p>Slides for the workshop: the cells "
               f"the chapters tag <code>{TAG}</code>.</p>"
               f'<ol class="contents">{contents}</ol></section>')
    slides = [opening] + [slide for _, s in chapters for slide in s]
    (out / "index.html").write_text(PAGE.format(title=html.escape(title),
                                                slides="\n".join(slides)), encoding="utf-8")
    copy_assets(out)
    return sum(len(s) - 1 for _, s in chapters)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks, in order (default: the book's, from _toc.yml)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    title = yaml.safe_load((ROOT / "_config.yml").read_text())["title"]
    count = build(args.notebooks or toc_notebooks(), args.out, title)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 1024 ** 2
    print(f"{count} slides from cells tagged {TAG!r}: {args.out / 'index.html'} ({size:.1f} MB "
          "with reveal.js and MathJax)")
    if count == 0:
        print(f"No cell is tagged {TAG!r} yet: the deck has only its opening slide.")


if __name__ == "__main__":
    main()
