"""Links to the published book become relative links in the web build, and are checked.

The chapters link to each other with absolute URLs under ``html.baseurl`` (``_config.yml``), so
that the links work where a notebook is read alone (Colab, JupyterLab). In the web book, this
extension turns each such link into a relative one, so the built book also works offline and
under another address, and warns (an error with ``-W``) when the page or the section anchor it
points to does not exist.
"""

import re

from docutils import nodes
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)


def _ids(app, docname: str, cache: dict) -> set:
    if docname not in cache:
        tree = app.env.get_doctree(docname)
        ids = {i for node in tree.findall(nodes.Element) for i in node.get("ids", [])}
        for raw in tree.findall(nodes.raw):  # <a id="..."></a> anchors (the references page)
            ids.update(re.findall(r'id="([^"]+)"', raw.astext()))
        cache[docname] = ids
    return cache[docname]


def rewrite(app, doctree, docname):
    base = app.config.html_baseurl
    if not base or app.builder.format != "html":
        return
    cache = app.env.__dict__.setdefault("_book_link_ids", {})
    for ref in doctree.findall(nodes.reference):
        uri = ref.get("refuri", "")
        if not uri.startswith(base):
            continue
        target, _, anchor = uri[len(base):].partition("#")
        page = target[:-5] if target.endswith(".html") else target.rstrip("/") or "index"
        if page not in app.env.found_docs:
            logger.warning(f"link to a page the book does not have: {uri}", location=ref)
            continue
        if anchor and anchor not in _ids(app, page, cache):
            logger.warning(f"link to a section {page} does not have: #{anchor}", location=ref)
        here = app.builder.get_target_uri(docname)
        ref["refuri"] = relative_uri(here, app.builder.get_target_uri(page)) + (
            f"#{anchor}" if anchor else "")


def setup(app):
    app.connect("doctree-resolved", rewrite)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
