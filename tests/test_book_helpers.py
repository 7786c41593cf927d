"""camcore.book: the switches the notebooks rely on."""

import importlib
import re

import numpy as np
import pytest

import camcore.book


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from camcore.data import write_tiny_dataset

    return write_tiny_dataset(tmp_path_factory.mktemp("data"), per_class=2)


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


KINDS = ["main", "hidden", "small_smoothing", "small_no_smoothing", "shortcut"]


@pytest.mark.parametrize("quick", ["0", "1"], ids=["full", "quick"])
def test_the_recipe_of_each_kind(book, quick):
    """Known answers: chapter 5's and chapter 13's recipes; quick mode shortens only "main"."""
    from dataclasses import replace

    from camcore.book.training import Recipe

    b = book(CAMCORE_QUICK=quick)
    assert list(b.KINDS) == KINDS
    main = (Recipe(per_class=40, test_per_class=20, epochs=2) if quick == "1" else Recipe())
    assert b.recipe() == b.recipe("main") == main
    assert b.recipe("hidden") == Recipe(hidden_units=256)
    for eps, kind in [(0.1, "small_smoothing"), (0.0, "small_no_smoothing")]:
        assert b.recipe(kind) == Recipe(label_smoothing=eps, backbone="efficientnet_lite0",
                                        per_class=100, test_per_class=40, epochs=10)
    assert b.recipe("shortcut") == replace(Recipe(), per_class=300, cue_class="glacier")
    assert len({b.recipe(kind).key() for kind in KINDS}) == 5  # five cache entries


def test_unknown_kind(book):
    b = book()
    message = ("unknown kind of classifier 'small'; choose one of 'main', 'hidden', "
               "'small_smoothing', 'small_no_smoothing', 'shortcut'")
    for call in (b.recipe, b.classifier, b.train):
        with pytest.raises(ValueError, match=re.escape(message)):
            call("small")


@pytest.mark.parametrize("kind", KINDS)
def test_classifier_prefers_the_model_fine_tuned_with_the_recipe(kind, book, monkeypatch,
                                                                  capsys):
    b = book(CAMCORE_QUICK="1")
    mine = (object(), camcore.book.training.TrainingReport(recipe={}, test_accuracy=0.5,
                                                        data_dir="/x/data", test_images=9))
    asked = []
    monkeypatch.setattr(b, "load_cached", lambda recipe, **k: asked.append(recipe) or mine)
    assert b.classifier(kind) is mine
    assert asked == [b.recipe(kind)]  # in quick mode the quick recipe for "main" only
    how = "the book's recipe (chapter 3)" if kind == "main" else f"book.recipe({kind!r})"
    assert capsys.readouterr().out == (
        f"Using the {b.KINDS[kind]} fine-tuned with {how}, found in the cache: trained on the "
        "data in 'data', test accuracy 50.0% on 9 images.\n")


@pytest.mark.parametrize("kind", KINDS)
def test_classifier_falls_back_to_the_shipped_one(kind, book, monkeypatch, capsys):
    b = book(CAMCORE_QUICK="1")
    monkeypatch.setattr(b, "load_cached", lambda recipe, **k: None)
    loaded = []
    monkeypatch.setattr(b.shipped, "load_shipped", lambda k: loaded.append(k) or "model")
    model, report = b.classifier(kind)
    saved = b.shipped.shipped_report(kind)
    assert model == "model" and loaded == [kind]
    assert report.test_accuracy == saved["test_accuracy"] and report.recipe == saved["recipe"]
    yours = ("Run the fine-tuning chapter to train and use your own." if kind == "main" else
             f"book.train({kind!r}) trains your own, used here from then on.")
    assert capsys.readouterr().out == (
        f"Using the book's shipped {b.KINDS[kind]} (efficientnet_lite0 fine-tuned on "
        f"{saved['train_images']} images, test accuracy {saved['test_accuracy']:.1%} on "
        f"{saved['test_images']}). {yours}\n")


@pytest.mark.parametrize("kind", ["main", "shortcut"])
def test_classifier_trains_another_backbone_and_train_caches_the_recipe(kind, book, monkeypatch,
                                                                        capsys):
    b = book(CAMCORE_BACKBONE="resnet50")
    monkeypatch.setattr(b, "load_cached", lambda recipe, **k: None)
    trained = []
    report = camcore.book.training.TrainingReport(recipe={}, test_accuracy=0.25)
    monkeypatch.setattr(b, "load_or_train",
                        lambda recipe, verbose: trained.append((recipe, verbose)) or ("m", report))
    assert b.classifier(kind, verbose=0) == ("m", report)
    assert trained == [(b.recipe(kind), 0)] and b.recipe(kind).backbone == "resnet50"
    assert capsys.readouterr().out == (f"Using the {b.KINDS[kind]} just fine-tuned here: test "
                                       "accuracy 25.0%.\n")
    assert b.train(kind) == ("m", report) and trained[-1] == (b.recipe(kind), 1)


def test_classifier_with_an_unwritable_cache_is_the_shipped_one(book, tmp_path, monkeypatch,
                                                                capsys, tiny_data):
    """The cache cannot be created (a file in the way): the reader's own model is not looked
    for, and the shipped classifier loads (its ImageNet weights converted in memory)."""
    from camcore.cache import CacheWarning

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CAMCORE_CACHE", str(tmp_path / "file" / "cache"))
    monkeypatch.setenv("CAMCORE_DATA", str(tiny_data))
    with pytest.warns(CacheWarning, match="converted in memory"):
        model, report = book().classifier()
    assert "shipped classifier" in capsys.readouterr().out
    assert model.get_layer("probs").class_names == camcore.CLASS_NAMES


def test_the_chapter_note_says_when_quick_mode_was_set_too_late(monkeypatch, capsys):
    """`%env CAMCORE_QUICK=1` after camcore was imported changes nothing: the note says so,
    and reports the mode the kernel actually runs."""
    from camcore import book

    monkeypatch.setattr(book, "QUICK", False)
    monkeypatch.setenv("CAMCORE_QUICK", "0")
    book.chapter_note("05_grad_cam")
    assert "**full mode**" in capsys.readouterr().out
    monkeypatch.setenv("CAMCORE_QUICK", "1")  # set after the import
    book.chapter_note("05_grad_cam")
    out = capsys.readouterr().out
    assert "**full mode**" in out and "CAMCORE_QUICK changed after camcore was imported" in out
    assert "restart the kernel" in out
