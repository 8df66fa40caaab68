"""CLI commands about any model: `models` and `info` (from the checkpoints' headers alone, without torch)
and `export`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import CheckpointOpt, Direction, JsonOpt, app, examples, fails_cleanly, finish, stdout
from gencli.errors import OptionError


@app.command(epilog=examples(
    "gencli models                    # every model a name or an id reaches",
    "gencli models --json"))
@fails_cleanly
def models(as_json: JsonOpt = False) -> None:
    """The models that commands can name, with their ids: run folders in runs/, imported models, the bundled ones.

    A name (vae, monet2photo) picks the first of its name in this order; an id (run:vae, bundled:vae)
    picks exactly that one. Read from the files' headers alone; no torch is loaded.
    """
    from gencli.api import info as library  # torch-free

    found = [m for m in library.list_models() if m.family in library.MODEL_FAMILIES]
    picked: dict = {}  # name -> the model that the name picks: the first of that name listed
    for m in found:
        picked.setdefault(m.name, m)
    if as_json:
        stdout.out(json.dumps({"models": [{**m.as_dict(), "named_by_name": picked[m.name] is m} for m in found]}),
                   highlight=False)
        return
    if not found:
        stdout.print("No models found: train one (gencli train vae) or import one (gencli import-weights).",
                     markup=False)
        return
    width = max(len(m.id) for m in found)
    lines = []
    for m in found:
        where = f"{m.path.parent}/" if m.origin == "run" else str(m.path)
        note = "" if picked[m.name] is m else f"  (the name {m.name} picks {picked[m.name].id})"
        lines.append(f"{m.id:<{width}}  {m.family:<9} epoch {m.epoch:<4} {where}{note}")
    stdout.print("\n".join(lines), markup=False)


@app.command(epilog=examples(
    "gencli info monet2photo          # bundled, or runs/monet2photo if you trained one",
    "gencli info bundled:monet2photo  # the bundled one, whatever runs/ holds",
    "gencli info runs/vae --json",
    "gencli info -c horse2zebra.safetensors"))
@fails_cleanly
def info(
    model: Annotated[Optional[str], typer.Argument(metavar="MODEL", show_default=False, help="A checkpoint file, a run folder, a model name (runs/NAME, imported, bundled) or a model id (bundled:NAME, run:NAME, imported:NAME; `gencli models` lists them).")] = None,
    checkpoint: CheckpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a model holds and where it comes from, read from its header alone.

    Family, epoch, seed, gencli version, config, parameters and metadata; no torch is loaded.
    """
    from gencli.api import info as library  # torch-free

    source = library.describe_model(one_model(model, checkpoint, "info"))
    d = source.details
    if as_json:
        stdout.out(json.dumps({**source.as_dict(), **d}), highlight=False)
        return
    lines = [f"{source.path}",
             f"  from      {source.describe()}",
             f"  family    {d['family']}, epoch {d['epoch']}, seed {d['seed']}, gencli {d['gencli_version'] or '?'}",
             f"  weights   {d['parameters']:,} parameters in {d['tensors']} tensors ({', '.join(d['dtypes'])}), "
             f"{d['bytes'] / 1e6:.1f} MB",
             f"  config    {json.dumps(d['config'])}"]
    if d["family"] == "stylegan2":  # an imported network: what came in, and from where
        c, e = d["config"], d["extra"]
        classes = f"{c.get('c_dim')} classes" + (f" ({', '.join(e['class_names'])})" if e.get("class_names") else "")
        lines.append(f"  network   {c.get('img_resolution')} px, {c.get('architecture')}, "
                     f"{classes if c.get('c_dim') else 'unconditional'}, {e.get('network', 'G')}"
                     f"{' and its discriminator' if e.get('discriminator') else ''}")
        if e.get("imported_from"):
            lines.append(f"  source    {e['imported_from']} ({e.get('format', '?')})")
    if d["extra"]:
        lines.append(f"  metadata  {json.dumps(d['extra'])}")
    stdout.print("\n".join(lines), markup=False)


def one_model(model: str | None, checkpoint: Path | None, command: str):
    """MODEL, or the model -c names (located), exactly one of them."""
    if model is not None and checkpoint is not None:
        raise OptionError(f"MODEL {model} and --checkpoint both name a model; give one")
    if model is None and checkpoint is None:
        raise OptionError(f"name a model (e.g. `gencli {command} vae`) or pass -c PATH; `gencli models` lists them")
    from gencli.api import info  # torch-free

    return model if model is not None else info.locate_checkpoint(None, checkpoint)


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    safetensors = "safetensors"


@app.command(epilog=examples(
    "gencli export cvae -o cvae.onnx          # inputs z (N, 2), label (N,)",
    "gencli export stylegan --format torchscript --truncation 0.7",
    "gencli export monet2photo --direction b2a   # any H, W (multiples of 4)",
    "gencli export -c runs/vae --format torchscript -o vae.pt"))
@fails_cleanly
def export(
    model: Annotated[Optional[str], typer.Argument(metavar="MODEL", show_default=False, help="A model name (vae, cvae, stylegan, monet2photo, runs/NAME, imported), a model id (bundled:NAME, run:NAME, imported:NAME; `gencli models` lists them), a run folder or a checkpoint.")] = None,
    checkpoint: CheckpointOpt = None,
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="onnx, torchscript, or a gencli safetensors checkpoint (with --fp16: half the size).")] = ExportFormat.onnx,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write (default: MODEL[_DIRECTION].onnx|.pt|.safetensors).")] = None,
    fp16: Annotated[bool, typer.Option(help="Store float16 weights (safetensors), or run in float16 (onnx, torchscript; for GPUs).")] = False,
    direction: Annotated[Direction, typer.Option(help="cyclegan: the generator to export, a2b (AtoB) or b2a (BtoA).")] = Direction.a2b,
    truncation: Annotated[Optional[float], typer.Option(help="stylegan: truncation psi baked into the network (default: an input, 'truncation', of shape (1,)).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a model's image-making network as ONNX or TorchScript.

    A vae/cvae decoder (z, label -> image), a stylegan generator (z [, label] [, truncation] -> image) or a cyclegan
    generator (image -> image, any size). Images are in [0, 1], (N, C, H, W). The file is reloaded and
    checked against PyTorch before the command succeeds.
    """
    from gencli import api

    result = api.export(one_model(model, checkpoint, "export"), format=format.value, out=output, fp16=fp16, direction=direction.value,
                        truncation=truncation)
    if format is ExportFormat.safetensors:
        text = (f"Wrote {result['output']} ({'float16' if fp16 else 'float32'} weights; largest change "
                f"{result['max_abs_diff']:.2g})")
    else:
        text = (f"Exported the {result['network']} to {result['output']} ({format.value}); inputs "
                f"{', '.join(result['inputs'])}; largest difference from PyTorch {result['max_abs_diff']:.2g}")
    finish(as_json, text, **result)
