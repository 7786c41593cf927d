"""The explorer page: scripts/explorer.py's data, and the page drawing it in headless Chromium.

The data is checked twice: on a toy model (every stored map is the method's own map, known
identities hold) and as committed (chapter 8's images, the six methods at chapter 9's three
layers, the page's claims). A one-page book with the explorer is built with jupyter-book (the
tests marked slow), then opened from a local server and from disk with the network blocked: no
console error, each control changes the picture, the probabilities shown are the data's, and
the canvas equals ``camcore.overlay`` of the same map. Screenshots:
_build/screenshots/explorer*.png.
"""

import base64
import functools
import http.server
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import yaml
from PIL import Image

import camcore
from camcore.methods import heatmaps_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "chapters" / "data" / "explorer" / "explorer.json"
_spec = importlib.util.spec_from_file_location("explorer_script", ROOT / "scripts" / "explorer.py")
explorer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(explorer)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------------------------
# The data, on a toy model
# --------------------------------------------------------------------------------------------
def two_layer_model():
    """Input 16x16 -> Conv "early" (16x16, relu) -> Conv "late" (8x8, relu) -> GAP -> Dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="early")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="late")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


@pytest.fixture(scope="module")
def toy():
    model = two_layer_model()
    low = np.random.default_rng(10).uniform(0, 255, (3, 4, 4, 3)).astype(np.float32)
    images = np.stack([cv2.resize(im, (16, 16), interpolation=cv2.INTER_LINEAR) for im in low])
    images = np.round(images).astype(np.uint8)  # smooth: a lossy WebP keeps them close
    layers = {"8x8": "late", "16x16": "early"}
    data = explorer.explorer_data(model, images, [0, 1, 2], ["a.jpg", "b.jpg", "c.jpg"], layers,
                                  ["w", "x", "y", "z"], "a toy", log=lambda *_: None)
    return model, images, layers, json.loads(json.dumps(data))


def test_map_encoding_round_trip():
    m = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    back = explorer.decode_map(explorer.encode_map(m), (5, 7))
    assert np.abs(back - m).max() <= 0.5 / 255 + 1e-6


def test_toy_layers_and_methods(toy):
    _, _, _, data = toy
    assert [layer["shape"] for layer in data["layers"]] == [[8, 8], [16, 16]]
    assert data["layers"][0]["methods"] == list(camcore.METHODS)  # CAM at the last layer
    assert "CAM" not in data["layers"][1]["methods"]  # and nowhere else
    assert [layer["channels"] for layer in data["layers"]] == [8, 6]


def test_toy_probabilities_and_classes(toy):
    model, images, _, data = toy
    _, p = camcore.logits_and_probabilities(model, images)
    for i, im in enumerate(data["images"]):
        np.testing.assert_allclose(im["probabilities"], p[i], atol=1e-4)
        assert im["classes"] == list(np.argsort(-p[i])[:2])


@pytest.mark.parametrize("method", list(camcore.METHODS))
@pytest.mark.parametrize("key", ["8x8", "16x16"])
def test_toy_maps_are_the_methods_maps(toy, method, key):
    model, images, layers, data = toy
    layer = next(entry for entry in data["layers"] if entry["key"] == key)
    if method not in layer["methods"]:
        pytest.skip("CAM is not defined there")
    for rank in (0, 1):
        classes = [im["classes"][rank] for im in data["images"]]
        expected = camcore.METHODS[method](model, images, classes, layers[key]).maps
        stored = [explorer.decode_map(im["maps"][key][method][rank], layer["shape"])
                  for im in data["images"]]
        np.testing.assert_allclose(stored, expected, atol=0.5 / 255 + 1e-6)


def test_toy_known_answers(toy):
    """At the last layer Grad-CAM = CAM; after a ReLU, Grad-CAM++ has no term near its pole."""
    _, _, _, data = toy
    for im in data["images"]:
        assert im["maps"]["8x8"]["CAM"] == im["maps"]["8x8"]["Grad-CAM"]
        assert im["pole_share"] == {"8x8": [0.0, 0.0], "16x16": [0.0, 0.0]}


def decoded(url: str) -> np.ndarray:
    encoded = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))


def test_image_data_url_keeps_the_picture():
    low = np.random.default_rng(1).uniform(0, 255, (4, 4, 3)).astype(np.float32)
    image = np.round(cv2.resize(low, (224, 224), interpolation=cv2.INTER_LINEAR)).astype(np.uint8)
    url = explorer.image_data_url(image)
    assert url.startswith("data:image/webp;base64,") and len(url) < 20_000
    assert np.abs(decoded(url).astype(int) - image).mean() < 2


def test_toy_images_are_the_images(toy):
    _, images, _, data = toy
    for i, im in enumerate(data["images"]):
        r = [np.corrcoef(decoded(im["image"]).ravel(), other.ravel())[0, 1] for other in images]
        assert np.argmax(r) == i and r[i] > 0.9  # the same image, in the same place


# --------------------------------------------------------------------------------------------
# The committed data
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    assert DATA.is_file(), "run scripts/explorer.py"
    return json.loads(DATA.read_text())


def maps_of(data, im, key, method, rank):
    layer = next(entry for entry in data["layers"] if entry["key"] == key)
    return explorer.decode_map(im["maps"][key][method][rank], layer["shape"])


def test_committed_data_is_small(data):
    assert DATA.stat().st_size < 400 * 1024


def test_committed_images_are_chapter_8s(data):
    """The first images of each class of chapter 8's sample, as its class grids show them."""
    source = (ROOT / "chapters" / "08_comparison.ipynb").read_text()
    found = re.search(r'load_split\(\\"test\\", per_class=PER_CLASS, seed=(\d+)\)', source)
    per_class = re.search(r"PER_CLASS = book.per_class\((\d+)", source)
    rows = re.search(r"def class_grid\(label, rows=(\d+)\)", source)
    assert found and per_class and rows, "chapter 8 changed: check the explorer's images"
    assert explorer.SAMPLE == {"per_class": int(per_class[1]), "seed": int(found[1])}
    assert explorer.SHOWN <= int(rows[1])
    labels = [im["label"] for im in data["images"]]
    assert labels == sorted(labels) and np.bincount(labels).tolist() == [explorer.SHOWN] * 6


def test_committed_layers_and_methods(data):
    assert data["methods"] == list(camcore.METHODS) and data["score_cam"] == "every channel"
    assert [(entry["key"], entry["name"], entry["shape"]) for entry in data["layers"]] == [
        (key, name, [int(key.split("x")[0])] * 2) for key, name in explorer.LAYERS.items()]
    assert [("CAM" in entry["methods"]) for entry in data["layers"]] == [True, False, False]


def test_committed_probabilities(data):
    for im in data["images"]:
        p = np.array(im["probabilities"])
        assert abs(p.sum() - 1) < 2e-3
        assert im["classes"] == list(np.argsort(-p, kind="stable")[:2])


def test_committed_maps_are_normalised(data):
    for im in data["images"]:
        for entry in data["layers"]:
            for method in entry["methods"]:
                for rank in (0, 1):
                    m = maps_of(data, im, entry["key"], method, rank)
                    assert m.max() == 1 or m.max() == 0, (entry["key"], method)


def median_r(data, key, method_a, rank_a, method_b, rank_b):
    """Median over the images of the Pearson r of two of their maps (flat maps left out)."""
    r = [np.corrcoef(maps_of(data, im, key, method_a, rank_a).ravel(),
                     maps_of(data, im, key, method_b, rank_b).ravel())[0, 1]
         for im in data["images"]]
    return np.nanmedian(r)


def test_page_cam_grad_cam_hires_cam(data):
    """At 7x7 CAM, Grad-CAM and HiResCAM give one map; at 14x14 HiResCAM and Grad-CAM part."""
    for im in data["images"]:
        for rank in (0, 1):
            grad = maps_of(data, im, "7x7", "Grad-CAM", rank)
            for other in ("CAM", "HiResCAM"):
                assert np.abs(maps_of(data, im, "7x7", other, rank) - grad).max() <= 1 / 255
    parted = [np.abs(maps_of(data, im, "14x14", "HiResCAM", 0)
                     - maps_of(data, im, "14x14", "Grad-CAM", 0)).max() for im in data["images"]]
    assert min(parted) > 0.1


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # r of an empty map: NaN
def test_page_top_1_against_top_2(data):
    """At 7x7 Grad-CAM's map moves with the class; Grad-CAM++'s, Score-CAM's, LayerCAM's not."""
    assert median_r(data, "7x7", "Grad-CAM", 0, "Grad-CAM", 1) < 0.5
    for method in ("Grad-CAM++", "Score-CAM", "LayerCAM"):
        assert median_r(data, "7x7", method, 0, method, 1) > 0.7, method


def test_page_grad_cam_and_layer_cam_part_at_earlier_layers(data):
    r = [median_r(data, key, "Grad-CAM", 0, "LayerCAM", 0) for key in ("7x7", "14x14", "28x28")]
    assert r == sorted(r, reverse=True) and r[0] > 0.9 and r[2] < 0.5, r


def test_page_grad_cam_plus_plus_unstable_at_28x28(data):
    """"For many images" the caption warns: at least a third of the top-1 maps at 28x28."""
    limit = data["pole_share_limit"]
    shares = [im["pole_share"]["28x28"][0] for im in data["images"]]
    assert sum(s > limit for s in shares) >= len(shares) / 3
    assert all(im["pole_share"]["7x7"] == [0, 0] for im in data["images"])  # after a ReLU


# --------------------------------------------------------------------------------------------
# The page in Chromium
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_page_book(tmp_path_factory):
    """The book's configuration with the explorer page (and stand-ins for the two chapters it
    links to), built with -W -n."""
    book = tmp_path_factory.mktemp("explorer_book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["sphinx"].setdefault("local_extensions", {})["explorer"] = "_ext"
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    linked = ["08_comparison", "09_inside_the_network"]
    toc = {"format": "jb-book", "root": "chapters/explorer",
           "chapters": [{"file": f"chapters/{name}"} for name in linked]}
    (book / "_toc.yml").write_text(yaml.safe_dump(toc))
    (book / "chapters").mkdir()
    for name in linked:
        (book / "chapters" / f"{name}.md").write_text(f"# {name}\n\nA stand-in.\n")
    for path in ["_ext", "chapters/explorer.md", "chapters/data/explorer", "chapters/images",
                 "references.bib"]:
        (book / path).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / path).is_dir() else shutil.copy2
        copy(ROOT / path, book / path)
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(book), "-W", "-n", "--keep-going"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return book / "_build" / "html"


@pytest.fixture(scope="module")
def server(one_page_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(one_page_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed: .ci/run should have installed it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(params=["http", "file"])
def page(request, browser, one_page_book, server):
    """The explorer page, served or opened from disk; only local requests are let through."""
    local = server if request.param == "http" else "file:"
    url = (f"{server}/chapters/explorer.html" if request.param == "http"
           else (one_page_book / "chapters" / "explorer.html").as_uri())
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.errors, page.left = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local)
               else (page.left.append(route.request.url), route.abort()))
    page.goto(url, wait_until="networkidle")
    page.wait_for_function("document.querySelector('.cx-caption')?.textContent.length > 0")
    yield page
    page.close()


def canvas(page, selector=".cx-overlay") -> np.ndarray:
    url = page.eval_on_selector(selector, "c => c.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))[..., :3]


def pick(page, group, text):
    page.locator(f".cx-{group} button", has_text=text).first.click()


@pytest.mark.slow  # builds a one-page book (about 25 s)
def test_page_loads_offline_without_errors(page):
    assert page.errors == [] and page.left == []
    assert page.locator(".cx-image button").count() == 12
    assert canvas(page).std() > 10  # a picture, not a blank canvas
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explorer.png"), full_page=True)


@pytest.mark.parametrize("group, text", [("method", "Score-CAM"), ("layer", "14×14"),
                                         ("rank", "top-2"), ("image", None)])
@pytest.mark.slow  # builds a one-page book (about 25 s)
def test_each_control_changes_the_picture(page, group, text):
    before = canvas(page)
    if group == "image":
        page.locator(".cx-image button").nth(7).click()
    else:
        pick(page, group, text)
    page.wait_for_function("document.querySelector('.cx-caption').textContent.length > 0")
    page.wait_for_timeout(100)
    assert np.abs(canvas(page).astype(int) - before).mean() > 1, group
    assert page.locator(f".cx-{group} button[aria-pressed=true]").count() == 1
    assert page.errors == [] and page.left == []


@pytest.mark.slow  # builds a one-page book (about 25 s)
def test_cam_only_at_the_last_layer(page):
    pick(page, "layer", "28×28")
    assert page.locator(".cx-method button", has_text="CAM").first.is_disabled()
    pick(page, "layer", "7×7")
    pick(page, "method", "CAM")
    assert page.locator(".cx-layer button", has_text="14×14").is_disabled()


@pytest.mark.slow  # builds a one-page book (about 25 s)
def test_caption_warns_of_an_unstable_map(page, data):
    index = next(i for i, im in enumerate(data["images"])
                 if im["pole_share"]["28x28"][0] > data["pole_share_limit"])
    page.locator(".cx-image button").nth(index).click()
    pick(page, "method", "Grad-CAM++")
    pick(page, "layer", "28×28")
    share = round(100 * data["images"][index]["pole_share"]["28x28"][0])
    assert f"Not stable: {share} %" in page.inner_text(".cx-caption")
    pick(page, "layer", "7×7")
    assert "Not stable" not in page.inner_text(".cx-caption")


@pytest.mark.slow  # builds a one-page book (about 25 s)
@pytest.mark.parametrize("index", [0, 7, 11])
def test_probabilities_shown_are_the_data(page, data, index):
    page.locator(".cx-image button").nth(index).click()
    im = data["images"][index]
    shown = {row.get_attribute("data-class"): row.locator(".cx-value").inner_text()
             for row in page.locator(".cx-prob").all()}
    assert shown == {name: f"{100 * p:.1f} %"
                     for name, p in zip(data["class_names"], im["probabilities"])}
    top2 = data["class_names"][im["classes"][1]]
    assert page.locator(".cx-rank button").nth(1).inner_text() == f"top-2: {top2}"


@pytest.mark.parametrize("index, method, key, rank", [(0, "Grad-CAM", "7x7", 0),
                                                      (4, "LayerCAM", "28x28", 1),
                                                      (9, "Score-CAM", "14x14", 0)])
@pytest.mark.slow  # builds a one-page book (about 25 s)
def test_canvas_is_camcore_overlay(page, data, index, method, key, rank):
    """The browser's picture is camcore.overlay of the stored map over the stored image."""
    page.locator(".cx-image button").nth(index).click()
    pick(page, "layer", key.replace("x", "×"))
    pick(page, "method", method)
    page.locator(".cx-rank button").nth(rank).click()
    im = data["images"][index]
    small = maps_of(data, im, key, method, rank)
    image = decoded(im["image"])
    expected = camcore.overlay(image, heatmaps_of(small[None], image.shape[:2])[0])
    diff = np.abs(canvas(page).astype(int) - expected)
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 3, (diff.mean(), diff.max())
    lut = np.frombuffer(base64.b64decode(data["overlay"]["colours"]), np.uint8).reshape(256, 3)
    cells = canvas(page, ".cx-cells")
    assert (cells == lut[np.round(small * 255).astype(int)]).all()  # the map as computed
    page.screenshot(path=str(SCREENSHOTS / f"explorer-{method}-{key}.png"))
