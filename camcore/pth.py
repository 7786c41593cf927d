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
    """Maps the handful of torch globals a state dict uses onto plain Python objects."""

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a state dict")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel, _view = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(_STORAGE_DTYPES[storage_type])
        return self.storages[key]


def read_legacy_pth(path: str | Path) -> dict[str, np.ndarray]:
    """Return the state dict stored at ``path`` as ``{name: numpy array}`` (C-contiguous copies).

    Tensors saved with non-contiguous strides (for example weights converted from TensorFlow and
    never made contiguous) are laid out with their strides, so shapes and values match torch.
    """
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy-format PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info
        state = _Unpickler(f, storages).load()
        for key in pickle.load(f):
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
