"""CLI commands of the cyclegan family (`train cyclegan` is in gencli.cli.training): `translate`, `download`, `download-weights` and
`import-weights cyclegan`. They parse, call gencli.api and print."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import (CheckpointOpt, DataDirOpt, DeviceName, DeviceOpt, Direction, JsonOpt, app, download_bar,
                               examples, fails_cleanly, finish, import_app, warn_skipped)
from gencli.errors import OptionError


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


BaseUrlOpt = Annotated[Optional[str], typer.Option(help="Mirror to download from instead of the official server (http, https or file URL of the folder).")]


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
    "gencli download-weights ffhq            # NVIDIA's FFHQ faces; then: gencli sample stylegan -c ffhq --seeds 0-3",
    "gencli download-weights monet2photo     # then style_monet: a two-way model",
    "gencli download-weights horse2zebra --json"))
@fails_cleanly
def download_weights(
    name: Annotated[str, typer.Argument(help="NVIDIA's StyleGAN2 networks: ffhq, metfaces, afhqcat, afhqdog, afhqwild, brecahad, cifar10, ffhq-res256, ffhq-res512, ffhq-res1024; official CycleGAN generators: monet2photo (Monet to photo), style_monet (photo to Monet), horse2zebra, ...")],
    as_name: Annotated[Optional[str], typer.Option("--name", help="Model name to store it under (default: the network's name; a CycleGAN's: its data set, e.g. style_monet -> monet2photo).")] = None,
    direction: Annotated[Optional[Direction], typer.Option(help="CycleGAN: direction it translates in that model (default: from the official name).")] = None,
    base_url: BaseUrlOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Download again and replace the model (a CycleGAN: that direction) imported before.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download published weights and import them into the models folder.

    NVIDIA's StyleGAN2 networks come from https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/
    (NVIDIA Source Code License: non-commercial use; gencli does not redistribute them); the file must hold
    the network of that name. CycleGAN generators come from
    http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth, one direction each: `monet2photo`
    then `style_monet` make one two-way monet2photo model.
    """
    from gencli import api
    from gencli.api.info import stylegan2_networks

    if name in stylegan2_networks():
        if direction is not None:
            raise OptionError(f"--direction is for CycleGAN generators; {name} is a StyleGAN2 network")
        update, stop = download_bar(f"{name}.pkl")
        try:
            path, model_name = api.download_network(name, as_name=as_name, base_url=base_url, overwrite=overwrite,
                                                    progress=update)
        finally:
            stop()
        command = f"gencli sample stylegan -c {model_name} --seeds 0-3 --outdir {model_name}"
        finish(as_json, f"Imported NVIDIA's {name} as {model_name} into {path}; try: {command}",
               output=str(path), name=model_name, next=command)
        return
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
