"""StyleGAN2: the generator and discriminator of NVIDIA's released StyleGAN2 networks (networks only; the
layers are in gencli.models.stylegan2_layers, the import of NVIDIA's pickles and of rosinality's files in
gencli.weights.stylegan2).

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), configs E-F, with the
class conditioning and the fp16/clamp options of StyleGAN2-ADA (Karras et al., NeurIPS 2020). The same
function as NVIDIA's stylegan2-ada-pytorch and StyleGAN3-release StyleGAN2 networks, up to float rounding:

- mapping f (Sec. 2): z normalized to unit second moment, for c_dim > 0 the one-hot label embedded by a
  linear layer and normalized the same way and concatenated; `mapping_layers` lrelu layers with the
  learning-rate multiplier `mapping_lr_mul`. `w_avg` is the tracked mean of w; truncation lerps toward it.
- synthesis g: per resolution 4, 8, ..., img_resolution a block of modulated convolutions (the first
  up-sampling), each with noise; the 4 px block starts from a learned constant. Architectures (Sec. 4.1,
  Fig. 7): "skip" sums every block's to-RGB, up-sampled (the released networks); "resnet" adds a 1x1
  up-sampled skip around each block's convolutions, scaled by sqrt(1/2); "orig" has one to-RGB at the end.
  Block k consumes the ws from index 2k - 1 (its convolutions), and its to-RGB the w after them, which is
  the next block's first w: num_ws = 2 log2(res) - 2.
- discriminator D ("resnet" in the releases): from-RGB, blocks of two 3x3 convolutions (the second
  down-sampling), minibatch standard deviation, a 3x3 convolution and two dense layers; for c_dim > 0 the
  last layer gives cmap_dim features projected onto a mapped label embedding (Miyato & Koyama 2018).

Channels at resolution r: min(channel_base // r, channel_max). NVIDIA's fp16 layers (`num_fp16_res`)
compute in fp32 here, as their own code does off CUDA; the value is kept for the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import ConfigError, GencliError
from gencli.models.stylegan2_layers import (CHANNELS_LAST, Conv2d, FullyConnected, ModulatedConv2d, ToRGB,
                                            cpu_inference, downsample2d, minibatch_std, normalize_2nd_moment,
                                            randn, upsample2d)

ARCHITECTURES = ("skip", "resnet", "orig")


@dataclass
class StyleGAN2Config:
    # --- generator (NVIDIA's defaults are the FFHQ 1024 px network's) ---
    z_dim: int = 512  # the latent z
    c_dim: int = 0  # classes of a conditional network (one-hot labels); 0: unconditional
    w_dim: int = 512  # the intermediate latent w
    img_resolution: int = 1024  # a power of two >= 8
    img_channels: int = 3
    mapping_layers: int = 8  # fully connected layers of f
    embed_features: Optional[int] = None  # width of the label embedding (None: w_dim)
    layer_features: Optional[int] = None  # width of f's hidden layers (None: w_dim)
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of f
    w_avg_beta: float = 0.998  # decay of the running mean of w during training (0.995 in stylegan2-ada)
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    num_fp16_res: int = 4  # the highest resolutions NVIDIA runs in fp16 on CUDA (fp32 here)
    conv_clamp: Optional[float] = 256.0  # clamp of the convolutions' outputs; None: no clamp
    architecture: str = "skip"  # skip, resnet or orig (see the module docstring)
    # --- discriminator ---
    d_architecture: str = "resnet"
    d_channel_base: int = 32768
    d_channel_max: int = 512
    d_num_fp16_res: int = 4
    d_conv_clamp: Optional[float] = 256.0
    mbstd_group_size: Optional[int] = 4  # images per minibatch-std group (None: the whole batch)
    mbstd_num_channels: int = 1  # feature maps it appends (0: no minibatch std layer)
    cmap_dim: Optional[int] = None  # conditional D's projection width (None: D's channels at 4 px)
    d_mapping_layers: int = 8  # the layers of D's label mapping network (c_dim > 0)
    d_mapping_lr_mul: float = 0.01

    def __post_init__(self):
        res = self.img_resolution
        if not isinstance(res, int) or res < 8 or res & (res - 1):
            raise ConfigError("img_resolution", f"must be a power of two, at least 8, got {res}")
        for field in ("z_dim", "w_dim", "img_channels", "mapping_layers", "channel_base", "channel_max",
                      "d_channel_base", "d_channel_max", "d_mapping_layers"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(field, f"must be a positive integer, got {value!r}")
        for field in ("c_dim", "num_fp16_res", "d_num_fp16_res", "mbstd_num_channels"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(field, f"must be a non-negative integer, got {value!r}")
        for field in ("embed_features", "layer_features", "mbstd_group_size", "cmap_dim"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(field, f"must be a positive integer or null, got {value!r}")
        for field in ("conv_clamp", "d_conv_clamp"):
            value = getattr(self, field)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
                    raise ConfigError(field, f"must be a non-negative number or null, got {value!r}")
                setattr(self, field, float(value))
        for field in ("mapping_lr_mul", "d_mapping_lr_mul"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(field, f"must be a positive number, got {value!r}")
        for field in ("architecture", "d_architecture"):
            if getattr(self, field) not in ARCHITECTURES:
                raise ConfigError(field, f"must be one of {', '.join(ARCHITECTURES)}, got {getattr(self, field)!r}")
        if self.c_dim == 1:
            raise ConfigError("c_dim", "must be 0 (unconditional) or at least 2 classes, got 1")
        d4 = self.d_channels(4)
        if self.mbstd_num_channels and d4 % self.mbstd_num_channels:
            raise ConfigError("mbstd_num_channels", f"must divide D's {d4} channels at 4 px, got {self.mbstd_num_channels}")

    @property
    def num_classes(self) -> int:
        """c_dim, under the name the shared StyleGAN code uses."""
        return self.c_dim

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def d_channels(self, res: int) -> int:
        return min(self.d_channel_base // res, self.d_channel_max)

    @property
    def resolutions(self) -> list[int]:
        """4, 8, ..., img_resolution."""
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]


def one_hot(labels: torch.Tensor | None, c_dim: int, like: torch.Tensor) -> torch.Tensor:
    """Class indices (B,) -> one-hot c (B, c_dim) in `like`'s dtype and device; a clear error without them."""
    if labels is None:
        raise GencliError(f"this stylegan2 is conditional ({c_dim} classes): it needs a class label for every image")
    labels = torch.as_tensor(labels, device=like.device).long().reshape(-1)
    if not torch.jit.is_tracing() and len(labels) and (labels.min() < 0 or labels.max() >= c_dim):
        raise GencliError(f"class labels must be between 0 and {c_dim - 1}")
    return F.one_hot(labels, c_dim).to(like.dtype)


class MappingNetwork(nn.Module):
    """f: (z, c) -> w. z_dim 0 is D's label mapping (c alone)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int, lr_mul: float,
                 embed_features: int | None = None, layer_features: int | None = None):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        embed = (embed_features or w_dim) if c_dim else 0
        hidden = layer_features or w_dim
        if c_dim:
            self.embed = FullyConnected(c_dim, embed)
        dims = [z_dim + embed] + [hidden] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(FullyConnected(a, b, act="lrelu", lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim:
            like = parts[0] if parts else self.embed.weight
            parts.append(normalize_2nd_moment(self.embed(one_hot(labels, self.c_dim, like))))
        x = torch.cat(parts, 1) if len(parts) > 1 else parts[0]  # (B, z_dim + embed)
        for layer in self.layers:
            x = layer(x)
        return x


class SynthesisBlock(nn.Module):
    """One resolution of g: (the learned constant | conv0 up-sampling), conv1, and to-RGB (skip, or the
    last block); a resnet block adds `skip` around its two convolutions."""

    def __init__(self, in_ch: int, out_ch: int, res: int, config: StyleGAN2Config, is_last: bool):
        super().__init__()
        self.architecture, self.first = config.architecture, in_ch == 0
        clamp = config.conv_clamp
        if self.first:
            self.const = nn.Parameter(randn(out_ch, res, res))
        else:
            self.conv0 = ModulatedConv2d(in_ch, out_ch, config.w_dim, res, up=True, clamp=clamp)
        self.conv1 = ModulatedConv2d(out_ch, out_ch, config.w_dim, res, clamp=clamp)
        self.torgb = ToRGB(out_ch, config.img_channels, config.w_dim, clamp) if is_last or config.architecture == "skip" else None
        if not self.first and config.architecture == "resnet":
            self.skip = Conv2d(in_ch, out_ch, 1, bias=False, up=True)
        self.num_conv = 1 if self.first else 2
        self.num_torgb = int(self.torgb is not None)

    def forward(self, x, img, ws, noise, noise_mode):
        """ws (B, num_conv + num_torgb, w_dim); noise: one tensor (or None) per convolution."""
        inference = cpu_inference(ws)  # one image, channels-last (see stylegan2_layers)
        if self.first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = x.contiguous(memory_format=CHANNELS_LAST) if inference else x
            x = self.conv1(x, ws[:, 0], noise[0], noise_mode)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, ws[:, 0], noise[0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise[1], noise_mode, gain=math.sqrt(0.5))
            x = y.add_(x) if not torch.is_grad_enabled() else y + x
        else:
            x = self.conv0(x, ws[:, 0], noise[0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise[1], noise_mode)
        if img is not None:
            img = upsample2d(img)
        if self.torgb is not None:
            y = self.torgb(x, ws[:, self.num_conv]).float()
            img = y if img is None else img.add_(y) if inference else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """g: ws (B, num_ws, w_dim) -> images (B, img_channels, res, res), float32, about [-1, 1]."""

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        res = config.resolutions
        self.blocks = nn.ModuleList(
            SynthesisBlock(config.channels(r // 2) if r > 4 else 0, config.channels(r), r, config, r == res[-1])
            for r in res)
        self.num_ws = sum(b.num_conv for b in self.blocks) + self.blocks[-1].num_torgb
        # The resolution of each noise input (each modulated convolution), in order.
        self.layer_resolutions = [r for r, b in zip(res, self.blocks) for _ in range(b.num_conv)]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None, noise_mode: str = "const") -> torch.Tensor:
        if noise_mode not in ("const", "random", "none"):
            raise GencliError(f"noise_mode must be const, random or none, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise GencliError(f"synthesis needs ws of shape (B, {self.num_ws}, w_dim), got {tuple(ws.shape)}")
        if noise is not None and len(noise) != len(self.layer_resolutions):
            raise GencliError(f"synthesis needs {len(self.layer_resolutions)} noise tensors, got {len(noise)}")
        ws = ws.float()
        if cpu_inference(ws) and ws.shape[0] > 1:  # one image at a time: bounded memory, per-image weights
            pick = lambda i: [n if n is None else n[i : i + 1] for n in noise] if noise is not None else None  # noqa: E731
            return torch.cat([self(ws[i : i + 1], pick(i), noise_mode) for i in range(ws.shape[0])])
        x = img = None
        w_idx = n_idx = 0
        for block in self.blocks:
            k = block.num_conv
            layer_noise = noise[n_idx : n_idx + k] if noise is not None else [None] * k
            x, img = block(x, img, ws[:, w_idx : w_idx + k + block.num_torgb], layer_noise, noise_mode)
            w_idx, n_idx = w_idx + k, n_idx + k
        return img.contiguous()


class Generator(nn.Module):
    """G(z, c) = g(f(z, c)), NVIDIA's interface with class indices for c; `w_avg` (w_dim,) is a buffer."""

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, config.mapping_layers,
                                      config.mapping_lr_mul, config.embed_features, config.layer_features)
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = self.synthesis.num_ws
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def truncate(self, w: torch.Tensor, psi: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        """w_avg + psi (w - w_avg) (NVIDIA's global mean w, also for a conditional G); psi 1 returns w.
        Works on (B, w_dim) and (B, num_ws, w_dim)."""
        if psi == 1:
            return w
        return self.w_avg.to(w.dtype).lerp(w, psi)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, num_ws, w_dim): the same w for every layer."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        """Images from z (B, z_dim) and, conditional, class indices (B,), as NVIDIA's
        G(z, c, truncation_psi, truncation_cutoff, noise_mode): with a cutoff only the first N ws truncated."""
        ws = self.broadcast(self.mapping(z, labels))
        if truncation != 1:
            if truncation_cutoff is None:
                ws = self.truncate(ws, truncation)
            else:
                ws = torch.cat([self.truncate(ws[:, :truncation_cutoff], truncation), ws[:, truncation_cutoff:]], 1)
        return self.synthesis(ws, noise_mode=noise_mode)


class DiscriminatorBlock(nn.Module):
    """res -> res / 2: (from-RGB), conv0 3x3, conv1 3x3 down-sampling; resnet: plus a 1x1 down-sampling
    skip, both branches scaled by sqrt(1/2); skip: every block reads the (down-sampled) image too."""

    def __init__(self, in_ch: int, tmp_ch: int, out_ch: int, config: StyleGAN2Config):
        super().__init__()
        self.architecture, clamp = config.d_architecture, config.d_conv_clamp
        self.fromrgb = (Conv2d(config.img_channels, tmp_ch, 1, act="lrelu", clamp=clamp)
                        if in_ch == 0 or self.architecture == "skip" else None)
        self.conv0 = Conv2d(tmp_ch, tmp_ch, 3, act="lrelu", clamp=clamp)
        self.conv1 = Conv2d(tmp_ch, out_ch, 3, act="lrelu", down=True, clamp=clamp)
        if self.architecture == "resnet":
            self.skip = Conv2d(tmp_ch, out_ch, 1, bias=False, down=True)

    def forward(self, x, img):
        if self.fromrgb is not None:
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = downsample2d(img) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            return y + x, img
        return self.conv1(self.conv0(x)), img


class DiscriminatorEpilogue(nn.Module):
    """At 4 px: (from-RGB for skip), minibatch std, 3x3 conv, dense, output (1, or cmap_dim features)."""

    def __init__(self, ch: int, cmap_dim: int, config: StyleGAN2Config):
        super().__init__()
        self.architecture = config.d_architecture
        self.mbstd = (config.mbstd_group_size, config.mbstd_num_channels)
        self.fromrgb = Conv2d(config.img_channels, ch, 1, act="lrelu") if self.architecture == "skip" else None
        self.conv = Conv2d(ch + config.mbstd_num_channels, ch, 3, act="lrelu", clamp=config.d_conv_clamp)
        self.fc = FullyConnected(ch * 16, ch, act="lrelu")
        self.out = FullyConnected(ch, cmap_dim or 1)

    def forward(self, x, img):
        if self.fromrgb is not None:
            x = x + self.fromrgb(img)
        if self.mbstd[1]:
            x = minibatch_std(x, *self.mbstd)
        return self.out(self.fc(self.conv(x).flatten(1)))


class Discriminator(nn.Module):
    """D(images (B, C, H, W) in [-1, 1], class indices (B,) | None) -> scores (B, 1). `blocks[0]` reads the
    full-resolution image (so "D's first N blocks" counts from the input); `epilogue` is the 4 px head."""

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.config = config
        res = config.resolutions[::-1][:-1]  # img_resolution, ..., 8
        ch = config.d_channels
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(ch(r) if r < config.img_resolution else 0, ch(r), ch(r // 2), config) for r in res)
        self.cmap_dim = (config.cmap_dim or ch(4)) if config.c_dim else 0
        if config.c_dim:
            self.mapping = MappingNetwork(0, config.c_dim, self.cmap_dim, config.d_mapping_layers, config.d_mapping_lr_mul)
        self.epilogue = DiscriminatorEpilogue(ch(4), self.cmap_dim, config)

    def forward(self, img: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x, img = None, img.float()
        for block in self.blocks:
            x, img = block(x, img)
        x = self.epilogue(x, img)
        if self.cmap_dim:
            cmap = self.mapping(None, labels)
            x = (x * cmap).sum(1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


def build(config: StyleGAN2Config) -> Generator:
    """The network model.safetensors stores: the (EMA) generator."""
    return Generator(config)


def build_discriminator(config: StyleGAN2Config) -> Discriminator:
    """The discriminator a checkpoint keeps beside G (under the key prefix "discriminator.")."""
    return Discriminator(config)
