"""CLI commands of the cyclegan family: `train cyclegan`, `translate`, `download`, `download-weights` and
`import-weights cyclegan`. They parse, call gencli.api and print."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.progress import distributed_job, training_progress, training_result
from gencli.cli.shared import (CheckpointOpt, DataDirOpt, DeviceName, Direction, DeviceOpt, JsonOpt, LogEveryOpt, TrainPrecision, TrainPrecisionOpt,
                               app, download_bar,
                               examples, fails_cleanly, finish, import_app, train_app, warn_skipped)
from gencli.errors import OptionError


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Upsample(str, Enum):
    resize = "resize"
    deconv = "deconv"


class GanMode(str, Enum):
    lsgan = "lsgan"
    vanilla = "vanilla"


BaseUrlOpt = Annotated[Optional[str], typer.Option(help="Mirror to download from instead of the official server (http, https or file URL of the folder).")]


# --- train ---------------------------------------------------------------------------------------------

@train_app.command("cyclegan", epilog=examples(
    "gencli train cyclegan --data monet2photo --image-size 128 --ngf 32 --epochs 10",
    "gencli train cyclegan --data monet2photo --epochs 20 --resume",
    "gencli train cyclegan --data path/to/horse2zebra --run-dir runs/h2z"))
@fails_cleanly
def train_cyclegan(
    data: Annotated[str, typer.Option(help="Data set name in the data directory (e.g. monet2photo) or a folder holding trainA, trainB (testA, testB).")] = "monet2photo",
    data_dir: DataDirOpt = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder to write (default: runs/<data set name>).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs in all (also when resuming): constant LR for the first half, then linear decay to 0.")] = 200,
    image_size: Annotated[int, typer.Option(help="Training crop in pixels (images are resized to 1.12x, then cropped); 128 or 64 for CPU runs.")] = 256,
    max_images: Annotated[Optional[int], typer.Option(help="Train on a random subset of at most N images per domain.")] = None,
    ngf: Annotated[int, typer.Option(help="Generator width (channels of the first conv).")] = 64,
    n_blocks: Annotated[Optional[int], typer.Option(help="Residual blocks in each generator (default: 9 at 256 px and above, else 6).")] = None,
    ndf: Annotated[int, typer.Option(help="Discriminator width (channels of the first conv).")] = 64,
    gan_mode: Annotated[GanMode, typer.Option(help="Adversarial loss: least squares or the original sigmoid cross-entropy.")] = GanMode.lsgan,
    lambda_cycle: Annotated[float, typer.Option(help="Weight of the cycle-consistency L1 losses.")] = 10.0,
    lambda_identity: Annotated[float, typer.Option(help="Identity L1 weight as a fraction of --lambda-cycle (0 disables it).")] = 0.5,
    lr: Annotated[float, typer.Option(help="Adam learning rate (betas 0.5, 0.999).")] = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Images per domain per step (per process under torchrun).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceOpt = DeviceName.auto,
    precision: TrainPrecisionOpt = TrainPrecision.auto,
    upsample: Annotated[Upsample, typer.Option(help="Decoder upsampling of a new model: resize (nearest x2 + 3x3 conv, no checkerboard) or deconv (the paper's transposed convs).")] = Upsample.resize,
    load_size: Annotated[Optional[int], typer.Option(help="Resize training images to N pixels before the random crop (default 1.12 x --image-size); e.g. 286 with --image-size 128 trains on patches at full-image scale.")] = None,
    channels_last: Annotated[bool, typer.Option(help="Use the channels-last memory format.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in the run folder.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start again even if the run folder holds a model.")] = False,
    log_every: LogEveryOpt = 30.0,
    as_json: JsonOpt = False,
    annotate: Annotated[bool, typer.Option(help="Head the columns of the sample grids: real A, fake B, rec A, real B, fake A, rec B.")] = False,
) -> None:
    """Train a CycleGAN (two generators, two PatchGAN discriminators) on two unpaired image folders."""
    from gencli import api

    blocks = n_blocks if n_blocks is not None else (9 if image_size >= 256 else 6)
    progress = training_progress(log_every)
    with distributed_job(batch_size):
        path = api.train_cyclegan(data, data_dir=data_dir, out=run_dir, epochs=epochs, image_size=image_size, ngf=ngf,
                                  n_blocks=blocks, ndf=ndf, gan_mode=gan_mode.value, lambda_cycle=lambda_cycle,
                                  lambda_identity=lambda_identity, lr=lr, batch_size=batch_size, max_images=max_images,
                                  seed=seed, device=device.value, precision=precision.value,
                                  channels_last=channels_last, upsample=upsample.value,
                                  load_size=load_size, resume=resume, overwrite=overwrite, progress=progress,
                                  on_skip=warn_skipped, annotate=annotate)
        text, result = training_result("cyclegan", path, progress)
        finish(as_json, text, **result)


# --- translate --------------------------------------------------------------------------------------------

@app.command(epilog=examples(
    "gencli translate monet2photo painting.jpg -o photo.png   # Monet to photo",
    "gencli translate monet2photo holiday/ --direction b2a --outdir paintings/",
    "gencli translate bundled:monet2photo painting.jpg        # the bundled one, whatever runs/ holds",
    "gencli translate -c runs/h2z horse.jpg --json"))
@fails_cleanly
def translate(
    model: Annotated[Optional[str], typer.Argument(metavar="MODEL", show_default=False, help="Model name (runs/NAME, an imported or a bundled model), a model id (bundled:monet2photo, run:NAME, imported:NAME; `gencli models` lists them), a run folder or a checkpoint file; left out with -c.")] = None,
    inputs: Annotated[Optional[list[Path]], typer.Argument(metavar="IMAGE", show_default=False, help="Image files and/or folders of images.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file for one image (a folder for several, as --outdir; default: ./STEM_DIRECTION.png).")] = None,
    outdir: Annotated[Optional[Path], typer.Option("--outdir", help="Folder for the translations (default for folders: ./FOLDER_DIRECTION/).")] = None,
    direction: Annotated[Direction, typer.Option(help="a2b (AtoB; e.g. monet2photo: painting to photo) or b2a (BtoA).")] = Direction.a2b,
    size: Annotated[Optional[int], typer.Option(help="Resize the short side to N pixels first (default: keep the size).")] = None,
    tile: Annotated[int, typer.Option(help="Tile size for images above 1024x1024 pixels (bounds memory).")] = 512,
    precision: Annotated[Precision, typer.Option(help="auto (bf16 on CUDA or a CPU with native bf16, else fp32), fp32, or bf16 (CPU or CUDA) / fp16 (CUDA) autocast.")] = Precision.auto,
    device: DeviceOpt = DeviceName.auto,
    as_json: JsonOpt = False,
    checkpoint: CheckpointOpt = None,
) -> None:
    """Translate images of any size with a CycleGAN generator; the output keeps the input's size."""
    from gencli import api

    inputs = list(inputs or [])
    if checkpoint is not None and model is not None:
        inputs.insert(0, Path(model))  # with -c, every positional argument is an image
    elif model is None:
        raise OptionError("name a model (e.g. `gencli translate monet2photo IMAGE`) or pass -c PATH")
    if not inputs:
        raise OptionError("name the images to translate, e.g. `gencli translate monet2photo painting.jpg`")
    if output is not None and outdir is not None:
        raise OptionError("give -o/--output or --outdir, not both")
    paths = api.translate(model if checkpoint is None else None, inputs, checkpoint=checkpoint,
                          out=output or outdir, direction=direction.value, size=size,
                          device=device.value, precision=precision.value, tile=tile, on_skip=warn_skipped)
    where = paths[0] if len(paths) == 1 else f"{paths[0].parent} ({len(paths)} images)"
    finish(as_json, f"Translated ({direction.value}) image{'s' if len(paths) > 1 else ''} written to {where}",
           direction=direction.value, outputs=[str(p) for p in paths])


# --- data and weights --------------------------------------------------------------------------------------

@app.command(epilog=examples("gencli download monet2photo", "gencli download horse2zebra --data-dir data --json"))
@fails_cleanly
def download(
    name: Annotated[str, typer.Argument(help="Official CycleGAN data set, e.g. monet2photo, horse2zebra, apple2orange.")],
    data_dir: DataDirOpt = None,
    base_url: BaseUrlOpt = None,
    md5: Annotated[Optional[str], typer.Option(help="Expected md5 of the zip, checked before unpacking.")] = None,
    force: Annotated[bool, typer.Option(help="Replace the data set if it is already there.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download, verify and unpack an official CycleGAN data set into the data directory (a data set
    already there is kept: --force downloads it again)."""
    from gencli import api

    present = None if force else api.downloaded_dataset(name, data_dir=data_dir)
    if present is not None:
        finish(as_json, f"{name} is already in {present} (--force downloads it again); train with: "
                        f"gencli train cyclegan --data {present}",
               folder=str(present), downloaded=False, next=f"gencli train cyclegan --data {present}")
        return
    update, stop = download_bar(f"{name}.zip")
    try:
        folder = api.download_dataset(name, data_dir=data_dir, base_url=base_url, md5=md5, force=force,
                                      progress=update)
    finally:
        stop()
    finish(as_json, f"{name} unpacked into {folder}; train with: gencli train cyclegan --data {folder}",
           folder=str(folder), downloaded=True, next=f"gencli train cyclegan --data {folder}")


@app.command("download-weights", epilog=examples(
    "gencli download-weights monet2photo     # then style_monet: a two-way model",
    "gencli download-weights horse2zebra --json"))
@fails_cleanly
def download_weights(
    name: Annotated[str, typer.Argument(help="Official pretrained generator: monet2photo (Monet to photo), style_monet (photo to Monet), horse2zebra, ...")],
    as_name: Annotated[Optional[str], typer.Option("--name", help="Model name to store it under (default: its data set, e.g. style_monet -> monet2photo).")] = None,
    direction: Annotated[Optional[Direction], typer.Option(help="Direction it translates in that model (default: from the official name).")] = None,
    base_url: BaseUrlOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace that direction if it was imported before.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download an official pretrained CycleGAN generator and import it (see `import-weights cyclegan`).

    Files come from http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth. Each holds one
    direction; `monet2photo` then `style_monet` make one two-way monet2photo model.
    """
    from gencli import api

    update, stop = download_bar(f"{name}.pth")
    try:
        path, model_name, chosen = api.download_weights(name, as_name=as_name,
                                                        direction=direction.value if direction else None,
                                                        base_url=base_url, overwrite=overwrite, progress=update)
    finally:
        stop()
    finish(as_json, f"Imported {name} as {model_name} ({chosen}) into {path}; use: gencli translate {model_name} IMAGE",
           output=str(path), name=model_name, direction=chosen, next=f"gencli translate {model_name} IMAGE")


@import_app.command("cyclegan", epilog=examples(
    "gencli import-weights cyclegan latest_net_G_A.pth --name horse2zebra",
    "gencli import-weights cyclegan style_monet.pth --name monet2photo --direction b2a",
    "gencli import-weights cyclegan G.pth -o g.safetensors --json"))
@fails_cleanly
def import_cyclegan(
    file: Annotated[Path, typer.Argument(help="Generator .pth saved by junyanz/pytorch-CycleGAN-and-pix2pix (e.g. latest_net_G_A.pth).")],
    name: Annotated[Optional[str], typer.Option(help="Model name for `gencli translate NAME` (default: the file's stem).")] = None,
    direction: Annotated[Direction, typer.Option(help="What the generator does: a2b, or b2a (e.g. style_monet is monet2photo's b2a).")] = Direction.a2b,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Checkpoint to write (default: the per-user models folder, NAME.safetensors).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model or direction.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert an official CycleGAN generator into a gencli checkpoint (loaded with weights_only=True).

    Official files: http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth, e.g.
    monet2photo (Monet to photo) and style_monet (photo to Monet); `gencli download-weights NAME` fetches
    and imports them. Importing the other direction under the same --name completes a two-way model.
    """
    from gencli import api

    path = api.import_cyclegan(file, name=name, direction=direction.value, out=output, overwrite=overwrite)
    finish(as_json, f"Imported {file} ({direction.value}) into {path}", output=str(path), direction=direction.value)
