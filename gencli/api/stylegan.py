"""The StyleGAN commands: train, style-mix, interpolate and import-weights (`sample` is in gencli.api.vae,
shared by every family that samples)."""

from __future__ import annotations

from pathlib import Path

from gencli.api.common import check_numbers, check_positive, check_scale, check_train_precision, check_truncation, options_named
from gencli.checkpoint import read_metadata
from gencli.errors import GencliError, OptionError
from gencli.images import ANIMATED, check_image_path, image_format, save_animation, save_grid
from gencli.inference import stylegan as inference
from gencli.runs import find_checkpoint, open_model
from gencli.training import stylegan as training
from gencli.training.augment import parse_augment
from gencli.training.loop import TrainingHooks
from gencli.weights import stylegan as weights

HINT = "train one with `gencli train stylegan` or pass --checkpoint"


def train_stylegan(*, data: str = "mnist", data_dir=None, out=None, resolution: int | None = None,
                   widths: tuple[int, ...] | None = None, z_dim: int | None = None, w_dim: int | None = None,
                   mapping_layers: int | None = None, style: str | None = None, skip_rgb: bool | None = None,
                   tanh_output: bool | None = None, mbstd_group: int | None = None, batch_size: int = 32,
                   lr: float = 0.001, r1_gamma: float | None = None, r1_every: int = 16, mixing_prob: float = 0.9,
                   ema_kimg: float = 10.0, kimg: float | None = None, epochs: int | None = None,
                   tick_kimg: float = 4.0, mirror: bool | None = None, init_from=None, freeze_mapping: bool = False,
                   freeze_d: int = 0, seed: int = 0, device: str = "auto", precision: str = "auto",
                   cond: bool = False, augment: str | bool = "", resume: bool = False, overwrite: bool = False,
                   progress: TrainingHooks | None = None, on_skip=None) -> Path:
    """Train a StyleGAN; returns the path of model.safetensors (the EMA generator) in the run directory.

    Length: `kimg` thousand images in all, or `epochs` ticks of `tick_kimg` thousand images each
    (default 100 kimg). Architecture options left as None take the defaults, or with `init_from` the
    source run's values. `cond`: class-conditional on the data's labels (mnist, fashion-mnist, or a
    folder with one subfolder per class). `augment`: DiffAugment before D (True: color, translation
    and cutout; or a comma list of them). precision: auto (bf16 autocast on CUDA or a CPU with native
    bf16, else fp32), fp32 or bf16. On `resume`, every option but the length, the device and the
    precision comes from the run.
    """
    check_numbers(locals())
    if kimg is not None and epochs is not None:
        raise OptionError("give --kimg or --epochs, not both")
    if not resume:
        check_positive(batch_size=batch_size, lr=lr, r1_every=r1_every, ema_kimg=ema_kimg, tick_kimg=tick_kimg)
        parse_augment(augment)
    check_train_precision(precision)
    with options_named():
        return training.train(
            data=data, data_dir=data_dir, out=out, resolution=resolution, widths=widths, z_dim=z_dim, w_dim=w_dim,
            mapping_layers=mapping_layers, style=style, skip_rgb=skip_rgb, tanh_output=tanh_output,
            mbstd_group=mbstd_group, batch_size=batch_size, lr=lr, r1_gamma=r1_gamma, r1_every=r1_every,
            mixing_prob=mixing_prob, ema_kimg=ema_kimg, kimg=kimg, ticks=epochs, tick_kimg=tick_kimg, mirror=mirror,
            init_from=init_from, freeze_mapping=freeze_mapping, freeze_d=freeze_d, seed=seed, device=device,
            precision=precision, cond=cond, augment=augment, resume=resume, overwrite=overwrite, progress=progress,
            on_skip=on_skip)


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
    class `label`, or without one seed s as class s % classes, so the grid shows the classes); returns
    its path.
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
    `label`, or without one seed s as class s % classes, from class to class) as an image, or, when `out` names
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
