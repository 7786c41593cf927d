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
    assert b.recipe() == camcore.book.training.Recipe()


def test_quick_mode_subsamples(book):
    b = book(CAMCORE_QUICK="1")
    assert b.per_class(3) == 1 and b.per_class(3, quick=2) == 2
    r = b.recipe()
    assert (r.per_class, r.test_per_class, r.epochs) == (40, 20, 2)
    assert r.key() != camcore.book.training.Recipe().key()  # quick never replaces the real one


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


def test_glued_reads_another_notebooks_values(tmp_path):
    import json

    from camcore import book

    def record(name, text):
        return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name}},
                "data": {"application/papermill.record/text/plain": text}}

    nb = {"cells": [{"cell_type": "code", "outputs": [record("x", "0.25"), record("s", "'a b'")]},
                    {"cell_type": "markdown", "source": "no outputs"}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert book.glued(path) == {"x": 0.25, "s": "a b"}


def test_classifier_without_data_is_the_shipped_one_and_downloads_nothing(
        book, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.delenv("CAMCORE_DATA", raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setenv("CAMCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # a download attempt would fail
    model, report = book().classifier()
    assert "shipped classifier" in capsys.readouterr().out
    assert report.test_accuracy == camcore.book.shipped.shipped_report()["test_accuracy"]
    assert model.get_layer("probs").class_names == camcore.CLASS_NAMES


def test_classifier_prefers_the_model_fine_tuned_with_the_recipe(book, monkeypatch, capsys):
    b = book(CAMCORE_QUICK="1")
    mine = (object(), camcore.book.training.TrainingReport(recipe={}, test_accuracy=0.5,
                                                        data_dir="/x/data"))
    asked = []
    monkeypatch.setattr(b, "load_cached", lambda recipe, **k: asked.append(recipe) or mine)
    assert b.classifier() is mine
    assert asked == [b.recipe()]  # the quick recipe in quick mode: what chapter 3 trained
    assert "found in the cache" in capsys.readouterr().out
