"""The cache cannot break: atomic writes, damaged files rebuilt, data fingerprints, two processes,
a cache folder that cannot be written, temporary files of killed saves.

Most tests replace ``fine_tune`` by a stub that counts its calls and returns a toy model, so they
test the cache logic in a fraction of a second each; the tests marked slow (``make unit`` leaves
them to ``make test``) train for real or load a classifier in a child process.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from toys import make_flat

from camcore import backbones
from camcore.book import training
from camcore.book.training import (
    Recipe,
    TrainingReport,
    data_fingerprint,
    load_or_train,
    model_path,
)
from camcore.cache import (
    CACHE_ENV_VAR,
    CacheNotWritableError,
    CacheWarning,
    atomic_path,
    cache_dir,
    file_lock,
)
from camcore.data import write_tiny_dataset

RECIPE = Recipe(input_size=32, epochs=1, batch_size=8, per_class=2)
NPZ_NAME = f"efficientnet_lite0_{backbones.LITE0_WEIGHTS_SHA256[:8]}.npz"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data"), per_class=2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The model the ``fine_tune`` stub returns: a toy classifier, its file, its predictions."""
    model = make_flat()
    path = tmp_path_factory.mktemp("toy") / "toy.keras"
    model.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    report = TrainingReport(recipe=dataclasses.asdict(RECIPE), test_accuracy=0.5)
    return {"model": model, "model_bytes": path.read_bytes(), "x": x,
            "predictions": np.asarray(model(x)), "report": report}


@pytest.fixture(scope="module")
def lite0_npz(tmp_path_factory):
    """The bytes of a good converted-weights file."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(cache))
        backbones._lite0_keras_arrays()
    return (cache / "weights" / NPZ_NAME).read_bytes()


@pytest.fixture
def trainings(toy, monkeypatch):
    """Replace ``fine_tune`` by a stub returning the toy model; the list of its calls."""
    calls = []

    def stub(recipe, data_dir=None, verbose=1):
        calls.append(data_dir)
        return toy["model"], dataclasses.replace(toy["report"])

    monkeypatch.setattr(training, "fine_tune", stub)
    return calls


@pytest.fixture
def cache(toy, tiny_data, trainings, tmp_path, monkeypatch):
    """A fresh cache holding a good entry (model and report) for ``RECIPE``; their paths."""
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    trainings.clear()
    path = model_path(RECIPE, tiny_data)
    return path, path.with_suffix(".json")


def assert_rebuilt(model, toy, trainings, tiny_data):
    """Trained once, and the cache now loads, without a warning or training, a working model."""
    assert len(trainings) == 1 and model is toy["model"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again, report = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert len(trainings) == 1 and again is not model
    assert report.data_fingerprint == data_fingerprint(tiny_data)
    np.testing.assert_allclose(again(toy["x"]), toy["predictions"], atol=1e-6)


def only_files(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------
# A damaged cache: a CacheWarning naming the file, then a rebuilt, working model
# --------------------------------------------------------------------------------------------
def garbage(data):
    return bytes(range(256)) * (len(data) // 256 + 1)


def truncated(data):
    return data[: len(data) // 2]


def zero_bytes(data):
    return b""


def flipped_byte(data):
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.mark.parametrize("damage, reason", [
    (garbage, "BadZipFile: File is not a zip file"),
    (truncated, "BadZipFile: File is not a zip file"),
    (zero_bytes, "ValueError: the file is empty (0 bytes)"),
    (flipped_byte, "BadZipFile: the member 'model.weights.h5' fails its CRC check"),
], ids=["garbage", "truncated", "zero-bytes", "flipped-byte"])
def test_damaged_model_is_rebuilt(damage, reason, cache, toy, trainings, tiny_data):
    path, _ = cache
    path.write_bytes(damage(path.read_bytes()))
    expected = f"the cached model {path} could not be loaded ({reason}); training the model again"
    with pytest.warns(CacheWarning, match=re.escape(expected)):
        model, _ = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert_rebuilt(model, toy, trainings, tiny_data)


@pytest.mark.parametrize("damage, reason", [
    (garbage, "UnicodeDecodeError: 'utf-8' codec can't decode byte 0x80 in position 128"),
    (truncated, "JSONDecodeError: "),
    (zero_bytes, "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
    (lambda _: b'{"history": {}}',
     "TypeError: TrainingReport.__init__() missing 1 required positional argument: 'recipe'"),
    (lambda _: b'{"recipe": {}, "colour": "blue"}',
     "TypeError: TrainingReport.__init__() got an unexpected keyword argument 'colour'"),
    (lambda _: b"[1, 2]", "TypeError: expected a JSON object, found list"),
], ids=["garbage", "truncated", "zero-bytes", "lacks-recipe", "unknown-field", "not-an-object"])
def test_broken_report_is_rebuilt(damage, reason, cache, toy, trainings, tiny_data):
    _, report_path = cache
    report_path.write_bytes(damage(report_path.read_bytes()))
    expected = f"the cached report {report_path} could not be loaded ({reason}"
    with pytest.warns(CacheWarning, match=re.escape(expected) + r".*\); training the model again"):
        model, _ = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert_rebuilt(model, toy, trainings, tiny_data)


@pytest.mark.parametrize("missing", ["report", "model"])
def test_half_a_cache_entry_is_rebuilt(missing, cache, toy, trainings, tiny_data):
    path, report_path = cache
    {"report": report_path, "model": path}[missing].unlink()
    expected = {"report": f"the cached report {report_path} is missing; training the model again",
                "model": f"the cached model {path} is missing (its report is there); training "
                         "the model again"}[missing]
    with pytest.warns(CacheWarning, match=re.escape(expected)):
        model, _ = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert_rebuilt(model, toy, trainings, tiny_data)


def test_save_to_cache_is_found_by_load_or_train(toy, trainings, tiny_data, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    path = training.save_to_cache(RECIPE, toy["model"], dataclasses.replace(toy["report"]),
                                  data_dir=tiny_data)
    assert path == model_path(RECIPE, tiny_data)
    model, report = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert not trainings and report.data_fingerprint == data_fingerprint(tiny_data)
    np.testing.assert_allclose(model(toy["x"]), toy["predictions"], atol=1e-6)


def test_old_reports_without_the_data_fields_still_load(cache, trainings, tiny_data):
    _, report_path = cache
    fields = json.loads(report_path.read_text())
    del fields["data_fingerprint"], fields["data_dir"]
    report_path.write_text(json.dumps(fields))
    _, report = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert not trainings and report.data_fingerprint == "" and report.recipe == fields["recipe"]


@pytest.mark.parametrize("damage, reason", [
    (garbage, "BadZipFile: File is not a zip file"),
    (truncated, "BadZipFile: File is not a zip file"),
    (zero_bytes, "ValueError: the file is empty (0 bytes)"),
], ids=["garbage", "truncated", "zero-bytes"])
def test_damaged_lite0_weights_are_rebuilt(damage, reason, lite0_npz, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    cached = tmp_path / "weights" / NPZ_NAME
    cached.parent.mkdir()
    cached.write_bytes(damage(lite0_npz))
    expected = (f"the cached weights {cached} could not be loaded ({reason}); "
                "converting them again from the .pth file")
    with pytest.warns(CacheWarning, match=re.escape(expected)):
        arrays = backbones._lite0_keras_arrays()
    assert only_files(cached.parent) == [NPZ_NAME]
    rebuilt = backbones._read_lite0_npz(cached)  # a good file again, with the right arrays
    good = tmp_path / "good.npz"
    good.write_bytes(lite0_npz)
    for name, expected in backbones._read_lite0_npz(good).items():
        for a, b, c in zip(expected, arrays[name], rebuilt[name], strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


# --------------------------------------------------------------------------------------------
# Atomic writes: a temporary file beside the final one, renamed on success, removed on failure
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["m.keras", "w.npz", "r.json"])
def test_atomic_path_writes_beside_then_renames(name, tmp_path):
    final = tmp_path / name
    final.write_text("old")
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.suffix == final.suffix and tmp != final
        tmp.write_text("new")
        assert final.read_text() == "old"  # nothing visible until the block succeeds
    assert final.read_text() == "new" and only_files(tmp_path) == [name]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
@pytest.mark.parametrize("previous", [b"old", None], ids=["previous-file", "no-previous-file"])
def test_atomic_path_failure_keeps_the_previous_file(error, previous, tmp_path):
    final = tmp_path / "m.keras"
    if previous is not None:
        final.write_bytes(previous)
    with pytest.raises(error), atomic_path(final) as tmp:
        tmp.write_bytes(b"half a fi")
        raise error
    assert only_files(tmp_path) == ([] if previous is None else ["m.keras"])
    if previous is not None:
        assert final.read_bytes() == previous


def interrupted_save(toy):
    """A ``keras.Model.save`` that writes half the file, then the user presses Ctrl-C."""
    def save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(truncated(toy["model_bytes"]))
        raise KeyboardInterrupt

    return save


def test_interrupted_save_into_an_empty_cache_leaves_no_file(toy, trainings, tiny_data,
                                                             tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    path = model_path(RECIPE, tiny_data)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(keras.Model, "save", interrupted_save(toy))
        load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert only_files(path.parent) == [path.with_suffix(".lock").name]  # no model, no temp file
    trainings.clear()  # a later run: no warning, trains and saves
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        model, _ = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert_rebuilt(model, toy, trainings, tiny_data)


def test_interrupted_save_keeps_the_previous_model(cache, toy, trainings, tiny_data, monkeypatch):
    path, report_path = cache
    previous = path.read_bytes()
    report_path.write_text("{")  # a broken report: the model is trained and saved again
    monkeypatch.setattr(keras.Model, "save", interrupted_save(toy))
    with pytest.warns(CacheWarning), pytest.raises(KeyboardInterrupt):
        load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert path.read_bytes() == previous  # intact, not half a file
    # the old report was removed before saving: the entry cannot pair old and new files
    assert only_files(path.parent) == [path.name, path.with_suffix(".lock").name]


def test_interrupted_weights_save_leaves_no_file(lite0_npz, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))

    def savez(file, **arrays):
        with open(file, "wb") as f:
            f.write(truncated(lite0_npz))
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(KeyboardInterrupt):
        backbones._lite0_keras_arrays()
    assert only_files(tmp_path / "weights") == []


def test_load_or_train_leaves_only_the_final_files(cache):
    path, _ = cache
    assert only_files(path.parent) == sorted(path.with_suffix(s).name
                                             for s in (".json", ".keras", ".lock"))


# --------------------------------------------------------------------------------------------
# The data fingerprint: another data folder never gets this folder's model
# --------------------------------------------------------------------------------------------
def test_fingerprint_is_short_stable_and_independent_of_the_location(tiny_data, tmp_path):
    fingerprint = data_fingerprint(tiny_data)
    assert re.fullmatch(r"[0-9a-f]{12}", fingerprint)
    assert data_fingerprint(tiny_data) == fingerprint
    assert data_fingerprint(shutil.copytree(tiny_data, tmp_path / "copy")) == fingerprint


def add_file(folder):
    shutil.copy(folder / "forest" / "forest_000.jpg", folder / "forest" / "forest_999.jpg")


def rename_file(folder):
    (folder / "forest" / "forest_000.jpg").rename(folder / "forest" / "forest_999.jpg")


def resize_file(folder):
    with open(folder / "forest" / "forest_000.jpg", "ab") as f:
        f.write(b"\0")


def remove_file(folder):
    (folder / "forest" / "forest_000.jpg").unlink()


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("change", [add_file, rename_file, resize_file, remove_file],
                         ids=["added", "renamed", "resized", "removed"])
def test_fingerprint_changes_with_the_data(change, split, tiny_data, tmp_path):
    copy = shutil.copytree(tiny_data, tmp_path / "copy")
    change(copy / f"seg_{split}" / f"seg_{split}")
    assert data_fingerprint(copy) != data_fingerprint(tiny_data)


def test_two_data_folders_two_cache_files(tiny_data, trainings, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    other = shutil.copytree(tiny_data, tmp_path / "other")
    remove_file(other / "seg_train" / "seg_train")
    _, report = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    _, other_report = load_or_train(RECIPE, data_dir=other, verbose=0)
    assert trainings == [tiny_data, other]  # the second folder did not get the first's model
    assert model_path(RECIPE, tiny_data) != model_path(RECIPE, other)
    assert model_path(RECIPE, tiny_data).is_file() and model_path(RECIPE, other).is_file()
    assert (report.data_dir, other_report.data_dir) == (str(tiny_data), str(other))
    assert report.data_fingerprint != other_report.data_fingerprint
    load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert len(trainings) == 2  # each folder finds its own model


# --------------------------------------------------------------------------------------------
# Two processes want the same model at once: one trains, the other waits, then loads it
# --------------------------------------------------------------------------------------------
def test_file_lock_waits_for_its_holder(tmp_path, capsys):
    lock, held, events = tmp_path / "m.lock", threading.Event(), []

    def holder():
        with file_lock(lock):
            held.set()
            time.sleep(0.3)
            events.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with file_lock(lock, "waiting for the holder"):
        events.append("waiter in")
    thread.join()
    assert events == ["holder done", "waiter in"]
    assert capsys.readouterr().out == "waiting for the holder\n"


CHILD = """
import dataclasses, json, sys, time
from pathlib import Path
import numpy as np
import camcore
from camcore.book import training

root, out, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real_fine_tune = training.fine_tune

def fine_tune(*args, **kwargs):  # record the training, hold the lock until the test says go
    with open(out / "trainings", "a") as f:
        f.write(name + "\\n")
    while not (out / "go").exists():
        time.sleep(0.05)
    return real_fine_tune(*args, **kwargs)

training.fine_tune = fine_tune
recipe = training.Recipe(input_size=32, epochs=1, batch_size=8, per_class=2)
model, report = training.load_or_train(recipe, data_dir=root, verbose=1)
x = camcore.load_split("test", 32, data_dir=root).images.astype("float32")
np.save(out / f"{name}.npy", model.predict(x, verbose=0))
(out / f"{name}.json").write_text(json.dumps(dataclasses.asdict(report)))
"""


@pytest.mark.slow
def test_two_processes_train_once(tiny_data, lite0_npz, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, CACHE_ENV_VAR: str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    (tmp_path / "cache" / "weights").mkdir(parents=True)  # skip converting them: not tested here
    (tmp_path / "cache" / "weights" / NPZ_NAME).write_bytes(lite0_npz)
    logs = {name: out / f"{name}.log" for name in ("a", "b")}
    procs = {}
    for name, log in logs.items():
        with open(log, "w") as f:
            procs[name] = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(tiny_data), str(out), name],
                stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        # wait until one process trains (holding the lock) and the other waits for it
        deadline = time.monotonic() + 120
        while not ((out / "trainings").exists()
                   and any("Waiting for another process" in log.read_text()
                           for log in logs.values())):
            crashed = {n: log.read_text() for n, log in logs.items() if procs[n].poll() is not None}
            assert not crashed, crashed
            assert time.monotonic() < deadline, {n: log.read_text() for n, log in logs.items()}
            time.sleep(0.1)
        (out / "go").touch()
        for name, proc in procs.items():
            assert proc.wait(timeout=120) == 0, logs[name].read_text()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    trainer = (out / "trainings").read_text().split()
    assert len(trainer) == 1  # trained once
    waiter = "b" if trainer == ["a"] else "a"
    waited = logs[waiter].read_text()
    assert "Waiting for another process" in waited and "Loading the fine-tuned model" in waited
    np.testing.assert_allclose(np.load(out / "a.npy"), np.load(out / "b.npy"), atol=1e-6)
    assert json.loads((out / "a.json").read_text()) == json.loads((out / "b.json").read_text())
    models = tmp_path / "cache" / "models"
    assert sorted(p.suffix for p in models.iterdir()) == [".json", ".keras", ".lock"]


# --------------------------------------------------------------------------------------------
# Where the cache is: CAMCORE_CACHE with "~", a cache that cannot be created or written
# --------------------------------------------------------------------------------------------
def test_cache_env_var_expands_the_tilde(tmp_path, monkeypatch):
    """``%env CAMCORE_CACHE=~/cache`` leaves the "~" to camcore: it is the home folder."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(CACHE_ENV_VAR, "~/cache")
    monkeypatch.chdir(work)
    assert cache_dir("models") == home / "cache" / "models"
    assert (home / "cache" / "models").is_dir() and list(work.iterdir()) == []  # no "~" folder


def file_in_the_way(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "file" / "cache"))
    return (tmp_path / "file" / "cache" / "models",
            f"set by the environment variable {CACHE_ENV_VAR}")


def home_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "file" / "home"))
    return (tmp_path / "file" / "home" / ".cache" / "camcore" / "models",
            f"the default in your home folder (HOME), as {CACHE_ENV_VAR} is not set")


@pytest.mark.parametrize("where", [file_in_the_way, home_under_a_file],
                         ids=["CAMCORE_CACHE", "HOME"])
def test_uncreatable_cache_names_the_variable_and_the_fix(where, tmp_path, monkeypatch):
    path, source = where(tmp_path, monkeypatch)
    expected = (f"camcore cannot write its cache folder {path} ({source}): NotADirectoryError: "
                f"[Errno 20] Not a directory: '{path}'. Point {CACHE_ENV_VAR} at "
                f"a folder you can write, before camcore uses it: in a notebook "
                f"%env {CACHE_ENV_VAR}=/tmp/camcore-cache")
    with pytest.raises(CacheNotWritableError, match=re.escape(expected)):
        cache_dir("models")


def test_lite0_weights_converted_in_memory_without_a_cache(lite0_npz, tmp_path, monkeypatch):
    """No cache can be made: a warning naming CAMCORE_CACHE, and the right weights anyway."""
    file_in_the_way(tmp_path, monkeypatch)
    with pytest.warns(CacheWarning, match=re.escape(f"Point {CACHE_ENV_VAR} at a folder")
                      + ".*converted in memory at every load"):
        arrays = backbones._lite0_keras_arrays()
    good = tmp_path / "good.npz"
    good.write_bytes(lite0_npz)
    for name, expected in backbones._read_lite0_npz(good).items():
        for a, b in zip(expected, arrays[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert only_files(tmp_path) == ["file", "good.npz"]


def test_load_cached_reads_a_read_only_cache_without_locking(cache, tiny_data, trainings,
                                                             monkeypatch):
    """A cache folder the OS reports read-only (one a teacher prepared) is read, no lock made."""
    path, _ = cache
    path.with_suffix(".lock").unlink()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: (False if Path(p) == path.parent
                                                       else real_access(p, mode)))
    model, report = training.load_cached(RECIPE, data_dir=tiny_data, verbose=0)
    assert report.data_fingerprint == data_fingerprint(tiny_data) and not trainings
    assert only_files(path.parent) == sorted([path.name, path.with_suffix(".json").name])


def test_load_cached_creates_no_folder(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    assert training.load_cached(RECIPE, data_dir=tiny_data) is None
    assert not (tmp_path / "cache").exists()


READ_ONLY_CHILD = """
import encodings.cp437, json, os, sys, warnings  # (cp437: zip names, imported before setuid)
import numpy as np
from camcore.book import shipped
from camcore.cache import CacheNotWritableError, CacheWarning, cache_dir

if os.geteuid() == 0:  # root writes anywhere: become the user nobody, once Python is loaded
    os.setgid(65534)
    os.setuid(65534)
try:
    cache_dir("models")
except CacheNotWritableError as e:
    print("ERROR", e)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = shipped.load_shipped()
for w in caught:
    print("WARNING", w.category.__name__, w.message)
x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype("float32")
print("PROBABILITIES", json.dumps(np.asarray(model(x)).tolist()))
"""


@pytest.mark.slow
def test_shipped_classifier_loads_with_an_unwritable_home(tmp_path):
    """HOME is a folder nobody may write (CAMCORE_CACHE unset): the cache error names
    CAMCORE_CACHE and the fix, and the shipped classifier loads all the same (the ImageNet
    weights are converted in memory), with the same probabilities as here."""
    from camcore.book import shipped

    root = Path(__file__).resolve().parents[1]
    if os.geteuid() == 0 and any(not folder.stat().st_mode & 0o001
                                 for folder in [root, *root.parents]):
        pytest.skip(f"the child runs as the user nobody, who cannot reach {root} (a folder "
                    "above it is not world-searchable, as mktemp -d makes it)")
    env = {k: v for k, v in os.environ.items() if k != CACHE_ENV_VAR}
    env.update(HOME="/nonexistent", PYTHONPATH=str(Path(__file__).parents[1]),
               TF_CPP_MIN_LOG_LEVEL="3", KERAS_HOME="/tmp/.keras-nobody")
    run = subprocess.run([sys.executable, "-c", READ_ONLY_CHILD], capture_output=True, text=True,
                         env=env, cwd="/", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    error = next(l for l in lines if l.startswith("ERROR"))
    assert ("cannot write its cache folder /nonexistent/.cache/camcore/models (the default in "
            "your home folder (HOME)") in error and f"%env {CACHE_ENV_VAR}=" in error
    assert any(l.startswith("WARNING CacheWarning") and "converted in memory" in l
               for l in lines), lines
    x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype("float32")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
        expected = np.asarray(shipped.load_shipped()(x))
    got = np.array(json.loads(next(l for l in lines if l.startswith("PROBABILITIES"))[14:]))
    np.testing.assert_allclose(got, expected, atol=1e-6)


# --------------------------------------------------------------------------------------------
# A save killed outright (kill -9, a power cut) leaves its temporary file: the next save of
# that file removes it
# --------------------------------------------------------------------------------------------
def killed_writer(final):
    """A process that starts writing ``final``'s temporary file as ``atomic_path`` names it, and
    is killed (SIGKILL: no ``finally`` runs); the temporary file's path."""
    code = ("import os, sys, time\n"
            "tmp = f'{sys.argv[1]}/.{sys.argv[2]}.tmp-{os.getpid()}-0123abcd{sys.argv[3]}'\n"
            "open(tmp, 'wb').write(b'half a fi')\n"
            "print(tmp, flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(final.parent), final.stem,
                             final.suffix], stdout=subprocess.PIPE, text=True)
    tmp = Path(proc.stdout.readline().strip())
    proc.kill()
    proc.wait()
    return tmp


def test_killed_save_leaves_a_temporary_file_the_next_save_removes(cache, toy, trainings,
                                                                    tiny_data):
    path, report_path = cache
    stale = killed_writer(path)
    assert stale.exists()
    report_path.unlink()  # the entry is incomplete: the next load trains and saves again
    with pytest.warns(CacheWarning):
        model, _ = load_or_train(RECIPE, data_dir=tiny_data, verbose=0)
    assert not stale.exists()
    assert only_files(path.parent) == sorted(path.with_suffix(s).name
                                             for s in (".json", ".keras", ".lock"))
    assert_rebuilt(model, toy, trainings, tiny_data)


def test_only_stale_temporaries_of_that_file_are_removed(tmp_path):
    final = tmp_path / "m.keras"
    dead = killed_writer(final)
    live = tmp_path / f".m.tmp-{os.getppid()}-0123abcd.keras"  # a running process (pytest's parent)
    old = tmp_path / f".m.tmp-{os.getppid()}-4567cdef.keras"  # same, but two days old
    other = killed_writer(tmp_path / "n.keras")  # another file's
    for p in (live, old):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    with atomic_path(final) as tmp:
        tmp.write_text("new")
    assert only_files(tmp_path) == sorted(["m.keras", live.name, other.name])
    assert dead.name.startswith(".m.tmp-") and not dead.exists()


# --------------------------------------------------------------------------------------------
# Converted weights that unzip but hold the wrong arrays: damaged, named, rebuilt
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite0_32():
    """EfficientNet-Lite0 without its top, for 32x32 images (random weights)."""
    return backbones.efficientnet_lite0((32, 32, 3))


def rewrite_npz(data, tmp_path, change):
    """The bytes of a good converted-weights file after ``change(dict of arrays)``."""
    source = tmp_path / "source.npz"
    source.write_bytes(data)
    with np.load(source) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    out = tmp_path / "changed.npz"
    np.savez(out, **arrays)
    return out.read_bytes()


def missing_layer(arrays):
    del arrays["top_conv:0"]


def wrong_shape(arrays):
    arrays["stem_conv:0"] = arrays["stem_conv:0"][..., :16]


def half_precision(arrays):
    arrays["top_bn:1"] = arrays["top_bn:1"].astype(np.float16)


def foreign(arrays):
    arrays.clear()
    arrays.update(kernel=np.zeros((3, 3)), bias=np.zeros(3))


@pytest.mark.parametrize("change, reason", [
    (missing_layer, "ValueError: it holds other arrays than EfficientNet-Lite0's (missing: "
                    "['top_conv:0'], unexpected: none)"),
    (wrong_shape, "ValueError: its array 'stem_conv:0' is float32 (3, 3, 3, 16), "
                  "EfficientNet-Lite0 needs float32 (3, 3, 3, 32)"),
    (half_precision, "ValueError: its array 'top_bn:1' is float16 (1280,), EfficientNet-Lite0 "
                     "needs float32 (1280,)"),
    (foreign, "ValueError: it holds other arrays than EfficientNet-Lite0's (missing: "
              "['block1a_bn:0', 'block1a_bn:1', 'block1a_bn:2'], unexpected: ['bias', "
              "'kernel'])"),
], ids=["missing-layer", "wrong-shape", "float16", "foreign-file"])
def test_converted_weights_with_wrong_arrays_are_rebuilt(change, reason, lite0_npz, lite0_32,
                                                         tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "weights" / NPZ_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(rewrite_npz(lite0_npz, tmp_path, change))
    expected = (f"the cached weights {cached} could not be loaded ({reason}); converting them "
                "again from the .pth file")
    with pytest.warns(CacheWarning, match=re.escape(expected)):
        backbones.load_lite0_imagenet(lite0_32)
    assert cached.read_bytes() != rewrite_npz(lite0_npz, tmp_path, change)
    for name, arrays in backbones._read_lite0_npz(cached).items():  # a good file again
        assert [a.shape for a in arrays] == [backbones.lite0_shapes()[f"{name}:{i}"]
                                             for i in range(len(arrays))]


def test_lite0_shapes_are_the_models():
    """The table the cached weights are checked against: the Keras model's own shapes."""
    model = backbones.efficientnet_lite0((32, 32, 3), include_top=True)
    shapes = {f"{layer.name}:{i}": tuple(w.shape) for layer in model.layers
              for i, w in enumerate(layer.weights)}
    assert shapes == backbones.lite0_shapes() and len(shapes) == 247
