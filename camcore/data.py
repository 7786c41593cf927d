"""Find, list and load the Intel Image Classification dataset (numpy + OpenCV only).

The Kaggle download (``puneet6060/intel-image-classification``) unpacks as::

    <root>/seg_train/seg_train/<class>/<id>.jpg
    <root>/seg_test/seg_test/<class>/<id>.jpg

with 150x150 RGB JPEGs in six classes. Typical use::

    train = load_split("train", size=224, per_class=100)
    train.images.shape   # (600, 224, 224, 3), uint8 RGB
"""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camcore.checks import check_count, check_number, check_seed

CLASS_NAMES = ("buildings", "forest", "glacier", "mountain", "sea", "street")
DATA_ENV_VAR = "CAMCORE_DATA"
KAGGLE_HANDLE = "puneet6060/intel-image-classification"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_HANDLE}"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
ORIGINAL_SIZE = (150, 150)  # (height, width) of the dataset's images

_HOW_TO_GET_DATA = f"""\
How to get the Intel Image Classification dataset:
  * with kagglehub (needs internet once; cached afterwards):
        import kagglehub
        path = kagglehub.dataset_download("{KAGGLE_HANDLE}")
  * or download and unzip it from {KAGGLE_URL}
then, if it is not in kagglehub's cache, point the environment variable {DATA_ENV_VAR}
at the unzipped folder (or pass data_dir=...). Expected layout:
    <folder>/seg_train/seg_train/<class>/*.jpg
    <folder>/seg_test/seg_test/<class>/*.jpg
with <class> in {", ".join(CLASS_NAMES)}."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset folder could not be found or does not have the expected layout."""


class CorruptImageWarning(UserWarning):
    """Some image files could not be decoded and were skipped."""


class OddSizeWarning(UserWarning):
    """Some images did not have the dataset's usual 150x150 size (they were resized anyway)."""


class UnreadFileWarning(UserWarning):
    """Some files were not loaded: not an image format camcore reads, or one this OpenCV lacks."""


def split_dir(root, split: str) -> Path:
    """The folder directly containing the class folders of ``split``.

    Accepts Kaggle's nested layout ``root/seg_train/seg_train/<class>``, the flat
    ``root/seg_train/<class>`` and ``root/train/<class>``. A candidate fits when it
    contains at least one of the six class folders. ``~`` in ``root`` is expanded.

    Parameters
    ----------
    root : str or Path
        The dataset's folder.
    split : {"train", "test"}

    Returns
    -------
    Path

    Examples
    --------
    >>> split_dir(write_tiny_dataset(tmp / "split_dir"), "train").parts[-2:]
    ('seg_train', 'seg_train')
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = Path(root).expanduser()
    candidates = [
        root / f"seg_{split}" / f"seg_{split}",
        root / f"seg_{split}",
        root / split,
    ]
    for folder in candidates:
        if any((folder / name).is_dir() for name in CLASS_NAMES):
            return folder
    looked = "\n".join(f"    {c}/<class>/" for c in candidates)
    raise DatasetNotFoundError(
        f"The {split!r} split is missing under {root}: none of these folders holds a class "
        f"folder ({', '.join(CLASS_NAMES)}):\n{looked}\n"
        f"Kaggle's download has both splits: unzip all of it into {root}, or point "
        f"{DATA_ENV_VAR} (or data_dir=...) at a folder that has the {split} split."
    )


def _holds_data(root: Path) -> bool:
    """Whether ``root`` has the class folders of at least one split."""
    for split in ("train", "test"):
        try:
            split_dir(root, split)
            return True
        except DatasetNotFoundError:
            pass
    return False


def _checked_root(path, source: str) -> Path:
    """``path`` with ``~`` expanded, or a ``DatasetNotFoundError`` saying what is wrong with it."""
    root = Path(path).expanduser()
    if not root.exists():
        problem = "does not exist"
    elif not root.is_dir():
        problem = "is a file, not a folder"
    elif not _holds_data(root):
        problem = "does not hold the dataset (no seg_train/<class> or seg_test/<class> folders)"
    else:
        return root
    raise DatasetNotFoundError(f"{source} {root} {problem}.\n\n{_HOW_TO_GET_DATA}")


def _kagglehub_cached() -> Path | None:
    """The newest copy of the dataset in kagglehub's cache, without downloading anything."""
    cache = Path(os.environ.get("KAGGLEHUB_CACHE") or "~/.cache/kagglehub").expanduser()
    versions = cache / "datasets" / KAGGLE_HANDLE / "versions"
    found = sorted((p for p in versions.glob("*") if p.name.isdigit() and _holds_data(p)),
                   key=lambda p: int(p.name)) if versions.is_dir() else []
    return found[-1] if found else None


def find_dataset(path=None, download: bool = True) -> Path:
    """Locate the dataset root folder.

    Order: the explicit ``path`` (an error if it does not hold the data); else the
    environment variable ``CAMCORE_DATA`` (likewise an error if set but wrong); else
    ``kagglehub.dataset_download`` (its cache, or a ~360 MB download; with ``download=False``
    only its cache is looked at). ``~`` is expanded (IPython's ``%env`` leaves it as is). A
    folder with only one of the two splits is accepted; ``split_dir`` then reports the missing
    one.

    Parameters
    ----------
    path : str or Path, optional
        The folder, if you know it.
    download : bool
        Whether kagglehub may download the data.

    Returns
    -------
    Path

    Raises
    ------
    DatasetNotFoundError
        Explaining how to get the data, when all fail.

    Examples
    --------
    >>> root = write_tiny_dataset(tmp / "find_dataset")
    >>> find_dataset(root) == root
    True
    """
    if path is not None:
        return _checked_root(path, "The dataset folder")
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return _checked_root(env, f"{DATA_ENV_VAR}={env}: the folder")
    if not download:
        cached = _kagglehub_cached()
        if cached is None:
            raise DatasetNotFoundError(
                f"Dataset not found: {DATA_ENV_VAR} is not set and kagglehub's cache holds no "
                f"copy (nothing was downloaded).\n\n{_HOW_TO_GET_DATA}")
        return cached

    try:
        import kagglehub

        print(
            f"{DATA_ENV_VAR} is not set: getting {KAGGLE_HANDLE} with kagglehub "
            "(from its cache, or downloading ~360 MB)...",
            flush=True,
        )
        root = Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as err:  # ImportError, network errors, authentication errors, ...
        raise DatasetNotFoundError(
            f"Dataset not found: {DATA_ENV_VAR} is not set and kagglehub failed "
            f"({type(err).__name__}: {err}).\n\n{_HOW_TO_GET_DATA}"
        ) from err
    if not _holds_data(root):
        raise DatasetNotFoundError(
            f"kagglehub returned {root}, which lacks the expected folders.\n\n{_HOW_TO_GET_DATA}"
        )
    return root


def list_images(root, split: str) -> tuple[list[Path], np.ndarray]:
    """List the image files of ``split``, sorted by class then file name.

    Missing class folders and unknown ones (which are ignored) only warn, as do files that are
    not images camcore reads (``UnreadFileWarning``, naming them); hidden files and folders
    such as ``.ipynb_checkpoints`` are ignored silently. Finding no image at all is an error.

    Parameters
    ----------
    root : str or Path
        The dataset's folder (``find_dataset``).
    split : {"train", "test"}

    Returns
    -------
    (list of Path, numpy.ndarray)
        The paths and their labels, int64 indices into ``CLASS_NAMES``.

    Examples
    --------
    >>> paths, labels = list_images(write_tiny_dataset(tmp / "list", per_class=2), "test")
    >>> len(paths), labels[:3]
    (12, array([0, 0, 1]))
    """
    folder = split_dir(root, split)
    unknown = sorted(
        p.name for p in folder.iterdir()
        if p.is_dir() and p.name not in CLASS_NAMES and not p.name.startswith(".")
    )
    if unknown:
        warnings.warn(
            f"{folder}: ignored unknown class folder(s) {', '.join(unknown)}; only "
            f"{', '.join(CLASS_NAMES)} are loaded. Move the folder(s) out of {folder} "
            "to silence this warning.",
            stacklevel=2,
        )
    paths: list[Path] = []
    labels: list[int] = []
    missing, other = [], []
    for label, name in enumerate(CLASS_NAMES):
        class_dir = folder / name
        if not class_dir.is_dir():
            missing.append(name)
            continue
        files = [p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
        other += [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
        files = sorted((p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda p: p.name)
        paths.extend(files)
        labels.extend([label] * len(files))
    if missing:
        warnings.warn(f"{folder}: missing class folder(s) {', '.join(missing)}", stacklevel=2)
    if other:
        warnings.warn(
            f"{folder}: ignored {len(other)} file(s) that are not {'/'.join(IMAGE_EXTENSIONS)} "
            f"images: {_examples([f'{p.parent.name}/{p.name}' for p in other])}. Convert them to "
            "JPEG or PNG to use them, or move them out to silence this warning.",
            UnreadFileWarning, stacklevel=2)
    if not paths:
        kinds = "/".join(IMAGE_EXTENSIONS)
        raise DatasetNotFoundError(f"No image files ({kinds}) found in {folder}")
    return paths, np.asarray(labels, dtype=np.int64)


def stratified_subset(labels, per_class=None, fraction=None, seed=0) -> np.ndarray:
    """Return sorted indices of a deterministic stratified random subset of ``labels``.

    Parameters
    ----------
    labels : array-like of int (N,)
    per_class : int, optional
        That many images of each class (or all of a smaller class).
    fraction : float in (0, 1], optional
        ``round(fraction * n)`` of each class of n images, rounding halves up, at least 1.
        Give exactly one of ``per_class`` and ``fraction``.
    seed : int
        The same seed always gives the same indices.

    Returns
    -------
    numpy.ndarray of int64
        Indices into ``labels``, sorted.

    Examples
    --------
    >>> stratified_subset([0, 0, 0, 1, 1, 1], per_class=2, seed=0).shape
    (4,)
    """
    per_class, fraction, seed = _subset_arguments(per_class, fraction, seed)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if per_class is not None:
            k = min(per_class, idx.size)
        else:
            k = max(1, math.floor(fraction * idx.size + 0.5))
        chosen.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _subset_arguments(per_class, fraction, seed):
    """``(per_class, fraction, seed)`` checked: exactly one of the first two, an int seed."""
    if (per_class is None) == (fraction is None):
        raise ValueError("give exactly one of per_class or fraction")
    if per_class is not None:
        per_class = check_count(per_class, "per_class")
    if fraction is not None:
        fraction = check_number(fraction, "fraction", 0, 1, low_open=True)
    return per_class, fraction, check_seed(seed)


# In a JPEG's entropy-coded data, FF00 is a stuffed FF byte and FFD0-FFD7 are restart markers.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_is_complete(data: bytes) -> bool:
    """Whether the JPEG ``data`` (starting with SOI, FFD8) reaches its top-level EOI (FFD9).

    Walks the marker segments, skipping each by its length field (so the EOI of an EXIF
    thumbnail inside APP1 does not count); after each start of scan (FFDA) it skips the
    entropy-coded data up to the next marker. Bytes after the EOI (some cameras and editors
    append data) are allowed.
    """
    i = 2  # just after SOI
    while i + 1 < len(data):
        if data[i] != 0xFF:
            return False  # not at a marker: a length field lied, or the file is garbage
        marker = data[i + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length field
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
            if marker == 0xDA:  # start of scan: skip the entropy-coded data
                found = _NEXT_MARKER.search(data, i)
                if found is None:
                    return False
                i = found.start()
    return False


def _read_image(path: Path):
    """Decode ``path`` to an RGB uint8 array, or return None if it is not a complete image.

    The format is judged by the content, not the file name. Some OpenCV builds return a
    partly grey image for a truncated JPEG, so JPEG data must also pass ``_jpeg_is_complete``.
    """
    data = path.read_bytes()
    if not data:
        return None
    if data.startswith(b"\xff\xd8") and not _jpeg_is_complete(data):
        return None
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _opencv_reads_webp() -> bool:
    ok, data = cv2.imencode(".webp", np.zeros((2, 2, 3), np.uint8))
    return bool(ok) and cv2.imdecode(data, cv2.IMREAD_COLOR) is not None


_WEBP = _opencv_reads_webp()


def _check_size(size) -> None:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(
            f"size must be a positive integer (the side in pixels, e.g. 224), not {size!r}"
        )


def _examples(paths, n=5) -> str:
    more = f", ... (+{len(paths) - n} more)" if len(paths) > n else ""
    return ", ".join(str(p) for p in paths[:n]) + more


def _is_webp(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def load_images(paths, size: int = 224, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize images to ``(size, size)`` RGB (any format OpenCV reads, by content).

    Undecodable files are skipped and reported in one ``CorruptImageWarning``; WebP files this
    OpenCV cannot read in one ``UnreadFileWarning``; images not 150x150 are resized like the
    rest and reported in one ``OddSizeWarning``.

    Parameters
    ----------
    paths : str, Path, or a list of them
        One path is one image.
    size : int
        The side of the square output, in pixels.
    progress : bool, optional
        Print a line about every 25 %; default: for more than 2000 images.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The images, uint8 (N_kept, size, size, 3), and the int64 indices into ``paths`` of
        the images that decoded.

    Examples
    --------
    >>> paths, _ = list_images(write_tiny_dataset(tmp / "load", per_class=2), "test")
    >>> images, kept = load_images(paths[0], size=64)
    >>> images.shape, images.dtype, kept
    ((1, 64, 64, 3), dtype('uint8'), array([0]))
    """
    _check_size(size)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise ValueError(f"load_images takes image files; {folders[0]} is a folder. List its "
                         f"images, e.g. sorted(Path({str(folders[0])!r}).glob('*.jpg')), or use "
                         "load_split for the dataset.")
    n = len(paths)
    if progress is None:
        progress = n > 2000
    images = np.empty((n, size, size, 3), np.uint8)  # filled from the front, trimmed at the end
    kept = []
    corrupt, odd, webp = [], [], []
    step = max(1, math.ceil(n / 4))
    for i, path in enumerate(paths):
        img = _read_image(path)
        if img is None:
            (webp if _is_webp(path) and not _WEBP else corrupt).append(path.name)
        else:
            h, w = img.shape[:2]
            if (h, w) != ORIGINAL_SIZE:
                odd.append(f"{path.name} ({w}x{h})")
            if (h, w) == (size, size):
                images[len(kept)] = img
            else:
                shrink = h > size or w > size
                interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                images[len(kept)] = cv2.resize(img, (size, size), interpolation=interp)
            kept.append(i)
        if progress and ((i + 1) % step == 0 or i + 1 == n):
            print(f"  loaded {i + 1}/{n} images ({100 * (i + 1) // n}%)", flush=True)
    if corrupt:
        warnings.warn(
            f"skipped {len(corrupt)} image file(s) that could not be decoded: {_examples(corrupt)}",
            CorruptImageWarning,
            stacklevel=2,
        )
    if webp:
        warnings.warn(
            f"skipped {len(webp)} WebP image(s), which this OpenCV build cannot read: "
            f"{_examples(webp)}. Convert them to JPEG or PNG (e.g. with Pillow), or install an "
            "OpenCV with WebP support (opencv-python-headless has it).",
            UnreadFileWarning,
            stacklevel=2,
        )
    if odd:
        warnings.warn(
            f"{len(odd)} image(s) were not {ORIGINAL_SIZE[1]}x{ORIGINAL_SIZE[0]} "
            f"(resized to {size}x{size} anyway): {_examples(odd, 3)}",
            OddSizeWarning,
            stacklevel=2,
        )
    return images[: len(kept)], np.asarray(kept, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Split:
    """Images of one split: ``images`` uint8 (N, H, W, 3) RGB, ``labels`` int64 (N,), ``paths``."""

    images: np.ndarray
    labels: np.ndarray
    paths: list

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"Split(n={len(self)}, images={self.images.shape} {self.images.dtype})"


def load_split(
    split: str, size: int = 224, per_class=None, fraction=None, seed=0, data_dir=None,
    progress=None,
) -> Split:
    """Load the ``"train"`` or ``"test"`` split, optionally a stratified subset of it.

    Files that cannot be decoded are dropped (with a warning).

    Parameters
    ----------
    split : {"train", "test"}
    size : int
        The side of the square images, in pixels.
    per_class, fraction, seed
        A stratified subset (``stratified_subset``); None and None for all images.
    data_dir : str or Path, optional
        The dataset's folder (``find_dataset``).
    progress : bool, optional
        Progress lines; default: for more than 2000 images.

    Returns
    -------
    Split
        ``images`` uint8 (N, size, size, 3), ``labels`` int64 (N,), ``paths``.

    Examples
    --------
    >>> test = load_split("test", size=64, per_class=1, data_dir=write_tiny_dataset(tmp / "split"))
    >>> test
    Split(n=6, images=(6, 64, 64, 3) uint8)
    """
    _check_size(size)
    if split not in ("train", "test"):  # before looking for (or downloading) the data
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if per_class is not None or fraction is not None:
        _subset_arguments(per_class, fraction, seed)
    paths, labels = list_images(find_dataset(data_dir), split)
    if per_class is not None or fraction is not None:
        idx = stratified_subset(labels, per_class=per_class, fraction=fraction, seed=seed)
        paths, labels = [paths[i] for i in idx], labels[idx]
    if progress is None:
        progress = len(paths) > 2000
    if progress:
        print(f"Loading {len(paths)} {split} images at {size}x{size}...", flush=True)
    images, kept = load_images(paths, size=size, progress=progress)
    return Split(images=images, labels=labels[kept], paths=[paths[i] for i in kept])


def _tiny_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic RGB image: class colour + stripes at a class-specific angle + noise."""
    colours = [  # buildings, forest, glacier, mountain, sea, street
        (150, 150, 150), (40, 140, 50), (200, 230, 250), (120, 90, 70), (30, 90, 200), (90, 90, 110)
    ]
    base = np.array(colours[label], dtype=np.float32)
    angle = np.deg2rad(30 * label)  # 0, 30, ..., 150 degrees
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / 16 + phase)
    img = base + 50 * stripes[..., None] + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_tiny_dataset(root, per_class: int = 4, size: int = 150, seed: int = 0) -> Path:
    """Write a tiny synthetic dataset in Kaggle's nested layout under ``root``.

    Both splits, all six classes, ``per_class`` JPEGs each, named ``<class>_<i>.jpg``.
    Classes differ in colour and stripe orientation, so they are learnable.

    Parameters
    ----------
    root : str or Path
        Created if needed.
    per_class : int
        Images per class and split.
    size : int
        Their side, in pixels.
    seed : int

    Returns
    -------
    Path
        ``root``.

    Examples
    --------
    >>> root = write_tiny_dataset(tmp / "write", per_class=1)
    >>> len(list(root.rglob("*.jpg")))                 # 2 splits x 6 classes x 1
    12
    """
    per_class, size = check_count(per_class, "per_class"), check_count(size, "size")
    root = Path(root)
    rng = np.random.default_rng(check_seed(seed))
    for split in ("train", "test"):
        folder = root / f"seg_{split}" / f"seg_{split}"
        for label, name in enumerate(CLASS_NAMES):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rgb = _tiny_image(label, size, rng)
                path = folder / name / f"{name}_{i:03d}.jpg"
                if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {path}")
    return root
