"""CLI commands about any model: `info` (from the checkpoint's header alone, without torch) and `export`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import Direction, JsonOpt, app, examples, fails_cleanly, finish, stdout


@app.command(epilog=examples(
    "gencli info monet2photo          # bundled, or runs/monet2photo if you trained one",
    "gencli info runs/vae --json",
    "gencli info horse2zebra.safetensors"))
@fails_cleanly
def info(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A checkpoint file, a run folder, or a model name (runs/NAME, imported, bundled).")],
    as_json: JsonOpt = False,
) -> None:
    """What a model holds and where it comes from, read from its header alone.

    Family, epoch, seed, gencli version, config, parameters and metadata; no torch is loaded.
    """
    from gencli.api import info as library  # torch-free

    source = library.describe_model(model)
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


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    safetensors = "safetensors"


@app.command(epilog=examples(
    "gencli export cvae -o cvae.onnx          # inputs z (N, 2), label (N,)",
    "gencli export stylegan --format torchscript --truncation 0.7",
    "gencli export monet2photo --direction b2a   # any H, W (multiples of 4)"))
@fails_cleanly
def export(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A model name (vae, cvae, stylegan, monet2photo, runs/NAME, imported), a run folder or a checkpoint.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="onnx, torchscript, or a gencli safetensors checkpoint (with --fp16: half the size).")] = ExportFormat.onnx,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write (default: MODEL[_DIRECTION].onnx|.pt|.safetensors).")] = None,
    fp16: Annotated[bool, typer.Option(help="Store float16 weights (safetensors), or run in float16 (onnx, torchscript; for GPUs).")] = False,
    direction: Annotated[Direction, typer.Option(help="cyclegan: the generator to export, a2b (AtoB) or b2a (BtoA).")] = Direction.a2b,
    truncation: Annotated[Optional[float], typer.Option(help="stylegan: truncation psi baked into the network (default: an input, 'truncation', of shape (1,)).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a model's image-making network as ONNX or TorchScript.

    A vae/cvae decoder (z, label -> image), a stylegan generator (z [, truncation] -> image) or a cyclegan
    generator (image -> image, any size). Images are in [0, 1], (N, C, H, W). The file is reloaded and
    checked against PyTorch before the command succeeds.
    """
    from gencli import api

    result = api.export(model, format=format.value, out=output, fp16=fp16, direction=direction.value,
                        truncation=truncation)
    if format is ExportFormat.safetensors:
        text = (f"Wrote {result['output']} ({'float16' if fp16 else 'float32'} weights; largest change "
                f"{result['max_abs_diff']:.2g})")
    else:
        text = (f"Exported the {result['network']} to {result['output']} ({format.value}); inputs "
                f"{', '.join(result['inputs'])}; largest difference from PyTorch {result['max_abs_diff']:.2g}")
    finish(as_json, text, **result)
