"""camcore.progress: plain lines (no control characters), at most every `every` seconds, with
the time left computed by hand on a fake clock."""

import io
import re
import types

import numpy as np
import pytest

from camcore import progress as progress_module
from camcore.progress import Progress, progress

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # any control character but the newline


@pytest.fixture
def clock(monkeypatch):
    """A fake time.perf_counter for camcore.progress: set ``clock.now`` to move time."""
    fake = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(progress_module, "time",
                        types.SimpleNamespace(perf_counter=lambda: fake.now))
    return fake


def test_lines_at_most_every_period_with_the_time_left(clock):
    out = io.StringIO()
    bar = Progress(100, "masked images", label="Score-CAM", every=10, out=out)
    for now, n in [(5, 10), (12, 10), (15, 10), (30, 30), (130, 20), (131, 20)]:
        clock.now = now
        bar.add(n)
    bar.close()
    assert out.getvalue().splitlines() == [
        "Score-CAM: 100 masked images to go",
        # t = 12: 20 done; left = elapsed * (total - done) / done = 12 * 80 / 20 = 48 s
        "Score-CAM: 20 of 100 masked images (20%), 12 s so far, about 48 s left",
        # t = 15: only 3 s after the last line: nothing; t = 30: 60 done, 30 * 40 / 60 = 20 s
        "Score-CAM: 60 of 100 masked images (60%), 30 s so far, about 20 s left",
        # t = 130: 80 done, 130 * 20 / 80 = 32.5 s; over two minutes: minutes
        "Score-CAM: 80 of 100 masked images (80%), 2.2 min so far, about 32 s left",
        # t = 131: all done: no progress line, the closing one
        "Score-CAM: 100 masked images done in 2.2 min",
    ]
    assert CONTROL.search(out.getvalue()) is None


def test_quiet_counts_without_printing(clock, capsys):
    bar = Progress(10, quiet=True)
    clock.now = 100
    bar.add(4)
    bar.close()
    assert bar.done == 4 and capsys.readouterr().out == ""


def test_nothing_to_do_prints_nothing(capsys):
    Progress(0).close()
    assert capsys.readouterr().out == ""


def test_adding_after_close_keeps_quiet(clock, capsys):
    bar = Progress(10, "images")
    bar.close()
    clock.now = 50
    bar.add(3)  # a TypeError before: the clock of the last line was gone
    bar.close()  # once only
    assert capsys.readouterr().out.splitlines() == ["10 images to go", "0 images done in 0 s"]
    assert bar.done == 3


def test_numpy_totals_and_expected_time(capsys):
    Progress(np.int64(5), "images", expected=150).close()
    assert capsys.readouterr().out.splitlines()[0] == "5 images to go (about 2.5 min on 2 CPUs)"


@pytest.mark.parametrize("kwargs, message", [
    ({"total": -1}, r"total must be an integer >= 0; got -1"),
    ({"total": 2.5}, r"total must be an integer >= 0; got 2\.5"),
    ({"total": True}, r"total must be an integer >= 0; got True"),
    ({"total": 5, "every": 0}, r"every must be a positive number of seconds; got 0"),
    ({"total": 5, "every": "10"}, r"every must be a positive number of seconds; got '10'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Progress(**kwargs)


def test_progress_wraps_a_loop_and_stage_lines(clock, capsys):
    assert list(progress(iter("abc"), what="letters", label="x")) == ["a", "b", "c"]
    bar = Progress(2, "images")
    clock.now = 7
    bar.stage("loading the model")
    out = capsys.readouterr().out
    assert out.splitlines() == ["x: 3 letters to go", "x: 3 letters done in 0 s",
                                "2 images to go", "[7 s] loading the model"]
    assert CONTROL.search(out) is None
