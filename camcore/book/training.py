"""Fine-tuning that is fast on a CPU, and ``load_or_train`` so any notebook can run on its own.

The recipe exploits the frozen layers. The backbone below ``frozen_until`` never changes, so its
activations are computed once per image (and once for the mirror image, the only augmentation),
then only the top block and the classifier head are trained on them, for several epochs, at a
fraction of the cost of full forward passes. The trained layers are the model's own layers, so
the result is an ordinary Keras classifier, saved as ``.keras``.

``load_or_train`` caches it under a name made of the recipe and a fingerprint of the data
(``data_fingerprint``), writes atomically, rebuilds a damaged cache with a ``CacheWarning``, and
lets concurrent processes wanting the same model train it once (a lock file beside the model).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from camcore.backbones import get_backbone
from camcore.book.shortcut import stamp_class
from camcore.cache import (
    atomic_path,
    cache_dir,
    cache_root,
    check_zip,
    file_lock,
    warn_unusable,
)
from camcore.data import CLASS_NAMES, find_dataset, list_images, load_split, split_dir
from camcore.model_split import split_model
from camcore.models import INPUT_SIZE, build_classifier
from camcore.progress import Progress


@dataclass
class Recipe:
    """Everything that determines the fine-tuned model (it names the cached file)."""

    backbone: str = "efficientnet_lite0"
    frozen_until: str | None = None  # default: the backbone's recipe (below its top block)
    input_size: int = INPUT_SIZE
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    flip: bool = True
    per_class: int | None = None  # train on a stratified subset (quick runs); None = all
    test_per_class: int | None = None  # evaluate on a stratified test subset; None = all
    seed: int = 0
    cue_class: str | None = None  # stamp camcore.book.shortcut's cue on this class (train and test)
    train_batch_norm: bool = False  # True: the top block's batch norms train (batch statistics)
    hidden_units: int | None = None  # a hidden layer at each position: Dense(units, ReLU) -> pool

    def key(self, data_fingerprint: str | None = None) -> str:
        """The cache file's name: the fields that change the model, then ``-data<fingerprint>``."""
        parts = [self.backbone, self.frozen_until or "top", str(self.input_size),
                 f"e{self.epochs}", f"lr{self.learning_rate:g}", f"ls{self.label_smoothing:g}",
                 f"wd{self.weight_decay:g}", f"b{self.batch_size}",
                 "flip" if self.flip else "noflip", f"n{self.per_class or 'all'}",
                 f"t{self.test_per_class or 'all'}", f"s{self.seed}"]
        if self.cue_class:
            parts.append(f"cue-{self.cue_class}")
        if self.train_batch_norm:
            parts.append("bntrain")
        if self.hidden_units:  # "hpos": at each position, before the pooling (not "h": after)
            parts.append(f"hpos{self.hidden_units}")
        if data_fingerprint:
            parts.append(f"data{data_fingerprint}")
        return "-".join(parts)


@dataclass
class TrainingReport:
    recipe: dict
    history: dict = field(default_factory=dict)  # per-epoch loss and accuracy (train, test)
    test_accuracy: float = float("nan")
    train_images: int = 0
    test_images: int = 0
    seconds: dict = field(default_factory=dict)  # wall time per stage
    data_fingerprint: str = ""  # see data_fingerprint ("" in reports written before it existed)
    data_dir: str = ""  # the data folder the model was trained on
    description: str = ""  # what the model is (``describe``; "" in older reports)


def describe(recipe: Recipe) -> str:
    """One sentence saying what ``recipe`` trains: backbone, head, data, the changes that matter.

    For example "efficientnet_lite0 (ImageNet weights) with its top block and a new head
    fine-tuned: pooling -> dropout -> Dense(6) logits -> softmax; label smoothing 0.1, 6 epochs,
    all training images".
    """
    hidden = (f"Dense({recipe.hidden_units}, ReLU) at each position (a 1x1 convolution) -> "
              if recipe.hidden_units else "")
    subset = (f"{recipe.per_class} training images per class" if recipe.per_class
              else "all training images")
    text = (f"{recipe.backbone} (ImageNet weights) with its top block and a new head fine-tuned: "
            f"{hidden}pooling -> dropout -> Dense({len(CLASS_NAMES)}) logits -> softmax; "
            f"label smoothing {recipe.label_smoothing:g}, {recipe.epochs} epochs, {subset}")
    if recipe.test_per_class:
        text += f", tested on {recipe.test_per_class} test images per class"
    if recipe.cue_class:
        text += (f"; the shortcut cue (camcore.book.shortcut) stamped on every "
                 f"{recipe.cue_class} image, training and test")
    if recipe.train_batch_norm:
        text += "; the top block's batch norms trained"
    return text


def _frozen_features(split, images: np.ndarray, flip: bool, batch_size: int = 64,
                     label: str = "", verbose: int = 1) -> np.ndarray:
    """The frozen part's activations for every image (and its mirror image).

    With ``verbose``, plain progress lines (``camcore.progress.Progress``: at the start, every
    30 s with the time left, at the end), which stay readable in a saved notebook.
    """
    run = tf.function(lambda x: split.features(x), reduce_retracing=True)
    views = [images, None] if flip else [images]
    out = None
    bar = Progress(len(images) * len(views), f"{label} views".strip(),
                   label="frozen activations", every=30.0, quiet=not verbose)
    for v, view in enumerate(views):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].astype(np.float32)
            if view is None:
                batch = batch[:, :, ::-1]
            a = run(tf.constant(batch)).numpy()
            if out is None:
                out = np.empty((len(views), len(images), *a.shape[1:]), np.float16)
            out[v, start:start + len(batch)] = a
            bar.add(len(batch))
    bar.close()
    return out


def _all_layers(models):
    for model in models:
        for layer in model.layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from _all_layers([layer])


def _top_model(split) -> keras.Model:
    """The trainable part as one Keras model: frozen activations -> logits."""
    inputs = keras.Input(split.activation_shape, name="frozen_features")
    return keras.Model(inputs, split.head(inputs), name="top")


# The last frozen activations computed in this process: recipes that differ only above the
# frozen part (the batch-norm or label-smoothing comparisons) reuse them instead of recomputing.
_FROZEN: dict = {}


def _frozen_data(recipe: Recipe, split, data_dir, verbose: int):
    """``(train labels, test labels, train activations, test activations, seconds)``."""
    key = (str(find_dataset(data_dir).resolve()), recipe.backbone, recipe.frozen_until,
           recipe.input_size, recipe.per_class, recipe.test_per_class, recipe.seed, recipe.flip,
           recipe.cue_class)
    if key in _FROZEN:
        if verbose:
            print("Reusing the frozen layers' activations computed earlier in this session")
        return (*_FROZEN[key][:4], {"load images": 0.0, "frozen activations": 0.0})
    clock = time.perf_counter()
    progress = None if verbose else False
    train = load_split("train", recipe.input_size, per_class=recipe.per_class, seed=recipe.seed,
                       data_dir=data_dir, progress=progress)
    test = load_split("test", recipe.input_size, per_class=recipe.test_per_class,
                      seed=recipe.seed, data_dir=data_dir, progress=progress)
    if recipe.cue_class:  # the shortcut experiment: one class always carries the cue
        train = replace(train, images=stamp_class(train.images, train.labels, recipe.cue_class))
        test = replace(test, images=stamp_class(test.images, test.labels, recipe.cue_class))
    seconds = {"load images": time.perf_counter() - clock}
    start = time.perf_counter()
    train_features = _frozen_features(split, train.images, recipe.flip, label="train",
                                      verbose=verbose)
    test_features = _frozen_features(split, test.images, False, label="test", verbose=verbose)[0]
    seconds["frozen activations"] = time.perf_counter() - start
    _FROZEN.clear()
    _FROZEN[key] = (train.labels, test.labels, train_features, test_features, seconds)
    return _FROZEN[key]


def fine_tune(recipe: Recipe | None = None, data_dir=None, verbose: int = 1):
    """Fine-tune a classifier with ``recipe``; return ``(model, TrainingReport)``.

    Trains the top block and the head with AdamW and a cosine learning-rate decay on cached
    activations of the frozen layers. The batch norms keep ImageNet's statistics, unless
    ``recipe.train_batch_norm``: then the top block's batch norms train too (batch statistics
    in training, moving averages updated).
    """
    recipe = recipe or Recipe()
    keras.utils.set_random_seed(recipe.seed)
    spec = get_backbone(recipe.backbone)
    report = TrainingReport(recipe=asdict(recipe), description=describe(recipe))
    clock = time.perf_counter()
    model = build_classifier(recipe.backbone, CLASS_NAMES, input_size=recipe.input_size,
                             seed=recipe.seed, hidden_units=recipe.hidden_units)
    split = split_model(model, f"{recipe.backbone}/{recipe.frozen_until or spec.frozen_until}")
    train_labels, test_labels, train_features, test_features, seconds = _frozen_data(
        recipe, split, data_dir, verbose)
    report.train_images, report.test_images = len(train_labels), len(test_labels)
    report.seconds.update(seconds)

    top = _top_model(split)
    for layer in split.layers_above:  # batch-norm statistics stay ImageNet's
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = recipe.train_batch_norm
    steps = recipe.epochs * -(-len(train_labels) // recipe.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps)
    top.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    rng = np.random.default_rng(recipe.seed)
    onehot = np.eye(model.outputs[0].shape[-1], dtype=np.float32)
    history = {"loss": [], "accuracy": [], "test_accuracy": []}
    for epoch in range(recipe.epochs):
        view = rng.integers(0, len(train_features), len(train_labels))  # random mirror per image
        x = train_features[view, np.arange(len(train_labels))]
        fit = top.fit(x, onehot[train_labels], batch_size=recipe.batch_size, epochs=1,
                      shuffle=True, verbose=0)
        test_pred = top.predict(test_features, batch_size=256, verbose=0).argmax(axis=1)
        history["loss"].append(float(fit.history["loss"][0]))
        history["accuracy"].append(float(fit.history["accuracy"][0]))
        history["test_accuracy"].append(float((test_pred == test_labels).mean()))
        if verbose:
            print(f"epoch {epoch + 1}/{recipe.epochs}: loss {history['loss'][-1]:.4f}, "
                  f"train accuracy {history['accuracy'][-1]:.4f}, "
                  f"test accuracy {history['test_accuracy'][-1]:.4f}", flush=True)
    report.seconds["training"] = time.perf_counter() - start
    report.history = history
    report.test_accuracy = history["test_accuracy"][-1]
    report.seconds["total"] = time.perf_counter() - clock
    for layer in _all_layers([model]):
        layer.trainable = True
    return model, report


def data_fingerprint(data_dir=None) -> str:
    """A name for the data in ``data_dir`` (see ``find_dataset``): 12 hex digits of a SHA-256.

    Hashes the sorted list of ``("<split>/<path relative to the split folder>", size in bytes)``
    of every image of the whole train and test splits (not only a recipe's subset): adding,
    removing, renaming or resizing any image changes it; a copy of the folder elsewhere keeps it.
    Costs a listing and a ``stat`` per file, no reading.
    """
    root = find_dataset(data_dir)
    entries = []
    for split in ("train", "test"):
        folder = split_dir(root, split)
        paths, _ = list_images(root, split)
        entries += [(f"{split}/{p.relative_to(folder).as_posix()}", p.stat().st_size)
                    for p in paths]
    return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()[:12]


def _model_path(recipe: Recipe, fingerprint: str) -> Path:
    return cache_dir("models") / f"{recipe.key(fingerprint)}.keras"


def model_path(recipe: Recipe, data_dir=None) -> Path:
    """The cached ``.keras`` file of ``recipe`` trained on the data in ``data_dir``.

    Beside it: the report (``.json``) and the lock file (``.lock``) of ``load_or_train``.
    """
    return _model_path(recipe, data_fingerprint(data_dir))


def _read_report(path: Path) -> TrainingReport:
    """The report in ``path``; raises if it is not JSON or lacks (or has unknown) fields."""
    fields = json.loads(path.read_text())
    if not isinstance(fields, dict):
        raise TypeError(f"expected a JSON object, found {type(fields).__name__}")
    return TrainingReport(**fields)  # TypeError: missing "recipe", or an unknown field


def _read_cached(path: Path, verbose: int):
    """The cached ``(model, report)``, or None if absent or unusable (then a ``CacheWarning``)."""
    report_path = path.with_suffix(".json")
    if not path.exists() and not report_path.exists():
        return None
    again = "training the model again"
    if not path.exists():
        warn_unusable("model", path, "is missing (its report is there)", again)
        return None
    if not report_path.exists():
        warn_unusable("report", report_path, "is missing", again)
        return None
    try:
        report = _read_report(report_path)
    except Exception as e:  # noqa: BLE001 - any failure means: rebuild
        warn_unusable("report", report_path, e, again)
        return None
    if verbose:
        print(f"Loading the fine-tuned model from {path}")
    try:
        check_zip(path)
        model = keras.saving.load_model(path)
    except Exception as e:  # noqa: BLE001 - any failure means: rebuild
        warn_unusable("model", path, e, again)
        return None
    return model, report


def _write_cached(path: Path, model, report: TrainingReport, root: Path, fingerprint: str):
    """Save the model, then its report (recording the data), each atomically.

    The old report is deleted first, so an interruption never pairs a new model with an old
    report, or an old model with a new report: it leaves a model without a report, which the
    next ``load_or_train`` rebuilds.
    """
    report.data_fingerprint, report.data_dir = fingerprint, str(root.resolve())
    report_path = path.with_suffix(".json")
    report_path.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        model.save(tmp)
    with atomic_path(report_path) as tmp:
        tmp.write_text(json.dumps(asdict(report), indent=1))


def _locate(recipe: Recipe, data_dir) -> tuple[Path, str, Path]:
    """The data folder, its fingerprint, and the cached model's path."""
    root = find_dataset(data_dir)
    fingerprint = data_fingerprint(root)
    return root, fingerprint, _model_path(recipe, fingerprint)


def save_to_cache(recipe: Recipe, model, report: TrainingReport, data_dir=None) -> Path:
    """Save a model fine-tuned with ``recipe`` on ``data_dir`` where ``load_or_train`` finds it.

    For scripts and notebooks that call ``fine_tune`` themselves: records the data's fingerprint
    and folder in ``report``, writes atomically under the lock, and returns the model's path.
    """
    root, fingerprint, path = _locate(recipe, data_dir)
    with file_lock(path.with_suffix(".lock")):
        _write_cached(path, model, report, root, fingerprint)
    return path


def load_cached(recipe: Recipe | None = None, data_dir=None, verbose: int = 1):
    """The cached ``(model, report)`` of ``recipe`` on this data, or None: never trains, and
    never downloads the data (without ``data_dir`` or ``CAMCORE_DATA``, only kagglehub's cache
    is looked at; no data there raises ``DatasetNotFoundError``). Creates no folder; a cache
    folder that is read-only (one a teacher prepared) is read without the lock."""
    root = find_dataset(data_dir, download=False)
    recipe = recipe or Recipe()
    path = cache_root() / "models" / f"{recipe.key(data_fingerprint(root))}.keras"
    if not path.parent.is_dir():
        return None
    if not os.access(path.parent, os.W_OK):
        return _read_cached(path, verbose)
    with file_lock(path.with_suffix(".lock")):
        return _read_cached(path, verbose)


def load_or_train(recipe: Recipe | None = None, data_dir=None, verbose: int = 1):
    """The fine-tuned classifier for ``recipe``: loaded from the cache, else trained and saved.

    Returns ``(model, report)``; the report (accuracy, history, timings, data) is saved beside the
    model. The cache file is named by the recipe and the data's fingerprint, so another data
    folder never gets this folder's model. A damaged cache (unreadable model or report) is
    reported in a ``CacheWarning`` and trained again. Processes asking for the same model at
    once take turns (a lock file beside the model): one trains, the others wait, then load it.
    """
    recipe = recipe or Recipe()
    root, fingerprint, path = _locate(recipe, data_dir)
    waiting = (f"Waiting for another process that is training or loading {path.name}..."
               if verbose else None)
    with file_lock(path.with_suffix(".lock"), waiting):
        cached = _read_cached(path, verbose)
        if cached is not None:
            return cached
        model, report = fine_tune(recipe, data_dir=root, verbose=verbose)
        _write_cached(path, model, report, root, fingerprint)
    if verbose:
        print(f"Saved the fine-tuned model to {path}")
    return model, report
