"""The StyleGAN commands: train, style-mix, interpolate and import-weights (`sample` is in gencli.api.vae,
shared by every family that samples)."""

from __future__ import annotations

from pathlib import Path

from gencli.api.common import check_numbers, check_scale, check_truncation, train_or_plan, training_options
from gencli.checkpoint import read_metadata
from gencli.errors import OptionError
from gencli.images import ANIMATED, check_image_path, image_format, save_animation, save_grid
from gencli.inference import stylegan as inference
from gencli.runs import find_checkpoint, open_model
from gencli.training import stylegan as training
from gencli.training.loop import TrainingHooks, TrainingPlan
from gencli.training.options import StyleGANTraining
from gencli.weights import stylegan as weights

HINT = "train one with `gencli train stylegan` or pass --checkpoint"


def train_stylegan(options: StyleGANTraining | None = None, /, *, run_dir=None, resume: bool = False,
                   overwrite: bool = False, dry_run: bool = False, progress: TrainingHooks | None = None,
                   on_skip=None, **overrides) -> Path | TrainingPlan:
    """Train a StyleGAN with `options` (default StyleGANTraining()) and the keyword `overrides` of its
    fields, e.g. train_stylegan(kimg=200, data="photos/"); returns the path of model.safetensors (the EMA
    generator) in the run folder (default runs/stylegan). With `resume`, the run's own options hold: this
    call may change the length (kimg or ticks), device, precision and data_dir, and any other option it sets
    must equal the run's. `on_skip(path, message)` hears of each unreadable image skipped.
    `dry_run`: return the TrainingPlan, writing nothing."""
    options = training_options(StyleGANTraining, options, overrides)
    return train_or_plan(training, options, dry_run=dry_run, progress=progress, on_skip=on_skip, run_dir=run_dir,
                         resume=resume, overwrite=overwrite)


def _open(command: str, checkpoint, device: str):
    return open_model(command, None, checkpoint, device, name="stylegan", hint=HINT)[0]


def class_names(family: str | None = None, checkpoint=None) -> list[str]:
    """The class names a conditional stylegan checkpoint stores ([] for other models); the checkpoint is
    found as `sample FAMILY -c CHECKPOINT` finds it."""
    return read_metadata(find_checkpoint(family or "stylegan", checkpoint))["extra"].get("class_names", [])


def style_mix(*, checkpoint=None, rows: list[int], cols: list[int], cutoff: int = 4, truncation: float = 0.7,
              noise_seed: int = 0, label: int | None = None, out, device: str = "cpu", scale: int = 1,
              annotate: bool = False) -> Path:
    """Write the style-mixing grid (in the format the extension of `out` names; a conditional model's of
    class `label`, default 0); returns its path.
    `scale`: upsample (nearest); `annotate`: the seeds as row and column headers."""
    check_numbers(locals())
    out = check_image_path(Path(out))
    check_truncation(truncation)
    check_scale(scale)
    if not rows or not cols:
        raise OptionError("--rows and --cols each need at least one seed")
    G = _open("style-mix", checkpoint, device)
    parts = inference.style_mix(G, rows, cols, cutoff, truncation, noise_seed, label)
    headers = dict(col_labels=[""] + [str(s) for s in cols], row_labels=[""] + [str(s) for s in rows],
                   corner="seed") if annotate else {}
    return save_grid(inference.style_mix_grid(*parts), out, nrow=len(cols) + 1, scale=scale, **headers)


def interpolate(*, checkpoint=None, seeds: list[int], steps: int = 8, truncation: float = 0.7,
                noise_seed: int = 0, label: int | None = None, out, device: str = "cpu", scale: int = 1,
                annotate: bool = False) -> Path:
    """Write interpolation strips (one row per pair of consecutive seeds; a conditional model's of class
    `label`, default 0) as an image, or, when `out` names
    an animated format (.gif, .webp), the frames along the whole path as an animation; returns its path.
    `scale`: upsample (nearest); `annotate`: each strip's seeds (an animation: each frame's seeds and t)."""
    check_numbers(locals())
    out = check_image_path(Path(out))
    check_truncation(truncation)
    check_scale(scale)
    G = _open("interpolate", checkpoint, device)
    images = inference.interpolate(G, seeds, steps, truncation, noise_seed, label)
    pairs = list(zip(seeds, seeds[1:]))
    if image_format(out) in ANIMATED:
        # The path once: each strip after the first starts where the one before ended.
        keep = [k * steps + i for k in range(len(pairs)) for i in range(steps) if k == 0 or i > 0]
        captions = [f"{pairs[j // steps][0]} to {pairs[j // steps][1]}: t {(j % steps) / (steps - 1):.2f}"
                    for j in keep] if annotate else None
        return save_animation(images[keep], out, scale=scale, captions=captions)
    rows = [f"{a} to {b}" for a, b in pairs] if annotate else None
    return save_grid(images, out, nrow=steps, scale=scale, row_labels=rows)


def import_stylegan(file, *, resolution: int, out) -> Path:
    """Convert a rosinality/style-based-gan-pytorch checkpoint into a gencli stylegan checkpoint."""
    return weights.import_weights(file, resolution=resolution, out=out)
