"""CLI command `project`: find the w of a stylegan whose image matches a photo. It parses, calls
gencli.api.projection and prints."""

from __future__ import annotations

import contextlib
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencli.cli.shared import (CheckpointOpt, DeviceName, DeviceOpt, JsonOpt, LogEveryOpt, ScaleOpt, app, console,
                               examples, fails_cleanly, finish)
from gencli.cli.stylegan import ClassOpt, stylegan_checkpoint
from gencli.errors import OptionError


class Space(str, Enum):
    w = "w"
    w_plus = "w+"


class Distance(str, Enum):
    lpips = "lpips"
    inception = "inception"
    pixel = "pixel"


class StepProgress:
    """`progress(step, steps, distance)` for the command line: a bar with the current distance on a
    terminal, else one line every `log_every` seconds and at the end."""

    def __init__(self, log_every: float, terminal: bool | None = None):
        self.log_every = log_every
        self.terminal = console.is_terminal if terminal is None else terminal
        self.bar = self.task = None
        self.t_log = time.perf_counter()

    def __call__(self, step: int, steps: int, distance: float) -> None:
        if self.terminal:
            if self.bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self.bar = Progress(TextColumn("projecting"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                    TimeRemainingColumn(compact=True), TextColumn("distance {task.fields[distance]}"),
                                    console=console, transient=True)
                self.task = self.bar.add_task("", total=steps, distance="")
                self.bar.start()
            self.bar.update(self.task, completed=step, distance=f"{distance:.4g}")
        elif time.perf_counter() - self.t_log >= self.log_every or step == steps:
            self.t_log = time.perf_counter()
            console.print(f"step {step}/{steps}  distance {distance:.4g}", markup=False)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class LazyDownloadBar:
    """A download bar that appears only once bytes arrive (a file already there shows none)."""

    def __init__(self, what: str):
        self.what, self.update, self.stop = what, None, lambda: None

    def __call__(self, done: int, total: int | None) -> None:
        if self.update is None:
            from gencli.cli.shared import download_bar

            self.update, self.stop = download_bar(self.what)
        self.update(done, total)


@app.command(epilog=examples(
    "gencli project photo.png                        # the bundled stylegan, photo_projected.png and its w",
    "gencli project runs/faces face.jpg --steps 500 --space w+ --animate",
    "gencli project -c ffhq256.safetensors face.jpg --distance lpips --features vgg16.pt -o face_proj.png",
    "gencli sample stylegan -c ffhq256.safetensors --seeds face_proj_w.safetensors,0-6   # the model it was projected into"))
@fails_cleanly
def project(
    arguments: Annotated[list[str], typer.Argument(metavar="[MODEL] PHOTO", show_default=False,
                                                   help="The stylegan (a model name, a run folder or a checkpoint file; default: -c, else stylegan) and the photo to project.")],
    checkpoint: CheckpointOpt = None,
    steps: Annotated[int, typer.Option(help="Optimization steps.")] = 1000,
    space: Annotated[Space, typer.Option(help="w: one w for every layer; w+: one per layer (matches more, edits less well).")] = Space.w,
    distance: Annotated[Optional[Distance], typer.Option(help="lpips (VGG16 features, NVIDIA's file), inception (the Inception file's inner layers) or pixel (mean squared error); default: lpips, else the best one there is.")] = None,
    features: Annotated[Optional[Path], typer.Option(help="The feature network file: VGG16 for lpips (default: $GENCLI_VGG16, the cache, else downloaded once), Inception for --distance inception.")] = None,
    label: ClassOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial noise maps and of the noise on w.")] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The projected image (default ./PHOTO_projected.png); beside it NAME_compare.png (photo | projection) and NAME_w.safetensors.")] = None,
    animate: Annotated[bool, typer.Option(help="Also write the optimization as NAME.gif (photo | projection, at most 100 frames).")] = False,
    scale: ScaleOpt = 1,
    device: DeviceOpt = DeviceName.auto,
    log_every: LogEveryOpt = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Find the w whose image matches a photo (StyleGAN2's projection, as NVIDIA's projector does it), to
    use where a seed goes: `sample --seeds`, `style-mix --rows/--cols`, `interpolate --seeds`."""
    from gencli import api

    if len(arguments) not in (1, 2):
        raise OptionError("give the photo to project, optionally after the MODEL: gencli project [MODEL] PHOTO")
    model, photo = (None, arguments[0]) if len(arguments) == 1 else arguments
    checkpoint = stylegan_checkpoint(model, checkpoint)
    progress, download = StepProgress(log_every), LazyDownloadBar("vgg16.pt")
    with contextlib.ExitStack() as stack:
        stack.callback(progress.stop)
        stack.callback(lambda: download.stop())
        result = api.projection.project(
            checkpoint=checkpoint, target=photo, steps=steps, space=space.value,
            distance=distance.value if distance else None, features=features, label=label, seed=seed, out=output,
            animate=animate, scale=scale, device=device.value, progress=progress, download_progress=download,
            on_note=lambda line: console.print(line, markup=False))
    written = ", ".join(result[k] for k in ("compare", "w_file", "animation") if k in result)
    text = (f"Projection written to {result['output']} (distance {result['distance']} {result['final_distance']:.4g}, "
            f"PSNR {result['psnr']:.1f} dB, {result['steps']} steps in {result['seconds']:.0f} s); also {written}")
    finish(as_json, text, **result)
