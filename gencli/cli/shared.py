"""What every command module of the CLI shares: the Typer apps, common options, progress rendering and
error handling. It imports no command module (they import it; gencli.cli assembles them).

gencli.api (and so torch) is imported inside the commands, never at module load, so that
`gencli --help` answers at once.
"""

from __future__ import annotations

import contextlib
import functools
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from gencli import __version__
from gencli.errors import GencliError, NothingToDo

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


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# Options shared by several commands.
CheckpointOpt = Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Model file (default: runs/FAMILY/model.safetensors, else the bundled one).")]
DeviceOpt = Annotated[DeviceName, typer.Option(help="Where to run: auto picks CUDA when available.")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Data directory (default: $GENCLI_DATA_DIR, else a per-user cache).")]
LabelOpt = Annotated[Optional[int], typer.Option(help="Digit to condition on (cvae only), 0-9.")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG file to write.")]


def fails_cleanly(fn):
    """Turn the library's user errors into one line on stderr and exit code 1; Ctrl-C into code 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NothingToDo as e:  # e.g. --resume of a run already trained that far: nothing changed
            stdout.print(str(e)[0].upper() + str(e)[1:], markup=False, soft_wrap=True)
            raise typer.Exit(0)
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
    """Training hooks (gencli.training.loop.TrainingHooks) rendered with rich: a bar per epoch with loss
    and images/second."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gencli.api import TrainingHooks  # here, not at the top: it imports torch (see above)

    class RichProgress(TrainingHooks):
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

        def warning(self, message):
            console.print(f"Warning: {message}", markup=False, soft_wrap=True)

    return RichProgress()


@contextlib.contextmanager
def distributed_job(batch_size: int):
    """Around a training command: under torchrun, say (once) how the batch is split, and leave the
    process group when done."""
    from gencli.api import distributed  # imports torch

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
    from gencli.api import distributed  # imports torch

    if distributed.world().is_main:
        stdout.print(message, markup=False)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise GencliError(f"bad {what} {text!r}; write integers separated by commas, e.g. 512,256") from None


def warn_skipped(path: Path, message: str) -> None:
    """How every command reports an unreadable input file that it skips."""
    console.print(f"Warning: {message}; skipped", markup=False, soft_wrap=True)


def download_bar(what: str):
    """A rich progress bar for byte downloads; returns (callback, stop)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=console, transient=True)
    task = bar.add_task(what, total=None)
    bar.start()

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop
