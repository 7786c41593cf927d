"""The shipped classifier: the fine-tuned layers only, checked by SHA-256, equal to the model."""

import shutil

import numpy as np
import pytest

from camcore import build_classifier
from camcore.book import shipped
from camcore.cache import CACHE_ENV_VAR


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(tmp_path_factory.mktemp("cache")))
        yield


def test_shipped_weights_are_the_trained_layers_and_a_few_mb():
    report = shipped.shipped_report()
    assert report["weights_sha256"] == shipped.WEIGHTS_SHA256
    assert report["test_accuracy"] > 0.9 and report["recipe"]["backbone"] == "efficientnet_lite0"
    assert shipped.WEIGHTS.stat().st_size < 5_000_000
    model = shipped.load_shipped()
    untrained = build_classifier(report["recipe"]["backbone"])
    trained = shipped.trained_layers(model, "efficientnet_lite0")
    assert "logits" in trained and "top_conv" in trained and "block7a_expand_conv" in trained
    assert "block6d_project_conv" not in trained  # frozen: the ImageNet weights
    for layer in model.get_layer("efficientnet_lite0").layers + model.layers:
        if not layer.weights or layer.name in trained or layer.name == "efficientnet_lite0":
            continue
        other = (untrained.get_layer("efficientnet_lite0").get_layer(layer.name)
                 if layer.name in [l.name for l in untrained.get_layer("efficientnet_lite0").layers]
                 else untrained.get_layer(layer.name))
        for a, b in zip(layer.get_weights(), other.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_export_then_load_gives_the_same_predictions(tmp_path):
    model = shipped.load_shipped()
    report = shipped.shipped_report()
    from camcore.book.training import TrainingReport

    fields = {k: report[k] for k in TrainingReport.__dataclass_fields__}
    digest = shipped.export(model, TrainingReport(**fields), tmp_path / "w.npz")
    again = shipped.load_shipped(tmp_path / "w.npz", digest)
    x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("damage", ["missing", "flipped byte"])
def test_damaged_shipped_weights_are_refused(tmp_path, damage):
    path = tmp_path / "w.npz"
    shutil.copy(shipped.WEIGHTS, path)
    shutil.copy(shipped.REPORT, tmp_path / "w.json")
    if damage == "missing":
        path.unlink()
        match = "are missing.*reinstall"
    else:
        data = bytearray(path.read_bytes())
        data[1000] ^= 1
        path.write_bytes(bytes(data))
        match = "SHA-256 .* expected .*damaged"
    with pytest.raises(shipped.ShippedWeightsError, match=match):
        shipped.load_shipped(path)
