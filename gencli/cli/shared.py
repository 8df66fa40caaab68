"""What every command module of the CLI shares: the Typer apps, the option vocabulary, result printing and
error handling. It imports no command module (they import it; gencli.cli assembles them).

gencli.api's families (and so torch) are imported inside the commands, never at module load, so that
`gencli --help`, `--version`, `info` and usage errors answer at once.

The vocabulary, one word per concept in every command (README, "Options"):
  MODEL (positional)       a model: a family or model name, a run folder or a checkpoint file
  -c, --checkpoint PATH    the checkpoint file or run folder to read
  -o, --output FILE        the one file a command writes
  --outdir DIR             a folder of outputs
  --run-dir DIR            the run folder a training writes
  --data NAME|DIR          what a training reads
  --device auto|cpu|cuda   where to run (default auto everywhere)
  --json                   the result as one JSON object on stdout
Old spellings and the reference tools' names are hidden aliases (`ALIASES`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import json
import os
import typing
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from gencli import __version__
from gencli.errors import GencliError, NothingToDo, OptionError

if TYPE_CHECKING:
    from gencli.api.info import ModelSource

# Hidden aliases: a spelling -> the options it may stand for, the first one the command has wins. Old
# gencli spellings, and the names of the reference tools (StyleGAN2-ADA's generate.py and train.py,
# pytorch-CycleGAN-and-pix2pix's AtoB/BtoA).
ALIASES: dict[str, tuple[str, ...]] = {
    "--trunc": ("--truncation",),
    "--class": ("--label",),
    "--network": ("--checkpoint",),
    "--dataset": ("--data",),
    "--dataroot": ("--data",),
    "--out": ("--run-dir", "--output"),
    "--outdir": ("--run-dir",),
    "-o": ("--run-dir",),
    "--epochs": ("--ticks",),  # train stylegan counts ticks (the other trainings have --epochs)
}
VALUE_ALIASES: dict[str, dict[str, str]] = {"--direction": {"atob": "a2b", "btoa": "b2a"}}


def resolve_aliases(command, args: list[str]) -> list[str]:
    """`args` of `command` with every hidden alias replaced by the option it stands for."""
    known = {o for p in command.params if p.param_type_name == "option" for o in (*p.opts, *p.secondary_opts)}
    out: list[str] = []
    for arg in args:
        if arg == "--":
            return out + args[len(out):]
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in known and name in ALIASES:
            name = next((o for o in ALIASES[name] if o in known), name)
        if out and out[-1] in VALUE_ALIASES and not eq:
            name = VALUE_ALIASES[out[-1]].get(name.lower(), name)
        elif eq and name in VALUE_ALIASES:
            value = VALUE_ALIASES[name].get(value.lower(), value)
        out.append(name + eq + value)
    return out


# The words of the command being run, as typed after `gencli` (["translate"], ["train", "vae"]).
_command_words: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("gencli_command", default=())


class AliasGroup(TyperGroup):
    """A command group whose commands accept the hidden aliases of ALIASES (and that notes which command
    runs, for the lines that name a command to type)."""

    def resolve_command(self, ctx, args):
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and not hasattr(cmd, "commands"):  # a command, not a group
            rest = resolve_aliases(cmd, rest)
            words, up = [name], ctx
            while up is not None and up.parent is not None:
                words.insert(0, up.info_name)
                up = up.parent
            _command_words.set(tuple(words))
        return name, cmd, rest


app = typer.Typer(
    name="gencli",
    cls=AliasGroup,
    help="Train, explore and use deep generative image models: VAE, conditional VAE, CycleGAN, StyleGAN.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(cls=AliasGroup, help="Train a model family; see `gencli train FAMILY --help`.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")
import_app = typer.Typer(cls=AliasGroup, help="Convert published weights into a gencli checkpoint.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import-weights")

console = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)  # result lines are never hard-wrapped when piped


def examples(*lines: str) -> str:
    """A command's epilog: examples, one per line."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Direction(str, Enum):  # AtoB and BtoA (the reference code's names) are accepted too
    a2b = "a2b"
    b2a = "b2a"


# The option vocabulary (see the module docstring).
def model_argument(accepts: str):
    """The positional MODEL of a command that reads a model; `accepts` names the families it takes."""
    return Annotated[Optional[str], typer.Argument(
        metavar="MODEL", show_default=False,
        help=f"Model: {accepts}, a model id (bundled:NAME, run:NAME, imported:NAME; `gencli models` lists "
             "them), a run folder or a checkpoint file.")]


ModelArg = model_argument("vae, cvae, stylegan or another model name")  # sample
VaeModelArg = model_argument("vae, cvae or another model name of those families")  # latent-grid, reconstruct
StyleganModelArg = model_argument("stylegan or another stylegan model name")  # style-mix, interpolate
EvaluateModelArg = model_argument("vae, cvae, stylegan, a cyclegan such as monet2photo, or another model name")
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", hidden=True, help="Same as MODEL.")]
CheckpointOpt = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c", help="Checkpoint file or run folder (default: runs/MODEL, an imported MODEL, the bundled one).")]
DeviceOpt = Annotated[DeviceName, typer.Option(help="Where to run: auto picks CUDA when available.")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Data directory (default: $GENCLI_DATA_DIR, else a per-user cache).")]
LabelOpt = Annotated[Optional[int], typer.Option(help="Class to condition on (cvae, or stylegan trained with --cond), e.g. a digit 0-9.")]
CvaeLabelOpt = Annotated[Optional[int], typer.Option("--label", help="The digit to draw across the grid (a cvae; implies cvae), e.g. 0-9.")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Image file to write (an existing one is replaced); its extension names the format: .png, .jpg, .webp or .gif. The default name says what varies, e.g. cvae_samples_label3.png.")]
ScaleOpt = Annotated[int, typer.Option(help="Upsample the images K times (nearest neighbour), for viewing.", metavar="K")]
class NoiseMode(str, Enum):
    const = "const"
    random = "random"
    none = "none"


NoiseModeOpt = Annotated[Optional[NoiseMode], typer.Option(
    help="stylegan: const (the noise stored in a StyleGAN2, NVIDIA's default), random (from each image's seed; "
         "gencli's StyleGAN default) or none.")]
TruncationCutoffOpt = Annotated[Optional[int], typer.Option(
    help="stylegan: truncate only the first N style layers (NVIDIA's truncation_cutoff; default all).", metavar="N")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder to write (default: runs/NAME).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")]
LogEveryOpt = Annotated[float, typer.Option(
    envvar="GENCLI_LOG_EVERY", help="Seconds between progress lines when the output is not a terminal.")]


def model_name(model: str | None, option: str | None) -> str | None:
    """MODEL given as the positional argument or as the hidden --model."""
    if model and option and model != option:
        raise OptionError(f"MODEL is {model} but --model is {option}; give one")
    return model or option


# --- running a command: numbers checked, models reported, errors in one line ---------------------------

_models_used: contextvars.ContextVar[list] = contextvars.ContextVar("gencli_models_used")


def is_main_process() -> bool:
    """Rank 0 under torchrun (read from its environment: no torch import)."""
    return os.environ.get("RANK", "0") == "0"


# A command that uses a model of FAMILY, for the line that names the model a training shadows.
USED_BY = {"vae": "sample {id}", "cvae": "sample {id}", "stylegan": "sample {id}", "cyclegan": "translate {id} IMAGE"}


def _model_line(source) -> None:
    words = list(_command_words.get())
    if source.origin == "training":
        if source.shadows and is_main_process():
            use = USED_BY.get(words[-1] if words else "", "info {id}").format(id=f"{source.shadows}:{source.name}")
            console.print(f"Note: {source.path.parent} will shadow the {source.shadows} {source.name}: commands "
                          f"naming {source.name} will use this run instead; `gencli {use}` still uses the "
                          f"{source.shadows} one", markup=False)
        return
    _models_used.get([]).append(source)
    if is_main_process():
        console.print(f"Model: {source.describe(' '.join(['gencli', *words]))}", markup=False)


def error_line(e: BaseException) -> str | None:
    """The one line for an exception of torch, safetensors, PIL or the system that reaches a command
    (matched by class name, so that nothing is imported for it); None for anything else (a bug)."""
    names = [cls.__name__ for cls in type(e).__mro__]
    text = (str(e).strip().splitlines() or [""])[0][:300]
    if "OutOfMemoryError" in names or isinstance(e, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({text or type(e).__name__}); try a smaller --batch-size, --size or --tile, or --device cpu"
    if "DecompressionBombError" in names:
        return f"image too large: {text}"
    if "UnidentifiedImageError" in names:
        return f"cannot read image: {text}"
    if "SafetensorError" in names:
        return f"not a readable safetensors file: {text}"
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror or text}{where}"
    if isinstance(e, (RuntimeError, OverflowError)):
        return f"{type(e).__name__}: {text}"
    return None


def fails_cleanly(fn):
    """Every command runs through this: it checks every number of the command's options against the one
    table (gencli.api.common) before anything else, prints one line on stderr for each model the command
    opens, and turns errors into one line on stderr: bad options exit 2 (as usage errors do), other
    errors 1, Ctrl-C 130. GENCLI_DEBUG=1 shows the traceback of unexpected exceptions instead."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from gencli.api import common, info  # torch-free

        token = _models_used.set([])
        try:
            common.check_numbers(kwargs)
            with info.watch_models(_model_line):
                return fn(*args, **kwargs)
        except OptionError as e:
            console.print(f"Error: {e}", markup=False)
            raise typer.Exit(2)
        except NothingToDo as e:  # e.g. --resume of a run already trained that far: nothing changed
            stdout.print(str(e)[0].upper() + str(e)[1:], markup=False, soft_wrap=True)
            raise typer.Exit(0)
        except GencliError as e:
            console.print(f"Error: {e}", markup=False)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            console.print("Interrupted. Checkpoints of finished epochs are kept; continue with --resume.")
            raise typer.Exit(130)
        except Exception as e:
            line = None if os.environ.get("GENCLI_DEBUG") else error_line(e)
            if line is None:
                raise
            console.print(f"Error: {line}", markup=False)
            raise typer.Exit(1)
        finally:
            _models_used.reset(token)

    return wrapper


def grouped(name: str, group):
    """A command's options that several commands share, declared once as the fields of dataclass `group`
    (each annotated as an option): the command takes them after its own options and gets them as one
    object, its keyword argument `name`."""

    def decorate(fn):
        signature = inspect.signature(fn, eval_str=True)
        hints = typing.get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)
        extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
                 for f in fields]

        @functools.wraps(fn)
        def command(*args, **kwargs):
            values = group(**{f.name: kwargs.pop(f.name) for f in fields})
            return fn(*args, **kwargs, **{name: values})

        own = [p for p in signature.parameters.values() if p.name != name]
        command.__signature__ = signature.replace(parameters=own + extra)
        return command

    return decorate


def finish(as_json: bool, text: str, **result) -> None:
    """A command's result: `text` on stdout, or with --json one JSON object of `result` (paths as strings)
    and "models", the models it used with their provenance. From rank 0 alone under torchrun."""
    if not is_main_process():
        return
    if as_json:
        result["models"] = [s.as_dict() for s in _models_used.get([])]
        typer.echo(json.dumps(result, default=str))
    else:
        stdout.print(text, markup=False)


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


def warn_skipped(path: Path, message: str) -> None:
    """How every command reports an unreadable input file that it skips."""
    console.print(f"Warning: {message}; skipped", markup=False)


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


def model_choice(model: str | None, checkpoint: Path | None) -> tuple[str | None, Path | ModelSource | None]:
    """(family, checkpoint) from MODEL and -c: a family name (vae, cvae, stylegan) picks the family; a run
    folder, a checkpoint file or another model name stands for -c, located (a ModelSource)."""
    from gencli.api import info  # torch-free

    if model is None or model in info.FAMILY_NAMES:
        return model, checkpoint
    if checkpoint is not None:
        raise OptionError(f"MODEL {model} and --checkpoint both name a model; give one")
    return None, info.locate_model(model)  # with its provenance: bundled, imported, run folder, file


def model_stem(family: str | None, checkpoint, default: str) -> str:
    """The model's part of a default output name: the family named, else the model's name (an id's or a
    name's), the run folder's or the file's name, else `default`."""
    if family:
        return family
    name = getattr(checkpoint, "name", None)
    path = getattr(checkpoint, "path", checkpoint)
    if isinstance(name, str) and hasattr(checkpoint, "origin"):  # a located model
        return name
    if isinstance(path, Path):
        return path.parent.name if path.name == "model.safetensors" else (path.name if path.is_dir() else path.stem)
    return default


def default_output(stem: str, *parts: str | None, suffix: str = ".png") -> Path:
    """The file a command writes without -o: STEM_PART_..., naming what varies (label3, minmax, x2, ...),
    so that one variant does not replace another."""
    return Path("_".join([stem, *(p for p in parts if p)]) + suffix)


def replacing(path: Path) -> str:
    """What a result line adds when the command is about to replace a file that exists."""
    return " (replacing the file that was there)" if Path(path).is_file() else ""
