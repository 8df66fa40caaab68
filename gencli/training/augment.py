"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the same
random, differentiable transforms on real and fake images before every use of D, so that D cannot
memorize a small data set and G still gets gradients through the augmentation.

Pure functions: `draw_augment` draws the parameters from a generator (the training step draws them for
the global batch and shards them like the latents, so a run is reproducible under torchrun), and
`diff_augment` applies them.

Adaptive augmentation (ADA, Karras et al. 2020, "Training Generative Adversarial Networks with Limited
Data"): each operation is applied to each image with probability p (`draw_augment(..., p=p)`), and
`ada_adjust` moves p by the overfitting heuristic r_t = E[sign D(x_real)]: up while r_t is above the target
(0.6), down while below, by batch x interval / (ada_kimg x 1000) per adjustment, so that p can go from 0 to
1 in ada_kimg thousand images. p stays within [0, 1].
"""

from __future__ import annotations

import torch

from gencli.training.options import AUGMENTS, parse_augment  # noqa: F401  (`--augment`, declared with the options)


OPS = {"color": "color", "translation": "shift", "cutout": "cutout"}  # policy name -> parameter key


def draw_augment(policy: str, batch: int, size: int, generator: torch.Generator, p: float | None = None) -> dict:
    """Random parameters of the policy for `batch` images of `size` px: per image brightness, saturation
    and contrast factors in [0, 1); a shift (dy, dx) in [-size/8, size/8]; a cutout centre (cy, cx).
    With `p` (ADA) also, per operation and image, whether it applies (probability p), drawn last."""
    dev, params = generator.device, {}
    if "color" in policy:
        params["color"] = torch.rand(batch, 3, generator=generator, device=dev)
    if "translation" in policy:
        s = int(size * 0.125 + 0.5)
        params["shift"] = torch.randint(-s, s + 1, (batch, 2), generator=generator, device=dev)
    if "cutout" in policy:
        half = int(size * 0.5 + 0.5)
        params["cutout"] = torch.randint(0, size + 1 - half % 2, (batch, 2), generator=generator, device=dev)
    if p is not None:
        for name, key in OPS.items():
            if key in params:
                params[f"{key}_on"] = torch.rand(batch, generator=generator, device=dev) < p
    return params


def ada_adjust(p: float, rt: float, target: float, images: int, ada_kimg: float) -> float:
    """ADA's update of p after `images` images: p + sign(r_t - target) * images / (ada_kimg * 1000), in [0, 1]."""
    step = images / (ada_kimg * 1000)
    sign = (rt > target) - (rt < target)
    return min(max(p + sign * step, 0.0), 1.0)


def diff_augment(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Apply drawn DiffAugment parameters to images x (B, C, H, W) in [-1, 1]; differentiable in x.

    color: brightness x + (b - 0.5); saturation (x - mean over channels) * 2s + mean; contrast
    (x - image mean) * (c + 0.5) + mean. translation: pixel (i, j) moves to (i + dy, j + dx), zeros
    come in. cutout: a square of half the image side centred at (cy, cx) (clipped at the border) is
    zeroed. Zeros are mid-grey in [-1, 1], as in the paper's code. With "KEY_on" masks (B,) (ADA) each
    operation changes only the images it is on for.
    """
    b, _, h, w = x.shape

    def keep(new: torch.Tensor, old: torch.Tensor, key: str) -> torch.Tensor:
        on = params.get(f"{key}_on")
        return new if on is None else torch.where(on.to(x.device)[:, None, None, None], new, old)

    if "color" in params:
        before = x
        f = params["color"].to(x.dtype)[:, :, None, None, None]  # (B, 3, 1, 1, 1)
        x = x + (f[:, 0] - 0.5)
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * (f[:, 1] * 2) + mean
        mean = x.mean((1, 2, 3), keepdim=True)
        x = keep((x - mean) * (f[:, 2] + 0.5) + mean, before, "color")
    rows = torch.arange(h, device=x.device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(w, device=x.device)[None, None, :]  # (1, 1, W)
    if "shift" in params:
        dy, dx = params["shift"].to(x.device)[:, 0, None, None], params["shift"].to(x.device)[:, 1, None, None]
        src_r, src_c = rows - dy, cols - dx  # (B, H, 1), (B, 1, W): where each output pixel comes from
        inside = ((src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)).unsqueeze(1)  # (B, 1, H, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        moved = x.permute(0, 2, 3, 1)[batch, src_r.clamp(0, h - 1), src_c.clamp(0, w - 1)].permute(0, 3, 1, 2)
        x = keep(moved * inside, x, "shift")
    if "cutout" in params:
        cy, cx = params["cutout"].to(x.device)[:, 0, None, None], params["cutout"].to(x.device)[:, 1, None, None]
        hh, hw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        top, left = cy - hh // 2, cx - hw // 2
        cut = (rows >= top) & (rows < top + hh) & (cols >= left) & (cols < left + hw)  # (B, H, W)
        x = keep(x * (~cut).unsqueeze(1), x, "cutout")
    return x
