"""Where a model comes from and what it is, without torch.

One rule finds the checkpoint a command works on (`locate_checkpoint`): an explicit path (a file, or a run
folder holding model.safetensors); else runs/NAME/model.safetensors; else an imported model
<models dir>/NAME.safetensors; else the checkpoint bundled with gencli as NAME. It returns the path with its
provenance (`ModelSource`), which every command that reads a model reports. `read_header` reads a
safetensors file's JSON header alone (8-byte length, then JSON), so `gencli info` answers at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import struct
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from gencli.errors import GencliError

RUNS_DIR = Path("runs")
MODEL_FILE = "model.safetensors"
MAX_HEADER = 100_000_000  # bytes; safetensors' own limit

ORIGINS = {
    "path": "given path",
    "run": "run folder",
    "imported": "imported",
    "bundled": "bundled",
}
# A model named by where it comes from, as `gencli models` and `gencli serve` list it: run:NAME
# (runs/NAME), imported:NAME (the imported models folder) or bundled:NAME.
ID_SOURCES = ("run", "imported", "bundled")
ID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # names that make ids (and shell words) as they are
LIST_COMMAND = "gencli models"  # the command that lists the models and their ids


def cache_dir(kind: str, env: str) -> Path:
    """A per-user folder: $`env` when set, else <cache>/gencli/`kind` (<cache> is $XDG_CACHE_HOME or
    ~/.cache). Data sets live in kind "data", imported models in kind "models"."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "gencli" / kind


def models_dir() -> Path:
    """Where imported pretrained models live: $GENCLI_MODELS_DIR, else <cache>/gencli/models."""
    return cache_dir("models", "GENCLI_MODELS_DIR")


def bundled_checkpoint(name: str) -> Path | None:
    """The checkpoint shipped with gencli under `name`, if any."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = Path(str(resources.files("gencli.assets").joinpath(f"{name}.safetensors")))
    return path if path.is_file() else None


@dataclass(frozen=True)
class ModelSource:
    """A checkpoint and where it came from: origin is "path" (given as a file), "run" (a run folder, given
    or runs/NAME), "imported" (<models dir>/NAME), "bundled", or "training" (a run folder being trained). `shadows` names what a run folder or
    an imported model hides: a bundled or imported model of the same name that a command would use
    without it. Family and epoch are filled in once the header has been read (`described`)."""

    path: Path
    origin: str
    name: str | None = None
    shadows: str | None = None
    family: str | None = None
    epoch: int | None = None
    details: dict = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str | None:
        """SOURCE:NAME (run:vae, imported:horse2zebra, bundled:monet2photo) for a model found by name."""
        return f"{self.origin}:{self.name}" if self.origin in ID_SOURCES and self.name else None

    def describe(self, command: str | None = None) -> str:
        """One line for people: `cyclegan, epoch 3, run folder runs/monet2photo; it shadows the bundled
        monet2photo (bundled:monet2photo names that one)`; with `command` (e.g. "gencli translate"), the
        command that picks the shadowed model instead."""
        what = ", ".join(p for p in (self.family, None if self.epoch is None else f"epoch {self.epoch}") if p)
        if self.origin == "run":
            where = f"run folder {self.path.parent}"
        elif self.origin == "bundled":
            where = f"bundled {self.name} ({self.path})"
        elif self.origin == "imported":
            where = f"imported {self.name} ({self.path})"
        else:
            where = f"file {self.path}"
        line = f"{what}, {where}" if what else where
        if self.shadows:
            other = f"{self.shadows}:{self.name}"
            line += f"; it shadows the {self.shadows} {self.name}" + (
                f" (`{command} {other} ...` uses that one)" if command else f" ({other} names that one)")
        return line

    def as_dict(self) -> dict:
        return {"path": str(self.path), "origin": self.origin, "name": self.name, "id": self.id,
                "family": self.family, "epoch": self.epoch, **({"shadows": self.shadows} if self.shadows else {})}


def shadowed(name: str, origin: str) -> str | None:
    later = {"run": ("imported", "bundled"), "imported": ("bundled",)}.get(origin, ())
    if "imported" in later and (models_dir() / f"{name}.safetensors").is_file():
        return "imported"
    if "bundled" in later and bundled_checkpoint(name) is not None:
        return "bundled"
    return None


def locate_checkpoint(name: str | None, checkpoint: str | Path | ModelSource | None = None, *, hint: str = "") -> ModelSource:
    """The checkpoint of model `name` with its provenance: `checkpoint` when given (a file, or a run folder
    holding model.safetensors), else runs/NAME/model.safetensors, else <models dir>/NAME.safetensors, else
    the bundled NAME. `hint` ends the error when there is none (how to get one). A ModelSource already
    located (a model named on the command line) is returned as it is."""
    if isinstance(checkpoint, ModelSource):
        return checkpoint
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.is_file():
            if path_argument(checkpoint) is None:  # -c NAME or -c ID (bundled:vae): looked up as MODEL is
                return locate_model(str(checkpoint), hint=hint)
            raise GencliError(f"checkpoint not found: {checkpoint}")
        # a path names no model: the family that may come with it is not a name
        return ModelSource(path, "run" if path.name == MODEL_FILE else "path")
    if name is None:
        raise GencliError("name a model or pass --checkpoint")
    candidates = ((RUNS_DIR / name / MODEL_FILE, "run"), (models_dir() / f"{name}.safetensors", "imported"),
                  (bundled_checkpoint(name), "bundled"))
    for path, origin in candidates:
        if path is not None and path.is_file():
            return ModelSource(path, origin, name, shadowed(name, origin))
    raise GencliError(f"no model named {name!r}: not in {RUNS_DIR / name}, not imported into {models_dir()}, "
                      f"not bundled; `{LIST_COMMAND}` lists the models" + (f"; {hint}" if hint else ""))


def model_id(text: str) -> tuple[str, str] | None:
    """(source, name) of a model id such as bundled:vae or run:monet2photo; None for anything else."""
    source, colon, name = str(text).partition(":")
    if colon and source in ID_SOURCES and ID_NAME.match(name):
        return source, name
    return None


def model_path(source: str, name: str, runs_dir: str | Path = RUNS_DIR, imported_dir: str | Path | None = None
               ) -> Path | None:
    """The checkpoint that id SOURCE:NAME stands for (whether it exists or not)."""
    if source == "run":
        return Path(runs_dir) / name / MODEL_FILE
    if source == "imported":
        return Path(imported_dir if imported_dir is not None else models_dir()) / f"{name}.safetensors"
    return bundled_checkpoint(name)


def locate_id(source: str, name: str) -> ModelSource:
    """The model of id SOURCE:NAME, which must exist: exactly that one, whatever else has the name."""
    path = model_path(source, name)
    if path is None or not path.is_file():
        raise GencliError(f"no model with id {source}:{name}; `{LIST_COMMAND}` lists the ids")
    return ModelSource(path, source, name)


def model_files(runs_dir: str | Path = RUNS_DIR, imported_dir: str | Path | None = None):
    """(source, name, path) of every model a name or an id can reach, in listing order (the user's own
    first): run folders under `runs_dir`, imported models, bundled ones. Names that make no id are left
    out; the files are not opened."""
    runs_dir = Path(runs_dir)
    found = []
    if runs_dir.is_dir():
        found += [("run", folder.name, folder / MODEL_FILE) for folder in sorted(runs_dir.iterdir())
                  if (folder / MODEL_FILE).is_file()]
    imported = Path(imported_dir) if imported_dir is not None else models_dir()
    if imported.is_dir():
        found += [("imported", path.stem, path) for path in sorted(imported.glob("*.safetensors"))]
    bundled = Path(str(resources.files("gencli.assets")))
    found += [("bundled", path.stem, path) for path in sorted(bundled.glob("*.safetensors"))]
    return [(source, name, path) for source, name, path in found if ID_NAME.match(name)]


def list_models() -> list[ModelSource]:
    """Every gencli checkpoint a name or an id reaches (see `model_files`), described from its header,
    with `shadows` set where another model of the same name comes first. Other files are left out."""
    out = []
    for source, name, path in model_files():
        try:
            out.append(describe_checkpoint(ModelSource(path, source, name, shadowed(name, source))))
        except GencliError:
            continue
    return out


def path_argument(name_or_path: str | Path) -> Path | None:
    """A model argument that names a checkpoint file or run folder (or looks like a path: a suffix or a
    slash) as a path; None for a model name."""
    path = Path(name_or_path).expanduser()
    text = str(name_or_path)
    if path.is_file() or (path / MODEL_FILE).is_file():
        return path
    if path.suffix in (".safetensors", ".pth", ".pt") or "/" in text or "\\" in text:
        return Path(text)
    return None


def locate_model(name_or_path: str | Path, *, hint: str = "") -> ModelSource:
    """A model argument as every command takes it: a file or run folder, else an id (bundled:vae, ...),
    else a name."""
    path = path_argument(name_or_path)
    if path is None and (found := model_id(str(name_or_path))) is not None:
        return locate_id(*found)
    return locate_checkpoint(None if path else str(name_or_path), path, hint=hint)


# --- telling the command line which model is used -------------------------------------------------------

_listeners: contextvars.ContextVar[tuple] = contextvars.ContextVar("gencli_model_listeners", default=())


@contextlib.contextmanager
def watch_models(listener: Callable[[ModelSource], None]):
    """Within the block, `listener(source)` hears of every model a command opens (gencli.runs.open_model:
    its path, provenance, family and epoch) and of every run folder a training prepares (origin
    "training"). The library stays silent without one; the CLI prints one line per model."""
    token = _listeners.set(_listeners.get() + (listener,))
    try:
        yield
    finally:
        _listeners.reset(token)


def tell(source: ModelSource) -> None:
    for listener in _listeners.get():
        listener(source)


# --- the safetensors header ------------------------------------------------------------------------------

def read_header(path: str | Path) -> dict:
    """The JSON header of a safetensors file: {tensor name: {dtype, shape, data_offsets}, "__metadata__":
    {...}}. Reads the header bytes alone."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 < size <= MAX_HEADER:
                raise ValueError
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError
    except FileNotFoundError:
        raise GencliError(f"checkpoint not found: {path}") from None
    except (ValueError, UnicodeDecodeError):
        raise GencliError(f"{path} is not a readable safetensors checkpoint (truncated or corrupt?)") from None
    return header


def describe_checkpoint(source: ModelSource) -> ModelSource:
    """`source` with its family and epoch, and in `details` what `gencli info` shows: config, seed, version,
    the family's metadata, the number of parameters and their data types. Reads the header alone."""
    header = read_header(source.path)
    raw = header.pop("__metadata__", None) or {}
    if "family" not in raw or "config" not in raw:
        raise GencliError(f"{source.path} is a safetensors file but not a gencli checkpoint")
    try:
        details = {
            "family": raw["family"],
            "epoch": int(raw.get("epoch", 0)),
            "seed": int(raw.get("seed", 0)),
            "gencli_version": raw.get("gencli_version", ""),
            "config": json.loads(raw["config"]),
            "extra": json.loads(raw.get("extra", "{}")),
        }
        params, dtypes = 0, set()
        for info in header.values():
            count = 1
            for d in info["shape"]:
                count *= int(d)
            params += count
            dtypes.add(info["dtype"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise GencliError(f"{source.path}: its gencli metadata or tensor list is malformed") from None
    details.update(parameters=params, dtypes=sorted(dtypes), tensors=len(header), bytes=source.path.stat().st_size)
    return ModelSource(source.path, source.origin, source.name, source.shadows, details["family"], details["epoch"],
                       details)
