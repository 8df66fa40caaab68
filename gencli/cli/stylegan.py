"""CLI commands of the stylegan family: `style-mix`, `interpolate` and `import-weights stylegan`
(`sample stylegan` is in gencli.cli.vae, `train stylegan` in gencli.cli.training). They parse, call
gencli.api and print."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import (CheckpointOpt, DeviceName, DeviceOpt, JsonOpt, ModelArg, OutputOpt, ScaleOpt, app,
                               examples, fails_cleanly, finish, grouped, import_app, model_choice)
from gencli.errors import OptionError


TruncationOpt = Annotated[float, typer.Option(help="Truncation psi in [0, 1]: w_avg + psi (w - w_avg); 1 disables it.")]
NoiseSeedOpt = Annotated[int, typer.Option(help="Seed of the per-pixel noise, the same for every image.")]
ClassOpt = Annotated[Optional[int], typer.Option("--label", help="Class to draw, for a model trained with --cond (default 0).")]


@dataclass
class Drawing:
    """The options that style-mix and interpolate share, one field per option (see gencli.cli.shared.grouped)."""

    truncation: TruncationOpt = 0.7
    noise_seed: NoiseSeedOpt = 0
    label: ClassOpt = None
    checkpoint: CheckpointOpt = None
    output: OutputOpt = None
    scale: ScaleOpt = 1
    device: DeviceOpt = DeviceName.auto
    as_json: JsonOpt = False


@app.command("style-mix", epilog=examples(
    "gencli style-mix --rows 0-3 --cols 4-7 --cutoff 4    # bundled MNIST model",
    "gencli style-mix runs/photos --trunc 0.5 -o mix.png --json"))
@fails_cleanly
@grouped("draw", Drawing)
def style_mix(
    model: ModelArg = None,
    rows: Annotated[str, typer.Option(help="Seeds of the rows: their coarse styles (layers below --cutoff).")] = "0-3",
    cols: Annotated[str, typer.Option(help="Seeds of the columns: their fine styles.")] = "4-7",
    cutoff: Annotated[int, typer.Option(help="Style layers taken from the row seed (4 = the 4 and 8 px layers).")] = 4,
    annotate: Annotated[bool, typer.Option(help="Write the seeds as row and column headers.")] = False,
    *, draw: Drawing,
) -> None:
    """The StyleGAN paper's style-mixing grid: coarse styles from the row seeds, fine from the columns."""
    from gencli import api

    checkpoint = stylegan_checkpoint(model, draw.checkpoint)
    path = api.style_mix(checkpoint=checkpoint, rows=api.common.parse_seeds(rows, "--rows"),
                         cols=api.common.parse_seeds(cols, "--cols"), cutoff=cutoff, truncation=draw.truncation,
                         noise_seed=draw.noise_seed, label=draw.label, out=draw.output or Path("stylegan_style_mix.png"),
                         device=draw.device.value, scale=draw.scale, annotate=annotate)
    finish(draw.as_json, f"Style-mixing grid written to {path}", output=str(path))


@app.command(epilog=examples(
    "gencli interpolate --seeds 0,1,2 --steps 8           # bundled MNIST model",
    "gencli interpolate runs/photos --seeds 0-3 -o walk.png --json"))
@fails_cleanly
@grouped("draw", Drawing)
def interpolate(
    model: ModelArg = None,
    seeds: Annotated[str, typer.Option(help="Two or more seeds; one strip per consecutive pair, e.g. 0,1 or 0-3.")] = "0,1",
    steps: Annotated[int, typer.Option(help="Images per strip, ends included.")] = 8,
    annotate: Annotated[bool, typer.Option(help="Head each strip with its seeds (an animation: each frame with its seeds and t).")] = False,
    *, draw: Drawing,
) -> None:
    """A stylegan's images along straight lines in w space between seeds; -o NAME.gif (or .webp) writes
    an animation along the whole path."""
    from gencli import api

    checkpoint = stylegan_checkpoint(model, draw.checkpoint)
    path = api.interpolate(checkpoint=checkpoint, seeds=api.common.parse_seeds(seeds), steps=steps,
                           truncation=draw.truncation, noise_seed=draw.noise_seed, label=draw.label,
                           out=draw.output or Path("stylegan_interpolation.png"), device=draw.device.value,
                           scale=draw.scale, annotate=annotate)
    finish(draw.as_json, f"Interpolation written to {path}", output=str(path))


def stylegan_checkpoint(model: str | None, checkpoint: Path | None) -> Path | None:
    """style-mix and interpolate take MODEL (default: stylegan) like sample does."""
    family, checkpoint = model_choice(model, checkpoint)
    if family not in (None, "stylegan"):
        raise OptionError(f"this command draws from stylegan models, not {family}")
    return checkpoint


@import_app.command("stylegan", epilog=examples(
    "gencli import-weights stylegan ffhq-256.model --resolution 256 -o ffhq.safetensors",
    "gencli sample -c ffhq256.safetensors --seeds 0-15"))
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
