"""Run directories and finding models.

One rule finds the checkpoint a command works on (`find_checkpoint`): an explicit path (a file, or a run
folder holding model.safetensors); else runs/NAME/model.safetensors; else an imported model
<models dir>/NAME.safetensors; else the checkpoint bundled with gencli as NAME. One function opens it for
a command (`open_model`), and one reads a run back for `--resume` (`resumed_run`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from gencli import distributed
from gencli.checkpoint import MODEL_FILE, load_model, read_metadata
from gencli.errors import GencliError
from gencli.files import cache_dir
from gencli.registry import get_family, require_command

RUNS_DIR = Path("runs")
OPTIONS_FILE = "options.json"


# --- finding and opening checkpoints ------------------------------------------------------------------

def models_dir() -> Path:
    """Where imported pretrained models live: $GENCLI_MODELS_DIR, else <cache>/gencli/models."""
    return cache_dir("models", "GENCLI_MODELS_DIR")


def bundled_checkpoint(name: str) -> Path | None:
    """The checkpoint shipped with gencli under `name`, if any."""
    path = Path(str(resources.files("gencli.assets").joinpath(f"{name}.safetensors")))
    return path if path.is_file() else None


def find_checkpoint(name: str, checkpoint: str | Path | None = None, *, hint: str = "") -> Path:
    """The checkpoint of model `name`: `checkpoint` when given (a file, or a run folder holding
    model.safetensors), else runs/NAME/model.safetensors, else <models dir>/NAME.safetensors, else the
    bundled NAME. `hint` ends the error when there is none (how to get one)."""
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.is_file():
            raise GencliError(f"checkpoint not found: {checkpoint}")
        return path
    for candidate in (RUNS_DIR / name / MODEL_FILE, models_dir() / f"{name}.safetensors", bundled_checkpoint(name)):
        if candidate is not None and candidate.is_file():
            return candidate
    raise GencliError(f"no model named {name!r}: not in {RUNS_DIR / name}, not imported into {models_dir()}, "
                      f"not bundled" + (f"; {hint}" if hint else ""))


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


def open_model(command: str, family: str | None = None, checkpoint: str | Path | None = None,
               device: str | torch.device = "cpu", *, name: str | None = None, hint: str = ""):
    """(model in eval mode, metadata with "path") for `command`: the checkpoint found for `name` (default:
    the family), which must hold `family` when one is given, of a family that supports `command`."""
    if family is not None:
        get_family(family)
    path = find_checkpoint(name or family, checkpoint, hint=hint)
    held = read_metadata(path)["family"]
    if family is not None and held != family:
        raise GencliError(f"{path} holds a {held} model, but this needs {family}")
    require_command(held, command)
    model, meta = load_model(path, held, distributed.resolve_device(str(device)))
    meta["path"] = path
    return model, meta


# --- run directories -----------------------------------------------------------------------------------

def prepare_run_dir(name: str, out: str | Path | None, resume: bool, overwrite: bool) -> Path:
    """The run directory; refuses to clobber an earlier run unless asked to resume or overwrite."""
    run_dir = Path(out) if out else RUNS_DIR / name
    if resume and overwrite:
        raise GencliError("--resume and --overwrite exclude each other")
    if not resume and not overwrite and (run_dir / MODEL_FILE).exists():
        raise GencliError(f"{run_dir} already holds a trained model; pass --resume to continue it "
                          "or --overwrite to start again")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GencliError(f"cannot create run directory {run_dir}: {e.strerror}") from None
    return run_dir


def write_options(run_dir: Path, options: dict) -> None:
    """options.json of a run: its training options plus the torchrun processes and the global batch they
    make (options["batch_size"] is per process); written by rank 0 alone."""
    w = distributed.world()
    options.update(processes=w.world_size, global_batch_size=options["batch_size"] * w.world_size)
    if w.is_main:
        (Path(run_dir) / OPTIONS_FILE).write_text(json.dumps(options, indent=2) + "\n")


@dataclass
class ResumedRun:
    """What `--resume` reads back from a run directory: the architecture, seed and metadata of its
    model.safetensors, and its options.json (empty if absent)."""

    config: dict
    seed: int
    metadata: dict
    options: dict


def resumed_run(run_dir: Path, family: str) -> ResumedRun:
    """The run in `run_dir` to continue; it must hold a model of `family`."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise GencliError(f"nothing to resume in {run_dir}: it holds no {MODEL_FILE}")
    meta = read_metadata(path)
    if meta["family"] != family:
        raise GencliError(f"{run_dir} holds a {meta['family']} run, not {family}")
    options_path = Path(run_dir) / OPTIONS_FILE
    options = json.loads(options_path.read_text()) if options_path.is_file() else {}
    return ResumedRun(meta["config"], meta["seed"], meta["extra"], options)
