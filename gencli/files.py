"""Files: atomic writes, output paths checked before any work, per-user cache folders, and safe loading
of foreign PyTorch files (published weights)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from gencli.catalog import cache_dir  # noqa: F401  (torch-free, for gencli info; used by data.py)
from gencli.errors import GencliError


def atomic_write(path: Path, write) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`: a killed process never
    leaves half a file."""
    path = Path(path)
    if not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GencliError(f"cannot create folder {path.parent}: {e.strerror}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise GencliError(f"cannot write to {path.parent}: {e.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: Path) -> Path:
    """Fail early, before any work, when `path` cannot be written."""
    path = Path(path)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if path.is_dir():
        raise GencliError(f"{path} is a folder; give a file name")
    if not parent.is_dir():
        raise GencliError(f"cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise GencliError(f"cannot write {path}: {parent} is not writable")
    return path


def load_foreign_state(path: Path) -> object:
    """A PyTorch file written elsewhere (published weights), read with torch.load(weights_only=True):
    tensors and plain containers only, never arbitrary pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise GencliError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GencliError(f"{path} is not a PyTorch state dict that can be loaded safely "
                          f"({e.__class__.__name__}); files that need arbitrary unpickling are refused") from None


def tensor_dict(state: object) -> bool:
    """Whether `state` is a non-empty dict of tensors (a state dict)."""
    return isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())
