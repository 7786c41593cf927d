"""Sphinx extension: the explorer page's widget, its data inside the page.

In a MyST page::

    ```{explorer} data/explorer/explorer.json
    ```

puts the JSON written by ``scripts/explorer.py`` into the page, in a ``<script
type="application/json">`` block, and adds ``explorer.js`` and ``explorer.css`` (from
``_ext/explorer_static/``, copied to ``_static/``) to that page only; the script builds the
controls and draws the overlay. The data is inside the page, not fetched at run time, so the page
also works opened from disk (``file://``), where browsers refuse ``fetch``.
"""

import json
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

STATIC = Path(__file__).resolve().parent / "explorer_static"


class explorer(nodes.General, nodes.Element):  # docutils names its nodes in lowercase
    """The widget: its JSON in ``node["data"]``."""


class ExplorerDirective(SphinxDirective):
    required_arguments = 1  # the JSON file, relative to the page

    def run(self):
        relative, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(relative)  # the page is rebuilt when the data changes
        if not Path(path).is_file():
            raise self.error(f"explorer: no data file {path}; run scripts/explorer.py")
        text = Path(path).read_text(encoding="utf-8")
        json.loads(text)  # a broken file fails the build here, not in the reader's browser
        return [explorer(data=text)]


def visit_explorer_html(self, node):
    data = node["data"].replace("</", "<\\/")  # nothing in the data can close the script block
    self.body.append('<div class="camcore-explorer">'
                     '<p class="cx-noscript">The explorer needs JavaScript.</p>'
                     f'<script type="application/json" class="cx-data">{data}</script></div>\n')
    raise nodes.SkipNode


def skip(self, node):
    raise nodes.SkipNode


def add_static_path(app, config):
    config.html_static_path.append(str(STATIC))


def add_assets(app, pagename, templatename, context, doctree):
    if doctree is not None and next(doctree.findall(explorer), None) is not None:
        app.add_js_file("explorer.js")  # called here, the files are added to this page only
        app.add_css_file("explorer.css")


def setup(app):
    app.add_node(explorer, html=(visit_explorer_html, None), latex=(skip, None),
                 text=(skip, None), man=(skip, None), texinfo=(skip, None))
    app.add_directive("explorer", ExplorerDirective)
    app.connect("config-inited", add_static_path)
    app.connect("html-page-context", add_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
