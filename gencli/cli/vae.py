"""CLI commands of the vae and cvae families: `train vae|cvae`, `sample` (which also draws from stylegan
models), `latent-grid`, `reconstruct`, `evaluate`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli import shared
from gencli.cli.shared import (CheckpointOpt, DataDirOpt, DeviceName, DeviceOpt, LabelOpt, OutputOpt, app,
                               distributed_job, fails_cleanly, parse_ints, report, stdout, train_app)
from gencli.errors import GencliError


class VAEFamily(str, Enum):
    vae = "vae"
    cvae = "cvae"


@train_app.command("vae")
@train_app.command("cvae")
@fails_cleanly
def train_vae(
    ctx: typer.Context,
    epochs: Annotated[int, typer.Option(help="Epochs to train (in all, when resuming).")] = 50,
    batch_size: Annotated[int, typer.Option(help="Images per step (per process under torchrun).")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="constant, or cosine (lr down to lr/100 over the run).")] = "constant",
    ema_decay: Annotated[float, typer.Option(help="Per-step decay of the weight average that is evaluated and saved; 0 turns it off.")] = 0.9999,
    dropout: Annotated[float, typer.Option(help="Dropout after every hidden layer while training; 0 turns it off.")] = 0.0,
    latent_dim: Annotated[int, typer.Option(help="Size of the latent code; 2 can be plotted.")] = 2,
    hidden: Annotated[str, typer.Option(help="Encoder widths, comma-separated; the decoder mirrors them.")] = "512,256",
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    data_dir: DataDirOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: runs/FAMILY).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceOpt = DeviceName.auto,
    precision: shared.TrainPrecisionOpt = shared.TrainPrecision.auto,
    resume: Annotated[bool, typer.Option(help="Continue the run in the run directory.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start again even if the run directory holds a model.")] = False,
) -> None:
    """Train a VAE (or, as `train cvae`, a conditional VAE) on MNIST or Fashion-MNIST."""
    from gencli import api

    family = ctx.info_name
    with distributed_job(batch_size):
        path = api.train_vae(family, dataset=dataset, data_dir=data_dir, out=out, epochs=epochs,
                             batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, ema_decay=ema_decay,
                             dropout=dropout, latent_dim=latent_dim,
                             hidden=parse_ints(hidden, "--hidden"), seed=seed, device=device.value,
                             precision=precision.value, resume=resume,
                             overwrite=overwrite, progress=shared.rich_progress())
        report(f"Model written to {path}")


@app.command()
@fails_cleanly
def sample(
    family: Annotated[Optional[str], typer.Argument(help="vae, cvae or stylegan (default: from --checkpoint).")] = None,
    n: Annotated[Optional[int], typer.Option("-n", help="Number of images (default 64; cvae: 10 rows).")] = None,
    nrow: Annotated[int, typer.Option(help="Images per row.")] = 8,
    seed: Annotated[int, typer.Option(help="First seed; image i uses seed+i.")] = 0,
    seeds: Annotated[Optional[str], typer.Option(help="Explicit seeds, e.g. 0-63 or 1,5,9 (overrides -n/--seed).")] = None,
    label: LabelOpt = None,
    truncation: Annotated[Optional[float], typer.Option(help="stylegan only: truncation psi in [0, 1] (default 0.7; 1 disables it).")] = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    device: DeviceOpt = DeviceName.cpu,
) -> None:
    """Draw samples from the prior, one image per seed, as a PNG grid."""
    from gencli import api

    if family is None and checkpoint is None:
        raise GencliError("name a model family (e.g. `gencli sample vae`) or pass --checkpoint")
    if seeds is not None:
        seed_list = api.parse_seeds(seeds)
    elif n is not None:
        if n <= 0:
            raise GencliError(f"-n must be positive, got {n}")
        seed_list = list(range(seed, seed + n))
    else:
        seed_list = None
    out = output or Path(f"{family or 'model'}_samples.png")
    path = api.sample(family, checkpoint=checkpoint, seeds=seed_list, label=label, nrow=nrow, out=out,
                      device=device.value, truncation=truncation)
    names, legend = api.class_names(family, checkpoint), ""
    if names and label is not None:
        legend = f" (class {label}: {names[label]})"
    elif names:
        legend = f"; row r shows class r % {len(names)}"
        if names != [str(k) for k in range(len(names))]:  # digits need no legend
            legend += ": " + ", ".join(f"{k} {name}" for k, name in enumerate(names))
    stdout.print(f"Samples written to {path}{legend}", markup=False)


ModelOpt = Annotated[Optional[VAEFamily], typer.Option("--model", "-m", help="vae or cvae (default vae; --label implies cvae).")]


@app.command("latent-grid")
@fails_cleanly
def latent_grid(
    model: ModelOpt = None,
    label: LabelOpt = None,
    steps: Annotated[int, typer.Option(help="Grid size: steps x steps images.")] = 8,
    range_: Annotated[str, typer.Option("--range", help="auto (the test set's latent range) or LO,HI.")] = "auto",
    dims: Annotated[Optional[str], typer.Option(help="The two latent dimensions to span, I,J (needed beyond 2-D).")] = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    device: DeviceOpt = DeviceName.cpu,
) -> None:
    """Decode a grid of points spanning the latent space."""
    from gencli import api

    family = model.value if model else None
    dim_pair = parse_ints(dims, "--dims") if dims else None
    if dim_pair is not None and len(dim_pair) != 2:
        raise GencliError("--dims takes two dimensions, e.g. 0,1")
    default = f"{family or ('cvae' if label is not None else 'vae')}_latent_grid" + (f"_label{label}" if label is not None else "")
    path = api.latent_grid(family, checkpoint=checkpoint, steps=steps, value_range=api.parse_range(range_),
                           label=label, dims=dim_pair, out=output or Path(default + ".png"), device=device.value)
    stdout.print(f"Latent grid written to {path}", markup=False)


@app.command()
@fails_cleanly
def reconstruct(
    model: ModelOpt = None,
    n: Annotated[int, typer.Option("-n", help="Number of test images.")] = 50,
    nrow: Annotated[int, typer.Option(help="Images per row; each row of inputs is followed by its reconstructions.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed that picks the test images.")] = 0,
    data_dir: DataDirOpt = None,
    checkpoint: CheckpointOpt = None,
    output: OutputOpt = None,
    device: DeviceOpt = DeviceName.cpu,
) -> None:
    """Show random test images over their reconstructions, and their mean loss."""
    from gencli import api

    family = model.value if model else None
    out = output or Path(f"{family or 'vae'}_reconstructions.png")
    path, loss = api.reconstruct(family, checkpoint=checkpoint, n=n, nrow=nrow, seed=seed, data_dir=data_dir,
                                 out=out, device=device.value)
    stdout.print(f"Reconstructions written to {path}; mean loss {loss:.2f} nats per image", markup=False)


@app.command()
@fails_cleanly
def evaluate(
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: loss, bce, kl.")] = False,
    data_dir: DataDirOpt = None,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = DeviceName.auto,
) -> None:
    """Test-set loss (negative ELBO) in nats per image, with its BCE and KL parts."""
    from gencli import api

    metrics = api.evaluate(model.value if model else None, checkpoint=checkpoint, data_dir=data_dir,
                           device=device.value)
    if as_json:
        stdout.print(json.dumps(metrics), markup=False)
    else:
        stdout.print(f"test loss {metrics['loss']:.2f} nats/image (BCE {metrics['bce']:.2f} + KL {metrics['kl']:.2f})",
                     markup=False)
