"""Reading NVIDIA's network pickles as data, without running anything they hold.

A pickle names Python callables (globals) that the loader calls to rebuild its objects, so an ordinary
`pickle.load` of a stranger's file runs whatever it names (`os.system`, ...). NVIDIA's pickles also embed
the Python source of their network modules, which their own loader `exec`s. `load` here resolves only the
globals on an explicit list; everything else is refused, naming the global, before it is called:

- tensors: torch._utils._rebuild_tensor_v2 and _rebuild_parameter(_with_state) (as torch's own
  weights_only loader allows), and torch.storage._load_from_bytes replaced by `_storage_from_bytes`,
  which reads the bytes with torch.load(weights_only=True) (a pickled storage is always those bytes:
  no storage class is named in the outer pickle);
- containers and numbers: collections.OrderedDict, builtins set and frozenset, _codecs.encode for
  latin-1 bytes only (how pickle protocol 2 writes bytes), numpy scalars and dtypes
  (numpy.core.multiarray.scalar, numpy.dtype: their layers keep gains such as 1 / np.sqrt(fan_in));
- NVIDIA's records: torch_utils.persistence._reconstruct_persistent_obj gives a `Record` (a dict:
  class_name, module_src kept as text and never executed, state), and dnnlib.util.EasyDict a plain dict.
"""

from __future__ import annotations

import _compat_pickle
import collections
import importlib
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from gencli.errors import GencliError


class Record(dict):
    """One object of NVIDIA's persistent classes, as data: "class_name", "module_src" (text, never run),
    "state" (the object's attributes: for a torch module _parameters, _buffers, _modules, _init_kwargs ...)."""

    @property
    def class_name(self) -> str:
        return str(self.get("class_name", ""))

    @property
    def state(self) -> dict:
        state = self.get("state")
        return state if isinstance(state, dict) else {}


class EasyDict(dict):
    """dnnlib.util.EasyDict read as a plain dict (it is one, with attribute access)."""


def _persistent_record(meta) -> Record:
    if not isinstance(meta, dict):
        raise pickle.UnpicklingError("a persistence record that is not a dict")
    return Record(meta)


def _storage_from_bytes(data: bytes):
    """A tensor storage from the bytes torch pickled it into, read with torch.load(weights_only=True)."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a tensor storage that is not bytes")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _latin1_bytes(text, encoding="latin1") -> bytes:
    """_codecs.encode as pickle protocol 2 uses it (bytes written as latin-1 text); nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


def _numpy_global(name: str):
    """numpy's multiarray function `name` (numpy 1 calls the module numpy.core, numpy 2 numpy._core)."""
    try:
        module = importlib.import_module("numpy._core.multiarray")
    except ImportError:
        module = importlib.import_module("numpy.core.multiarray")
    return getattr(module, name)


ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): lambda: torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): lambda: torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): lambda: _storage_from_bytes,
    ("_codecs", "encode"): lambda: _latin1_bytes,
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _persistent_record,
    ("dnnlib.util", "EasyDict"): lambda: EasyDict,
}


class Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.global_name = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals in ALLOWED."""

    def find_class(self, module: str, name: str):
        # Python 2 names (protocols 0-2 write builtins as __builtin__): mapped as pickle itself maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        factory = ALLOWED.get((module, name))
        if factory is None:
            raise Refused(module, name)
        return factory()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids (torch.save's format) are not part of a network pickle")


def load(path: Path, what: str = "network pickle"):
    """The object a pickle file holds, with only the allowed globals (see the module docstring); one-line
    GencliErrors for a refused global, a TensorFlow pickle and a file that is no pickle."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except Refused as e:
        if e.global_name.startswith("dnnlib.tflib"):
            raise GencliError(f"{path} is a TensorFlow pickle ({e.global_name}); only the PyTorch pickles of "
                              "stylegan2-ada-pytorch and the StyleGAN3 release are supported") from None
        raise GencliError(f"refusing to load {path}: it needs the global {e.global_name}, which could run code "
                          f"(a {what} holds only tensors, containers and network records)") from None
    except FileNotFoundError:
        raise GencliError(f"weights file not found: {path}") from None
    except IsADirectoryError:
        raise GencliError(f"{path} is a folder, not a {what}") from None
    except Exception as e:  # a damaged or foreign file: whatever pickle or torch raise about it
        raise GencliError(f"{path} is not a readable {what} ({e.__class__.__name__}: {str(e)[:120]})") from None
