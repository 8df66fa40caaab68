"""CLI commands of the stylegan family: `train stylegan`, `style-mix`, `interpolate` and
`import-weights stylegan` (`sample stylegan` is in gencli.cli.vae). They parse, call gencli.api
and print."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.progress import distributed_job, training_progress, training_result
from gencli.cli.shared import (CheckpointOpt, DataDirOpt, DeviceName, DeviceOpt, JsonOpt, LogEveryOpt, StyleganModelArg,
                               OutputOpt, ScaleOpt, TrainPrecision, TrainPrecisionOpt, app, examples, fails_cleanly,
                               default_output, finish, import_app, model_choice, model_stem, replacing,
                               train_app, warn_skipped)
from gencli.errors import OptionError


class Style(str, Enum):
    adain = "adain"
    demod = "demod"

TruncationOpt = Annotated[float, typer.Option(help="Truncation psi in [0, 1]: w_avg + psi (w - w_avg); 1 disables it.")]
NoiseSeedOpt = Annotated[int, typer.Option(help="Seed of the per-pixel noise, the same for every image.")]
ClassOpt = Annotated[Optional[int], typer.Option("--label", help="Class to draw, for a model trained with --cond (default: seed s draws class s % classes, so the classes show).")]


@train_app.command("stylegan", epilog=examples(
    "gencli train stylegan --data mnist --kimg 200       # runs/stylegan/",
    "gencli train stylegan --data photos/ --resolution 64 --run-dir runs/photos",
    "gencli train stylegan --data monet/ --init-from runs/photos --run-dir runs/m"))
@fails_cleanly
def train_stylegan(
    data: Annotated[str, typer.Option(help="mnist, fashion-mnist (padded to 32 px), or a folder of images (with --cond: one subfolder per class).")] = "mnist",
    data_dir: DataDirOpt = None,
    kimg: Annotated[Optional[float], typer.Option(help="Thousands of training images in all (default 100).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Or: ticks to train in all (each --tick-kimg images).")] = None,
    tick_kimg: Annotated[float, typer.Option(help="Thousands of images per tick: metrics, sample grid, checkpoint.")] = 4.0,
    batch_size: Annotated[int, typer.Option(help="Images per step (per process under torchrun).")] = 32,
    resolution: Annotated[Optional[int], typer.Option(help="Image size, a power of two (default 32).")] = None,
    widths: Annotated[Optional[str], typer.Option(help="Channels at 4, 8, ..., RES px, e.g. 128,128,64,32 (default: by resolution).")] = None,
    z_dim: Annotated[Optional[int], typer.Option(help="Size of z (default 128).")] = None,
    w_dim: Annotated[Optional[int], typer.Option(help="Size of w (default 128).")] = None,
    mapping_layers: Annotated[Optional[int], typer.Option(help="Layers of the mapping network (default 8).")] = None,
    style: Annotated[Optional[Style], typer.Option(help="How w styles each layer: adain (the paper) or demod (StyleGAN2's weight demodulation).")] = None,
    skip_rgb: Annotated[Optional[bool], typer.Option("--skip-rgb/--no-skip-rgb", help="StyleGAN2's skip generator: a to-RGB at every resolution, summed (default on).")] = None,
    tanh_output: Annotated[Optional[bool], typer.Option("--tanh-output/--linear-output", help="tanh on the generator's output (default: on for mnist and fashion-mnist, off for folders).")] = None,
    mbstd_group: Annotated[Optional[int], typer.Option(help="Images per minibatch-standard-deviation group in D (default: the batch size, at most 32).")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate (the paper's at 32 px; mapping network x0.01).")] = 0.001,
    r1_gamma: Annotated[Optional[float], typer.Option(help="R1 weight gamma (default 0.0002 res^2 / batch).")] = None,
    r1_every: Annotated[int, typer.Option(help="Lazy regularization: R1 every this many steps.")] = 16,
    mixing_prob: Annotated[float, typer.Option(help="Probability of style-mixing regularization.")] = 0.9,
    ema_kimg: Annotated[float, typer.Option(help="Half-life of the generator's moving average, in thousands of images.")] = 10.0,
    mirror: Annotated[Optional[bool], typer.Option("--mirror/--no-mirror", help="Random x-flips (default: on for folders, off for digits).")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Transfer learning: start from this stylegan run's G, D and EMA.")] = None,
    freeze_mapping: Annotated[bool, typer.Option(help="Keep the mapping network fixed (with --init-from).")] = False,
    freeze_d: Annotated[int, typer.Option(help="Freeze-D: keep D's first N blocks (and from-RGB) fixed.")] = 0,
    cond: Annotated[bool, typer.Option("--cond", help="Class-conditional (StyleGAN2-ADA): on the labels of mnist / fashion-mnist, or a folder's class subfolders.")] = False,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="DiffAugment (color, translation, cutout) on real and fake images before D, for small data sets.")] = False,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder to write (default: runs/stylegan).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceOpt = DeviceName.auto,
    precision: TrainPrecisionOpt = TrainPrecision.auto,
    resume: Annotated[bool, typer.Option(help="Continue the run in the run folder (its options are kept).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start again even if the run folder holds a model.")] = False,
    log_every: LogEveryOpt = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Train a StyleGAN (Karras et al. 2019) on digits or a folder of images; --init-from fine-tunes one."""
    from gencli import api

    progress = training_progress(log_every, kimg=True)
    with distributed_job(batch_size):
        path = api.train_stylegan(
            data=data, data_dir=data_dir, out=run_dir, resolution=resolution,
            widths=api.common.parse_ints(widths, "--widths") if widths else None, z_dim=z_dim, w_dim=w_dim,
            mapping_layers=mapping_layers, style=style.value if style else None, skip_rgb=skip_rgb, tanh_output=tanh_output,
            mbstd_group=mbstd_group, batch_size=batch_size, lr=lr, r1_gamma=r1_gamma, r1_every=r1_every,
            mixing_prob=mixing_prob, ema_kimg=ema_kimg, kimg=kimg, epochs=epochs, tick_kimg=tick_kimg, mirror=mirror,
            init_from=init_from, freeze_mapping=freeze_mapping, freeze_d=freeze_d, seed=seed, device=device.value,
            precision=precision.value, cond=cond, augment=augment, resume=resume, overwrite=overwrite, progress=progress, on_skip=warn_skipped)
        text, result = training_result("stylegan", path, progress)
        finish(as_json, text, **result)


@app.command("style-mix", epilog=examples(
    "gencli style-mix --rows 0-3 --cols 4-7 --cutoff 4    # bundled MNIST model",
    "gencli style-mix runs/photos --trunc 0.5 -o mix.png --json"))
@fails_cleanly
def style_mix(
    model: StyleganModelArg = None,
    rows: Annotated[str, typer.Option(help="Seeds of the rows: their coarse styles (layers below --cutoff).")] = "0-3",
    cols: Annotated[str, typer.Option(help="Seeds of the columns: their fine styles.")] = "4-7",
    cutoff: Annotated[int, typer.Option(help="Style layers taken from the row seed (4 = the 4 and 8 px layers).")] = 4,
    truncation: TruncationOpt = 0.7,
    noise_seed: NoiseSeedOpt = 0,
    label: ClassOpt = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    scale: ScaleOpt = 1,
    annotate: Annotated[bool, typer.Option(help="Write the seeds as row and column headers.")] = False,
    device: DeviceOpt = DeviceName.auto,
    as_json: JsonOpt = False,
) -> None:
    """The StyleGAN paper's style-mixing grid: coarse styles from the row seeds, fine from the columns."""
    from gencli import api

    checkpoint = stylegan_checkpoint(model, checkpoint)
    out = output or default_output(f"{model_stem(None, checkpoint, 'stylegan')}_style_mix",
                                   None if label is None else f"label{label}", "annotated" if annotate else None,
                                   f"x{scale}" if scale > 1 else None)
    replaced = replacing(out)
    path = api.style_mix(checkpoint=checkpoint, rows=api.common.parse_seeds(rows, "--rows"),
                         cols=api.common.parse_seeds(cols, "--cols"), cutoff=cutoff, truncation=truncation,
                         noise_seed=noise_seed, label=label, out=out, device=device.value,
                         scale=scale, annotate=annotate)
    finish(as_json, f"Style-mixing grid written to {path}{replaced}", output=str(path))


@app.command(epilog=examples(
    "gencli interpolate --seeds 0,1,2 --steps 8           # bundled MNIST model",
    "gencli interpolate runs/photos --seeds 0-3 -o walk.png --json"))
@fails_cleanly
def interpolate(
    model: StyleganModelArg = None,
    seeds: Annotated[str, typer.Option(help="Two or more seeds; one strip per consecutive pair, e.g. 0,1 or 0-3.")] = "0,1",
    steps: Annotated[int, typer.Option(help="Images per strip, ends included.")] = 8,
    truncation: TruncationOpt = 0.7,
    noise_seed: NoiseSeedOpt = 0,
    label: ClassOpt = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    scale: ScaleOpt = 1,
    annotate: Annotated[bool, typer.Option(help="Head each strip with its seeds (an animation: each frame with its seeds and t).")] = False,
    device: DeviceOpt = DeviceName.auto,
    as_json: JsonOpt = False,
) -> None:
    """A stylegan's images along straight lines in w space between seeds; -o NAME.gif (or .webp) writes
    an animation along the whole path."""
    from gencli import api

    checkpoint = stylegan_checkpoint(model, checkpoint)
    out = output or default_output(f"{model_stem(None, checkpoint, 'stylegan')}_interpolation",
                                   None if label is None else f"label{label}", "annotated" if annotate else None,
                                   f"x{scale}" if scale > 1 else None)
    replaced = replacing(out)
    path = api.interpolate(checkpoint=checkpoint, seeds=api.common.parse_seeds(seeds), steps=steps,
                           truncation=truncation, noise_seed=noise_seed, label=label,
                           out=out, device=device.value,
                           scale=scale, annotate=annotate)
    finish(as_json, f"Interpolation written to {path}{replaced}", output=str(path))


def stylegan_checkpoint(model: str | None, checkpoint: Path | None) -> Path | None:
    """style-mix and interpolate take MODEL (default: stylegan) like sample does."""
    family, checkpoint = model_choice(model, checkpoint)
    if family not in (None, "stylegan"):
        raise OptionError(f"this command draws from stylegan models, not {family}")
    return checkpoint


@import_app.command("stylegan", epilog=examples(
    "gencli import-weights stylegan ffhq-256.model --resolution 256 -o ffhq.safetensors",
    "gencli sample stylegan -c ffhq.safetensors --seeds 0-15"))
@fails_cleanly
def import_stylegan(
    file: Annotated[Path, typer.Argument(help="A rosinality/style-based-gan-pytorch checkpoint (.model/.pt).")],
    resolution: Annotated[int, typer.Option(help="The resolution the checkpoint was trained to (its file holds layers up to 1024 px).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="gencli checkpoint to write.")] = Path("stylegan-imported.safetensors"),
    as_json: JsonOpt = False,
) -> None:
    """Convert a StyleGAN (v1) generator from rosinality/style-based-gan-pytorch into a gencli checkpoint."""
    from gencli import api

    path = api.import_stylegan(file, resolution=resolution, out=output)
    finish(as_json, f"Checkpoint written to {path}; try `gencli sample stylegan -c {path}`", output=str(path),
           next=f"gencli sample stylegan -c {path}")
