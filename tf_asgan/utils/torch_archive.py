"""Reading the tensors of a PyTorch file without PyTorch: state dicts and TorchScript.

:func:`read` returns a file's tensors as NumPy arrays, ``{dotted name: array}``. Three
layouts are read, told apart by content (not by the file's name):

- **zip** (``torch.save`` since PyTorch 1.6, the default): a zip archive with one top
  folder holding ``data.pkl`` (a pickle, protocol 2) and ``data/<key>``, one raw
  little-endian storage per key (``byteorder`` says ``big`` in the rare other case).
  Each tensor in the pickle is ``torch._utils._rebuild_tensor_v2(storage, offset,
  size, stride, requires_grad, hooks)`` and each storage a persistent id
  ``("storage", torch.FloatStorage, key, location, numel)``.
- **TorchScript** (``torch.jit.save``): the same zip layout plus ``code/`` and
  ``constants.pkl`` (its storages under ``constants/<key>``); the modules in
  ``data.pkl`` are objects of ``__torch__.*`` classes whose attributes are set by the
  pickle's BUILD. Their tensors are named by the attribute path (``net.layers.conv.
  weight``); the code is never read or run.
- **legacy** (``torch.save`` before 1.6, or ``_use_new_zipfile_serialization=False``):
  four pickles in a row (magic number 0x1950a86a20f9469cfc6c, protocol version 1001,
  system info, the object with persistent ids ``("storage", type, key, location,
  numel, view)``), the sorted list of storage keys, then each storage as its element
  count (int64) followed by its bytes.

Sources: PyTorch's ``torch/serialization.py`` (``_save``, ``_legacy_save``, ``_load``,
``_legacy_load``) and ``torch/_utils.py`` (``_rebuild_tensor_v2``, ``_rebuild_parameter``),
read at version 2.13; checked against files PyTorch 2.13 wrote (the test data of
``tests/evaluation/test_inception_port.py``).

Safety: a pickle can name any Python callable. The unpickler here resolves only the
names listed in :data:`ALLOWED` (tensor and storage rebuilding, ``OrderedDict``, the
TorchScript list builders), each mapped to a NumPy builder of ours, and, in TorchScript
files, ``__torch__.*`` classes as plain attribute holders. Any other name is refused
with :class:`TorchArchiveError` before anything is called.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from tf_asgan import errors

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# storage class -> (NumPy dtype, bytes per element); bfloat16 is read as uint16 bits
STORAGE_DTYPES = {
    "FloatStorage": ("<f4", 4), "DoubleStorage": ("<f8", 8), "HalfStorage": ("<f2", 2),
    "BFloat16Storage": ("<u2", 2), "LongStorage": ("<i8", 8), "IntStorage": ("<i4", 4),
    "ShortStorage": ("<i2", 2), "CharStorage": ("i1", 1), "ByteStorage": ("u1", 1),
    "BoolStorage": ("?", 1),
}


class TorchArchiveError(errors.TfAsganError, ValueError):
    """A file that is not a PyTorch archive this reader can read safely."""


class _StorageType:
    """What ``torch.<X>Storage`` resolves to: the name of an element type."""

    def __init__(self, name):
        self.name = name
        self.dtype, self.itemsize = STORAGE_DTYPES[name]


class _Storage:
    """One storage: its element type, element count and (once read) its bytes."""

    def __init__(self, storage_type, key, numel):
        self.type, self.key, self.numel = storage_type, key, int(numel)
        self.data = None  # bytes, filled by the layout's reader
        self.view = None  # (root storage, element offset) of a legacy storage view

    def array(self, big_endian=False):
        if self.view is not None:
            root, offset = self.view
            return root.array(big_endian)[offset:offset + self.numel]
        if self.data is None:
            raise TorchArchiveError(f"Storage {self.key!r} has no data in the file: "
                                    "the file is truncated or damaged.")
        dtype = np.dtype(self.type.dtype).newbyteorder(">" if big_endian else "<")
        if len(self.data) < self.numel * self.type.itemsize:
            raise TorchArchiveError(f"Storage {self.key!r} holds {len(self.data)} bytes, "
                                    f"fewer than its {self.numel} elements need: the file "
                                    "is truncated or damaged.")
        values = np.frombuffer(self.data, dtype, count=self.numel)
        if self.type.name == "BFloat16Storage":  # bfloat16 bits are float32's top half
            return (values.astype(np.uint32) << 16).view(np.float32)
        return values.astype(values.dtype.newbyteorder("="))


class _TensorRef:
    """A tensor of the pickle, made an array once every storage's bytes are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def array(self, big_endian):
        flat = self.storage.array(big_endian)
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if 0 not in self.size and needed > len(flat):
            raise TorchArchiveError(f"A tensor of shape {self.size} reaches past its storage "
                                    f"{self.storage.key!r} ({len(flat)} elements).")
        return np.lib.stride_tricks.as_strided(
            flat[self.offset:], self.size, [s * flat.itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise TorchArchiveError("A tensor in the file is not backed by a storage.")
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


class _ScriptObject:
    """An object of a TorchScript class: only its attributes (set by the pickle's BUILD)."""

    torch_type = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise TorchArchiveError(f"A {self.torch_type} object in the file has a state of "
                                    f"type {type(state).__name__}, not attributes.")
        self.__dict__["attributes"] = state


# module -> name -> what it resolves to; nothing else is resolved
ALLOWED = {
    "collections": {"OrderedDict": collections.OrderedDict},
    "torch._utils": {"_rebuild_tensor_v2": _rebuild_tensor, "_rebuild_tensor": _rebuild_tensor,
                     "_rebuild_parameter": _rebuild_parameter},
    "torch": {name: _StorageType(name) for name in STORAGE_DTYPES},
    "torch.jit._pickle": {name: list for name in (
        "build_intlist", "build_floatlist", "build_boollist", "build_doublelist",
        "build_tensorlist")},
}


class _Unpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` names (and, in TorchScript files,
    ``__torch__.*`` classes as attribute holders)."""

    def __init__(self, file, storages, path, torchscript=False):
        super().__init__(file)
        self._storages, self._path, self._torchscript = storages, path, torchscript
        self._classes = {}

    def find_class(self, module, name):
        if module in ALLOWED and name in ALLOWED[module]:
            return ALLOWED[module][name]
        if self._torchscript and module.split(".")[0] == "__torch__":
            key = f"{module}.{name}"
            if key not in self._classes:
                self._classes[key] = type(name, (_ScriptObject,), {"torch_type": key})
            return self._classes[key]
        raise TorchArchiveError(
            f"{self._path} names the Python object {module}.{name}, which a file of "
            "tensors does not need; it is refused (unpickling it could run code). Save "
            "model.state_dict() rather than the model, or convert the file to a state dict.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise TorchArchiveError(f"{self._path}: unknown persistent id {pid!r:.80}.")
        _, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        root = self._storages.setdefault(str(key), _Storage(storage_type, key, numel))
        if view is None:
            return root
        view_key, offset, view_numel = view  # a legacy view of part of ``root``
        storage = self._storages.setdefault(f"view:{view_key}", _Storage(
            storage_type, view_key, view_numel))
        storage.view = (root, int(offset))
        return storage


def _load(data, storages, path, torchscript=False):
    try:
        return _Unpickler(io.BytesIO(data), storages, path, torchscript).load()
    except TorchArchiveError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, struct.error) as err:
        raise TorchArchiveError(f"{path} could not be unpickled ({type(err).__name__}: "
                                f"{err}); it is damaged or not a PyTorch file.") from err


def _flatten(obj, prefix, out, big_endian):
    """Puts every tensor of ``obj`` into ``out`` under its dotted path."""
    if isinstance(obj, _TensorRef):
        out[prefix] = obj.array(big_endian)
    elif isinstance(obj, _ScriptObject):
        _flatten(obj.__dict__.get("attributes", {}), prefix, out, big_endian)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, big_endian)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out, big_endian)


def _read_zip(path, archive):
    names = archive.namelist()
    pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise TorchArchiveError(f"{path} is a zip archive but not PyTorch's: no single "
                                "<folder>/data.pkl in it.")
    root = pickles[0][:-len("data.pkl")]
    torchscript = f"{root}constants.pkl" in names or any(
        n.startswith(f"{root}code/") for n in names)
    big_endian = (f"{root}byteorder" in names
                  and archive.read(f"{root}byteorder").strip() == b"big")
    tensors = {}
    for pickled, folder in (("data.pkl", "data"), ("constants.pkl", "constants")):
        if f"{root}{pickled}" not in names:
            continue
        storages = {}
        obj = _load(archive.read(f"{root}{pickled}"), storages, path, torchscript)
        for storage in storages.values():
            entry = f"{root}{folder}/{storage.key}"
            if storage.view is None and entry in names:
                storage.data = archive.read(entry)
        _flatten(obj, "" if pickled == "data.pkl" else "constants", tensors, big_endian)
    return ("torchscript" if torchscript else "zip"), tensors


def _read_legacy(path, f):
    unpickle = _Unpickler(f, {}, path)  # the header: plain ints and a dict
    try:
        magic = unpickle.load()
        if magic != LEGACY_MAGIC:
            raise TorchArchiveError(f"{path} is neither a zip archive nor a PyTorch legacy "
                                    "file (it starts with another pickle).")
        version, sys_info = unpickle.load(), unpickle.load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise TorchArchiveError(f"{path} is not a PyTorch file ({err}).") from err
    if version != LEGACY_PROTOCOL:
        raise TorchArchiveError(f"{path}: legacy PyTorch protocol {version} is not supported "
                                f"(only {LEGACY_PROTOCOL}).")
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    storages = {}
    unpickler = _Unpickler(f, storages, path)
    try:
        obj = unpickler.load()
        keys = unpickler.load()  # a list of str: nothing to resolve
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack(">q" if big_endian else "<q", f.read(8))
            storage.data = f.read(numel * storage.type.itemsize)
    except TorchArchiveError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, struct.error) as err:
        raise TorchArchiveError(f"{path} is truncated or damaged ({type(err).__name__}: "
                                f"{err}).") from err
    tensors = {}
    _flatten(obj, "", tensors, big_endian)
    return "legacy", tensors


def read(path):
    """The tensors of a PyTorch file, without PyTorch.

    Args:
      path: a ``.pth`` / ``.pt`` file written by ``torch.save`` (zip or legacy layout)
        or ``torch.jit.save`` (TorchScript).

    Returns:
      ``(layout, tensors)``: ``layout`` is ``"zip"``, ``"legacy"`` or ``"torchscript"``;
      ``tensors`` maps each tensor's dotted name (the state dict's key, or a TorchScript
      module's attribute path) to a NumPy array of its shape and dtype (bfloat16 as
      float32). Values that are not tensors (ints, strings, hyperparameters) are left out.

    Raises:
      TorchArchiveError: the file is not a PyTorch archive, is damaged, or its pickle
        names a Python object other than the tensor builders (refused, never called).
      FileNotFoundError: ``path`` does not exist.
    """
    path = str(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return _read_zip(path, archive)
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":
            raise TorchArchiveError(f"{path} is not a PyTorch file (neither a zip archive "
                                    "nor a pickle).")
        f.seek(0)
        return _read_legacy(path, f)
