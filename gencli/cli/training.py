"""`gencli train FAMILY`: each command is made from its family's options dataclass
(gencli.training.options), one command-line option per field, its help the field's doc, so no option is
declared twice. Beside the fields every train command takes --run-dir, --config FILE (JSON or TOML with the
same names, or an options.json of an earlier run; the command line overrides it), --dry-run, --resume,
--overwrite, --log-every and --json.

The options set on the command line or in the config file are `given`: the object remembers them, and a
resumed run checks them against its own (gencli.training.options.TrainingOptions.resumed).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from gencli.cli.progress import distributed_job, training_progress, training_result
from gencli.cli.shared import JsonOpt, LogEveryOpt, examples, fails_cleanly, finish, train_app, warn_skipped
from gencli.api.options import (CycleGANTraining, StyleGANTraining, TrainingOptions, VAETraining, field_type,
                                option_name, read_config, spelling)

# family -> the gencli.api function that trains it
TRAINERS = {"vae": "train_vae", "cvae": "train_vae", "cyclegan": "train_cyclegan", "stylegan": "train_stylegan"}
SKIPS_IMAGES = ("cyclegan", "stylegan")  # read folders of images: unreadable files are reported and skipped

ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", metavar="FILE", help="Options from a JSON or TOML file (the names above, e.g. batch_size = 32), or "
                                     "an earlier run's options.json; options on the command line override it.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the resolved options and where the run would "
                                                           "write, and exit without writing anything.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue the run in the run folder with its own options (this call "
                                              "may give a new length, --device, --precision).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Start again even if the run folder holds a model.")]


AUGMENT_VALUE = "--augment-value"  # `--augment ada` (a value after the --augment flag) arrives as this hidden option


class AugmentValueCommand(TyperCommand):
    """A train command whose --augment flag may take a value: `--augment` alone is DiffAugment, `--augment ada`
    (or `--augment=color,cutout`) passes the value on, as the hidden --augment-value. The train commands take no
    positional arguments, so a word after --augment that is not an option is its value."""

    def parse_args(self, ctx, args):
        out, i = [], 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("--augment="):
                out.append(AUGMENT_VALUE + "=" + arg.split("=", 1)[1])
            elif arg == "--augment" and i + 1 < len(args) and not args[i + 1].startswith("-"):
                out.append(AUGMENT_VALUE + "=" + args[i + 1])
                i += 1
            else:
                out.append(arg)
            i += 1
        return super().parse_args(ctx, out)


def _choice_type(name: str, choices: tuple[str, ...]) -> type[Enum]:
    return Enum(name.title().replace("_", ""), {c.replace("-", "_"): c for c in choices}, type=str)


def _parameter(cls, f: dataclasses.Field) -> inspect.Parameter:
    """The command-line option of field `f`: its type as Typer takes it, its spelling and help."""
    base = field_type(cls, f.name)[0]
    meta, default = f.metadata, f.default
    decls = spelling(cls, f)
    if meta["choices"]:
        kind = _choice_type(f.name, meta["choices"])
        default = None if default is None else kind(default)
    elif "/" in decls or meta["flag"]:
        kind, default = bool, None if default is None else bool(default)
    elif typing.get_origin(base) is tuple:
        kind, default = str, None if default is None else ",".join(map(str, default))
    else:
        kind = base
    optional = default is None
    annotation = Annotated[Optional[kind] if optional else kind, typer.Option(decls, help=meta["doc"])]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _given(cls, ctx: typer.Context, values: dict) -> dict:
    """The field values given on the command line (not left at their defaults), as the fields take them."""
    from gencli.api.common import parse_ints  # torch-free

    given = {}
    for f in dataclasses.fields(cls):
        source = ctx.get_parameter_source(f.name)  # by name: Typer may ship its own copy of click's classes
        if f.name not in values or source is None or source.name == "DEFAULT":
            continue
        value = values[f.name]
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, str) and typing.get_origin(field_type(cls, f.name)[0]) is tuple:
            value = parse_ints(value, option_name(f.name))
        given[f.name] = value
    return given


def training_command(app: typer.Typer, cls: type[TrainingOptions], names: tuple[str, ...], *, help: str,
                     epilog: str, run_dir_help: str) -> None:
    """Register `gencli train NAME` for each of `names` (a family, or vae and cvae), made from `cls`."""

    def command(ctx: typer.Context, **values) -> None:
        family = ctx.info_name
        given = read_config(values["config"], cls, family) if values["config"] is not None else {}
        given.update(_given(cls, ctx, values))
        if values.get("augment_value") is not None:
            given["augment"] = values["augment_value"]
        if "family" in {f.name for f in dataclasses.fields(cls)}:
            given["family"] = family
        options = cls.from_given(given)  # checked here, before torch loads
        run(family, options, values)

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
    params += [_parameter(cls, f) for f in dataclasses.fields(cls) if f.metadata["cli"]]
    common = {"run_dir": (Annotated[Optional[Path], typer.Option("--run-dir", help=run_dir_help)], None),
              "config": (ConfigOpt, None), "dry_run": (DryRunOpt, False), "resume": (ResumeOpt, False),
              "overwrite": (OverwriteOpt, False), "log_every": (LogEveryOpt, 30.0), "as_json": (JsonOpt, False)}
    augments = "augment" in {f.name for f in dataclasses.fields(cls)}
    if augments:
        common["augment_value"] = (Annotated[Optional[str], typer.Option(AUGMENT_VALUE, hidden=True)], None)
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
               for k, (a, d) in common.items()]
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {}
    command.__doc__ = help
    command = fails_cleanly(command)
    for name in names:
        app.command(name, epilog=epilog, help=help, cls=AugmentValueCommand if augments else None)(command)


def run(family: str, options: TrainingOptions, values: dict) -> None:
    """Train (or with --dry-run, plan) as the command line says, and print the result."""
    from gencli import api

    train = getattr(api, TRAINERS[family])
    calls = dict(run_dir=values["run_dir"], resume=values["resume"], overwrite=values["overwrite"])
    if family in SKIPS_IMAGES:
        calls["on_skip"] = warn_skipped
    if values["dry_run"]:
        plan = train(options, dry_run=True, **calls)
        finish(values["as_json"], plan_text(plan), dry_run=True, **plan.as_dict())
        return
    progress = training_progress(values["log_every"], kimg=family == "stylegan")
    with distributed_job(options.batch_size):
        path = train(options, progress=progress, **calls)
        text, result = training_result(family, path, progress)
        finish(values["as_json"], text, **result)


def plan_text(plan) -> str:
    """--dry-run: what the run would do, and its options as a --config file takes them."""
    unit = "ticks" if plan.family == "stylegan" else "epochs"
    what = (f"would resume {plan.run_dir} from {plan.done} to {plan.epochs} {unit}" if plan.resume
            else f"would train {plan.epochs} {unit} into {plan.run_dir}")
    return "\n".join([
        f"Dry run (nothing written): gencli train {plan.family} {what}",
        f"device {plan.device}, precision {plan.precision} ({plan.precision_reason})",
        "options (a --config file):", json.dumps(plan.options.to_dict(), indent=2),
        "network: " + json.dumps(dataclasses.asdict(plan.config))])


# The train commands: (options, command names, help, default run folder, examples), in `gencli train --help` order.
COMMANDS = [
    (VAETraining, ("vae", "cvae"), "Train a VAE (or, as `train cvae`, a conditional VAE) on MNIST or Fashion-MNIST.",
     "runs/vae or runs/cvae", ("gencli train vae --epochs 50                  # runs/vae/",
                               "gencli train cvae --data fashion-mnist --run-dir runs/fashion",
                               "gencli train vae --epochs 100 --resume    # continue runs/vae to 100 epochs",
                               "gencli train vae --config runs/vae/options.json --run-dir runs/again --dry-run")),
    (CycleGANTraining, ("cyclegan",), "Train a CycleGAN (two generators, two PatchGAN discriminators) on two unpaired "
     "image folders.", "runs/<data set name>", (
         "gencli train cyclegan --data monet2photo --image-size 128 --ngf 32 --epochs 10",
         "gencli train cyclegan --data monet2photo --epochs 20 --resume",
         "gencli train cyclegan --data path/to/horse2zebra --run-dir runs/h2z")),
    (StyleGANTraining, ("stylegan",), "Train a StyleGAN (Karras et al. 2019) on digits or a folder of images; "
     "--init-from fine-tunes one.", "runs/stylegan", (
         "gencli train stylegan --data mnist --kimg 200       # runs/stylegan/",
         "gencli train stylegan --data photos/ --resolution 64 --run-dir runs/photos",
         "gencli train stylegan --data monet/ --init-from runs/photos --run-dir runs/m")),
]
for _cls, _names, _help, _runs, _examples in COMMANDS:
    training_command(train_app, _cls, _names, help=_help, epilog=examples(*_examples),
                     run_dir_help=f"Run folder to write (default: {_runs}).")
