"""The layers of StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020) as NVIDIA's released networks compute them; the networks are in gencli.models.stylegan2.

- equalized learning rate: weights are stored N(0, 1) (divided by the learning-rate multiplier) and
  scaled at run time by lr_mul / sqrt(fan_in) (`FullyConnected`, `Conv2d`).
- "lrelu" is leaky ReLU with slope 0.2 times sqrt(2) (keeps unit variance); a layer's `clamp` bounds its
  output to +-clamp after the activation (NVIDIA's `conv_clamp`, which guards their fp16 layers).
- resampling uses the [1, 3, 3, 1] filter (outer product, normalized to sum 1): up-sampling is zero
  insertion and the filter times 4 (its gain), down-sampling the filter then every second pixel.
- `ModulatedConv2d` (Sec. 2.2): the input channels are scaled by the style s, a 3x3 convolution, then each
  output channel divided by sqrt(sum_{i,k} (s_i w_oik)^2 + 1e-8) (demodulation). Folding s and the
  demodulation into per-sample weights (one grouped convolution over the batch) and scaling the
  activations around one ordinary convolution compute the same; each layer takes the cheaper.
- the up-sampling convolution is a stride-2 transposed 3x3 convolution followed by the filter.

Under `torch.no_grad()` the bias, activation and clamp act in place (less memory at 1024 px).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2)


def fir_kernel(channels: int, gain: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """The [1, 3, 3, 1] x [1, 3, 3, 1] / 64 filter times `gain`, one per channel: (channels, 1, 4, 4)."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device, dtype=dtype)
    f = f[:, None] * f[None, :]
    return (f * (gain / f.sum())).expand(channels, 1, 4, 4)


def filter2d(x: torch.Tensor, pad: int, gain: float = 1.0, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The filter over each channel after zero-padding by `pad` on every side (then + bias)."""
    c = int(x.shape[1])  # a constant when traced (ONNX needs the kernel's shape)
    return F.conv2d(x, fir_kernel(c, gain, x.device, x.dtype), bias, padding=pad, groups=c)


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, r, r) -> (B, C, 2r, 2r): zero insertion, padding (2, 1), the filter with gain 4 (as one
    stride-2 transposed convolution of each channel with the symmetric filter)."""
    c = int(x.shape[1])
    return F.conv_transpose2d(x, fir_kernel(c, 4.0, x.device, x.dtype), stride=2, padding=1, groups=c)


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 2r, 2r) -> (B, C, r, r): padding (1, 1), the filter, every second pixel."""
    c = int(x.shape[1])
    return F.conv2d(x, fir_kernel(c, 1.0, x.device, x.dtype), stride=2, padding=1, groups=c)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """x + bias (per channel, dim 1), then the activation ("lrelu": slope 0.2 times sqrt 2), times
    `gain`, clamped to +-clamp (None: no clamp). "lrelu_nogain": the slope alone (the sqrt 2 applied
    before). In place when no gradient is recorded."""
    inplace = not torch.is_grad_enabled()
    if bias is not None:
        b = bias.reshape(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
        x = x.add_(b) if inplace else x + b
    if act in ("lrelu", "lrelu_nogain"):
        x = F.leaky_relu_(x, 0.2) if inplace else F.leaky_relu(x, 0.2)
        gain = gain * SQRT2 if act == "lrelu" else gain
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) per row (the mapping network's input normalization)."""
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


class FullyConnected(nn.Module):
    """y = act(x (W lr_mul / sqrt(in))^T + b lr_mul); W stored N(0, 1) / lr_mul, b as bias_init / lr_mul."""

    def __init__(self, in_features: int, out_features: int, *, act: str = "linear", lr_mul: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)) / lr_mul)
        self.weight_gain, self.lr_mul, self.act = lr_mul / math.sqrt(in_features), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return bias_act(x, None, self.act)


class Conv2d(nn.Module):
    """An equalized-lr convolution, optionally down-sampling by 2 (filter, then a stride-2 convolution)
    or up-sampling by 2 (1x1 kernels only: the convolution, then `upsample2d`), then `bias_act`.
    `forward(x, gain)` multiplies the output and its clamp by `gain` (the resnet branches' sqrt(1/2))."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True, act: str = "linear",
                 down: bool = False, up: bool = False, clamp: float | None = None):
        super().__init__()
        if up and kernel != 1:
            raise ValueError("Conv2d up-samples with 1x1 kernels only")
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_ch * kernel * kernel)
        self.kernel, self.act, self.down, self.up, self.clamp = kernel, act, down, up, clamp

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down and self.kernel == 1:
            x = F.conv2d(downsample2d(x), w)
        elif self.down:  # pad (k // 2 + 1) on each side, filter, stride-2 convolution
            x = F.conv2d(filter2d(x, self.kernel // 2 + 1), w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel // 2)
            if self.up:
                x = upsample2d(x)
        clamp = self.clamp * gain if self.clamp is not None else None
        return bias_act(x, self.bias, self.act, gain, clamp)


class ModulatedConv2d(nn.Module):
    """NVIDIA's SynthesisLayer: style s = affine(w) (bias 1 at init), the modulated (and demodulated)
    3x3 convolution, optionally up-sampling by 2, per-pixel noise times `noise_strength`, bias, lrelu,
    clamp. `noise_const` is the stored noise of noise_mode "const" (resolution x resolution)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, *, up: bool = False,
                 clamp: float | None = None, kernel: int = 3):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.resolution, self.up, self.clamp, self.kernel = resolution, up, clamp, kernel
        # None: choose per call (see forward); False: always scale activations, so the graph does not
        # depend on the batch size (for an export with a dynamic batch); True: always per-sample weights.
        self.per_sample: bool | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None,
                noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)  # (B, in)
        batch, cin, res_in = x.shape[0], x.shape[1], x.shape[-1]
        out, k = self.weight.shape[0], self.kernel
        # demodulation: 1 / sqrt(sum_i s_i^2 sum_k w_oik^2), (B, out); times lrelu's sqrt 2 and the branch
        # gain, which commute with lrelu (lrelu(a x) = a lrelu(x) for a > 0) and so act on the linear part
        g = SQRT2 * gain
        scale = (styles.square() @ self.weight.square().sum((2, 3)).t() + 1e-8).rsqrt() * g
        inplace = not torch.is_grad_enabled()
        # Per-sample weights (one grouped convolution over the batch) where they are no larger than the
        # activations they replace scaling, i.e. at high resolutions and for one image; else scale the
        # activations around one ordinary convolution.
        per_sample = self.per_sample if self.per_sample is not None else batch == 1 or out * k * k <= res_in * res_in
        if per_sample:
            wt = self.weight[None] * styles[:, None, :, None, None] * scale[:, :, None, None, None]  # (B, out, in, k, k)
            bias = (self.bias * g).repeat(batch).to(x.dtype)
            x = x.reshape(1, batch * cin, res_in, res_in)
            if self.up:  # transposed stride-2 convolution (weights (in, out, k, k)), pad 1, filter x 4
                wt = wt.transpose(1, 2).reshape(batch * cin, out, k, k)
                x = F.conv_transpose2d(x, wt.to(x.dtype), stride=2, groups=batch)
                x = filter2d(x, 1, gain=4.0, bias=bias)
            else:
                x = F.conv2d(x, wt.reshape(batch * out, cin, k, k).to(x.dtype), bias, padding=k // 2, groups=batch)
            x = x.reshape(batch, out, *x.shape[2:])
        else:
            x = x * styles[:, :, None, None].to(x.dtype)
            if self.up:
                x = filter2d(F.conv_transpose2d(x, self.weight.transpose(0, 1).to(x.dtype), stride=2), 1, gain=4.0)
            else:
                x = F.conv2d(x, self.weight.to(x.dtype), padding=k // 2)
            d = scale[:, :, None, None].to(x.dtype)
            x = x.mul_(d) if inplace else x * d
        if noise is None and noise_mode == "random":
            noise = torch.randn(batch, 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
        elif noise is None and noise_mode == "const":
            noise = self.noise_const
        if noise is not None:
            n = (noise * (self.noise_strength * g)).to(x.dtype)
            x = x.add_(n) if inplace else x + n
        clamp = self.clamp * gain if self.clamp is not None else None
        return bias_act(x, None if per_sample else self.bias * g, "lrelu_nogain", 1.0, clamp)


class ToRGB(nn.Module):
    """NVIDIA's ToRGBLayer: a modulated 1x1 convolution without demodulation (styles times 1 / sqrt(in)),
    bias, clamp."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, clamp: float | None = None):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain, self.clamp = 1 / math.sqrt(in_ch), clamp
        self.per_sample: bool | None = None  # see ModulatedConv2d

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # (B, in)
        batch, cin = x.shape[:2]
        if self.per_sample is False:  # as ModulatedConv2d.per_sample: a graph independent of the batch size
            x = F.conv2d(x * styles[:, :, None, None].to(x.dtype), self.weight.to(x.dtype), self.bias.to(x.dtype))
            return bias_act(x, None, "linear", 1.0, self.clamp)
        wt = self.weight[None, :, :, 0, 0] * styles[:, None, :]  # per-sample 1x1 weights (B, out, in)
        x = F.conv2d(x.reshape(1, batch * cin, *x.shape[2:]), wt.reshape(-1, cin, 1, 1).to(x.dtype),
                     self.bias.repeat(batch).to(x.dtype), groups=batch)
        return bias_act(x.reshape(batch, -1, *x.shape[2:]), None, "linear", 1.0, self.clamp)


def minibatch_std(x: torch.Tensor, group_size: int | None, num_channels: int) -> torch.Tensor:
    """Append `num_channels` feature maps: the standard deviation of the features over groups of
    min(group_size, B) images (consecutive images are spread over the groups: image i is in group
    i % (B / G)), averaged over channel slices and pixels (Karras et al. 2018, Sec. 3)."""
    n, c, h, w = x.shape
    g = min(group_size, n) if group_size is not None else n
    if n % g:
        raise ValueError(f"minibatch std needs a batch divisible by its group size {g}, got {n} images")
    y = x.reshape(g, -1, num_channels, c // num_channels, h, w)  # (G, n, F, c, H, W)
    y = (y - y.mean(0)).square().mean(0)
    y = (y + 1e-8).sqrt().mean((2, 3, 4))  # (n, F)
    y = y.reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)  # (N, F, H, W)
    return torch.cat([x, y], 1)
