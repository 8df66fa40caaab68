"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the same
random, differentiable transforms on real and fake images before every use of D, so that D cannot
memorize a small data set and G still gets gradients through the augmentation.

Pure functions: `draw_augment` draws the parameters from a generator (the training step draws them for
the global batch and shards them like the latents, so a run is reproducible under torchrun), and
`diff_augment` applies them.
"""

from __future__ import annotations

import torch

from gencli.training.options import AUGMENTS, parse_augment  # noqa: F401  (`--augment`, declared with the options)


def draw_augment(policy: str, batch: int, size: int, generator: torch.Generator) -> dict:
    """Random parameters of the policy for `batch` images of `size` px: per image brightness, saturation
    and contrast factors in [0, 1); a shift (dy, dx) in [-size/8, size/8]; a cutout centre (cy, cx)."""
    dev, params = generator.device, {}
    if "color" in policy:
        params["color"] = torch.rand(batch, 3, generator=generator, device=dev)
    if "translation" in policy:
        s = int(size * 0.125 + 0.5)
        params["shift"] = torch.randint(-s, s + 1, (batch, 2), generator=generator, device=dev)
    if "cutout" in policy:
        half = int(size * 0.5 + 0.5)
        params["cutout"] = torch.randint(0, size + 1 - half % 2, (batch, 2), generator=generator, device=dev)
    return params


def diff_augment(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Apply drawn DiffAugment parameters to images x (B, C, H, W) in [-1, 1]; differentiable in x.

    color: brightness x + (b - 0.5); saturation (x - mean over channels) * 2s + mean; contrast
    (x - image mean) * (c + 0.5) + mean. translation: pixel (i, j) moves to (i + dy, j + dx), zeros
    come in. cutout: a square of half the image side centred at (cy, cx) (clipped at the border) is
    zeroed. Zeros are mid-grey in [-1, 1], as in the paper's code.
    """
    b, _, h, w = x.shape
    if "color" in params:
        f = params["color"].to(x.dtype)[:, :, None, None, None]  # (B, 3, 1, 1, 1)
        x = x + (f[:, 0] - 0.5)
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * (f[:, 1] * 2) + mean
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * (f[:, 2] + 0.5) + mean
    rows = torch.arange(h, device=x.device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(w, device=x.device)[None, None, :]  # (1, 1, W)
    if "shift" in params:
        dy, dx = params["shift"].to(x.device)[:, 0, None, None], params["shift"].to(x.device)[:, 1, None, None]
        src_r, src_c = rows - dy, cols - dx  # (B, H, 1), (B, 1, W): where each output pixel comes from
        inside = ((src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)).unsqueeze(1)  # (B, 1, H, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        moved = x.permute(0, 2, 3, 1)[batch, src_r.clamp(0, h - 1), src_c.clamp(0, w - 1)].permute(0, 3, 1, 2)
        x = moved * inside
    if "cutout" in params:
        cy, cx = params["cutout"].to(x.device)[:, 0, None, None], params["cutout"].to(x.device)[:, 1, None, None]
        hh, hw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        top, left = cy - hh // 2, cx - hw // 2
        cut = (rows >= top) & (rows < top + hh) & (cols >= left) & (cols < left + hw)  # (B, H, W)
        x = x * (~cut).unsqueeze(1)
    return x
