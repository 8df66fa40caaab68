"""Files: atomic writes, output paths checked before any work, per-user cache folders, and safe loading
of foreign PyTorch files (published weights)."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError

from gencli.catalog import cache_dir  # noqa: F401  (torch-free, for gencli info; used by data.py)
from gencli.errors import GencliError

# What a failing write raises: the OS's error, or torch's and safetensors' wrappers of it.
WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


def atomic_write(path: Path, write) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`: a killed process never
    leaves half a file. A failed write (full disk, file-size limit) leaves the old file and raises one line."""
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(items: list[tuple[Path, object]]) -> list[Path]:
    """Write several files as one step: every `write(tmp_path)` first, each into a temporary file beside
    its target, then the renames in the given order. If any write fails, no target is touched and every
    temporary file is removed. (A process killed between two renames leaves the earlier targets new and
    the later ones old; callers that write a pair order it so that they can tell, see gencli.checkpoint.)"""
    staged: list[tuple[str, Path]] = []
    try:
        for path, write in items:
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
            staged.append((tmp, path))
            try:
                write(tmp)
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
            except WRITE_ERRORS as e:
                if not is_write_failure(e):
                    raise
                raise GencliError(f"cannot write {path}: {write_failure(e)}") from None
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    return [path for _, path in staged]


def _chain(error: BaseException):
    e: BaseException | None = error
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def is_write_failure(error: BaseException) -> bool:
    """Whether `error` is the OS refusing a write (full disk, file-size limit, I/O error), possibly wrapped
    by torch or safetensors, rather than some other failure of the writer."""
    if any(isinstance(e, OSError) for e in _chain(error)):
        return True
    text = str(error)
    return any(word in text for word in ("write", "I/O error", "IoError", "iostream", "No space", "too large"))


def write_failure(error: BaseException) -> str:
    """Why a write failed, in a few words: the OS's reason (e.g. 'No space left on device') where one is
    known, else the first line of the library's message."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    text = str(error).strip().splitlines()
    reason = text[-1] if text else error.__class__.__name__
    quoted = re.search(r'message: "([^"]+)"|I/O error: (.+?) \(os error \d+\)', reason)  # safetensors' wording
    if quoted:
        return quoted.group(1) or quoted.group(2)
    return f"write failed (disk full or file too large?): {reason[:160]}"


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files (.NAME.XXXXXXXX.tmp) that `atomic_write` left in `folder` when a process
    was killed while writing. Only for folders that one process holds (a run directory)."""
    for tmp in Path(folder).glob(".?*.*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


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
        with warnings.catch_warnings():
            # Files pickled with protocol 3 or 4 (most published .pth) make the weights-only unpickler say
            # it "might not support" them; it reads them or fails, and a failure is reported below.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GencliError(f"{path} is not a PyTorch state dict that can be loaded safely "
                          f"({e.__class__.__name__}); files that need arbitrary unpickling are refused") from None


def require_packages(packages: tuple[str, ...], extra: str, what: str) -> None:
    """A one-line GencliError naming the pip command when one of `packages` (import names) is missing; they
    come with the optional extra `extra` of gencli. Found without importing them."""
    import importlib.util

    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise GencliError(f"{what} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                          f'not installed: pip install "gencli[{extra}]"')


def tensor_dict(state: object) -> bool:
    """Whether `state` is a non-empty dict of tensors (a state dict)."""
    return isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def check_name(name: str, what: str = "name") -> str:
    """`name` as a plain file or folder name (a model or data set name): not empty, no path separator, not
    starting with a dot (no `..`, no hidden files), no control characters; an error otherwise."""
    if (not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name
            or any(ord(c) < 32 for c in name)):
        raise GencliError(f"bad {what} {name!r}: use a plain name without slashes or a leading dot")
    return name


def shape_mismatch(expected: dict, got: dict) -> str | None:
    """How tensor shapes `got` (name -> shape) differ from `expected`: the first missing, unexpected or
    differently shaped tensor; None when they agree."""
    if expected == got:
        return None
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    differ = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    return (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
            else f"{differ[0]} is {got[differ[0]]}, the config makes {expected[differ[0]]}")


def load_state_checked(module, state: dict[str, torch.Tensor], what: str, source: str) -> None:
    """Load a state dict converted from elsewhere into `module`, with one-line errors naming the first
    missing, unexpected or differently shaped tensor, and for NaN or infinite values."""
    detail = shape_mismatch({k: tuple(v.shape) for k, v in module.state_dict().items()},
                            {k: tuple(v.shape) for k, v in state.items()})
    if detail:
        raise GencliError(f"{source}: the {what}'s weights do not match the network its file describes ({detail})")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise GencliError(f"{source}: the {what}'s weights hold NaN or infinite values")
    module.load_state_dict(state)
