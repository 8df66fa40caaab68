"""The `gencli` command line: parses options, calls `gencli.api`, renders progress and errors.

torch is imported inside the commands, never at module load, so `gencli --help` answers at once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from gencli import __version__
from gencli.errors import GencliError

app = typer.Typer(
    name="gencli",
    help="Train, explore and use deep generative image models: VAE, conditional VAE, CycleGAN, StyleGAN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train a model family; see `gencli train FAMILY --help`.", no_args_is_help=True)
app.add_typer(train_app, name="train")
import_app = typer.Typer(help="Convert published weights into a gencli checkpoint.", no_args_is_help=True)
app.add_typer(import_app, name="import-weights")

console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


class VAEFamily(str, Enum):
    vae = "vae"
    cvae = "cvae"


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# Options shared by several commands.
CheckpointOpt = Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Model file (default: runs/FAMILY/model.safetensors, else the bundled one).")]
DeviceOpt = Annotated[DeviceName, typer.Option(help="Where to run: auto picks CUDA when available.")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Data directory (default: $GENCLI_DATA_DIR, else a per-user cache).")]
LabelOpt = Annotated[Optional[int], typer.Option(help="Digit to condition on (cvae only), 0-9.")]


def fails_cleanly(fn):
    """Turn the library's user errors into one line on stderr and exit code 1; Ctrl-C into code 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GencliError as e:
            console.print(f"Error: {e}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            console.print(f"Error: {e.strerror or e}{where}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            console.print("Interrupted. Checkpoints of finished epochs are kept; continue with --resume.")
            raise typer.Exit(130)

    return wrapper


def version_callback(value: bool) -> None:
    if value:
        stdout.print(f"gencli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Deep generative image models from one command line."""


def rich_progress():
    """A training.Progress rendered with rich: a bar per epoch with loss and images/second."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gencli.training import Progress as Hooks

    class RichProgress(Hooks):
        def start(self, first_epoch, epochs):
            self.epochs = epochs
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                                transient=True)
            self.bar.start()
            self.task = None

        def epoch_start(self, epoch, steps):
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch}/{self.epochs}", total=steps, info="")
            self.t0, self.images = time.perf_counter(), 0

        def step(self, step, logs, images):
            self.images += images
            rate = self.images / max(time.perf_counter() - self.t0, 1e-9)
            info = "  ".join(f"{k} {v:.3g}" for k, v in logs.items()) + f"  {rate:.0f} img/s"
            self.bar.update(self.task, completed=step, info=info)

        def epoch_end(self, epoch, metrics):
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "seconds"))
            self.bar.console.print(f"epoch {epoch}/{self.epochs}  {shown}  ({metrics['seconds']:.1f} s)",
                                   markup=False, highlight=False)

        def stop(self):
            self.bar.stop()

    return RichProgress()


@contextlib.contextmanager
def distributed_job(batch_size: int):
    """Around a training command: under torchrun, say (once) how the batch is split, and leave the
    process group when done."""
    from gencli import distributed

    w = distributed.world()
    if w.distributed and w.is_main:
        console.print(f"torchrun: {w.world_size} processes x batch {batch_size} = global batch "
                      f"{w.world_size * batch_size}", markup=False)
    try:
        yield
    finally:
        distributed.shutdown()


def report(message: str) -> None:
    """A result line on stdout, from rank 0 alone under torchrun."""
    from gencli import distributed

    if distributed.world().is_main:
        stdout.print(message, markup=False)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise GencliError(f"bad {what} {text!r}; write integers separated by commas, e.g. 512,256") from None


# --- train -----------------------------------------------------------------------------------------

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
                             hidden=parse_ints(hidden, "--hidden"), seed=seed, device=device.value, resume=resume,
                             overwrite=overwrite, progress=rich_progress())
        report(f"Model written to {path}")


# --- using a model ------------------------------------------------------------------------------------

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
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG file to write.")] = None,
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
    stdout.print(f"Samples written to {path}", markup=False)


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
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG file to write.")] = None,
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
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG file to write.")] = None,
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


@app.command()
@fails_cleanly
def info(checkpoint: Annotated[Path, typer.Argument(help="A gencli .safetensors checkpoint.")]) -> None:
    """Print what a checkpoint holds: family, config, epoch, seed, version."""
    from gencli.checkpoint import read_metadata

    stdout.print(json.dumps(read_metadata(checkpoint), indent=2), markup=False)


# Commands of the other families live beside this file; importing them registers them on `app`.
from gencli import cli_cyclegan, cli_stylegan  # noqa: E402,F401
from gencli.serve.cli import add_serve_command; add_serve_command(app)  # noqa: E402,E702


def main() -> None:
    """Console entry point: usage errors (unknown option, bad value) become one line too."""
    try:
        code = app(standalone_mode=False)
    except Exception as e:
        # Matched by name: recent Typer versions ship their own copy of click's exception classes.
        names = {cls.__name__ for cls in type(e).__mro__}
        if "NoArgsIsHelpError" in names:  # `gencli` or `gencli train` alone: the help is the answer
            message = e.format_message()
            if message:
                stdout.print(message, markup=False)
            sys.exit(0)
        if "UsageError" in names:
            console.print(f"Error: {e.format_message()}", markup=False, soft_wrap=True)
            sys.exit(2)
        if "Abort" in names:
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
