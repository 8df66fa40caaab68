"""Run directories and opening models.

One rule finds the checkpoint a command works on (`find_checkpoint`, from gencli.catalog): an explicit path
(a file, or a run folder holding model.safetensors); else runs/NAME/model.safetensors; else an imported
model <models dir>/NAME.safetensors; else the checkpoint bundled with gencli as NAME. One function opens it
for a command (`open_model`) and tells the listeners of `watch_models` which model it opened and where it
came from (`watch_models`, from gencli.catalog); one reads a run back for `--resume` (`resumed_run`).

A run directory is held by one training process at a time (`hold_run_dir`): an exclusive `flock` on its
`.lock` file, which the kernel releases when the process ends, however it ends (even kill -9), so a
killed run never leaves the folder locked. Under torchrun rank 0 holds it for all processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gencli import distributed
from gencli.catalog import (RUNS_DIR, ModelSource, bundled_checkpoint, locate_checkpoint,  # noqa: F401
                            models_dir, path_argument, shadowed, tell)
from gencli.checkpoint import (MODEL_FILE, RESUME_FILE, decode_metadata, load_model, load_resume, pair_split,
                               read_metadata)
from gencli.errors import GencliError, NothingToDo, OptionError
from gencli.files import atomic_write
from gencli.registry import get_family, is_kind, require_command

OPTIONS_FILE = "options.json"
LOCK_FILE = ".lock"
# What a run writes; `--overwrite` removes these (and samples/epoch_*.png) before the new run starts.
RUN_OUTPUTS = (MODEL_FILE, RESUME_FILE, OPTIONS_FILE, "metrics.jsonl", "loss.png", "latent.png")


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
    if family is not None and not is_kind(held, family):
        raise GencliError(f"{path} holds a {held} model, but this needs {family}")
    require_command(held, command)
    model, meta = load_model(path, held, distributed.resolve_device(str(device)))
    source = dataclasses.replace(source, family=held, epoch=meta["epoch"])
    meta["path"], meta["source"] = path, source
    tell(source)
    return model, meta


# --- run directories -----------------------------------------------------------------------------------

def prepare_run_dir(name: str, out: str | Path | None, resume: bool, overwrite: bool) -> Path:
    """The run directory, checked but not created (see `hold_run_dir`): it refuses to clobber an earlier
    run unless asked to resume or overwrite, and `resume` needs a run to continue."""
    run_dir = Path(out) if out else RUNS_DIR / name
    if resume and overwrite:
        raise OptionError("--resume and --overwrite exclude each other")
    if run_dir.exists() and not run_dir.is_dir():
        raise GencliError(f"{run_dir} is a file; the run directory must be a folder")
    if distributed.world().is_main and (run_dir / LOCK_FILE).is_file():
        with open(run_dir / LOCK_FILE) as probe:  # in use? (hold_run_dir takes it for good)
            _lock(probe.fileno(), run_dir)
    trained = (run_dir / MODEL_FILE).exists() or (run_dir / RESUME_FILE).exists()
    if not resume and not overwrite and trained:
        raise GencliError(f"{run_dir} already holds a trained model; pass --resume to continue it "
                          "or --overwrite to start again")
    if resume and not trained:
        raise GencliError(f"nothing to resume in {run_dir}: it holds no {MODEL_FILE}")
    tell(training_source(run_dir))
    return run_dir


@contextlib.contextmanager
def hold_run_dir(run_dir: Path):
    """Within the block this process holds `run_dir` (created if need be): a second training into it is
    refused at once. If the block fails before the run wrote anything, a folder created here is removed
    again (with the parents it made, such as runs/), so a failed command leaves no empty run folder.
    Under torchrun, rank 0 holds it."""
    run_dir = Path(run_dir)
    if not distributed.world().is_main:
        yield run_dir
        return
    created = []  # the folders made here, innermost first (runs/NAME, and runs/ when it was missing)
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            break
        created.append(folder)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise GencliError(f"cannot create run directory {run_dir}: {e.strerror}") from None
    try:
        _lock(fd, run_dir)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield run_dir
        except BaseException:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                (run_dir / LOCK_FILE).unlink()
                for folder in created:  # empty ones only: another process may have written beside
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            raise
    finally:
        os.close(fd)  # releases the lock


def _lock(fd: int, run_dir: Path) -> None:
    """Take the exclusive lock on the open lock file `fd`; refused at once when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        raise GencliError(f"{run_dir} is in use by another training (process {holder or 'unknown'}); "
                          "wait for it to finish or choose another --run-dir") from None


def clear_run_outputs(run_dir: Path) -> None:
    """Remove what an earlier run wrote into `run_dir` (for `--overwrite`); other files stay."""
    run_dir = Path(run_dir)
    if not distributed.world().is_main:
        return
    for name in RUN_OUTPUTS:
        (run_dir / name).unlink(missing_ok=True)
    for image in (run_dir / "samples").glob("epoch_*.png"):
        image.unlink()


def epochs_done(run_dir: Path) -> int:
    """The last finished epoch of the run in `run_dir` (from resume.pt, which may be one epoch ahead of
    model.safetensors after a kill; 0 if there is none)."""
    path = Path(run_dir) / RESUME_FILE
    return load_resume(path)["epoch"] if path.is_file() else 0


def check_more_to_do(run_dir: Path, epochs: int) -> None:
    """For `--resume`: NothingToDo when the run has already finished `epochs` epochs. A run whose last
    checkpoint pair a kill split is not finished: the resume goes on to write its model (training nothing)."""
    done = epochs_done(run_dir)
    if epochs <= done and not pair_split(run_dir, done):
        raise NothingToDo(f"nothing to do: {run_dir} has finished {done} epoch{'' if done == 1 else 's'}, and "
                          f"{epochs} {'was' if epochs == 1 else 'were'} asked for; "
                          "ask for more to train further")


def training_source(run_dir: Path) -> ModelSource:
    """The model a training writes, as listeners hear of it (origin "training"): a run folder runs/NAME
    shadows an imported or bundled model NAME, which commands naming NAME no longer use."""
    name = Path(run_dir).name
    in_runs = Path(run_dir).resolve() == (RUNS_DIR / name).resolve()
    shadows = shadowed(name, "run") if in_runs else None
    return ModelSource(Path(run_dir) / MODEL_FILE, "training", name, shadows)


def write_options(run_dir: Path, document: dict) -> None:
    """options.json of a run (gencli.training.options.options_document); written by rank 0 alone."""
    if distributed.world().is_main:
        text = json.dumps(document, indent=2) + "\n"
        atomic_write(Path(run_dir) / OPTIONS_FILE, lambda tmp: Path(tmp).write_text(text))


def resolved(device, precision: str, reason: str, batch_size: int) -> dict:
    """What a run resolved, for options.json: the device, the precision and why, the torchrun processes
    and the global batch they make (the batch size is per process)."""
    w = distributed.world()
    return {"device": str(device), "precision": precision, "precision_reason": reason,
            "processes": w.world_size, "global_batch_size": batch_size * w.world_size}


@dataclass
class ResumedRun:
    """What `--resume` reads back from a run directory: the architecture, seed and metadata of its
    model.safetensors, and its options.json (empty if absent)."""

    config: dict
    seed: int
    metadata: dict
    options: dict
    family: str = ""  # the model's family: `family`, or a kind of it (a stylegan2 run of `train stylegan`)


def resumed_run(run_dir: Path, family: str) -> ResumedRun:
    """The run in `run_dir` to continue; it must hold a model of `family` (or of a kind of it). The model's metadata comes from
    model.safetensors, or from the copy in resume.pt when a kill came before the first model was renamed."""
    path = Path(run_dir) / MODEL_FILE
    if path.is_file():
        meta = read_metadata(path)
    elif (Path(run_dir) / RESUME_FILE).is_file():
        state = load_resume(Path(run_dir) / RESUME_FILE)
        if "checkpoint" not in state:
            raise GencliError(f"nothing to resume in {run_dir}: it holds no {MODEL_FILE}")
        meta = decode_metadata(state["checkpoint"], Path(run_dir) / RESUME_FILE)
    else:
        raise GencliError(f"nothing to resume in {run_dir}: it holds no {MODEL_FILE}")
    if not is_kind(meta["family"], family):
        raise GencliError(f"{run_dir} holds a {meta['family']} run, not {family}")
    options_path = Path(run_dir) / OPTIONS_FILE
    try:
        options = json.loads(options_path.read_text()) if options_path.is_file() else {}
    except (OSError, ValueError):
        raise GencliError(f"{options_path} is not readable JSON") from None
    if not isinstance(options, dict):
        raise GencliError(f"{options_path} must hold a JSON object")
    return ResumedRun(meta["config"], meta["seed"], meta["extra"], options, meta["family"])
