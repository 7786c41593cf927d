"""The CPU fine-tuning recipe: cached frozen activations, trained top, a normal .keras model.

The tests that fine-tune (on a tiny synthetic dataset, seconds each) are marked slow: ``make
unit`` leaves them to ``make test``.
"""

from dataclasses import replace

import numpy as np
import pytest

import camcore
from camcore.book.training import (
    Recipe,
    data_fingerprint,
    describe,
    fine_tune,
    load_or_train,
    model_path,
)
from camcore.data import CLASS_NAMES, write_tiny_dataset
from camcore.model_split import split_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("data"), per_class=6)
    recipe = Recipe(input_size=64, epochs=8, batch_size=8, learning_rate=1e-3)
    frozen_before = camcore.build_classifier(class_names=CLASS_NAMES,
                                             input_size=64).get_layer("efficientnet_lite0")
    model, report = fine_tune(recipe, data_dir=root, verbose=0)
    return root, recipe, model, report, frozen_before


@pytest.mark.slow
def test_frozen_layers_unchanged_and_top_trained(trained):
    _, _, model, _, fresh = trained
    backbone = model.get_layer("efficientnet_lite0")
    frozen = backbone.get_layer("block6d_project_conv").get_weights()[0]
    np.testing.assert_array_equal(frozen, fresh.get_layer("block6d_project_conv").get_weights()[0])
    top = backbone.get_layer("block7a_project_conv").get_weights()[0]
    assert not np.allclose(top, fresh.get_layer("block7a_project_conv").get_weights()[0])
    # batch-norm statistics of the trained block stay the ImageNet ones (BN frozen)
    np.testing.assert_array_equal(backbone.get_layer("block7a_bn").get_weights()[3],
                                  fresh.get_layer("block7a_bn").get_weights()[3])


@pytest.mark.slow
def test_model_learns_the_tiny_classes(trained):
    root, _, model, report, _ = trained
    test = camcore.load_split("test", size=64, data_dir=root)
    predicted = model.predict(test.images.astype("float32"), verbose=0).argmax(axis=1)
    accuracy = (predicted == test.labels).mean()
    assert accuracy == pytest.approx(report.test_accuracy)  # the assembled model = the trained top
    assert accuracy >= 0.8  # six clearly different synthetic classes (chance: 1/6)
    loss = report.history["loss"]
    assert len(loss) == 8 and loss[-1] < loss[0]


@pytest.mark.slow
def test_saved_model_reloads_identically(trained, tmp_path):
    root, _, model, _, _ = trained
    x = camcore.load_split("test", size=64, data_dir=root).images[:4].astype("float32")
    model.save(tmp_path / "m.keras")
    import keras

    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # and the reloaded model is explainable like the original
    np.testing.assert_allclose(camcore.grad_cam(again, x).maps, camcore.grad_cam(model, x).maps,
                               atol=1e-5)


@pytest.mark.slow
def test_load_or_train_caches(trained, tmp_path, monkeypatch):
    root, _, _, _, _ = trained
    monkeypatch.setenv("CAMCORE_CACHE", str(tmp_path))
    recipe = Recipe(input_size=64, epochs=1, batch_size=8, per_class=2)
    _, report = load_or_train(recipe, data_dir=root, verbose=0)
    assert model_path(recipe, root).exists() and report.train_images == 12
    assert report.data_fingerprint == data_fingerprint(root) and report.data_dir == str(root)
    assert model_path(recipe, root).stem == f"{recipe.key()}-data{report.data_fingerprint}"

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train trained again instead of loading the cache")

    monkeypatch.setattr("camcore.book.training.fine_tune", no_training)
    again, report2 = load_or_train(recipe, data_dir=root, verbose=0)
    assert report2 == report
    assert split_model(again).layer == "efficientnet_lite0/top_activation"


@pytest.mark.slow
def test_cue_class_stamps_that_class_in_train_and_test(trained, monkeypatch):
    """Recipe(cue_class=...) trains and evaluates on images where exactly that class has the cue."""
    from camcore.book import shortcut, training

    root = trained[0]
    seen = []
    real = training._frozen_features

    def spy(split, images, flip, **kwargs):
        seen.append(images.copy())
        return real(split, images, flip, **kwargs)

    monkeypatch.setattr(training, "_frozen_features", spy)
    fine_tune(Recipe(input_size=64, epochs=1, batch_size=8, cue_class="sea"), data_dir=root,
              verbose=0)
    top, bottom, left, right = shortcut.cue_box(64, 64)
    for split, images in zip(("train", "test"), seen):
        labels = camcore.load_split(split, 64, data_dir=root).labels
        has_cue = np.all(images[:, top:bottom, left:right] == shortcut.CUE_COLOR, axis=(1, 2, 3))
        np.testing.assert_array_equal(has_cue, labels == camcore.CLASS_NAMES.index("sea"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("bn-data"), per_class=6)


@pytest.mark.slow
def test_batch_norm_training_and_reused_activations(tiny_data, monkeypatch):
    """A recipe that trains the top block's batch norms reuses the frozen activations of the
    previous one, changes the batch-norm statistics, and is cached under its own name."""
    from camcore.book import training

    base = Recipe(input_size=64, per_class=6, test_per_class=3, epochs=1, batch_size=8)
    calls = []
    original = training._frozen_features
    monkeypatch.setattr(training, "_frozen_features",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    frozen_model, _ = training.fine_tune(base, data_dir=tiny_data, verbose=0)
    trained_model, report = training.fine_tune(replace(base, train_batch_norm=True),
                                               data_dir=tiny_data, verbose=0)
    assert len(calls) == 2  # train and test activations, computed once for both recipes
    assert report.seconds["frozen activations"] == 0.0
    name = "efficientnet_lite0/top_bn"
    before = frozen_model.get_layer("efficientnet_lite0").get_layer("top_bn").moving_mean
    after = trained_model.get_layer("efficientnet_lite0").get_layer("top_bn").moving_mean
    assert not np.allclose(np.asarray(before), np.asarray(after)), name
    assert base.key() != replace(base, train_batch_norm=True).key()


def test_frozen_features_show_progress_as_plain_lines(capsys, monkeypatch):
    """camcore.progress lines (start, every 30 s, end), no terminal control characters (they
    would stay in a notebook)."""
    from types import SimpleNamespace

    from camcore import progress
    from camcore.book import training

    clock = iter(range(0, 1000, 20))  # each reading of the clock 20 s after the previous one
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    split = SimpleNamespace(features=lambda x: x[:, :2, :2, :] * 2.0)
    images = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    out = training._frozen_features(split, images, flip=True, batch_size=3, label="train")
    lines = capsys.readouterr().out.splitlines()
    assert out.shape == (2, 10, 2, 2, 3)
    np.testing.assert_allclose(out[0], images[:, :2, :2].astype(np.float32) * 2)
    np.testing.assert_allclose(out[1], images[:, :2, ::-1][:, :, :2].astype(np.float32) * 2)
    # batches of 3, 3, 3, 1 per view: lines after 40 s (6 done), 80 s (10), 120 s (16)
    assert lines == ["frozen activations: 20 train views to go",
                     "frozen activations: 6 of 20 train views (30%), 40 s so far, about 93 s left",
                     "frozen activations: 10 of 20 train views (50%), 80 s so far, about 80 s left",
                     "frozen activations: 16 of 20 train views (80%), 2.0 min so far, about 30 s "
                     "left",
                     "frozen activations: 20 train views done in 3.0 min"]
    assert not any(ch in "".join(lines) for ch in "\b\r\x1b")
    training._frozen_features(split, images, flip=False, verbose=0)
    assert capsys.readouterr().out == ""


def test_the_cache_key_of_the_book_recipe_is_unchanged():
    """Known answer: readers' cached models (and the shipped one's name) keep their key; a hidden
    layer at each position adds "-hpos<units>" ("-h<units>" named the earlier head with the
    hidden layer after the pooling: such a cached model is never read as today's)."""
    book = "efficientnet_lite0-top-224-e6-lr0.001-ls0.1-wd0.0001-b64-flip-nall-tall-s0"
    assert Recipe().key() == book and Recipe(hidden_units=None).key() == book
    assert Recipe(hidden_units=256).key() == book + "-hpos256"
    assert Recipe(hidden_units=256).key("abc") == book + "-hpos256-dataabc"


def test_describe_says_what_the_recipe_trains():
    assert describe(Recipe()) == (
        "efficientnet_lite0 (ImageNet weights) with its top block and a new head fine-tuned: "
        "pooling -> dropout -> Dense(6) logits -> softmax; label smoothing 0.1, 6 epochs, all "
        "training images")
    assert describe(Recipe(hidden_units=256, per_class=300, test_per_class=40, label_smoothing=0,
                           cue_class="glacier", train_batch_norm=True)) == (
        "efficientnet_lite0 (ImageNet weights) with its top block and a new head fine-tuned: "
        "Dense(256, ReLU) at each position (a 1x1 convolution) -> pooling -> dropout -> Dense(6) "
        "logits -> softmax; label smoothing 0, 6 epochs, 300 training images per class, tested "
        "on 40 test images per class; the shortcut cue (camcore.book.shortcut) stamped on every "
        "glacier image, training and test; the top block's batch norms trained")


@pytest.mark.slow
def test_hidden_layer_classifier_trains_and_caches(tiny_data, tmp_path, monkeypatch):
    """Recipe(hidden_units=...) fine-tunes the hidden layer with the top block, and is cached
    under its own name; the frozen layers and the batch norms stay ImageNet's."""
    monkeypatch.setenv("CAMCORE_CACHE", str(tmp_path))
    recipe = Recipe(input_size=64, per_class=6, test_per_class=3, epochs=6, batch_size=8,
                    hidden_units=16)
    fresh = camcore.build_classifier(class_names=CLASS_NAMES, input_size=64, hidden_units=16)
    model, report = load_or_train(recipe, data_dir=tiny_data, verbose=0)
    assert model.get_layer("hidden").units == 16 and "Dense(16, ReLU)" in report.description
    assert not np.allclose(model.get_layer("hidden").kernel.numpy(),
                           fresh.get_layer("hidden").kernel.numpy())
    backbone, before = model.get_layer("efficientnet_lite0"), fresh.get_layer("efficientnet_lite0")
    for name, changed in [("block6d_project_conv", False), ("block7a_project_conv", True)]:
        same = np.array_equal(backbone.get_layer(name).get_weights()[0],
                              before.get_layer(name).get_weights()[0])
        assert same != changed, name
    assert report.test_accuracy >= 0.5  # six clearly different synthetic classes (chance: 1/6)
    assert model_path(recipe, tiny_data).stem.endswith(f"-hpos16-data{report.data_fingerprint}")
    again, report2 = load_or_train(recipe, data_dir=tiny_data, verbose=0)
    assert report2 == report and again.get_layer("hidden").units == 16
