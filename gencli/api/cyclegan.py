"""The CycleGAN commands: train, translate, download (data sets), download-weights and import-weights."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from gencli import distributed, download
from gencli.api.common import check_numbers, train_or_plan, training_options
from gencli.data import data_root
from gencli.errors import GencliError, OptionError
from gencli.files import check_name
from gencli.inference import cyclegan as inference
from gencli.models.cyclegan import check_direction
from gencli.catalog import locate_checkpoint, locate_model
from gencli.runs import open_model
from gencli.training import cyclegan as training
from gencli.training.loop import TrainingHooks, TrainingPlan
from gencli.training.options import CycleGANTraining
from gencli.weights import cyclegan as weights

OnSkip = Callable[[Path, str], None]


def train_cyclegan(options: CycleGANTraining | None = None, /, *, run_dir: str | Path | None = None,
                   resume: bool = False, overwrite: bool = False, dry_run: bool = False,
                   progress: TrainingHooks | None = None, on_skip: OnSkip | None = None,
                   **overrides) -> Path | TrainingPlan:
    """Train a CycleGAN with `options` (default CycleGANTraining()) and the keyword `overrides` of its
    fields, e.g. train_cyclegan(CycleGANTraining(epochs=5), data="horse2zebra"), on the unpaired folders of
    its `data` (a name in the data directory or a folder); returns the path of model.safetensors in the
    run folder (default runs/<data name>). With `resume`, the run's own options hold: this call may change
    the length (epochs), device, precision, data_dir, channels_last and annotate, and any other option it
    sets must equal the run's. `on_skip(path, message)` hears of each unreadable image skipped.
    `dry_run`: return the TrainingPlan, writing nothing."""
    options = training_options(CycleGANTraining, options, overrides)
    return train_or_plan(training, options, dry_run=dry_run, progress=progress, on_skip=on_skip, run_dir=run_dir,
                         resume=resume, overwrite=overwrite)


def translate(model: str | Path | None, inputs: list[Path], *, checkpoint: str | Path | None = None,
              out: Path | None = None, direction: str = "a2b", size: int | None = None, device: str = "cpu",
              precision: str = "auto", tile: int = 512, on_skip: OnSkip | None = None) -> list[Path]:
    """Translate image files and folders with the cyclegan `model` (a name: runs/NAME, an imported or a
    bundled model; an id such as bundled:monet2photo; or a checkpoint path), or the one at `checkpoint`
    (a file or run folder); returns the written paths. precision: auto (bf16 autocast on CUDA or a CPU
    with native bf16, else fp32), fp32, bf16, or fp16 (CUDA)."""
    check_numbers(locals())
    check_direction(direction)
    if precision not in distributed.PRECISIONS:
        raise OptionError(f"unknown --precision {precision!r}; use {', '.join(distributed.PRECISIONS)}")
    if size is not None and size < 4:
        raise OptionError(f"--size must be at least 4, got {size}")
    if tile < 64:
        raise OptionError(f"--tile must be at least 64, got {tile}")
    dev = distributed.resolve_device(device)
    precision = distributed.resolve_precision(precision, dev)[0]
    if precision == "fp16" and dev.type == "cpu":
        raise GencliError("fp16 needs a CUDA GPU; on the CPU use --precision bf16")
    if (model is None) == (checkpoint is None):
        raise OptionError("name a model or give a checkpoint, one of them")
    hint = (f"train it (gencli train cyclegan --data {model}), or fetch official weights "
            "(gencli download-weights NAME)")
    source = locate_checkpoint(None, checkpoint) if checkpoint is not None else locate_model(model, hint=hint)
    if source.path.suffix in (".pth", ".pt"):
        raise GencliError(f"{source.path} is a PyTorch file; convert it first: "
                          f"gencli import-weights cyclegan {source.path} --name NAME")
    net, _ = open_model("translate", None, source, dev)
    if direction not in net.config.directions:
        raise GencliError(f"this model only translates {net.config.directions[0]}; it holds no {direction} "
                          "generator (import the other direction's weights under the same --name)")
    return inference.translate_files(net, inputs, out=out, direction=direction, size=size, precision=precision,
                                     tile=tile, on_skip=on_skip)


def import_cyclegan(pth: str | Path, *, name: str | None = None, direction: str = "a2b",
                    out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Convert an official generator .pth into a cyclegan checkpoint (see gencli.weights.cyclegan)."""
    return weights.import_official(pth, name=name, direction=direction, out=out, overwrite=overwrite)


def export_fp16(checkpoint: str | Path, out: str | Path) -> Path:
    """A cyclegan checkpoint with float16 generators (half the size), as bundled in assets/."""
    return weights.export_fp16(checkpoint, out)


def download_dataset(name: str, *, data_dir: str | Path | None = None, base_url: str | None = None,
                     md5: str | None = None, force: bool = False,
                     progress: download.ByteProgress | None = None) -> Path:
    """Download, verify and unpack an official CycleGAN data set into the data directory; returns its folder."""
    return download.download_dataset(name, data_root(data_dir), base_url=base_url, md5=md5, force=force,
                                     progress=progress)


def downloaded_dataset(name: str, *, data_dir: str | Path | None = None) -> Path | None:
    """The folder of data set `name` in the data directory when it is already there (None otherwise)."""
    folder = data_root(data_dir) / check_name(name, "data set name")
    return folder if folder.exists() else None


def download_weights(name: str, *, as_name: str | None = None, direction: str | None = None,
                     base_url: str | None = None, overwrite: bool = False,
                     progress: download.ByteProgress | None = None) -> tuple[Path, str, str]:
    """Download an official pretrained generator and import it; returns (checkpoint, model name, direction)."""
    default_name, default_direction = download.WEIGHTS.get(name, (name, "a2b"))
    model_name, direction = as_name or default_name, direction or default_direction
    check_name(model_name, "model name")  # both before the download, not after it
    check_direction(direction)
    with tempfile.TemporaryDirectory(prefix="gencli-") as tmp:
        pth = download.download_weights(name, Path(tmp), base_url=base_url, progress=progress)
        path = weights.import_official(pth, name=model_name, direction=direction, overwrite=overwrite)
    return path, model_name, direction
