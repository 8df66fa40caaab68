"""StyleGAN: a style-based generator and its discriminator (networks only: training is in
gencli.training.stylegan, sampling in gencli.inference.stylegan, weight import in gencli.weights.stylegan).

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
`skip_rgb`). Training defaults to a tanh output for digits and one minibatch-stddev group per batch of
up to 32 images: on MNIST the paper's choices collapsed (the measurements are in the README).
Truncation applies to every layer, not only the first 8 (the same below 64 px). Images are in [-1, 1]
inside the networks. `style="demod"` swaps AdaIN for StyleGAN2's weight demodulation.

Class-conditional G and D as in StyleGAN2-ADA (Karras et al. 2020b, `num_classes`; truncation toward
each class's mean w rather than ADA's global mean). Normalizations compute in fp32 also under bf16
autocast (`.float()` is a no-op in fp32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import ConfigError, GencliError


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
    # Class-conditional G and D as StyleGAN2-ADA (Karras et al. 2020b) when > 0: the one-hot label is embedded
    # into the mapping network's input and D projects its features onto a label embedding. 0: unconditional.
    num_classes: int = 0

    def __post_init__(self):
        res = self.resolution
        if res < 8 or res & (res - 1):
            raise ConfigError("resolution", f"must be a power of two, at least 8, got {res}")
        blocks = int(math.log2(res)) - 1
        if len(self.widths) != blocks:
            raise ConfigError("widths", f"needs {blocks} values for {res} px (4, 8, ..., {res} px), got {len(self.widths)}")
        for field in ("widths", "z_dim", "w_dim", "mapping_layers", "mbstd_group"):
            value = getattr(self, field)
            if min(value if isinstance(value, tuple) else (value,)) <= 0:
                raise ConfigError(field, f"must be positive, got {value}")
        if self.style not in ("adain", "demod"):
            raise ConfigError("style", f"must be adain or demod, got {self.style!r}")
        if self.channels not in (1, 3):
            raise ConfigError("channels", f"must be 1 or 3 (images), got {self.channels}")
        if self.num_classes < 0 or self.num_classes == 1:
            raise ConfigError("num_classes", f"must be 0 (unconditional) or at least 2, got {self.num_classes}")


def default_widths(resolution: int, max_channels: int = 128, base: int = 512) -> tuple[int, ...]:
    """Channels per resolution 4..`resolution`: min(max_channels, base / res), at least 16 (fewer where
    there are more pixels, as in the paper's 512 ... 16). 32 px: 128, 64, 32, 16; the paper's widths are
    8x to 32x these (training speeds are in the README)."""
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
    z = z.float()
    return z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + eps)


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def one_hot(labels: torch.Tensor | None, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Labels (B,) int -> one-hot (B, num_classes) in `like`'s dtype and device; a clear error without them."""
    if labels is None:
        raise GencliError("this stylegan is conditional: it needs a class label for every image")
    return F.one_hot(labels.to(like.device).long(), num_classes).to(like.dtype)


# --- generator ------------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """f: z (B, z_dim) -> w (B, w_dim); conditional (StyleGAN2-ADA): f(z, c), with the one-hot label c
    embedded to w_dim by an equalized linear layer (`embed`), both z and the embedding normalized to
    unit second moment, and the two concatenated before the MLP."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.num_classes = config.num_classes
        if config.num_classes:
            self.embed = EqualLinear(config.num_classes, config.w_dim, gain=1.0)
        dims = [config.z_dim + (config.w_dim if config.num_classes else 0)] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=config.mapping_lr_mul) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = pixel_norm(z)
        if self.num_classes:
            c = pixel_norm(self.embed(one_hot(labels, self.num_classes, x)))
            x = torch.cat([x, c], 1)  # (B, z_dim + w_dim)
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
        x = x.float()
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
    """G = g(f(z)), or g(f(z, c)) when conditional. `w_avg` (a buffer, saved with the weights) is the
    running mean of w: (w_dim,), or per class (num_classes, w_dim) for a conditional G."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = 2 * len(config.widths)
        self.register_buffer("w_avg", torch.zeros(*([config.num_classes] if config.num_classes else []), config.w_dim))

    def truncate(self, w: torch.Tensor, psi: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The truncation trick (Sec. 3): w' = w_avg + psi (w - w_avg); psi = 1 leaves w as it is. A conditional
        G truncates toward its label's mean w (StyleGAN2-ADA uses the mean over all classes), which keeps
        truncated images in their class."""
        if psi == 1:
            return w
        center = self.w_avg if self.w_avg.ndim == 1 else self.w_avg[labels.to(w.device).long()]
        return center.lerp(w, psi)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, num_ws, w_dim): the same w for every layer."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, truncation: float = 1.0, noise: list[torch.Tensor] | None = None, *,
                mix_z: torch.Tensor | None = None, cutoff: int | None = None, return_w: bool = False,
                labels: torch.Tensor | None = None):
        """Images from z (and, conditional, class `labels` (B,)); with `mix_z`, the layers from `cutoff` on
        take their style from it, same labels (style mixing, Sec. 3.1). `return_w` also returns z's w (B, w_dim)."""
        w = self.truncate(self.mapping(z, labels), truncation, labels)
        ws = self.broadcast(w)
        if mix_z is not None and cutoff is not None:
            mixed = self.truncate(self.mapping(mix_z, labels), truncation, labels)
            ws = torch.cat([ws[:, :cutoff], self.broadcast(mixed)[:, cutoff:]], 1)
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
    x = x.float()
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:  # a group size that divides the batch
        g -= 1
    y = x.view(g, -1, c, h, w)  # (G, B/G, C, H, W)
    y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # (B/G,)
    y = y.view(-1, 1, 1, 1).repeat(g, 1, h, w)  # (B, 1, H, W)
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    """D: images (B, channels, res, res) -> scores (B, 1). `blocks[0]` sees the full resolution.

    Conditional (StyleGAN2-ADA's projection discriminator, after Miyato & Koyama 2018): the last layer
    gives cmap_dim = widths[0] features, the label's embedding (`embed`, normalized to unit second
    moment; ADA passes it through a further MLP) gives cmap, and the score is <features, cmap> / sqrt(cmap_dim).
    """

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        w = config.widths
        self.group, self.num_classes = config.mbstd_group, config.num_classes
        self.from_rgb = EqualConv2d(config.channels, w[-1], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(w[i], w[i - 1]) for i in range(len(w) - 1, 0, -1))
        self.conv = EqualConv2d(w[0] + 1, w[0], 3)
        self.fc = EqualLinear(w[0] * 16, w[0])
        self.out = EqualLinear(w[0], w[0] if config.num_classes else 1, gain=1.0)
        if config.num_classes:
            self.embed = EqualLinear(config.num_classes, w[0], gain=1.0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = leaky(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        x = leaky(self.conv(minibatch_stddev(x, self.group)))  # (B, C, 4, 4)
        x = self.out(leaky(self.fc(x.flatten(1))))  # (B, 1), or (B, cmap_dim) when conditional
        if self.num_classes:
            cmap = pixel_norm(self.embed(one_hot(labels, self.num_classes, x)))  # (B, cmap_dim)
            x = (x.float() * cmap).sum(1, keepdim=True) / math.sqrt(cmap.shape[1])
        return x


def build(config: StyleGANConfig) -> Generator:
    """The network model.safetensors stores: the (EMA) generator."""
    return Generator(config)
