"""Tests for camcore.data: dataset discovery, layouts, listing, subsetting and robust loading."""

import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from camcore import data
from camcore.data import (
    CLASS_NAMES,
    DATA_ENV_VAR,
    CorruptImageWarning,
    DatasetNotFoundError,
    OddSizeWarning,
    find_dataset,
    list_images,
    load_images,
    load_split,
    split_dir,
    stratified_subset,
    write_tiny_dataset,
)

SHARED_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "intel-image-classification"
)
REAL_DATA = Path(os.environ.get(DATA_ENV_VAR) or SHARED_DATA)
HAS_REAL_DATA = (REAL_DATA / "seg_train").is_dir() and (REAL_DATA / "seg_test").is_dir()
KNOWN_COUNTS = {  # per-class counts of the shared development subset, in CLASS_NAMES order
    "train": [1448, 1396, 1344, 1484, 1513, 1556],
    "test": [344, 317, 384, 324, 385, 404],
}
needs_real_data = pytest.mark.skipif(
    not HAS_REAL_DATA,
    reason=f"real dataset not found at {REAL_DATA} (set {DATA_ENV_VAR} to run these)",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny synthetic dataset (4 images per class and split), shared by read-only tests."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"), per_class=4)


@pytest.fixture
def tolerant_decoder(monkeypatch):
    """Imitate OpenCV builds that decode a truncated JPEG (half grey) instead of failing."""
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: np.full((150, 150, 3), 128, np.uint8))


def _fail_download(*args, **kwargs):
    raise ConnectionError("simulated: no internet")


# ---------------------------------------------------------------- find_dataset


def test_explicit_path_wins_over_env(tiny, tmp_path, monkeypatch):
    other = write_tiny_dataset(tmp_path / "other", per_class=1)
    monkeypatch.setenv(DATA_ENV_VAR, str(other))
    assert find_dataset(tiny) == Path(tiny)


def test_env_var_used(tiny, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tiny))
    assert find_dataset() == Path(tiny)


def test_explicit_bad_path_raises_without_falling_through(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tiny))  # valid, but must not be used
    with pytest.raises(DatasetNotFoundError, match=DATA_ENV_VAR):
        find_dataset(tmp_path / "nothing-here")


def test_bad_env_var_raises(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        find_dataset()


def _check_help_message(message):
    for needle in (DATA_ENV_VAR, "kagglehub", "puneet6060/intel-image-classification",
                   "https://www.kaggle.com/datasets/puneet6060/intel-image-classification",
                   "seg_train/seg_train"):
        assert needle in message


def test_kagglehub_failure_gives_helpful_error(monkeypatch):
    kagglehub = pytest.importorskip("kagglehub")
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(kagglehub, "dataset_download", _fail_download)
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset()
    _check_help_message(str(info.value))
    assert "simulated: no internet" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_kagglehub_not_installed_gives_helpful_error(monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # makes `import kagglehub` fail
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset()
    _check_help_message(str(info.value))
    assert "ImportError" in str(info.value) or "ModuleNotFoundError" in str(info.value)


def test_kagglehub_path_is_used(tiny, monkeypatch):
    kagglehub = pytest.importorskip("kagglehub")
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, *a, **k: str(tiny))
    assert find_dataset() == Path(tiny)


PROBLEMS = {
    "missing": "does not exist",
    "file": "is a file, not a folder",
    "no layout": "does not hold the dataset (no seg_train/<class> or seg_test/<class> folders)",
}


@pytest.mark.parametrize("state", PROBLEMS)
@pytest.mark.parametrize("via", ["path", "env"])
def test_bad_folder_message_says_what_is_wrong(tmp_path, monkeypatch, via, state):
    folder = tmp_path / "x" / "y"
    if state == "file":
        folder.parent.mkdir()
        folder.write_text("not a folder")
    elif state == "no layout":
        (folder / "seg_train" / "not-a-class").mkdir(parents=True)
    monkeypatch.setenv(DATA_ENV_VAR, str(folder))
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset(folder if via == "path" else None)
    message = str(info.value)
    source = "The dataset folder" if via == "path" else f"{DATA_ENV_VAR}={folder}: the folder"
    assert message.startswith(f"{source} {folder} {PROBLEMS[state]}.\n\n")
    _check_help_message(message)


@pytest.mark.parametrize("via", ["env", "data_dir"])
def test_tilde_is_expanded(tmp_path, monkeypatch, via):
    """IPython's ``%env CAMCORE_DATA=~/data/...`` leaves the ``~`` unexpanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    root = write_tiny_dataset(tmp_path / "data" / "intel", per_class=1)
    if via == "env":
        monkeypatch.setenv(DATA_ENV_VAR, "~/data/intel")
        data_dir = None
    else:
        monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "elsewhere"))  # must not be used
        data_dir = "~/data/intel"
    assert find_dataset(data_dir) == root
    split = load_split("test", size=32, data_dir=data_dir)
    assert len(split) == 6 and all(p.is_relative_to(root) for p in split.paths)


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", ["nested", "flat", "plain"])
def test_layouts(tmp_path, layout):
    root = write_tiny_dataset(tmp_path / "d", per_class=2)
    for split in ("train", "test"):
        nested = root / f"seg_{split}" / f"seg_{split}"
        if layout == "flat":  # root/seg_train/<class>
            shutil.move(nested, root / "tmp")
            shutil.rmtree(root / f"seg_{split}")
            shutil.move(root / "tmp", root / f"seg_{split}")
        elif layout == "plain":  # root/train/<class>
            shutil.move(nested, root / split)
            shutil.rmtree(root / f"seg_{split}")
    expected = {"nested": "seg_{s}/seg_{s}", "flat": "seg_{s}", "plain": "{s}"}[layout]
    assert find_dataset(root) == root
    for split in ("train", "test"):
        assert split_dir(root, split) == root / expected.format(s=split)
        paths, labels = list_images(root, split)
        assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        assert all(p.parent.name == CLASS_NAMES[y] for p, y in zip(paths, labels))
    assert len(load_split("test", size=32, data_dir=root)) == 12


def test_split_dir_errors(tmp_path):
    (tmp_path / "seg_train" / "seg_train" / "not-a-class").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="seg_train"):
        split_dir(tmp_path, "train")
    with pytest.raises(ValueError):
        split_dir(tmp_path, "valid")


def test_test_split_alone_is_enough(tmp_path, monkeypatch):
    root = write_tiny_dataset(tmp_path / "d", per_class=2)
    shutil.rmtree(root / "seg_train")
    assert find_dataset(root) == root
    monkeypatch.setenv(DATA_ENV_VAR, str(root))
    assert find_dataset() == root
    assert len(load_split("test", size=32)) == 12
    with pytest.raises(DatasetNotFoundError) as info:
        load_split("train", size=32)
    message = str(info.value)
    assert message.startswith(f"The 'train' split is missing under {root}: ")
    assert f"{root / 'seg_train' / 'seg_train'}/<class>/" in message  # where it looked


# ---------------------------------------------------------------- listing and loading


def _check_listing(root, split, expected_counts=None):
    """list_images agrees with an independent os.listdir count, and is sorted by class then name."""
    paths, labels = list_images(root, split)
    assert labels.dtype == np.int64 and len(paths) == len(labels)
    folder = split_dir(root, split)
    listdir_counts = [len(os.listdir(folder / name)) for name in CLASS_NAMES]
    assert np.bincount(labels, minlength=len(CLASS_NAMES)).tolist() == listdir_counts
    if expected_counts is not None:
        assert listdir_counts == expected_counts
    assert np.all(np.diff(labels) >= 0)
    for label in range(len(CLASS_NAMES)):
        names = [p.name for p, y in zip(paths, labels) if y == label]
        assert names == sorted(names)


def _check_small_load(root):
    split = load_split("train", size=224, per_class=3, data_dir=root)
    assert split.images.shape == (18, 224, 224, 3)
    assert split.images.dtype == np.uint8
    assert split.labels.dtype == np.int64
    assert split.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert len(split) == len(split.paths) == 18
    assert all(p.parent.name == CLASS_NAMES[y] for p, y in zip(split.paths, split.labels))
    assert split.images.std() > 10  # real pixels, not an empty buffer


@needs_real_data
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_listing(split):
    known = KNOWN_COUNTS[split] if REAL_DATA.resolve() == SHARED_DATA.resolve() else None
    _check_listing(REAL_DATA, split, known)
    assert sorted(os.listdir(split_dir(REAL_DATA, split))) == list(CLASS_NAMES)


@needs_real_data
def test_real_small_load():
    _check_small_load(REAL_DATA)


@pytest.mark.parametrize("split", ["train", "test"])
def test_tiny_listing(tiny, split):
    _check_listing(tiny, split, [4] * len(CLASS_NAMES))


def test_tiny_small_load(tiny):
    _check_small_load(tiny)


def test_tiny_classes_are_distinct(tiny):
    split = load_split("train", size=64, data_dir=tiny)
    means = np.array([split.images[split.labels == c].mean(axis=(0, 1, 2)) for c in range(6)])
    dists = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert dists[~np.eye(6, dtype=bool)].min() > 10  # every pair of classes differs in colour


def test_load_images_matches_cv2(tiny):
    paths, _ = list_images(tiny, "test")
    images, kept = load_images(paths[:2], size=150)
    assert kept.tolist() == [0, 1]
    expected = cv2.cvtColor(cv2.imread(str(paths[1])), cv2.COLOR_BGR2RGB)  # RGB, not BGR
    np.testing.assert_array_equal(images[1], expected)
    upscaled, _ = load_images(paths[1:2], size=224)
    linear = cv2.resize(expected, (224, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(upscaled[0], linear)


def test_missing_class_folder_warns(tmp_path):
    root = write_tiny_dataset(tmp_path, per_class=1)
    shutil.rmtree(root / "seg_test" / "seg_test" / "glacier")
    with pytest.warns(UserWarning, match="glacier"):
        _, labels = list_images(root, "test")
    assert labels.tolist() == [0, 1, 3, 4, 5]


def test_unknown_class_folder_warns_and_is_ignored(tmp_path):
    root = write_tiny_dataset(tmp_path, per_class=1)
    folder = root / "seg_train" / "seg_train"
    (folder / "cats").mkdir()
    shutil.copy(folder / "sea" / "sea_000.jpg", folder / "cats" / "cat.jpg")
    (folder / ".ipynb_checkpoints").mkdir()  # hidden: ignored without a warning
    with pytest.warns(UserWarning) as record:
        split = load_split("train", size=32, data_dir=root)
    assert [str(w.message) for w in record] == [(
        f"{folder}: ignored unknown class folder(s) cats; only {', '.join(CLASS_NAMES)} are "
        f"loaded. Move the folder(s) out of {folder} to silence this warning."
    )]
    assert split.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert "cats" not in {p.parent.name for p in split.paths}


def test_no_images_is_an_error(tmp_path):
    (tmp_path / "seg_test" / "seg_test" / "sea").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list_images(tmp_path, "test")


def test_corrupt_files_are_skipped(tmp_path):
    root = write_tiny_dataset(tmp_path, per_class=4)
    forest = root / "seg_train" / "seg_train" / "forest"
    good = (forest / "forest_000.jpg").read_bytes()
    (forest / "forest_001b_truncated.jpg").write_bytes(good[: len(good) // 2])
    (forest / "forest_002b_empty.jpg").write_bytes(b"")
    (forest / "x.jpg").write_text("this is not an image\n")
    with pytest.warns(CorruptImageWarning, match=r"skipped 3 image") as record:
        split = load_split("train", size=64, data_dir=root)
    corrupt = [w for w in record if issubclass(w.category, CorruptImageWarning)]
    assert len(corrupt) == 1
    assert "x.jpg" in str(corrupt[0].message)
    assert len(split) == 24 and split.images.shape == (24, 64, 64, 3)
    assert np.bincount(split.labels).tolist() == [4] * 6
    bad = {"forest_001b_truncated.jpg", "forest_002b_empty.jpg", "x.jpg"}
    assert not bad & {p.name for p in split.paths}
    # labels/paths stay aligned with the kept images
    assert all(p.parent.name == CLASS_NAMES[y] for p, y in zip(split.paths, split.labels))
    for i in (0, 5, 6, 23):
        ref, _ = load_images([split.paths[i]], size=64)
        np.testing.assert_array_equal(split.images[i], ref[0])


def test_truncated_jpeg_skipped_even_if_decoder_tolerates_it(tiny, tmp_path, tolerant_decoder):
    """Old OpenCV builds decode a truncated JPEG (half grey): the marker walk catches it."""
    good = next(Path(tiny).rglob("*.jpg"))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.warns(CorruptImageWarning, match="truncated.jpg"):
        _, kept = load_images([good, truncated], size=32)
    assert kept.tolist() == [0]


NOISE = (np.random.default_rng(3).random((150, 150, 3)) * 255).astype(np.uint8)  # many FF00s


def _encode(ext, image=NOISE, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _with_exif_thumbnail(jpeg: bytes) -> bytes:
    """``jpeg`` with an EXIF-like APP1 segment holding a complete 8x8 JPEG thumbnail."""
    payload = b"Exif\0\0" + _encode(".jpg", np.full((8, 8, 3), 90, np.uint8))
    app1 = b"\xff\xe1" + (2 + len(payload)).to_bytes(2, "big") + payload
    return jpeg[:2] + app1 + jpeg[2:]


JPEG = _encode(".jpg")
COMPLETE_JPEGS = {
    "baseline": JPEG,
    "progressive": _encode(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    "restart markers": _encode(".jpg", params=(cv2.IMWRITE_JPEG_RST_INTERVAL, 1)),
    "trailing bytes": JPEG + b"data appended by a camera after the end-of-image marker",
    "trailing zeros": JPEG + bytes(64),
    "EXIF thumbnail": _with_exif_thumbnail(JPEG),
}
INCOMPLETE_JPEGS = {
    "cut mid-scan": JPEG[: len(JPEG) // 2],
    "end marker cut off": JPEG[:-2],
    "headers only": JPEG[: JPEG.index(b"\xff\xda")],
    "EXIF thumbnail, main image cut": _with_exif_thumbnail(JPEG)[:-100],
    "garbage after SOI": b"\xff\xd8garbage\xff\xd9",
}


@pytest.mark.parametrize("kind", COMPLETE_JPEGS)
def test_complete_jpeg_is_loaded(tmp_path, kind):
    path = tmp_path / "image.jpg"
    path.write_bytes(COMPLETE_JPEGS[kind])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images, kept = load_images([path], size=150)
    assert kept.tolist() == [0]
    baseline = cv2.imdecode(np.frombuffer(JPEG, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]  # RGB
    assert np.abs(images[0].astype(int) - baseline).mean() < 2


@pytest.mark.parametrize("kind", INCOMPLETE_JPEGS)
def test_incomplete_jpeg_is_skipped(tmp_path, tolerant_decoder, kind):
    path = tmp_path / "image.jpg"
    path.write_bytes(INCOMPLETE_JPEGS[kind])
    with pytest.warns(CorruptImageWarning, match=r"skipped 1 image file.*image\.jpg"):
        images, kept = load_images([path], size=32)
    assert kept.size == 0 and images.shape == (0, 32, 32, 3)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff"])
def test_other_format_named_jpg_is_loaded(tmp_path, ext):
    """The format is judged by the content: a PNG (BMP, TIFF) named .jpg is not corrupt."""
    path = tmp_path / "actually_not_a_jpeg.jpg"
    path.write_bytes(_encode(ext))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images, kept = load_images([path], size=150)
    assert kept.tolist() == [0]
    np.testing.assert_array_equal(images[0], NOISE[..., ::-1])  # lossless, BGR -> RGB


def test_jpeg_named_png_is_checked_too(tmp_path, tolerant_decoder):
    path = tmp_path / "truncated_jpeg.png"
    path.write_bytes(INCOMPLETE_JPEGS["cut mid-scan"])
    with pytest.warns(CorruptImageWarning, match=r"truncated_jpeg\.png"):
        _, kept = load_images([path], size=32)
    assert kept.size == 0


@pytest.mark.parametrize("size", [0, -224, 224.5, 224.0, "224", None, True])
@pytest.mark.parametrize("loader", ["load_images", "load_split"])
def test_bad_size_is_rejected(tiny, loader, size):
    message = r"^size must be a positive integer \(the side in pixels, e\.g\. 224\), not "
    with pytest.raises(ValueError, match=message + re.escape(repr(size)) + "$"):
        if loader == "load_images":
            load_images(list_images(tiny, "test")[0][:1], size=size)
        else:
            load_split("test", size=size, data_dir=tiny)


def test_numpy_integer_size_is_accepted(tiny):
    images, _ = load_images(list_images(tiny, "test")[0][:1], size=np.int64(32))
    assert images.shape == (1, 32, 32, 3)


def test_load_images_reports_kept_indices(tiny, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage\xff\xd9")
    paths, _ = list_images(tiny, "test")
    with pytest.warns(CorruptImageWarning, match=r"skipped 2 image file.*bad\.jpg"):
        images, kept = load_images([bad, paths[0], bad, paths[1]], size=32)
    assert kept.tolist() == [1, 3] and images.shape == (2, 32, 32, 3)


def test_odd_size_is_resized_and_reported(tmp_path):
    root = write_tiny_dataset(tmp_path, per_class=2)
    odd = np.full((113, 150, 3), 200, np.uint8)  # 150 wide, 113 high
    cv2.imwrite(str(root / "seg_test" / "seg_test" / "sea" / "odd.jpg"), odd)
    with pytest.warns(OddSizeWarning, match=r"^1 image") as record:
        split = load_split("test", size=96, data_dir=root)
    odd_warnings = [w for w in record if issubclass(w.category, OddSizeWarning)]
    assert len(odd_warnings) == 1 and "odd.jpg (150x113)" in str(odd_warnings[0].message)
    assert split.images.shape == (13, 96, 96, 3)
    i = [p.name for p in split.paths].index("odd.jpg")
    assert split.labels[i] == CLASS_NAMES.index("sea")
    assert np.abs(split.images[i].astype(int) - 200).max() <= 3


def test_no_warnings_for_clean_data(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_split("test", size=32, data_dir=tiny)


def test_progress_printed_for_long_loads(tiny, capsys):
    paths, _ = list_images(tiny, "test")
    load_images(paths, size=16, progress=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if "loaded" in line]
    assert len(lines) == 4 and lines[-1].strip().startswith("loaded 24/24")


# ---------------------------------------------------------------- stratified_subset

LABELS = np.repeat(np.arange(6), [10, 7, 3, 5, 1, 20])


def test_subset_per_class_counts():
    idx = stratified_subset(LABELS, per_class=5, seed=1)
    assert np.bincount(LABELS[idx], minlength=6).tolist() == [5, 5, 3, 5, 1, 5]
    assert np.all(np.diff(idx) > 0)  # sorted, no duplicates
    assert idx.dtype == np.int64


def test_subset_fraction_rounding():
    idx = stratified_subset(LABELS, fraction=0.3, seed=0)
    # 10*.3=3, 7*.3=2.1->2, 3*.3=0.9->1, 5*.3=1.5->2 (halves up), 1*.3=0.3->1 (at least 1), 20*.3=6
    assert np.bincount(LABELS[idx], minlength=6).tolist() == [3, 2, 1, 2, 1, 6]
    idx = stratified_subset(LABELS, fraction=0.5, seed=0)
    # 5, 3.5->4, 1.5->2, 2.5->3 (not banker's 2), 0.5->1, 10
    assert np.bincount(LABELS[idx], minlength=6).tolist() == [5, 4, 2, 3, 1, 10]
    assert len(stratified_subset(LABELS, fraction=1.0)) == len(LABELS)


def test_subset_determinism():
    a = stratified_subset(LABELS, per_class=4, seed=7)
    b = stratified_subset(LABELS, per_class=4, seed=7)
    np.testing.assert_array_equal(a, b)
    others = [stratified_subset(LABELS, per_class=4, seed=s) for s in range(5)]
    assert any(not np.array_equal(a, o) for o in others)


BAD_ARGS = [{}, {"per_class": 2, "fraction": 0.5}, {"per_class": 0}, {"fraction": 1.5}]


@pytest.mark.parametrize("kwargs", BAD_ARGS)
def test_subset_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        stratified_subset(LABELS, **kwargs)


def test_public_constants():
    assert CLASS_NAMES == ("buildings", "forest", "glacier", "mountain", "sea", "street")
    assert data.DATA_ENV_VAR == "CAMCORE_DATA"
    assert data.KAGGLE_HANDLE == "puneet6060/intel-image-classification"
    assert issubclass(CorruptImageWarning, UserWarning) and issubclass(OddSizeWarning, UserWarning)


def test_a_misspelt_split_fails_before_looking_for_data(monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(data, "find_dataset", lambda *a, **k: pytest.fail("looked for data"))
    with pytest.raises(ValueError, match="split must be 'train' or 'test', not 'tset'"):
        load_split("tset")


def test_no_download_looks_only_in_kagglehub_cache(tmp_path, monkeypatch):
    """download=False never calls kagglehub: the newest cached version, or a clear error."""
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # importing it would fail
    with pytest.raises(DatasetNotFoundError, match="kagglehub's cache holds no copy"):
        find_dataset(download=False)
    versions = tmp_path / "cache" / "datasets" / data.KAGGLE_HANDLE / "versions"
    for v in ("1", "2"):
        write_tiny_dataset(versions / v, per_class=1)
    assert find_dataset(download=False) == versions / "2"


# ---------------------------------------------------------------- one path, other formats, bad args


@pytest.mark.parametrize("as_type", [str, Path])
def test_one_path_is_one_image(tiny, as_type):
    """load_images("my_photo.jpg") iterated over the characters before."""
    path = next(Path(tiny).rglob("*.jpg"))
    images, kept = load_images(as_type(path), size=32)
    reference, _ = load_images([path], size=32)
    assert images.shape == (1, 32, 32, 3) and kept.tolist() == [0]
    np.testing.assert_array_equal(images, reference)


def test_a_folder_is_not_an_image(tiny):
    with pytest.raises(ValueError, match=r"is a folder\. List its images, e\.g\. sorted\(Path"):
        load_images(tiny)


def test_webp_is_loaded(tmp_path):
    """A lossless WebP decodes to exactly its pixels, in the listing and in load_images."""
    root = write_tiny_dataset(tmp_path, per_class=1)
    folder = root / "seg_test" / "seg_test" / "sea"
    (folder / "photo.webp").write_bytes(_encode(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 101)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths, _ = list_images(root, "test")
        assert folder / "photo.webp" in paths
        images, _ = load_images(folder / "photo.webp", size=150)
    np.testing.assert_array_equal(images[0], NOISE[..., ::-1])  # encoded as BGR, loaded as RGB


def test_webp_this_opencv_cannot_read_is_named(tmp_path, monkeypatch):
    """An OpenCV without WebP: the files are named, with the fix, not skipped without a word."""
    path = tmp_path / "photo.webp"
    path.write_bytes(_encode(".webp"))
    monkeypatch.setattr(data, "_WEBP", False)
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: None)
    with pytest.warns(data.UnreadFileWarning, match=r"skipped 1 WebP image\(s\), which this "
                                                    r"OpenCV build cannot read: photo\.webp\. "
                                                    r"Convert them to JPEG or PNG"):
        images, kept = load_images([path], size=32)
    assert len(images) == 0 and kept.tolist() == []


def test_other_files_in_class_folders_are_named(tmp_path):
    root = write_tiny_dataset(tmp_path, per_class=1)
    folder = root / "seg_train" / "seg_train" / "forest"
    (folder / "notes.txt").write_text("hello")
    (folder / "anim.gif").write_bytes(b"GIF89a")
    (folder / ".DS_Store").write_bytes(b"")  # hidden: ignored without a word
    with pytest.warns(data.UnreadFileWarning, match=r"ignored 2 file\(s\) that are not "
                                                    r"\.jpg/\.jpeg/\.png/\.webp images: "
                                                    r"forest/anim\.gif, forest/notes\.txt"):
        paths, _ = list_images(root, "train")
    assert len(paths) == 6


@pytest.mark.parametrize("kwargs, message", [
    ({"per_class": 2.5}, r"per_class must be an integer >= 1; got 2\.5"),
    ({"per_class": "3"}, r"per_class must be an integer >= 1; got '3'"),
    ({"per_class": True}, r"per_class must be an integer >= 1; got True"),
    ({"fraction": "0.5"}, r"fraction must be a number in \(0, 1\]; got '0\.5'"),
    ({"per_class": 2, "seed": "abc"}, r"seed must be an integer >= 0 .*; got 'abc'"),
    ({"per_class": 2, "seed": 1.5}, r"seed must be an integer >= 0"),
    ({"per_class": 2, "seed": -1}, r"seed must be an integer >= 0"),
])
def test_subset_arguments_get_clear_errors(kwargs, message, monkeypatch):
    with pytest.raises(ValueError, match=message):
        stratified_subset(LABELS, **kwargs)
    monkeypatch.setattr(data, "find_dataset", lambda *a, **k: pytest.fail("looked for data"))
    with pytest.raises(ValueError, match=message):  # before looking for (or downloading) data
        load_split("test", **kwargs)


def test_numpy_integer_subset_arguments_are_accepted():
    np.testing.assert_array_equal(
        stratified_subset(LABELS, per_class=np.int64(4), seed=np.int32(1)),
        stratified_subset(LABELS, per_class=4, seed=1))
