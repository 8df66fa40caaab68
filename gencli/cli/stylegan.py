"""CLI commands of the stylegan family: `style-mix`, `interpolate` and `import-weights stylegan`
(`sample stylegan` is in gencli.cli.vae, `train stylegan` in gencli.cli.training). They parse, call
gencli.api and print."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import (CheckpointOpt, DeviceName, DeviceOpt, JsonOpt, NoiseModeOpt, OutputOpt, ScaleOpt,
                               StyleganModelArg, TruncationCutoffOpt, app, default_output, examples, fails_cleanly,
                               finish, grouped, import_app, model_choice, model_stem, replacing)
from gencli.errors import OptionError


TruncationOpt = Annotated[Optional[float], typer.Option(help="Truncation psi in [0, 1]: w_avg + psi (w - w_avg); 1 disables it (default 0.7; 1 for an imported StyleGAN2, as NVIDIA's tools).")]
NoiseSeedOpt = Annotated[int, typer.Option(help="Seed of the per-pixel noise of --noise-mode random, the same for every image.")]
ClassOpt = Annotated[Optional[int], typer.Option("--label", help="Class to draw, for a conditional model (default: seed s draws class s % classes, so the classes show).")]


@dataclass
class Drawing:
    """The options that style-mix and interpolate share, one field per option (see gencli.cli.shared.grouped)."""

    truncation: TruncationOpt = None
    truncation_cutoff: TruncationCutoffOpt = None
    noise_mode: NoiseModeOpt = None
    noise_seed: NoiseSeedOpt = 0
    label: ClassOpt = None
    checkpoint: CheckpointOpt = None
    output: OutputOpt = None
    scale: ScaleOpt = 1
    device: DeviceOpt = DeviceName.auto
    as_json: JsonOpt = False

    def default_output(self, stem: str, annotate: bool) -> Path:
        """The file written without -o, named after what varies (gencli.cli.shared.default_output)."""
        return default_output(stem, None if self.label is None else f"label{self.label}", "annotated" if annotate else None,
                              f"x{self.scale}" if self.scale > 1 else None)

    def stylegan2_options(self) -> dict:
        """The StyleGAN2 options of the drawing, as the api takes them."""
        return {"noise_mode": self.noise_mode.value if self.noise_mode else None, "truncation_cutoff": self.truncation_cutoff}


@app.command("style-mix", epilog=examples(
    "gencli style-mix --rows 0-3 --cols 4-7 --cutoff 4    # bundled MNIST model",
    "gencli style-mix runs/photos --trunc 0.5 -o mix.png --json"))
@fails_cleanly
@grouped("draw", Drawing)
def style_mix(
    model: StyleganModelArg = None,
    rows: Annotated[str, typer.Option(help="Seeds of the rows: their coarse styles (layers below --cutoff); w files of `gencli project` too.")] = "0-3",
    cols: Annotated[str, typer.Option(help="Seeds of the columns: their fine styles; w files too.")] = "4-7",
    cutoff: Annotated[int, typer.Option(help="Style layers taken from the row seed (4 = the 4 and 8 px layers).")] = 4,
    annotate: Annotated[bool, typer.Option(help="Write the seeds as row and column headers.")] = False,
    *, draw: Drawing,
) -> None:
    """The StyleGAN paper's style-mixing grid: coarse styles from the row seeds, fine from the columns."""
    from gencli import api

    checkpoint = stylegan_checkpoint(model, draw.checkpoint)
    out = draw.output or draw.default_output(model_stem(None, checkpoint, "stylegan") + "_style_mix", annotate)
    replaced = replacing(out)
    path = api.style_mix(checkpoint=checkpoint, rows=api.common.parse_seed_items(rows, "--rows"),
                         cols=api.common.parse_seed_items(cols, "--cols"), cutoff=cutoff, truncation=draw.truncation,
                         noise_seed=draw.noise_seed, label=draw.label, out=out, device=draw.device.value,
                         scale=draw.scale, annotate=annotate, **draw.stylegan2_options())
    finish(draw.as_json, f"Style-mixing grid written to {path}{replaced}", output=str(path))


@app.command(epilog=examples(
    "gencli interpolate --seeds 0,1,2 --steps 8           # bundled MNIST model",
    "gencli interpolate runs/photos --seeds 0-3 -o walk.png --json"))
@fails_cleanly
@grouped("draw", Drawing)
def interpolate(
    model: StyleganModelArg = None,
    seeds: Annotated[str, typer.Option(help="Two or more seeds or w files of `gencli project`; one strip per consecutive pair, e.g. 0,1 or 0-3 or photo_w.safetensors,0.")] = "0,1",
    steps: Annotated[int, typer.Option(help="Images per strip, ends included.")] = 8,
    annotate: Annotated[bool, typer.Option(help="Head each strip with its seeds (an animation: each frame with its seeds and t).")] = False,
    *, draw: Drawing,
) -> None:
    """A stylegan's images along straight lines in w space between seeds; -o NAME.gif (or .webp) writes
    an animation along the whole path."""
    from gencli import api

    checkpoint = stylegan_checkpoint(model, draw.checkpoint)
    out = draw.output or draw.default_output(model_stem(None, checkpoint, "stylegan") + "_interpolation", annotate)
    replaced = replacing(out)
    path = api.interpolate(checkpoint=checkpoint, seeds=api.common.parse_seed_items(seeds), steps=steps,
                           truncation=draw.truncation, noise_seed=draw.noise_seed, label=draw.label, out=out,
                           device=draw.device.value, scale=draw.scale, annotate=annotate, **draw.stylegan2_options())
    finish(draw.as_json, f"Interpolation written to {path}{replaced}", output=str(path))


def stylegan_checkpoint(model: str | None, checkpoint: Path | None) -> Path | None:
    """style-mix and interpolate take MODEL (default: stylegan) like sample does."""
    family, checkpoint = model_choice(model, checkpoint)
    if family not in (None, "stylegan"):
        raise OptionError(f"this command draws from stylegan models, not {family}")
    return checkpoint


class Network(str, Enum):
    G_ema = "G_ema"
    G = "G"


@import_app.command("stylegan", epilog=examples(
    "gencli import-weights stylegan ffhq.pkl -o ffhq.safetensors      # NVIDIA pickle: G_ema and D",
    "gencli sample stylegan -c ffhq.safetensors --seeds 0-3",
    "gencli import-weights stylegan 550000.pt -o faces.safetensors    # rosinality/stylegan2-pytorch",
    "gencli import-weights stylegan stylegan1-256.model --resolution 256 -o old.safetensors"))
@fails_cleanly
def import_stylegan(
    file: Annotated[Path, typer.Argument(help="NVIDIA's StyleGAN2 pickle (stylegan2-ada-pytorch, or the StyleGAN3 release's stylegan2-*.pkl), a rosinality/stylegan2-pytorch .pt, or a rosinality/style-based-gan-pytorch StyleGAN1 checkpoint.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="gencli checkpoint to write.")] = Path("stylegan-imported.safetensors"),
    network: Annotated[Network, typer.Option(help="Which generator of an NVIDIA pickle: G_ema (the one their tools sample) or G.")] = Network.G_ema,
    resolution: Annotated[Optional[int], typer.Option(help="StyleGAN1 files only (they do not record it): the resolution the checkpoint was trained to.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert published StyleGAN weights into a gencli checkpoint, the format read from the file.

    NVIDIA's pickles are read as data by a restricted unpickler: the code they embed is never run, and a
    pickle that names any other Python global is refused. Their discriminator is kept for fine-tuning.
    """
    from gencli import api

    path = api.import_stylegan(file, out=output, resolution=resolution, network=network.value)
    meta = api.read_metadata(path)
    extra, config = meta["extra"], meta["config"]
    what = ""
    if meta["family"] == "stylegan2":
        classes = f", {config['c_dim']} classes" if config.get("c_dim") else ""
        d = ", with its discriminator" if extra.get("discriminator") else ""
        what = (f"Imported {extra['network']} of a {extra['format']} ({config['img_resolution']} px, "
                f"{extra['architecture']}{classes}){d}. ")
    finish(as_json, f"{what}Checkpoint written to {path}; try `gencli sample stylegan -c {path}`",
           output=str(path), family=meta["family"], format=extra.get("format", extra.get("layout")),
           next=f"gencli sample stylegan -c {path}")
