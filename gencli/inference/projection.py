"""Projection: the w whose image matches a given image, found by optimization, as in StyleGAN2 (Karras et
al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", Sec. 5 and App. D) and NVIDIA's
StyleGAN2-ADA projector:

- start from the mean w (of `w_avg_samples` z drawn from seed 123, for a conditional G of the label's
  class); w_std, the root of the total variance of those w, scales the noise added to w;
- every step: w + N(0, (w_std * initial_noise_factor * max(0, 1 - t / noise_ramp)^2)^2) (t = step / steps:
  the noise decays to 0 at three quarters of the run, which keeps the search off a narrow optimum early);
  the image synthesized from it (the same w at every layer, or with space "w+" one w per layer) and the
  per-layer noise maps, which are optimized too; the distance to the target (squared Euclidean distance
  of feature vectors, gencli.perceptual) plus `noise_weight` times the noise regularization; one Adam
  step (betas 0.9, 0.999) on w and the noise maps; the noise maps renormalized to zero mean, unit variance;
- learning rate lr * ramp(t): a cosine ramp-down over the last `lr_rampdown` of the run, times a linear
  ramp-up over the first `lr_rampup`;
- the noise regularization: for every noise map and its 2x2 average poolings down to 8 x 8, the squared
  mean product of the map with itself shifted by one pixel, across and down (its autocorrelation, which
  would let the noise draw the image).

Works on any generator with gencli's StyleGAN interface (G.mapping, G.broadcast, G.synthesis(ws, noise),
G.num_ws, G.config.z_dim, G.synthesis.layer_resolutions). Tensors in and out; the progress callback is
the only report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import GencliError
from gencli.images import to_unit

SPACES = ("w", "w+")


@dataclass
class Projection:
    """A projection's result. `ws` (num_ws, w_dim): the w of every layer (the same w repeated, in space
    "w"); `noise`: the optimized noise maps, one (1, 1, r, r) per layer; `image` (C, H, W) in [0, 1]: g(ws,
    noise); `distance`: of that image to the target; `distances`: per step (with the noise on w);
    `frames` (F, C, H, W) in [0, 1]: the image every `frame_every` steps and at the end (None without);
    `steps_ws` (steps, num_ws, w_dim): ws after every step (None unless asked for)."""

    ws: torch.Tensor
    noise: list[torch.Tensor]
    image: torch.Tensor
    distance: float
    distances: list[float]
    space: str
    frames: torch.Tensor | None = None
    steps_ws: torch.Tensor | None = None


def learning_rate(t: float, lr: float = 0.1, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """The projector's schedule at t = step / steps: lr * (1 - cos(pi min(1, (1 - t) / rampdown))) / 2 *
    min(1, t / rampup)."""
    down = min(1.0, (1.0 - t) / rampdown)
    return lr * (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, t / rampup)


def w_noise_scale(t: float, w_std: float, initial: float = 0.05, ramp: float = 0.75) -> float:
    """The standard deviation of the noise added to w at t = step / steps."""
    return w_std * initial * max(0.0, 1.0 - t / ramp) ** 2


def noise_regularization(noise: list[torch.Tensor]) -> torch.Tensor:
    """Sum over noise maps (1, 1, r, r) and their 2x2 average poolings down to 8 x 8 of mean(n * n shifted
    one pixel across)^2 + mean(n * n shifted one pixel down)^2 (shifts wrap around)."""
    total = noise[0].new_zeros(())
    for n in noise:
        while True:
            total = total + (n * n.roll(1, dims=3)).mean() ** 2 + (n * n.roll(1, dims=2)).mean() ** 2
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


def label_tensor(G, label: int | None, n: int, device) -> torch.Tensor | None:
    """Labels (n,) for a conditional G (default class 0), None for an unconditional one."""
    classes = G.config.num_classes
    if not classes:
        if label is not None:
            raise GencliError("--label needs a conditional stylegan (trained with --cond); this one is unconditional")
        return None
    label = 0 if label is None else label
    if not 0 <= label < classes:
        raise GencliError(f"--label must be between 0 and {classes - 1}")
    return torch.full((n,), label, dtype=torch.long, device=device)


@torch.no_grad()
def w_stats(G, label: int | None = None, samples: int = 10000, seed: int = 123,
            batch_size: int = 2000) -> tuple[torch.Tensor, float]:
    """(mean w (w_dim,), w_std) of `samples` w = f(z) (a conditional G's: of class `label`), z from `seed`:
    w_std = sqrt(sum ||w - mean||^2 / samples)."""
    device = G.w_avg.device
    z = torch.randn(samples, G.config.z_dim, generator=torch.Generator().manual_seed(seed))
    ws = torch.cat([G.mapping(chunk.to(device), label_tensor(G, label, len(chunk), device)).float()
                    for chunk in z.split(batch_size)])
    mean = ws.mean(0)
    return mean, float(((ws - mean) ** 2).sum() / samples) ** 0.5


def as_float_target(target: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A target image (C, H, W), uint8 or float in [0, 255], as float (1, C, H, W); it must be the
    generator's shape."""
    if tuple(target.shape) != tuple(shape):
        raise GencliError(f"the target image is {tuple(target.shape)}, the network draws {tuple(shape)} "
                          "(channels, height, width)")
    return target.float()[None]


def project(G, target: torch.Tensor, features: nn.Module, *, steps: int = 1000, space: str = "w",
            label: int | None = None, seed: int = 0, w_avg_samples: int = 10000, lr: float = 0.1,
            initial_noise_factor: float = 0.05, noise_ramp: float = 0.75, lr_rampup: float = 0.05,
            lr_rampdown: float = 0.25, noise_weight: float = 1e5, frame_every: int = 0,
            keep_steps: bool = False, progress: Callable[[int, int, float], None] | None = None) -> Projection:
    """Project `target` (C, H, W) in [0, 255] into G's w (or w+) space; see the module docstring.
    `features`: a feature network of gencli.perceptual (float images in [0, 255] -> (N, D)). `seed`: the
    initial noise maps and the noise on w. `progress(step, steps, distance)` after every step."""
    if space not in SPACES:
        raise GencliError(f"--space must be w or w+, got {space!r}")
    if steps < 1:
        raise GencliError(f"--steps must be positive, got {steps}")
    device = G.w_avg.device
    grads = [p.requires_grad for p in G.parameters()]
    G.eval().requires_grad_(False)
    features.requires_grad_(False)
    try:
        w_mean, w_std = w_stats(G, label, w_avg_samples)
        shape = image_shape(G, w_mean)
        target_images = as_float_target(target, shape).to(device)
        with torch.no_grad():
            target_features = features(target_images)

        g = torch.Generator().manual_seed(seed)
        start = w_mean[None] if space == "w" else G.broadcast(w_mean[None]).clone()  # (1, w_dim) | (1, num_ws, w_dim)
        w_opt = start.detach().clone().requires_grad_(True)
        noise = [torch.randn(1, 1, r, r, generator=g).to(device).requires_grad_(True)
                 for r in G.synthesis.layer_resolutions]
        optimizer = torch.optim.Adam([w_opt, *noise], betas=(0.9, 0.999), lr=lr)
        distances, frames, steps_ws = [], [], []

        def ws_of(w: torch.Tensor) -> torch.Tensor:
            return G.broadcast(w) if space == "w" else w

        for step in range(steps):
            t = step / steps
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(t, lr, lr_rampup, lr_rampdown)
            w_noise = torch.randn(w_opt.shape, generator=g).to(device) * w_noise_scale(t, w_std, initial_noise_factor, noise_ramp)
            images = G.synthesis(ws_of(w_opt + w_noise), noise=noise)  # (1, C, H, W), about [-1, 1]
            dist = (features((images + 1) * 127.5) - target_features).square().sum()
            loss = dist + noise_weight * noise_regularization(noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for n in noise:  # zero mean, unit variance
                    n -= n.mean()
                    n *= n.square().mean().rsqrt()
            distances.append(float(dist.detach()))
            if frame_every and step % frame_every == 0:
                frames.append(to_unit(images[0].detach()).cpu())
            if keep_steps:
                steps_ws.append(ws_of(w_opt.detach())[0].cpu())
            if progress:
                progress(step + 1, steps, distances[-1])

        with torch.no_grad():
            ws = ws_of(w_opt.detach())  # (1, num_ws, w_dim)
            final = G.synthesis(ws, noise=noise)
            distance = float((features((final + 1) * 127.5) - target_features).square().sum())
        image = to_unit(final[0]).cpu()
        if frame_every:
            frames.append(image)
        return Projection(ws=ws[0].cpu(), noise=[n.detach().cpu() for n in noise], image=image, distance=distance,
                          distances=distances, space=space, frames=torch.stack(frames) if frames else None,
                          steps_ws=torch.stack(steps_ws) if keep_steps else None)
    finally:
        for p, flag in zip(G.parameters(), grads):
            p.requires_grad_(flag)


@torch.no_grad()
def image_shape(G, w: torch.Tensor | None = None) -> tuple[int, int, int]:
    """(channels, height, width) of G's images, from one synthesis (of `w`, default w_avg's first row)."""
    w = G.w_avg.reshape(-1, G.w_avg.shape[-1])[:1] if w is None else w.reshape(1, -1)
    return tuple(G.synthesis(G.broadcast(w), noise=_zero_noise(G, w.device)).shape[1:])


def _zero_noise(G, device) -> list[torch.Tensor]:
    return [torch.zeros(1, 1, r, r, device=device) for r in G.synthesis.layer_resolutions]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1]: 10 log10(1 / MSE) (inf when equal)."""
    mse = float((a.float() - b.float()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)
