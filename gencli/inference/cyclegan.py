"""Translating images of any size with a CycleGAN generator: whole images up to a megapixel, larger ones
in blended tiles that share their instance-norm statistics; and the files and folders of `translate`.

Memory: images are read one at a time, and a large one is kept as 8-bit pixels; only the current tile, a
downscaled copy (for the statistics) and the float32 output are held besides. 10000 x 10000 pixels (above
the default pixel limit of gencli.data) peaked at 2.4 GB for the whole process, torch included.

Output names are decided for all inputs before anything is written (`output_paths`): an input never has
its output written over it, and two inputs never share an output.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gencli.data import list_images, open_rgb
from gencli.errors import GencliError
from gencli.images import check_image_path, save_pil
from gencli.models.cyclegan import CycleGAN, InstanceNorm

PRECISIONS = ("fp32", "bf16", "fp16")


@contextlib.contextmanager
def shared_statistics(generator: nn.Module, reference: torch.Tensor):
    """Within the block, every InstanceNorm of `generator` normalises with the statistics it saw on
    `reference` (B=1, already padded to a multiple of 4) instead of those of its current input."""
    norms = [m for m in generator.modules() if isinstance(m, InstanceNorm)]
    try:
        for m in norms:
            m.mode = "record"
        generator(reference)
        for m in norms:
            m.mode = "shared"
        yield
    finally:
        for m in norms:
            m.mode, m.stats = "normal", None


def pad_to_multiple(x: torch.Tensor, multiple: int = 4, minimum: int = 8) -> torch.Tensor:
    """Pad right and bottom so H and W are multiples of `multiple` and at least `minimum` (the generator
    needs 2 x 2 pixels at its 1/4 resolution); reflection, or replicate where the image is too small."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, minimum - h), max(-w % multiple, minimum - w)
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _ramp(length: int, start: int, total: int, overlap: int, margin: int) -> torch.Tensor:
    """Blend weights along one axis of a tile covering [start, start + length) of `total` pixels.

    Near a tile edge that is inside the image, outputs lack context: the `margin` pixels there get (almost)
    no weight, and the next `overlap - 2 margin` pixels ramp up linearly. Edges on the image border keep
    full weight. Weights stay above zero, so the normalised sum is defined everywhere."""
    i = torch.arange(length, dtype=torch.float32)
    far = torch.full((length,), float(length))
    d_lo = i if start > 0 else far
    d_hi = (length - 1 - i) if start + length < total else far
    d = torch.minimum(d_lo, d_hi)
    ramp = max(overlap - 2 * margin, 1)
    return ((d - margin + 1) / ramp).clamp(1e-3, 1.0)


def _starts(total: int, tile: int, step: int) -> list[int]:
    if total <= tile:
        return [0]
    starts = list(range(0, total - tile, step))
    return starts + [total - tile]


def _reflect_pad(x: torch.Tensor) -> torch.Tensor:
    """pad_to_multiple for images large enough to reflect (any dtype, e.g. uint8: no float copy)."""
    h, w = x.shape[-2:]
    ph, pw = -h % 4, -w % 4
    if ph:
        x = torch.cat([x, x[..., h - 2 - torch.arange(ph), :]], dim=-2)
    if pw:
        x = torch.cat([x, x[..., w - 2 - torch.arange(pw)]], dim=-1)
    return x


def _unit_range(x: torch.Tensor) -> torch.Tensor:
    """Network input in [-1, 1] in float32: uint8 pixels converted, floats as they are."""
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def translate_tensor(generator: nn.Module, x: torch.Tensor, *, tile: int = 512, overlap: int = 128,
                     margin: int = 32, whole_max_pixels: int = 1024 * 1024, stats_size: int = 1024,
                     precision: str = "fp32") -> torch.Tensor:
    """Translate one image x (1, 3, H, W), in [-1, 1] or as uint8 pixels, of any size; returns (1, 3, H, W)
    in [-1, 1] on the CPU.

    Images up to `whole_max_pixels` go through in one piece (padded to a multiple of 4, cropped back).
    Larger ones go in `tile` x `tile` windows overlapping by `overlap` pixels, whose outer `margin` pixels
    (short of context) are dropped and the rest blended with linear ramps, so memory stays bounded: only
    one tile is converted to float at a time. Instance norm would give each tile its own colours, so all
    tiles share the statistics of a copy of the image downscaled to at most `stats_size` on its long side
    (one extra pass at that size).
    """
    device = next(generator.parameters()).device
    autocast = contextlib.nullcontext() if precision == "fp32" else torch.autocast(
        device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    h, w = x.shape[-2:]
    with autocast:
        if (h + 3) // 4 * 4 * ((w + 3) // 4 * 4) <= whole_max_pixels or min(h, w) < 8:
            padded = pad_to_multiple(_unit_range(x))
            if padded.shape[-2] * padded.shape[-1] <= whole_max_pixels:
                return generator(padded.to(device)).float()[..., :h, :w].cpu()
        else:
            padded = _reflect_pad(x)
        H, W = padded.shape[-2:]

        tile = max(8, tile - tile % 4)
        overlap = min(overlap, tile // 2)
        overlap -= overlap % 4
        margin = min(margin, overlap // 4)
        scale = min(1.0, stats_size / max(H, W))
        if scale == 1.0:
            reference = _unit_range(padded)
        else:  # one channel at a time: a float copy of one channel, not of the whole image
            size = (max(4, round(H * scale)), max(4, round(W * scale)))
            reference = torch.cat([F.interpolate(_unit_range(padded[:, c : c + 1]), size=size, mode="bilinear",
                                                 antialias=True, align_corners=False) for c in range(3)], dim=1)
        reference = pad_to_multiple(reference)
        out = torch.zeros(1, 3, H, W)
        th, tw = min(tile, H), min(tile, W)
        tops, lefts = _starts(H, th, tile - overlap), _starts(W, tw, tile - overlap)
        # The blend weights of a grid of tiles are separable: their sum is (sum over rows) x (sum over columns).
        weight_y, weight_x = torch.zeros(H), torch.zeros(W)
        for top in tops:
            weight_y[top : top + th] += _ramp(th, top, H, overlap, margin)
        for left in lefts:
            weight_x[left : left + tw] += _ramp(tw, left, W, overlap, margin)
        with shared_statistics(generator, reference.to(device)):
            del reference
            for top in tops:
                for left in lefts:
                    piece = _unit_range(padded[..., top : top + th, left : left + tw])
                    y = generator(piece.to(device)).float().cpu()
                    wy = _ramp(th, top, H, overlap, margin)
                    wx = _ramp(tw, left, W, overlap, margin)
                    out[..., top : top + th, left : left + tw] += y * (wy[:, None] * wx[None, :])
        out.div_(weight_y.view(1, 1, H, 1)).div_(weight_x.view(1, 1, 1, W))
        return out[..., :h, :w]


def image_to_tensor(image) -> torch.Tensor:
    """PIL RGB image -> (1, 3, H, W) in [-1, 1]."""
    return _unit_range(image_to_pixels(image))


def image_to_pixels(image) -> torch.Tensor:
    """PIL RGB image -> (1, 3, H, W) uint8."""
    array = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
    return array.permute(2, 0, 1)[None]


def to_rgb_pixels(y: torch.Tensor) -> torch.Tensor:
    """A translated image (1, 3, H, W) in [-1, 1] -> uint8 (H, W, 3), with the arithmetic of
    gencli.images.save_image but in place: no float copy of a large image."""
    return y[0].add_(1).div_(2).clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous()


def save_translation(pixels: torch.Tensor, path: Path) -> Path:
    """Write uint8 (H, W, 3) pixels in the format the extension names, as every image of gencli."""
    return save_pil(Image.fromarray(pixels.numpy()), path)


def resize_short_side(image, size: int):
    w, h = image.size
    scale = size / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def collect_inputs(inputs: list[Path]) -> list[tuple[Path, Path | None]]:
    """(image file, folder it came from or None) for each input file and each image file of each input
    folder; a file named twice (also through its folder) counts once."""
    jobs: list[tuple[Path, Path | None]] = []
    seen: set[Path] = set()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = [(p, item) for p in list_images(item)]
        elif item.is_file():
            found = [(item, None)]
        else:
            raise GencliError(f"input not found: {item}")
        for src, folder in found:
            if src.resolve() not in seen:
                seen.add(src.resolve())
                jobs.append((src, folder))
    if not jobs:
        raise GencliError("no input images")
    return jobs


def output_paths(jobs: list[tuple[Path, Path | None]], out: Path | None, direction: str) -> list[Path]:
    """The output of every input, decided before anything is written.

    One input file: `out` (a file name, or a folder to write into), default ./STEM_DIRECTION.png.
    Otherwise `out` is a folder (default ./FOLDER_DIRECTION for one input folder, else ./translated_DIRECTION)
    receiving STEM.png for each input; inputs that share a stem (a.jpg and a.png) are written as STEM_EXT.png
    (a_jpg.png, a_png.png) instead. Refused: two inputs that would still share an output (the same file
    name in two folders), and an output that would be written over any input."""
    if len(jobs) == 1 and jobs[0][1] is None:
        src = jobs[0][0]
        if out is None:
            paths = [Path(f"{src.stem}_{direction}.png")]
        else:
            paths = [out / f"{src.stem}.png"] if out.is_dir() else [out]
    else:
        folders = {folder for _, folder in jobs}
        if out is None:
            only = next(iter(folders)) if len(folders) == 1 else None
            out = Path(f"{only.resolve().name}_{direction}" if only is not None else f"translated_{direction}")
        if out.exists() and not out.is_dir():
            raise GencliError(f"{out} is a file; several images need an output folder")
        stems: dict[str, int] = {}
        for src, _ in jobs:
            stems[src.stem] = stems.get(src.stem, 0) + 1
        paths, taken = [], {}
        for src, _ in jobs:
            name = f"{src.stem}.png" if stems[src.stem] == 1 else f"{src.stem}_{src.suffix[1:].lower()}.png"
            target = out / name
            if target in taken:
                raise GencliError(f"{taken[target]} and {src} would both be written to {target}; "
                                  "translate them into separate output folders")
            taken[target] = src
            paths.append(target)
    inputs = {src.resolve(): src for src, _ in jobs}
    for target in paths:
        if target.resolve() in inputs:
            raise GencliError(f"{target} would be written over the input {inputs[target.resolve()]}; "
                              "choose another output (-o)")
    return paths


def translate_files(model: CycleGAN, inputs: list[Path], *, out: Path | None = None, direction: str = "a2b",
                    size: int | None = None, precision: str = "fp32", tile: int = 512,
                    on_skip: Callable[[Path, str], None] | None = None) -> list[Path]:
    """Translate image files and folders with `model` (options checked by gencli.api.translate); returns
    the written paths. An unreadable file given on its own is an error; inside a folder it is skipped via
    `on_skip`. Images are decoded one at a time."""
    generator = model.generator(direction)
    jobs = collect_inputs(inputs)
    targets = output_paths(jobs, None if out is None else Path(out), direction)
    for target in targets[:1]:
        check_image_path(target)  # writable, and its extension names a format
    written = []
    for (src, folder), target in zip(jobs, targets):
        try:
            image = open_rgb(src)
        except GencliError as e:
            if folder is None:
                raise
            if on_skip:
                on_skip(src, str(e))
            continue
        if size is not None:
            image = resize_short_side(image, size)
        pixels = image_to_pixels(image)
        del image
        y = translate_tensor(generator, pixels, tile=tile, precision=precision)
        del pixels
        pixels = to_rgb_pixels(y)
        del y  # the float image goes before the 8-bit copies are made
        written.append(save_translation(pixels, target))
    if not written:
        raise GencliError("none of the input files could be read as images")
    return written
