"""The book's prose where it holds numbers: written by code, so it reads the same everywhere.

A chapter is read in three places: the web book, Colab and JupyterLab. Only the web book renders
MyST roles and directives, so a sentence that states a number or a verdict is not a Markdown
cell with ``{glue:text}`` roles: it is a code cell whose output is Markdown, computed from the
values of the run it sits in (the committed run in the web book, the reader's own in Colab)::

    # @title The numbers of this run
    book.md(f"Over {len(test)} test images the maps differ by at most {gap:.1e}.")

The code of such a cell is hidden in all three places: tag ``remove-input`` (web book), a
``# @title`` first line and ``"cellView": "form"`` (Colab), ``"jupyter": {"source_hidden":
true}`` (JupyterLab); ``scripts/notebook_edition.py`` sets the three, and the tests check them.

Links between pages are absolute, to the published book (``BOOK_URL``, the same as
``html.baseurl`` in ``_config.yml``), so they work from Colab; the web build turns them back
into relative links (``_ext/book_links.py``).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

BOOK_URL = "https://camcore.github.io/camcore-book/"  # = html.baseurl in _config.yml (tested)
COLAB_URL = "https://colab.research.google.com/github/camcore/camcore-book/blob/main/chapters/"
MINUTES = Path(__file__).parent / "minutes.json"  # minutes per chapter on 2 CPUs, full and quick


def _display_markdown(text: str):
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # plain Python: print the text
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(text))
    else:
        print(text)


def md(text: str) -> None:
    """Show ``text`` as Markdown (plain Markdown and ``$math$``: no MyST), dedented."""
    _display_markdown(textwrap.dedent(text).strip())


def note(text: str, label: str = "Note") -> None:
    """Show ``text`` as a note: a quoted paragraph that starts with a bold ``label``."""
    body = textwrap.dedent(text).strip().replace("\n", "\n> ")
    _display_markdown(f"> **{label}.** {body}")


def link(page: str, text: str, anchor: str = "") -> str:
    """A Markdown link to a page of the published book: ``link("05_grad_cam", "chapter 5")``."""
    return f"[{text}]({BOOK_URL}chapters/{page}.html{'#' + anchor if anchor else ''})"


def minutes() -> dict:
    """Measured minutes per chapter on 2 CPUs: ``{"05_grad_cam": {"full": 1.3, "quick": 0.4}}``.

    Written by ``scripts/execute_book.py`` (full mode) and ``scripts/time_quick.py`` (quick).
    """
    return json.loads(MINUTES.read_text())


def _switched_after_import(quick: bool, backbone: str) -> list[str]:
    """The switches set after camcore.book was imported, which this kernel does not see."""
    now = {"CAMCORE_QUICK": os.environ.get("CAMCORE_QUICK") == "1",
           "CAMCORE_BACKBONE": os.environ.get("CAMCORE_BACKBONE", "efficientnet_lite0")}
    used = {"CAMCORE_QUICK": quick, "CAMCORE_BACKBONE": backbone}
    return [name for name in now if now[name] != used[name]]


def chapter_note(chapter: str) -> None:
    """The first note of a chapter: its measured minutes, quick mode, and what this run uses.

    ``chapter`` is the notebook's name without extension, e.g. ``"05_grad_cam"``.
    """
    from camcore.data import DatasetNotFoundError, find_dataset

    timing = minutes().get(chapter)
    if timing is None:
        raise KeyError(f"{chapter!r} is not in {MINUTES.name}; run scripts/execute_book.py")
    try:
        data = f"the data in `{find_dataset(download=False)}`"
    except DatasetNotFoundError:
        data = "the dataset, downloaded by kagglehub when the first cell needs it"
    from camcore import book  # the switches as this kernel read them, at import

    mode, backbone = ("quick" if book.QUICK else "full"), book.BACKBONE
    late = _switched_after_import(book.QUICK, book.BACKBONE)
    restart = (f" **{' and '.join(late)} changed after camcore was imported, so this kernel "
               "still runs the settings above: restart the kernel (Colab: Runtime → Restart "
               "session), then run all.**" if late else "")
    note(f"""
        This chapter takes about {timing['full']:.1f} min on 2 CPUs in full mode, and
        {timing['quick']:.1f} min in quick mode (a few images and short trainings: the numbers
        then differ, and some sentences say that there are too few images to decide). To switch
        to quick mode on Colab or a slow laptop, run `%env CAMCORE_QUICK=1` in a first cell;
        `%env CAMCORE_BACKBONE=resnet50` switches to the article's ResNet50 (its weights
        download from the internet). This run: **{mode} mode**, backbone `{backbone}`, {data}.
        Every number and verdict in the text below is computed from this run.{restart}""",
         label="Before you run it")
