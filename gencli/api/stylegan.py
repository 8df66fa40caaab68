"""The StyleGAN commands: train, style-mix, interpolate and import-weights (`sample` is in gencli.api.vae,
shared by every family that samples)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from gencli import download
from gencli.api.common import (check_numbers, check_positive, check_scale, check_truncation, item_label, options_named,
                               training_options)
from gencli.api.projection import fixed_ws
from gencli.catalog import models_dir
from gencli.checkpoint import read_metadata, save_model
from gencli.errors import GencliError, NothingToDo, OptionError
from gencli.files import check_name
from gencli.images import ANIMATED, check_image_path, image_format, save_animation, save_grid
from gencli.inference import stylegan as inference
from gencli.models.stylegan2 import StyleGAN2Config
from gencli.runs import find_checkpoint, open_model
from gencli.training import stylegan as training
from gencli.training import stylegan2 as training2
from gencli.training.stylegan_plan import plan
from gencli.training.loop import TrainingHooks, TrainingPlan
from gencli.training.options import StyleGANTraining
from gencli.weights import stylegan2 as stylegan2_weights

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
    with options_named():
        job = plan(options, run_dir=run_dir, resume=resume, overwrite=overwrite)
        if dry_run:
            return job
        # a StyleGAN2 network (--arch stylegan2, or --init-from one) trains with NVIDIA's objective
        trainer = training2.train if isinstance(job.config, StyleGAN2Config) else training.run
        return trainer(job, progress=progress, on_skip=on_skip)


def _open(command: str, checkpoint, device: str):
    return open_model(command, None, checkpoint, device, name="stylegan", hint=HINT)[0]


def class_names(family: str | None = None, checkpoint=None) -> list[str]:
    """The class names a conditional stylegan checkpoint stores ([] for other models); the checkpoint is
    found as `sample FAMILY -c CHECKPOINT` finds it."""
    return read_metadata(find_checkpoint(family or "stylegan", checkpoint))["extra"].get("class_names", [])


def default_truncation(G, truncation: float | None) -> float:
    """0.7 for gencli's StyleGAN; 1 (no truncation, as NVIDIA's tools) for an imported StyleGAN2."""
    if truncation is not None:
        return truncation
    return 1.0 if inference.is_stylegan2(G) else 0.7


def style_mix(*, checkpoint=None, rows: list, cols: list, cutoff: int = 4, truncation: float | None = None,
              noise_seed: int = 0, label: int | None = None, out, device: str = "cpu", scale: int = 1,
              annotate: bool = False, noise_mode: str | None = None, truncation_cutoff: int | None = None) -> Path:
    """Write the style-mixing grid (in the format the extension of `out` names; a conditional model's of
    class `label`, or without one seed s as class s % classes, so the grid shows the classes); returns
    its path. `rows` and `cols`: seeds or w files of `gencli project`.
    `scale`: upsample (nearest); `annotate`: the seeds as row and column headers."""
    check_numbers(locals())
    out = check_image_path(Path(out))
    check_truncation(truncation)
    check_scale(scale)
    if not rows or not cols:
        raise OptionError("--rows and --cols each need at least one seed")
    G = _open("style-mix", checkpoint, device)
    parts = inference.style_mix(G, fixed_ws(G, rows), fixed_ws(G, cols), cutoff, default_truncation(G, truncation),
                                noise_seed, label, truncation_cutoff, noise_mode)
    headers = dict(col_labels=[""] + [item_label(s) for s in cols], row_labels=[""] + [item_label(s) for s in rows],
                   corner="seed") if annotate else {}
    return save_grid(inference.style_mix_grid(*parts), out, nrow=len(cols) + 1, scale=scale, **headers)


def interpolate(*, checkpoint=None, seeds: list, steps: int = 8, truncation: float | None = None,
                noise_seed: int = 0, label: int | None = None, out, device: str = "cpu", scale: int = 1,
                annotate: bool = False, noise_mode: str | None = None, truncation_cutoff: int | None = None) -> Path:
    """Write interpolation strips (one row per pair of consecutive seeds or w files of `gencli project`; a
    conditional model's of class `label`, or without one seed s as class s % classes, from class to class)
    as an image, or, when `out` names
    an animated format (.gif, .webp), the frames along the whole path as an animation; returns its path.
    `scale`: upsample (nearest); `annotate`: each strip's seeds (an animation: each frame's seeds and t)."""
    check_numbers(locals())
    out = check_image_path(Path(out))
    check_truncation(truncation)
    check_scale(scale)
    G = _open("interpolate", checkpoint, device)
    images = inference.interpolate(G, fixed_ws(G, seeds), steps, default_truncation(G, truncation), noise_seed, label,
                                   truncation_cutoff, noise_mode)
    pairs = [(item_label(a), item_label(b)) for a, b in zip(seeds, seeds[1:])]
    if image_format(out) in ANIMATED:
        # The path once: each strip after the first starts where the one before ended.
        keep = [k * steps + i for k in range(len(pairs)) for i in range(steps) if k == 0 or i > 0]
        captions = [f"{pairs[j // steps][0]} to {pairs[j // steps][1]}: t {(j % steps) / (steps - 1):.2f}"
                    for j in keep] if annotate else None
        return save_animation(images[keep], out, scale=scale, captions=captions)
    rows = [f"{a} to {b}" for a, b in pairs] if annotate else None
    return save_grid(images, out, nrow=steps, scale=scale, row_labels=rows)


def import_stylegan(file, *, out, resolution: int | None = None, network: str = "G_ema",
                    class_names: list[str] | None = None) -> Path:
    """Convert StyleGAN weights into a gencli checkpoint; returns its path. The format is read from the file:
    NVIDIA's network pickles (stylegan2-ada-pytorch, the StyleGAN3 release's stylegan2-*.pkl; unpickled
    without running their code) and rosinality/stylegan2-pytorch .pt files become stylegan2 checkpoints
    (the generator `network`, G_ema or G, and the discriminator for fine-tuning); rosinality/
    style-based-gan-pytorch StyleGAN1 files, which alone need `resolution`, stylegan checkpoints.
    `class_names`: names of a conditional network's classes, kept in the checkpoint."""
    if network not in ("G", "G_ema"):
        raise OptionError(f"--network must be G or G_ema, got {network!r}")
    if resolution is not None:
        check_positive(resolution=resolution)
    return stylegan2_weights.import_weights(file, out=out, resolution=resolution, network=network,
                                            class_names=class_names)


def download_network(name: str, *, as_name: str | None = None, base_url: str | None = None, overwrite: bool = False,
                     progress=None) -> tuple[Path, str]:
    """Download one of NVIDIA's published StyleGAN2 networks (gencli.download.NETWORKS), check that it holds
    the network of that name (resolution, classes), and keep it converted in the models folder as
    NAME.safetensors, so that `-c NAME` finds it. Returns (checkpoint, model name)."""
    if name not in download.NETWORKS:
        raise GencliError(f"unknown StyleGAN2 network {name!r}; NVIDIA's: {', '.join(download.NETWORKS)}")
    model_name = as_name or name
    check_name(model_name, "model name")
    network = download.NETWORKS[name]
    target = models_dir() / f"{model_name}.safetensors"
    if target.is_file() and not overwrite:
        raise NothingToDo(f"{name} is already imported as {target}; --overwrite downloads it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gencli-", dir=target.parent) as tmp:
        pkl = download.download_network(name, Path(tmp), base_url=base_url, progress=progress)
        digest = hashlib.sha256()
        with open(pkl, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        G, D, config, extra = stylegan2_weights.convert(pkl)
        if config.img_resolution != network.resolution or config.c_dim != len(network.classes):
            kind = lambda res, classes: f"{res} px, " + (f"{classes} classes" if classes else "unconditional")  # noqa: E731
            raise GencliError(f"{network.url(base_url)} is not NVIDIA's {name} network: it holds a network of "
                              f"{kind(config.img_resolution, config.c_dim)}, {name} is {kind(network.resolution, len(network.classes))}")
        extra.update(source_url=network.url(base_url), source_sha256=digest.hexdigest(), name=name)
        if network.classes:
            extra["class_names"] = list(network.classes)
        path = save_model(target, "stylegan2", G, config, epoch=0, seed=0, extra=extra, discriminator=D)
    return path, model_name
