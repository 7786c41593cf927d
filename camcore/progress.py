"""Progress lines for long work: what is being done, how far it is, and how long is left.

Plain lines, never ``\\r`` or backspaces, so a saved notebook (and Colab, JupyterLab, a CI log)
shows them as they were printed. A line is printed when the work starts, then at most every
``every`` seconds, with the share done, the time so far and the time left at the current pace
(``remaining = elapsed * (total - done) / done``), and once when the work ends::

    with Progress(1280, "masked images", label="Score-CAM") as bar:
        for chunk in chunks:
            ...
            bar.add(len(chunk))

``progress(iterable, total, what)`` wraps a loop the same way.
"""

from __future__ import annotations

import numbers
import sys
import time


def _duration(seconds: float) -> str:
    """``"45 s"``, ``"3.2 min"``: seconds below two minutes, minutes above."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class Progress:
    """Count ``total`` units of work and print plain lines about it.

    Parameters
    ----------
    total : int
        The units of work, >= 0 (0 prints nothing).
    what : str
        What a unit is: "images", "masked images", ...
    label : str
        Starts each line.
    every : float
        The least number of seconds between two lines.
    expected : float, optional
        Seconds the work is expected to take, printed on the first line (e.g. measured on 2
        CPUs).
    quiet : bool
        Print nothing (the count is still kept).
    out : file, optional
        The stream; default ``sys.stdout``.

    Examples
    --------
    >>> with Progress(3, "images", label="demo", every=60) as bar:
    ...     for _ in range(3):
    ...         bar.add(1)
    demo: 3 images to go
    demo: 3 images done in 0 s
    """

    def __init__(self, total: int, what: str = "items", label: str = "", every: float = 10.0,
                 expected: float | None = None, quiet: bool = False, out=None):
        if isinstance(total, bool) or not isinstance(total, numbers.Integral) or total < 0:
            raise ValueError(f"total must be an integer >= 0; got {total!r}")
        if isinstance(every, bool) or not isinstance(every, numbers.Real) or not every > 0:
            raise ValueError(f"every must be a positive number of seconds; got {every!r}")
        total = int(total)
        self.total, self.what, self.every, self.quiet = total, what, every, quiet
        self.label = f"{label}: " if label else ""
        self.out = out
        self.done = 0
        self.started = self.last = time.perf_counter()
        if total:
            about = f" (about {_duration(expected)} on 2 CPUs)" if expected else ""
            self._print(f"{self.label}{total:,} {what} to go{about}")

    def _print(self, line: str):
        if not self.quiet:
            print(line, file=self.out or sys.stdout, flush=True)

    def add(self, n: int = 1):
        """``n`` more units done; print a line if ``every`` seconds passed since the last one."""
        self.done = min(self.done + n, self.total)
        now = time.perf_counter()
        if self.last is None:  # closed: keep counting, print nothing more
            return
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            elapsed = now - self.started
            left = elapsed * (self.total - self.done) / max(self.done, 1)
            self._print(f"{self.label}{self.done:,} of {self.total:,} {self.what} "
                        f"({self.done / self.total:.0%}), {_duration(elapsed)} so far, "
                        f"about {_duration(left)} left")

    def stage(self, message: str):
        """Print one line for a step of work that is not counted: ``[12 s] message``."""
        self._print(f"{self.label}[{_duration(time.perf_counter() - self.started)}] {message}")

    def close(self):
        """Print the closing line (once), with the time the work took."""
        if self.total and self.last is not None:
            self._print(f"{self.label}{self.done:,} {self.what} done in "
                        f"{_duration(time.perf_counter() - self.started)}")
        self.last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()


def progress(iterable, total: int | None = None, what: str = "items", label: str = "",
             every: float = 10.0, expected: float | None = None, quiet: bool = False):
    """Yield from ``iterable``, counting one unit per item with a :class:`Progress`.

    Parameters
    ----------
    iterable : iterable
    total : int, optional
        Its length; default ``len(list(iterable))`` (the items are listed first).
    what, label, every, expected, quiet
        As for :class:`Progress`.

    Yields
    ------
    The items of ``iterable``.

    Examples
    --------
    >>> [x for x in progress(range(2), what="numbers", every=60)]
    2 numbers to go
    2 numbers done in 0 s
    [0, 1]
    """
    items = list(iterable) if total is None else iterable
    bar = Progress(len(items) if total is None else total, what, label, every, expected, quiet)
    for item in items:
        yield item
        bar.add(1)
    bar.close()
