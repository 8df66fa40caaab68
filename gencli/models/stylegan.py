"""StyleGAN: a style-based generator, its discriminator, training task, sampling and weight import.

Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative Adversarial Networks"
(CVPR 2019). Paper names in the code:

- mapping network f: z -> w (Sec. 2): pixel norm, `mapping_layers` fully connected layers with leaky
  ReLU, learning rate multiplied by 0.01 (App. C). `w_avg` is the running mean of w (truncation, Sec. 3).
- synthesis network g: a learned 4x4 constant; per resolution an upsample and two 3x3 convs, each
  followed by per-pixel noise scaled by a learned per-channel weight (B) and AdaIN whose scale and bias
  come from a learned affine map of w (A) (Fig. 1b); to-RGB at the end. Bilinear filtering (a [1,2,1]
  blur) after each upsample and before each downsample, as in the paper (Sec. 2, "bilinear sampling").
- equalized learning rate everywhere (Karras et al. 2018, Sec. 4.1): weights drawn from N(0, 1) and
  scaled at run time by gain / sqrt(fan_in).
- discriminator D: from-RGB, downsampling conv blocks, minibatch standard deviation, a 3x3 conv and two
  dense layers giving one score (the ProGAN/StyleGAN design).
- training (App. C): non-saturating logistic loss, R1 penalty (applied lazily every `r1_every`
  minibatches as in StyleGAN2, Karras et al. 2020, Sec. B), style-mixing regularization (Sec. 3.1),
  an exponential moving average of G (`G_ema`), Adam with betas (0, 0.99).

Differences from the paper, on purpose: training is at a fixed resolution, without progressive
growing, and instead the generator sums a to-RGB of every resolution (StyleGAN2's skip generator,
`skip_rgb`). `train` defaults to a tanh output for digits and one minibatch-stddev group per batch of
up to 32 images. These choices were measured on MNIST, where the paper's choices collapsed (README).
Truncation applies to every layer, not only the first 8 (the same below 64 px). Images are in [-1, 1]
inside the networks. `style="demod"` swaps AdaIN for StyleGAN2's weight demodulation.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import GencliError
from gencli.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss


@dataclass
class StyleGANConfig:
    resolution: int = 32  # output images are channels x resolution x resolution; a power of two >= 8
    channels: int = 1  # image channels: 1 for MNIST / Fashion-MNIST, 3 for image folders
    z_dim: int = 128  # the latent z (the paper: 512)
    w_dim: int = 128  # the intermediate latent w (the paper: 512)
    mapping_layers: int = 8  # fully connected layers of the mapping network (the paper: 8)
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping network (App. C)
    # Channels of the synthesis network at 4, 8, 16, ... px (one per resolution); D mirrors them.
    widths: tuple[int, ...] = (128, 64, 32, 16)
    mbstd_group: int = 4  # minibatch standard deviation group size
    # StyleGAN2's skip generator (Karras et al. 2020, Sec. 4.1): every resolution has a to-RGB whose
    # output is upsampled and summed, so coarse layers reach the image directly. It stands in for the
    # progressive growing that StyleGAN1 needed; False is the paper's single to-RGB (imported weights).
    skip_rgb: bool = True
    # How w styles a layer: "adain" (the paper: instance-normalize the activations, then scale and shift
    # them per channel) or "demod" (StyleGAN2's weight modulation and demodulation, Sec. 2.2: the same
    # per-channel scaling, normalized by its expected effect instead of the measured statistics).
    style: str = "adain"
    # tanh on the output: digits are mostly exactly-black background, which a linear output can only
    # approach (D then tells fakes by their background); tanh reaches it by saturating.
    tanh_output: bool = False

    def __post_init__(self):
        res = self.resolution
        if res < 8 or res & (res - 1):
            raise GencliError(f"--resolution must be a power of two, at least 8, got {res}")
        if len(self.widths) != int(math.log2(res)) - 1:
            raise GencliError(f"--widths needs {int(math.log2(res)) - 1} values for {res} px (4, 8, ..., {res} px), "
                              f"got {len(self.widths)}")
        if any(w <= 0 for w in self.widths) or min(self.z_dim, self.w_dim, self.mapping_layers, self.mbstd_group) <= 0:
            raise GencliError("--widths, --z-dim, --w-dim, --mapping-layers and --mbstd-group must be positive")
        if self.style not in ("adain", "demod"):
            raise GencliError(f"unknown style {self.style!r}; use adain or demod")
        if self.channels not in (1, 3):
            raise GencliError(f"images must have 1 or 3 channels, got {self.channels}")


def default_widths(resolution: int, max_channels: int = 128, base: int = 512) -> tuple[int, ...]:
    """Channels per resolution 4..`resolution`: min(max_channels, base / res), at least 16 (fewer where
    there are more pixels, as in the paper's 512 ... 16). 32 px: 128, 64, 32, 16, which trains at
    about 40 images/s on one CPU core; the paper's widths are 8x to 32x these."""
    sizes = [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]
    return tuple(max(16, min(max_channels, base // s)) for s in sizes)


# --- equalized learning rate layers ---------------------------------------------------------------

class EqualLinear(nn.Module):
    """y = x (W * c)^T + b * lr_mul, with c = gain * lr_mul / sqrt(in) and W ~ N(0, 1 / lr_mul^2).

    Dividing the stored weight by lr_mul and multiplying at run time slows its learning by lr_mul
    under Adam while keeping the initial function the same (the mapping network's 0.01, App. C).
    """

    def __init__(self, in_dim: int, out_dim: int, *, gain: float = math.sqrt(2), lr_mul: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)) / lr_mul)
        self.scale = gain * lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A conv whose N(0, 1) weight is scaled at run time by gain / sqrt(in * k * k) (He's constant)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, gain: float = math.sqrt(2), bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = gain / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class Blur(nn.Module):
    """The [1, 2, 1] x [1, 2, 1] / 16 low-pass filter applied per channel (the paper's bilinear filtering)."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).view(1, 1, 3, 3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.conv2d(x, self.kernel.expand(c, 1, 3, 3), padding=1, groups=c)


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """z / sqrt(mean(z^2)) per row: the mapping network's input normalization."""
    return z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + eps)


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


# --- generator ------------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """f: z (B, z_dim) -> w (B, w_dim)."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=config.mapping_lr_mul) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = leaky(layer(x))
        return x


class NoiseInjection(nn.Module):
    """B: adds single-channel per-pixel noise (B, 1, H, W) scaled by a learned per-channel weight (init 0)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class AdaIN(nn.Module):
    """AdaIN(x, y) = y_s * (x - mu(x)) / sigma(x) + y_b per channel, with (y_s, y_b) = A(w) (Eq. 1).

    A is a learned affine map (an equalized linear layer with gain 1) whose bias starts at y_s = 1, y_b = 0.
    """

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, 2 * channels, gain=1.0)
        with torch.no_grad():
            self.affine.bias[:channels] = 1.0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ys, yb = self.affine(w)[:, :, None, None].chunk(2, dim=1)  # each (B, C, 1, 1)
        x = x - x.mean((2, 3), keepdim=True)
        x = x * torch.rsqrt(x.pow(2).mean((2, 3), keepdim=True) + 1e-8)  # instance norm
        return ys * x + yb


class SynthesisBlock(nn.Module):
    """One resolution of g: (learned 4x4 constant | upsample, 3x3 conv, blur), B, lrelu, AdaIN;
    3x3 conv, B, lrelu, AdaIN. Consumes two w (one per AdaIN)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, first: bool):
        super().__init__()
        self.first = first
        if first:
            self.const = nn.Parameter(torch.ones(1, out_ch, 4, 4))
        else:
            self.conv1 = EqualConv2d(in_ch, out_ch, 3)
            self.blur = Blur()
        self.noise1, self.adain1 = NoiseInjection(out_ch), AdaIN(out_ch, w_dim)
        self.conv2 = EqualConv2d(out_ch, out_ch, 3)
        self.noise2, self.adain2 = NoiseInjection(out_ch), AdaIN(out_ch, w_dim)

    def forward(self, x, w1, w2, noise1, noise2):
        if self.first:
            x = self.const.expand(w1.shape[0], -1, -1, -1)
        else:
            x = self.blur(self.conv1(F.interpolate(x, scale_factor=2, mode="nearest")))
        x = self.adain1(leaky(self.noise1(x, noise1)), w1)
        x = self.adain2(leaky(self.noise2(self.conv2(x), noise2)), w2)
        return x


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated conv (Sec. 2.2): input channels scaled by s = A(w), a 3x3 conv, and each output
    channel divided by its expected standard deviation sqrt(sum_{i,k} (s_i w_ijk)^2) (demodulation).
    Scaling the activations rather than the weights gives the same result with an ordinary convolution."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.affine = EqualLinear(w_dim, in_ch, gain=1.0, bias_init=1.0)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)  # (B, in)
        weight = self.weight * self.scale
        x = F.conv2d(x * s[:, :, None, None], weight, padding=self.padding)
        demod = torch.rsqrt(s.pow(2) @ weight.pow(2).sum((2, 3)).t() + 1e-8)  # (B, out)
        return x * demod[:, :, None, None]


class ModulatedBlock(nn.Module):
    """One resolution of g with StyleGAN2 styling: (learned 4x4 constant | upsample, blur), modulated
    3x3 conv, B, bias, lrelu; modulated 3x3 conv, B, bias, lrelu. Consumes two w."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, first: bool):
        super().__init__()
        self.first = first
        if first:
            self.const = nn.Parameter(torch.randn(1, in_ch, 4, 4))
        else:
            self.blur = Blur()
        self.conv1, self.noise1 = ModulatedConv2d(in_ch, out_ch, w_dim), NoiseInjection(out_ch)
        self.conv2, self.noise2 = ModulatedConv2d(out_ch, out_ch, w_dim), NoiseInjection(out_ch)
        self.bias1, self.bias2 = nn.Parameter(torch.zeros(1, out_ch, 1, 1)), nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x, w1, w2, noise1, noise2):
        if self.first:
            x = self.const.expand(w1.shape[0], -1, -1, -1)
        else:
            x = self.blur(F.interpolate(x, scale_factor=2, mode="nearest"))
        x = leaky(self.noise1(self.conv1(x, w1), noise1) + self.bias1) * math.sqrt(2)  # sqrt 2: keep unit variance
        return leaky(self.noise2(self.conv2(x, w2), noise2) + self.bias2) * math.sqrt(2)


class SynthesisNetwork(nn.Module):
    """g: ws (B, num_ws, w_dim) -> images (B, channels, res, res), unbounded, about [-1, 1]."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        w = config.widths
        block = SynthesisBlock if config.style == "adain" else ModulatedBlock
        self.blocks = nn.ModuleList(block(w[max(i - 1, 0)], w[i], config.w_dim, first=i == 0) for i in range(len(w)))
        self.to_rgb = EqualConv2d(w[-1], config.channels, 1, gain=1.0)
        self.skip_rgbs = nn.ModuleList(EqualConv2d(c, config.channels, 1, gain=1.0) for c in w[:-1]) if config.skip_rgb else None
        self.tanh_output = config.tanh_output
        # The resolution each of the 2 * len(widths) style/noise layers works at.
        self.layer_resolutions = [4 * 2**i for i in range(len(w)) for _ in range(2)]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        if noise is None:
            noise = [torch.randn(ws.shape[0], 1, r, r, device=ws.device) for r in self.layer_resolutions]
        x = rgb = None
        for i, block in enumerate(self.blocks):
            x = block(x, ws[:, 2 * i], ws[:, 2 * i + 1], noise[2 * i], noise[2 * i + 1])
            if self.skip_rgbs is not None and i < len(self.skip_rgbs):
                rgb = self._add_rgb(rgb, self.skip_rgbs[i](x))
        rgb = self._add_rgb(rgb, self.to_rgb(x))
        return torch.tanh(rgb) if self.tanh_output else rgb

    @staticmethod
    def _add_rgb(rgb: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
        if rgb is None:
            return new
        return F.interpolate(rgb, size=new.shape[-1], mode="bilinear", align_corners=False) + new


class Generator(nn.Module):
    """G = g(f(z)). `w_avg` (a buffer, saved with the weights) is the running mean of w."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = 2 * len(config.widths)
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """The truncation trick (Sec. 3): w' = w_avg + psi (w - w_avg); psi = 1 leaves w as it is."""
        return w if psi == 1 else self.w_avg.lerp(w, psi)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, num_ws, w_dim): the same w for every layer."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, truncation: float = 1.0, noise: list[torch.Tensor] | None = None, *,
                mix_z: torch.Tensor | None = None, cutoff: int | None = None, return_w: bool = False):
        """Images from z; with `mix_z`, the layers from `cutoff` on take their style from it (style mixing,
        Sec. 3.1). `return_w` also returns z's w (B, w_dim)."""
        w = self.truncate(self.mapping(z), truncation)
        ws = self.broadcast(w)
        if mix_z is not None and cutoff is not None:
            ws = torch.cat([ws[:, :cutoff], self.broadcast(self.truncate(self.mapping(mix_z), truncation))[:, cutoff:]], 1)
        images = self.synthesis(ws, noise)
        return (images, w) if return_w else images


# --- discriminator --------------------------------------------------------------------------------

class DiscriminatorBlock(nn.Module):
    """res -> res/2: 3x3 conv, lrelu, blur, 3x3 conv, 2x2 average pool, lrelu."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.blur = Blur()
        self.conv2 = EqualConv2d(in_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = leaky(self.conv1(x))
        return leaky(F.avg_pool2d(self.conv2(self.blur(x)), 2))


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one feature map: the std of each feature over a group of images, averaged (ProGAN Sec. 3)."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:  # a group size that divides the batch
        g -= 1
    y = x.view(g, -1, c, h, w)  # (G, B/G, C, H, W)
    y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # (B/G,)
    y = y.view(-1, 1, 1, 1).repeat(g, 1, h, w)  # (B, 1, H, W)
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    """D: images (B, channels, res, res) -> scores (B, 1). `blocks[0]` sees the full resolution."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        w = config.widths
        self.group = config.mbstd_group
        self.from_rgb = EqualConv2d(config.channels, w[-1], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(w[i], w[i - 1]) for i in range(len(w) - 1, 0, -1))
        self.conv = EqualConv2d(w[0] + 1, w[0], 3)
        self.fc = EqualLinear(w[0] * 16, w[0])
        self.out = EqualLinear(w[0], 1, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = leaky(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        x = leaky(self.conv(minibatch_stddev(x, self.group)))  # (B, C, 4, 4)
        return self.out(leaky(self.fc(x.flatten(1))))


def build(config: StyleGANConfig) -> Generator:
    """The network model.safetensors stores: the (EMA) generator."""
    return Generator(config)


# --- training helpers (rosinality/stylegan2-pytorch style) ----------------------------------------

def requires_grad(model: nn.Module, flag: bool, frozen: frozenset[str] = frozenset()) -> None:
    """Switch gradients of `model` on or off; parameters named in `frozen` stay off."""
    for name, p in model.named_parameters():
        p.requires_grad_(flag and name not in frozen)


@torch.no_grad()
def accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers (w_avg) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def frozen_names(G: Generator, D: Discriminator, freeze_mapping: bool, freeze_d: int) -> tuple[frozenset, frozenset]:
    """Parameter names kept fixed: G's mapping network; D's from-RGB and first `freeze_d` blocks
    (Freeze-D, Mo et al. 2020: the layers next to the input)."""
    if not 0 <= freeze_d <= len(D.blocks):
        raise GencliError(f"--freeze-d must be between 0 and {len(D.blocks)} (D's blocks), got {freeze_d}")
    g = {n for n, _ in G.named_parameters() if freeze_mapping and n.startswith("mapping.")}
    prefixes = (["from_rgb."] if freeze_d else []) + [f"blocks.{i}." for i in range(freeze_d)]
    d = {n for n, _ in D.named_parameters() if n.startswith(tuple(prefixes))} if prefixes else set()
    return frozenset(g), frozenset(d)


def draw_latents(G: Generator, batch: int, mixing_prob: float, generator: torch.Generator) -> dict:
    """Generator inputs for `batch` images from `generator`: z, per-layer noise, and (with probability
    `mixing_prob`, style-mixing regularization, Sec. 3.1) a second z taking over from a random cutoff."""
    dev = generator.device
    z = torch.randn(2, batch, G.config.z_dim, generator=generator, device=dev)
    noise = [torch.randn(batch, 1, r, r, generator=generator, device=dev) for r in G.synthesis.layer_resolutions]
    mix = bool(torch.rand((), generator=generator, device=dev) < mixing_prob)
    cutoff = int(torch.randint(1, G.num_ws, (), generator=generator, device=dev))
    return {"z": z[0], "noise": noise, "mix_z": z[1] if mix else None, "cutoff": cutoff if mix else None}


def shard(inputs: dict, rank: int, world_size: int) -> dict:
    """This rank's share (every world_size-th image, as the data batches) of inputs drawn for the global batch."""
    def cut(v):
        if isinstance(v, torch.Tensor):
            return v[rank::world_size]
        return [cut(x) for x in v] if isinstance(v, list) else v
    return {k: cut(v) for k, v in inputs.items()}


# --- data -----------------------------------------------------------------------------------------

def load_images(data: str, data_dir=None, resolution: int = 32, on_skip=None) -> torch.Tensor:
    """Training images as uint8 (N, C, res, res): mnist / fashion-mnist padded 28 -> 32 px (then resized
    when res != 32), or every image of a folder (short side resized, centre crop)."""
    from gencli.data import IDX_DATASETS, list_images, load_idx_dataset, load_image_tensor, resolve_data_path

    if data in IDX_DATASETS:
        x = F.pad(load_idx_dataset(data, data_dir)[0].images, (2, 2, 2, 2))  # (N, 1, 32, 32)
        if resolution != 32:
            x = F.interpolate(x.float(), size=resolution, mode="bilinear", antialias=True, align_corners=False)
            x = x.round().clamp(0, 255).to(torch.uint8)
        return x
    return load_image_tensor(list_images(resolve_data_path(data, data_dir)), resolution, on_skip=on_skip)


def stream_batches(n: int, batch_size: int, steps: int, seed: int, tick: int) -> list[torch.Tensor]:
    """The `steps` batches of tick `tick` (1-based), cut in order from an endless stream of shuffled passes
    over `n` images (pass p shuffled with seed (seed, p)), so any tick is reproducible on its own."""
    start, need = (tick - 1) * steps * batch_size, steps * batch_size
    p, offset = divmod(start, n)
    parts, have = [], 0
    while have < need:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + p))[offset:]
        parts.append(perm)
        have += len(perm)
        p, offset = p + 1, 0
    return list(torch.cat(parts)[:need].split(batch_size))


# --- the training task ----------------------------------------------------------------------------

class StyleGANTask:
    """What gencli.training.fit needs for StyleGAN. One "epoch" is a tick of `tick_images` images.

    Networks: G (trained), D, G_ema (the moving average of G, used for every output). Every random draw
    of a step (z, noise, mixing, flips) comes from a generator seeded by (seed, step) for the global
    batch, of which each torchrun process takes its share: the run is the same whatever the number of
    processes, and resume needs no random state.
    """

    curves = ("train_d_loss", "train_g_loss")
    family = "stylegan"
    ema_rampup = 0.05  # EMA half-life at most 5% of the images seen so far (StyleGAN2-ADA): early samples move

    def __init__(self, config: StyleGANConfig, images: torch.Tensor, *, dataset: str, batch_size: int = 32,
                 lr: float = 0.001, r1_gamma: float = 0.0064, r1_every: int = 16, mixing_prob: float = 0.9,
                 ema_kimg: float = 10.0, tick_images: int = 4000, mirror: bool = False,
                 freeze_mapping: bool = False, freeze_d: int = 0, seed: int = 0, device="cpu"):
        from gencli import distributed

        self.config, self.seed, self.device = config, seed, torch.device(device)
        self.world = distributed.world()
        self.images = images.to(self.device)  # uint8 (N, C, H, W)
        self.batch_size, self.r1_gamma, self.r1_every = batch_size, r1_gamma, r1_every
        self.mixing_prob, self.ema_kimg, self.mirror = mixing_prob, ema_kimg, mirror
        self.global_batch = batch_size * self.world.world_size
        self.steps_per_tick = max(1, round(tick_images / self.global_batch))
        self.G = Generator(config).to(self.device)
        self.D = Discriminator(config).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        requires_grad(self.G_ema, False)
        self.frozen_g, self.frozen_d = frozen_names(self.G, self.D, freeze_mapping, freeze_d)
        requires_grad(self.G, True, self.frozen_g)  # before wrapping: DDP leaves frozen parameters out
        requires_grad(self.D, True, self.frozen_d)
        self.G_train, self.D_train = distributed.wrap(self.G, self.device), distributed.wrap(self.D, self.device)
        # Frozen parameters are left out of the optimizers as well, so nothing can move them.
        # Lazy R1 (StyleGAN2 App. B): D is also stepped on every r1_every-th batch, so its Adam
        # learning rate and betas are rescaled by c = k / (k + 1) to keep the same effective values.
        c = r1_every / (r1_every + 1)
        self.g_opt = torch.optim.Adam([p for n, p in self.G.named_parameters() if n not in self.frozen_g],
                                      lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.d_opt = torch.optim.Adam([p for n, p in self.D.named_parameters() if n not in self.frozen_d],
                                      lr=lr * c, betas=(0.0, 0.99**c), eps=1e-8)
        self.step = 0
        self.sample_seeds = list(range(64))
        self.extra: dict = {"dataset": dataset}

    def load_source(self, state: dict) -> None:
        """Transfer learning: G, D and G_ema from another run's resume state (optimizers start afresh)."""
        for name, net in self.networks().items():
            try:
                net.load_state_dict(state["networks"][name])
            except (KeyError, RuntimeError):
                raise GencliError(f"--init-from: the source run's {name} does not match its stylegan config") from None

    # -- the Task protocol --

    def epoch_batches(self, epoch: int) -> list[tuple[torch.Tensor, int]]:
        """(this process's image indices, global step number) for every step of tick `epoch`."""
        first = (epoch - 1) * self.steps_per_tick
        self.step = first
        batches = stream_batches(len(self.images), self.global_batch, self.steps_per_tick, self.seed, epoch)
        r, n = self.world.rank, self.world.world_size
        return [(idx[r::n], first + k + 1) for k, idx in enumerate(batches)]

    def _draw(self, generator: torch.Generator) -> dict:
        return shard(draw_latents(self.G, self.global_batch, self.mixing_prob, generator), self.world.rank,
                     self.world.world_size)

    def real_batch(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.images[idx.to(self.device)].float() / 127.5 - 1  # uint8 -> [-1, 1]
        if self.mirror:  # x-flips, as the paper does for FFHQ: doubles a small data set
            flip = torch.rand(self.global_batch, generator=generator, device=generator.device)
            flip = (flip < 0.5)[self.world.rank :: self.world.world_size].to(self.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def train_step(self, batch: tuple[torch.Tensor, int]) -> dict[str, float]:
        from gencli import distributed

        idx, self.step = batch
        G, D = self.G, self.D
        rng = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.step)
        real = self.real_batch(idx, rng)
        logs = {}

        # --- D: logistic loss on real images and (detached) fakes ---
        requires_grad(G, False)
        requires_grad(D, True, self.frozen_d)
        with torch.no_grad():
            latents = self._draw(rng)
            fake = G(latents.pop("z"), **latents)
        real_pred, fake_pred = self.D_train(real), self.D_train(fake)
        d_loss = d_logistic_loss(real_pred, fake_pred)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        logs.update(d_loss=d_loss.item(), real_score=real_pred.mean().item(), fake_score=fake_pred.mean().item())

        # --- D: lazy R1 penalty, gamma / 2 * E||grad D(x)||^2, every r1_every batches, scaled up to match ---
        if self.r1_gamma > 0 and self.step % self.r1_every == 0:
            real.requires_grad_(True)
            real_pred = self.D_train(real)
            r1 = d_r1_loss(real_pred, real)
            self.d_opt.zero_grad(set_to_none=True)
            (self.r1_gamma / 2 * r1 * self.r1_every + 0 * real_pred.mean()).backward()
            self.d_opt.step()
            self.extra["r1"] = r1.item()
        logs["r1"] = self.extra.get("r1", 0.0)  # the last computed value

        # --- G: non-saturating loss through a frozen D (D itself, not its DDP wrapper: no D gradients) ---
        requires_grad(G, True, self.frozen_g)
        requires_grad(D, False)
        latents = self._draw(rng)
        images, w = self.G_train(latents.pop("z"), **latents, return_w=True)
        g_loss = g_nonsaturating_loss(D(images))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        logs["g_loss"] = g_loss.item()

        # --- running mean of w (beta 0.995, App. C) over the global batch, and the EMA generator ---
        with torch.no_grad():
            G.w_avg.copy_(distributed.all_mean(w.detach().float().mean(0)).lerp(G.w_avg, 0.995))
        images_seen = self.step * self.global_batch
        ema_images = min(self.ema_kimg * 1000, images_seen * self.ema_rampup)
        accumulate(self.G_ema, G, 0.5 ** (self.global_batch / max(ema_images, 1e-8)))
        return logs

    def end_epoch(self, epoch: int, run_dir: Path, final: bool) -> dict[str, float]:
        from gencli.images import save_grid

        save_grid(generate(self.G_ema, self.sample_seeds), Path(run_dir) / "samples" / f"epoch_{epoch:03d}.png", nrow=8)
        kimg = self.step * self.global_batch / 1000
        self.extra["kimg"] = kimg
        return {"kimg": kimg}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.g_opt, "D": self.d_opt}

    def export(self) -> tuple[nn.Module, dict]:
        return self.G_ema, self.extra


# --- sampling, style mixing, interpolation (tensors in [0, 1]) ------------------------------------

def seed_inputs(G: Generator, seeds: list[int], noise_seed: int | None = None):
    """z (N, z_dim) and per-layer noise [(N, 1, r, r)] from each image's own seed, so an image does not
    depend on the batch; with `noise_seed` every image gets the same noise (drawn from that seed)."""
    def layer_noise(g):
        return [torch.randn(1, r, r, generator=g) for r in G.synthesis.layer_resolutions]

    zs, noises = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        zs.append(torch.randn(G.config.z_dim, generator=g))
        noises.append(layer_noise(g))
    if noise_seed is not None:
        shared = layer_noise(torch.Generator().manual_seed(noise_seed))
        noises = [shared] * len(seeds)
    return torch.stack(zs), [torch.stack(layer) for layer in zip(*noises)]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).clamp(0, 1)


@torch.no_grad()
def synthesize(G: Generator, ws: torch.Tensor, noise: list[torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    """g(ws) in chunks, as images in [0, 1] on the CPU."""
    dev = G.w_avg.device
    out = []
    for i in range(0, len(ws), batch_size):
        chunk = [n[i : i + batch_size].to(dev) for n in noise]
        out.append(to_unit(G.synthesis(ws[i : i + batch_size].to(dev), chunk)).cpu())
    return torch.cat(out)


@torch.no_grad()
def seed_ws(G: Generator, seeds: list[int], truncation: float = 1.0, noise_seed: int | None = None):
    """(ws (N, num_ws, w_dim), noise) for the seeds, truncated."""
    z, noise = seed_inputs(G, seeds, noise_seed)
    w = G.truncate(G.mapping(z.to(G.w_avg.device)), truncation)
    return G.broadcast(w).cpu(), noise


def generate(G: Generator, seeds: list[int], truncation: float = 1.0, noise_seed: int | None = None) -> torch.Tensor:
    """One image per seed, (N, C, H, W) in [0, 1]."""
    G.eval()
    return synthesize(G, *seed_ws(G, seeds, truncation, noise_seed))


def style_mix(G: Generator, row_seeds: list[int], col_seeds: list[int], cutoff: int, truncation: float = 1.0,
              noise_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's Fig. 3: cell (i, j) takes the styles of layers < `cutoff` (the coarse ones) from row
    seed i and the rest from column seed j; the noise is the same everywhere. Returns (row images (R, ...),
    column images (C, ...), cells (R, C, ...)). cutoff 0 gives the column image, num_ws the row image."""
    if not 0 <= cutoff <= G.num_ws:
        raise GencliError(f"--cutoff must be between 0 and {G.num_ws} (this model's style layers), got {cutoff}")
    G.eval()
    rows, noise = seed_ws(G, row_seeds, truncation, noise_seed)
    cols, _ = seed_ws(G, col_seeds, truncation, noise_seed)
    r, c = len(row_seeds), len(col_seeds)
    mixed = cols.unsqueeze(0).repeat(r, 1, 1, 1)  # (R, C, num_ws, w_dim)
    mixed[:, :, :cutoff] = rows[:, None, :cutoff]
    shared = [n[:1] for n in noise]
    expand = lambda k: [n.expand(k, -1, -1, -1) for n in shared]  # noqa: E731
    cells = synthesize(G, mixed.flatten(0, 1), expand(r * c))
    return synthesize(G, rows, expand(r)), synthesize(G, cols, expand(c)), cells.unflatten(0, (r, c))


def style_mix_grid(rows: torch.Tensor, cols: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Lay style_mix's output out as the paper does: column sources along the top, row sources down the
    left, a blank corner; (R + 1) * (C + 1) images, to be shown C + 1 per row."""
    blank = torch.zeros_like(cols[:1])
    out = [blank, cols]
    for i in range(len(rows)):
        out += [rows[i : i + 1], cells[i]]
    return torch.cat(out)


def interpolate(G: Generator, seeds: list[int], steps: int = 8, truncation: float = 1.0,
                noise_seed: int = 0) -> torch.Tensor:
    """Strips between consecutive seeds, linear in w: (len(seeds) - 1) * steps images, each strip starting
    at one seed's image and ending at the next's; the noise is the same for every image."""
    if len(seeds) < 2:
        raise GencliError("interpolate needs at least two seeds, e.g. --seeds 0,1")
    if steps < 2:
        raise GencliError(f"--steps must be at least 2, got {steps}")
    G.eval()
    ws, noise = seed_ws(G, seeds, truncation, noise_seed)
    t = torch.linspace(0, 1, steps)[:, None, None]
    path = torch.cat([ws[k].lerp(ws[k + 1], t) for k in range(len(seeds) - 1)])  # lerp broadcasts over t
    return synthesize(G, path, [n[:1].expand(len(path), -1, -1, -1) for n in noise])


def check_truncation(psi: float) -> float:
    if not 0 <= psi <= 1:
        raise GencliError(f"--truncation must be between 0 and 1 (1 disables it), got {psi}")
    return psi


# --- library functions behind the commands --------------------------------------------------------

def open_stylegan(command: str, checkpoint, device: str = "cpu") -> Generator:
    from gencli.api import open_model

    model, _ = open_model(command, None, checkpoint, device, default_family="stylegan")
    return model


def style_mix_file(*, checkpoint=None, rows: list[int], cols: list[int], cutoff: int = 4, truncation: float = 0.7,
                   noise_seed: int = 0, out, device: str = "cpu") -> Path:
    """Write the style-mixing grid as a PNG; returns its path."""
    from gencli.images import check_writable, save_grid

    out = check_writable(Path(out))
    check_truncation(truncation)
    if not rows or not cols:
        raise GencliError("--rows and --cols each need at least one seed")
    G = open_stylegan("style-mix", checkpoint, device)
    parts = style_mix(G, rows, cols, cutoff, truncation, noise_seed)
    return save_grid(style_mix_grid(*parts), out, nrow=len(cols) + 1)


def interpolate_file(*, checkpoint=None, seeds: list[int], steps: int = 8, truncation: float = 0.7,
                     noise_seed: int = 0, out, device: str = "cpu") -> Path:
    """Write interpolation strips (one row per pair of consecutive seeds) as a PNG; returns its path."""
    from gencli.images import check_writable, save_grid

    out = check_writable(Path(out))
    check_truncation(truncation)
    G = open_stylegan("interpolate", checkpoint, device)
    return save_grid(interpolate(G, seeds, steps, truncation, noise_seed), out, nrow=steps)


def auto_r1_gamma(resolution: int, batch_size: int) -> float:
    """StyleGAN2-ADA's heuristic gamma = 0.0002 res^2 / batch (Karras et al. 2020b): small for small images."""
    return 0.0002 * resolution**2 / batch_size


def train(*, data: str = "mnist", data_dir=None, out=None, resolution: int | None = None,
          widths: tuple[int, ...] | None = None, z_dim: int | None = None, w_dim: int | None = None,
          mapping_layers: int | None = None, style: str | None = None, skip_rgb: bool | None = None,
          tanh_output: bool | None = None, mbstd_group: int | None = None, batch_size: int = 32, lr: float = 0.001, r1_gamma: float | None = None,
          r1_every: int = 16, mixing_prob: float = 0.9, ema_kimg: float = 10.0, kimg: float | None = None,
          epochs: int | None = None, tick_kimg: float = 4.0, mirror: bool | None = None, init_from=None,
          freeze_mapping: bool = False, freeze_d: int = 0, seed: int = 0, device: str = "auto",
          resume: bool = False, overwrite: bool = False, progress=None, on_skip=None) -> Path:
    """Train a StyleGAN; returns the path of model.safetensors (the EMA generator) in the run directory.

    Length: `kimg` thousand images in all, or `epochs` ticks of `tick_kimg` thousand images each
    (default 100 kimg). Architecture flags left as None take the defaults, or with `init_from` the
    source run's values. On `resume`, every option but the length and the device comes from the run's
    options.json.
    """
    from gencli import distributed
    from gencli.api import check_positive, prepare_run_dir, write_options
    from gencli.checkpoint import MODEL_FILE, RESUME_FILE, load_resume, read_metadata
    from gencli.data import IDX_DATASETS
    from gencli.training import fit, resolve_device, seed_everything

    if kimg is not None and epochs is not None:
        raise GencliError("give --kimg or --epochs, not both")
    run_dir = prepare_run_dir("stylegan", out, resume, overwrite)
    options_path = run_dir / "options.json"
    length = {"kimg": kimg, "epochs": epochs}
    if resume:
        if not options_path.is_file():
            raise GencliError(f"nothing to resume: {options_path} does not exist")
        options = json.loads(options_path.read_text())
        if options.get("family") != "stylegan":
            raise GencliError(f"{run_dir} holds a {options.get('family')} run, not stylegan")
        config = StyleGANConfig(**{**options["config"], "widths": tuple(options["config"]["widths"])})
        source = None
    else:
        check_positive(batch_size=batch_size, lr=lr, r1_every=r1_every, ema_kimg=ema_kimg, tick_kimg=tick_kimg)
        if not 0 <= mixing_prob <= 1:
            raise GencliError(f"--mixing-prob must be between 0 and 1, got {mixing_prob}")
        if r1_gamma is not None and r1_gamma < 0:
            raise GencliError(f"--r1-gamma must be 0 or more, got {r1_gamma}")
        source = None
        digits = data in IDX_DATASETS  # 1-channel digits (padded to 32 px) rather than a folder of images
        channels = 1 if digits else 3
        arch = dict(resolution=resolution, widths=widths, z_dim=z_dim, w_dim=w_dim, mapping_layers=mapping_layers,
                    style=style, skip_rgb=skip_rgb, tanh_output=tanh_output, mbstd_group=mbstd_group)
        if init_from is not None:
            source_path = Path(init_from)
            source_path = source_path / MODEL_FILE if source_path.is_dir() else source_path
            meta = read_metadata(source_path)
            if meta["family"] != "stylegan":
                raise GencliError(f"--init-from: {source_path} holds a {meta['family']} model, not stylegan")
            base = StyleGANConfig(**{**meta["config"], "widths": tuple(meta["config"]["widths"])})
            clash = [k for k, v in arch.items() if v is not None and v != getattr(base, k)]
            if clash:
                raise GencliError(f"--init-from fixes the architecture; drop --{clash[0].replace('_', '-')}")
            source = load_resume(source_path.parent / RESUME_FILE)
            config_values = asdict(base)
        else:
            res = resolution or 32
            config_values = dict(resolution=res, widths=tuple(widths) if widths else default_widths(res),
                                 **{k: v for k, v in arch.items() if k not in ("resolution", "widths") and v is not None})
            config_values["channels"] = channels
            # Defaults measured on MNIST (see the README): tanh for digits' flat black background, and one
            # minibatch-stddev group per batch of up to 32 (StyleGAN2-ADA's CIFAR setting) against collapse.
            config_values.setdefault("tanh_output", digits)
            config_values.setdefault("mbstd_group", min(batch_size, 32))
        if config_values["channels"] != channels:
            raise GencliError(f"the source model makes {config_values['channels']}-channel images, "
                              f"but {data} has {channels}")
        config = StyleGANConfig(**config_values)
        options = {
            "family": "stylegan", "data": str(data), "batch_size": batch_size, "lr": lr,
            "r1_gamma": auto_r1_gamma(config.resolution, batch_size) if r1_gamma is None else r1_gamma,
            "r1_every": r1_every, "mixing_prob": mixing_prob, "ema_kimg": ema_kimg, "tick_kimg": tick_kimg,
            "mirror": not digits if mirror is None else mirror,
            "init_from": str(init_from) if init_from is not None else None, "freeze_mapping": freeze_mapping,
            "freeze_d": freeze_d, "seed": seed, "config": asdict(config),
        }
    if length["kimg"] is None and length["epochs"] is None:
        length["kimg"] = 100.0
    tick = options["tick_kimg"]
    total = length["epochs"] if length["epochs"] is not None else math.ceil(length["kimg"] / tick - 1e-9)
    if total <= 0:
        raise GencliError("--kimg and --epochs must be positive")

    dev = distributed.init(resolve_device(device))
    seed_everything(options["seed"])
    images = load_images(options["data"], data_dir, config.resolution, on_skip)
    task = StyleGANTask(config, images, dataset=options["data"], batch_size=options["batch_size"], lr=options["lr"],
                        r1_gamma=options["r1_gamma"], r1_every=options["r1_every"],
                        mixing_prob=options["mixing_prob"], ema_kimg=options["ema_kimg"],
                        tick_images=round(tick * 1000), mirror=options["mirror"],
                        freeze_mapping=options["freeze_mapping"], freeze_d=options["freeze_d"],
                        seed=options["seed"], device=dev)
    if source is not None:
        task.load_source(source)
    options.update(device=str(dev), images=len(images), **{f"last_{k}": v for k, v in length.items()})
    write_options(run_dir, options)
    return fit(task, run_dir, epochs=total, resume=resume, progress=progress)


# --- importing published weights ------------------------------------------------------------------

def _v1_effective(weight: torch.Tensor) -> torch.Tensor:
    """rosinality's EqualLR: weight_orig * sqrt(2 / fan_in), fan_in = size(1) * kernel area."""
    return weight * math.sqrt(2 / (weight.shape[1] * weight[0][0].numel()))


def _set_effective(layer: nn.Module, effective: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Store `effective` (the weight as applied) into an equalized layer by dividing out its run-time scale."""
    with torch.no_grad():
        layer.weight.copy_(effective / layer.scale)
        if bias is not None:
            layer.bias.copy_(bias / getattr(layer, "lr_mul", 1.0))


def from_rosinality_v1(state: dict[str, torch.Tensor], resolution: int, n_avg: int = 4096) -> Generator:
    """A Generator with the weights of rosinality/style-based-gan-pytorch's StyledGenerator (its
    `g_running` or `generator` state dict), cut at `resolution`. Keys used (N = block, k = 1, 3, ..., 15):

        style.k.linear.{weight_orig,bias}                        -> mapping.layers.(k // 2)
        generator.progression.0.conv1.input                      -> synthesis.blocks.0.const
        generator.progression.N.conv1.1.conv.{weight_orig,bias}  -> blocks.N.conv1 (upsample, conv, blur)
        generator.progression.N.conv1.0.{weight,bias}            -> blocks.N.conv1 (FusedUpsample, >= 128 px)
        generator.progression.N.{noise,adain,conv}{1,2}...       -> blocks.N.{noise,adain,conv}{1,2}
        generator.to_rgb.N.conv.{weight_orig,bias}               -> synthesis.to_rgb (N = the last block)

    Effective weights are matched exactly (their sqrt(2 / fan_in) vs our gain * lr_mul / sqrt(fan_in)).
    Their mean style is not stored, so w_avg is the mean of w over `n_avg` random z (as their generate.py).
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}

    def get(key):
        if key not in state:
            raise GencliError(f"not a rosinality/style-based-gan-pytorch StyleGAN generator: no {key}")
        return state[key].float()

    blocks = int(math.log2(resolution)) - 1
    maps = sorted(int(k.split(".")[1]) for k in state if k.startswith("style.") and k.endswith(".weight_orig"))
    w_dim = get(f"style.{maps[0]}.linear.weight_orig").shape[1] if maps else get("style.1.linear.weight_orig")
    widths = tuple(get(f"generator.progression.{i}.conv2.conv.weight_orig").shape[0] for i in range(blocks))
    rgb = get(f"generator.to_rgb.{blocks - 1}.conv.weight_orig")
    config = StyleGANConfig(resolution=resolution, channels=rgb.shape[0], z_dim=w_dim, w_dim=w_dim,
                            mapping_layers=len(maps), widths=widths, skip_rgb=False, style="adain")
    G = Generator(config)
    for layer, k in zip(G.mapping.layers, maps):
        _set_effective(layer, _v1_effective(get(f"style.{k}.linear.weight_orig")), get(f"style.{k}.linear.bias"))
    for i, block in enumerate(G.synthesis.blocks):
        p = f"generator.progression.{i}."
        if i == 0:
            with torch.no_grad():
                block.const.copy_(get(p + "conv1.input"))
        elif p + "conv1.0.weight" in state:  # FusedUpsample: conv_transpose with a 4-tap summed kernel / 4
            w = get(p + "conv1.0.weight")  # (in, out, 3, 3)
            w = w * math.sqrt(2 / (w.shape[0] * 9)) / 4
            # Nearest upsample + conv with W equals a stride-2 transposed conv with the 4-shift sum of
            # W flipped, so W is the flipped, transposed fused weight.
            _set_effective(block.conv1, w.transpose(0, 1).flip(2, 3), get(p + "conv1.0.bias"))
        else:
            _set_effective(block.conv1, _v1_effective(get(p + "conv1.1.conv.weight_orig")), get(p + "conv1.1.conv.bias"))
        _set_effective(block.conv2, _v1_effective(get(p + "conv2.conv.weight_orig")), get(p + "conv2.conv.bias"))
        for j in (1, 2):
            noise, adain = getattr(block, f"noise{j}"), getattr(block, f"adain{j}")
            with torch.no_grad():
                noise.weight.copy_(_v1_effective(get(p + f"noise{j}.weight_orig")))
            _set_effective(adain.affine, _v1_effective(get(p + f"adain{j}.style.linear.weight_orig")),
                           get(p + f"adain{j}.style.linear.bias"))
    _set_effective(G.synthesis.to_rgb, _v1_effective(rgb), get(f"generator.to_rgb.{blocks - 1}.conv.bias"))
    with torch.no_grad():
        z = torch.randn(n_avg, config.z_dim, generator=torch.Generator().manual_seed(0))
        G.w_avg.copy_(G.mapping(z).mean(0))
    return G.eval()


def import_weights(file, *, resolution: int, out) -> Path:
    """Convert a rosinality/style-based-gan-pytorch checkpoint into a gencli stylegan checkpoint.

    The file is read with torch.load(weights_only=True): tensors and plain containers only, never
    arbitrary pickled objects. A training checkpoint's `g_running` (its EMA generator) is preferred.
    """
    from gencli.checkpoint import save_model
    from gencli.images import check_writable

    file, out = Path(file), check_writable(Path(out))
    if not file.is_file():
        raise GencliError(f"weights file not found: {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GencliError(f"{file} is not a readable PyTorch state dict of tensors ({e.__class__.__name__}); "
                          "files that need arbitrary unpickling are refused") from None
    if isinstance(state, dict):
        for key in ("g_running", "generator"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GencliError(f"{file} does not hold a state dict of tensors")
    G = from_rosinality_v1(state, resolution)
    return save_model(out, "stylegan", G, G.config, epoch=0, seed=0,
                      extra={"imported_from": file.name, "layout": "rosinality/style-based-gan-pytorch"})
