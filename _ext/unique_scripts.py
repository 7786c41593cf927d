"""Sphinx extension: drop repeated inline <script> blocks from each page.

Under Jupyter Book 1.x, sphinx-thebe and sphinx-togglebutton register their inline configuration
scripts twice, and the browser then rejects the second `const THEBE_JS_URL` with a console error.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
