"""camcore.book: the switches the notebooks rely on."""

import importlib

import numpy as np
import pytest

import camcore.book


@pytest.fixture
def book(monkeypatch):
    def load(**env):
        for name in ("CAMCORE_QUICK", "CAMCORE_BACKBONE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(camcore.book)

    yield load
    monkeypatch.delenv("CAMCORE_QUICK", raising=False)
    monkeypatch.delenv("CAMCORE_BACKBONE", raising=False)
    importlib.reload(camcore.book)


def test_full_mode_uses_the_default_recipe(book):
    b = book()
    assert not b.QUICK and b.per_class(3) == 3
    assert b.recipe() == camcore.training.Recipe()


def test_quick_mode_subsamples(book):
    b = book(CAMCORE_QUICK="1")
    assert b.per_class(3) == 1 and b.per_class(3, quick=2) == 2
    r = b.recipe()
    assert (r.per_class, r.test_per_class, r.epochs) == (40, 20, 2)
    assert r.key() != camcore.training.Recipe().key()  # a quick model never replaces the real one


def test_backbone_switch(book):
    assert book(CAMCORE_BACKBONE="resnet50").recipe().backbone == "resnet50"


def test_glue_stores_plain_python_numbers(book, monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue",
                        lambda name, value, display=False: glued.update({name: value}))
    b = book()
    b.glue("x", np.float64(0.25))
    b.glue("n", np.int64(3))
    assert glued == {"x": 0.25, "n": 3} and type(glued["x"]) is float and type(glued["n"]) is int
