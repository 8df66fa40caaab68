"""Run directories and opening models.

One rule finds the checkpoint a command works on (`find_checkpoint`, from gencli.catalog): an explicit path
(a file, or a run folder holding model.safetensors); else runs/NAME/model.safetensors; else an imported
model <models dir>/NAME.safetensors; else the checkpoint bundled with gencli as NAME. One function opens it
for a command (`open_model`) and tells the listeners of `watch_models` which model it opened and where it
came from (`watch_models`, from gencli.catalog); one reads a run back for `--resume` (`resumed_run`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gencli import distributed
from gencli.catalog import (RUNS_DIR, ModelSource, bundled_checkpoint, locate_checkpoint,  # noqa: F401
                            models_dir, path_argument, shadowed, tell)
from gencli.checkpoint import MODEL_FILE, load_model, read_metadata
from gencli.errors import GencliError, OptionError
from gencli.registry import get_family, require_command

OPTIONS_FILE = "options.json"


# --- finding and opening checkpoints ------------------------------------------------------------------
# Finding is torch-free and lives in gencli.catalog (so that `gencli info` loads no torch); it is
# re-exported here, where the commands' opening of models is.

def find_checkpoint(name: str, checkpoint: str | Path | None = None, *, hint: str = "") -> Path:
    """The checkpoint path of model `name` (see gencli.catalog.locate_checkpoint for the rule and the
    provenance)."""
    return locate_checkpoint(name, checkpoint, hint=hint).path


def open_model(command: str, family: str | None = None, checkpoint: str | Path | None = None,
               device: str | torch.device = "cpu", *, name: str | None = None, hint: str = ""):
    """(model in eval mode, metadata with "path" and "source", a ModelSource) for `command`: the checkpoint found for `name` (default:
    the family), which must hold `family` when one is given, of a family that supports `command`."""
    if family is not None:
        get_family(family)
    source = locate_checkpoint(name or family, checkpoint, hint=hint)
    path = source.path
    held = read_metadata(path)["family"]
    if family is not None and held != family:
        raise GencliError(f"{path} holds a {held} model, but this needs {family}")
    require_command(held, command)
    model, meta = load_model(path, held, distributed.resolve_device(str(device)))
    source = dataclasses.replace(source, family=held, epoch=meta["epoch"])
    meta["path"], meta["source"] = path, source
    tell(source)
    return model, meta


# --- run directories -----------------------------------------------------------------------------------

def prepare_run_dir(name: str, out: str | Path | None, resume: bool, overwrite: bool) -> Path:
    """The run directory; refuses to clobber an earlier run unless asked to resume or overwrite."""
    run_dir = Path(out) if out else RUNS_DIR / name
    if resume and overwrite:
        raise OptionError("--resume and --overwrite exclude each other")
    if not resume and not overwrite and (run_dir / MODEL_FILE).exists():
        raise GencliError(f"{run_dir} already holds a trained model; pass --resume to continue it "
                          "or --overwrite to start again")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GencliError(f"cannot create run directory {run_dir}: {e.strerror}") from None
    tell(training_source(run_dir))
    return run_dir


def training_source(run_dir: Path) -> ModelSource:
    """The model a training writes, as listeners hear of it (origin "training"): a run folder runs/NAME
    shadows an imported or bundled model NAME, which commands naming NAME no longer use."""
    name = Path(run_dir).name
    in_runs = Path(run_dir).resolve() == (RUNS_DIR / name).resolve()
    shadows = shadowed(name, "run") if in_runs else None
    return ModelSource(Path(run_dir) / MODEL_FILE, "training", name, shadows)


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
