"""The layers of StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020) as NVIDIA's released networks compute them; the networks are in gencli.models.stylegan2.

- equalized learning rate: weights are stored N(0, 1) (divided by the learning-rate multiplier) and
  scaled at run time by lr_mul / sqrt(fan_in) (`FullyConnected`, `Conv2d`).
- "lrelu" is leaky ReLU with slope 0.2 times sqrt(2) (keeps unit variance); a layer's `clamp` bounds its
  output to +-clamp after the activation (NVIDIA's `conv_clamp`, which guards their fp16 layers).
- resampling uses the [1, 3, 3, 1] filter (outer product, normalized to sum 1): up-sampling is zero
  insertion and the filter times 4 (its gain), down-sampling the filter then every second pixel.
- `ModulatedConv2d` (Sec. 2.2): the input channels are scaled by the style s, a 3x3 convolution, then each
  output channel divided by sqrt(sum_{i,k} (s_i w_oik)^2 + 1e-8) (demodulation). Scaling the activations
  rather than the weights does the same with one ordinary convolution for the whole batch.
- the up-sampling convolution is a stride-2 transposed 3x3 convolution followed by the filter.

Under `torch.no_grad()` the bias, activation and clamp act in place (less memory at 1024 px).

Inference on the CPU (`cpu_inference`: no autograd, float32, not traced for export) takes another road to
the same function, one image at a time in channels-last memory (oneDNN's fast layout): the style, the
demodulation and the lrelu gain (lrelu(g y) = g lrelu(y) for g > 0) are folded into that image's weights,
the gained bias into the convolution, so each layer is one convolution and three in-place passes (noise,
lrelu, clamp); the up-sampling filter is one depthwise convolution with the bias.
The convolutions that oneDNN runs slowest take faster roads (gencli.models.cpu_convolutions): from 128 px
inputs on the transposed convolution runs as four ordinary ones (its phases), and the 3x3 convolutions of
many channels as Winograd F(4x4, 3x3), the style scaling the image's channels and the demodulation the
output's, so that the transformed kernels are made once per weight.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gencli.models import cpu_convolutions as fast

SQRT2 = math.sqrt(2)
CHANNELS_LAST = torch.channels_last


def cpu_inference(x: torch.Tensor) -> bool:
    """Whether `x` takes the CPU inference road: no gradient recorded, float32 on the CPU, and not being
    traced or compiled (exports see the ordinary ops)."""
    compiling = getattr(torch.compiler, "is_compiling", lambda: False)()
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.jit.is_tracing() and not torch.jit.is_scripting() and not compiling)


def fir_kernel(channels: int, gain: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """The [1, 3, 3, 1] x [1, 3, 3, 1] / 64 filter times `gain`, one per channel: (channels, 1, 4, 4)."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device, dtype=dtype)
    f = f[:, None] * f[None, :]
    return (f * (gain / f.sum())).expand(channels, 1, 4, 4)


def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
    """Initial weights N(0, scale^2); on the meta device (where a checkpoint's shape check builds the
    network) only the shape: PyTorch's meta kernels of randn and arithmetic import seconds of modules."""
    if torch.get_default_device().type == "meta":
        return torch.empty(shape)
    return torch.randn(shape) if scale == 1 else torch.randn(shape) * scale


_FIR_CACHE: dict[tuple, torch.Tensor] = {}


def fir_kernel_cl(channels: int, gain: float) -> torch.Tensor:
    """fir_kernel on the CPU, materialized channels-last (oneDNN's depthwise layout), made once per shape."""
    key = (channels, gain)
    if key not in _FIR_CACHE:
        _FIR_CACHE[key] = fir_kernel(channels, gain).contiguous(memory_format=CHANNELS_LAST)
    return _FIR_CACHE[key]


def noise_lrelu_clamp_(x: torch.Tensor, noise: torch.Tensor | None, strength: float,
                       clamp: float | None) -> torch.Tensor:
    """In place: x + strength noise (noise (r, r) or (1, 1, r, r), broadcast), leaky ReLU (slope 0.2, no
    gain), clamped to +-clamp."""
    if noise is not None:
        x.add_(noise.reshape(x.shape[-2:]), alpha=strength)
    F.leaky_relu_(x, 0.2)
    return x.clamp_(-clamp, clamp) if clamp is not None else x


def filter2d(x: torch.Tensor, pad: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """The filter over each channel after zero-padding (before, after) on both axes."""
    if pad != (0, 0):
        x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    c = int(x.shape[1])  # a constant when traced (ONNX needs the kernel's shape)
    return F.conv2d(x, fir_kernel(c, gain, x.device, x.dtype), groups=c)


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, r, r) -> (B, C, 2r, 2r): zero insertion, padding (2, 1), the filter with gain 4 (as one
    stride-2 transposed convolution of each channel with the symmetric filter)."""
    c = int(x.shape[1])
    return F.conv_transpose2d(x, fir_kernel(c, 4.0, x.device, x.dtype), stride=2, padding=1, groups=c)


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 2r, 2r) -> (B, C, r, r): padding (1, 1), the filter, every second pixel."""
    c = int(x.shape[1])
    return F.conv2d(F.pad(x, (1, 1, 1, 1)), fir_kernel(c, 1.0, x.device, x.dtype), stride=2, groups=c)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """x + bias (per channel, dim 1), then the activation ("lrelu": slope 0.2 times sqrt 2), times
    `gain`, clamped to +-clamp (None: no clamp). In place when no gradient is recorded."""
    inplace = not torch.is_grad_enabled()
    if bias is not None:
        b = bias.reshape(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
        x = x.add_(b) if inplace else x + b
    if act == "lrelu":
        x = F.leaky_relu_(x, 0.2) if inplace else F.leaky_relu(x, 0.2)
        gain = gain * SQRT2
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
        self.weight = nn.Parameter(randn(out_features, in_features, scale=1 / lr_mul))
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
        self.weight_gain, self.lr_mul, self.act = lr_mul / math.sqrt(in_features), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # the gain on the product: one matrix op, no scaled copy of W
            x = torch.addmm(self.bias * self.lr_mul, x, self.weight.t(), alpha=self.weight_gain)
        else:
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
        self.weight = nn.Parameter(randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_ch * kernel * kernel)
        self.kernel, self.act, self.down, self.up, self.clamp = kernel, act, down, up, clamp

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down and self.kernel == 1:
            x = F.conv2d(downsample2d(x), w)
        elif self.down:  # pad (k // 2 + 1) on each side, filter, stride-2 convolution
            x = F.conv2d(filter2d(x, (self.kernel // 2 + 1,) * 2), w, stride=2)
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
        self.weight = nn.Parameter(randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", randn(resolution, resolution))
        self.resolution, self.up, self.clamp, self.kernel = resolution, up, clamp, kernel

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None,
                noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        if x.shape[0] == 1 and cpu_inference(x):
            return self.forward_cpu(x, w, noise, noise_mode, gain)
        styles = self.affine(w)  # (B, in)
        weight = self.weight
        x = x * styles[:, :, None, None].to(x.dtype)
        if self.up:  # transposed stride-2 convolution (weight (in, out, k, k)), then pad 1 and filter x 4
            x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            x = filter2d(x, (1, 1), gain=4.0)
        else:
            x = F.conv2d(x, weight.to(x.dtype), padding=self.kernel // 2)
        # demodulation: 1 / sqrt(sum_i s_i^2 sum_k w_oik^2), (B, out)
        dcoefs = (styles.square() @ weight.square().sum((2, 3)).t() + 1e-8).rsqrt()
        inplace = not torch.is_grad_enabled()
        d = dcoefs[:, :, None, None].to(x.dtype)
        x = x.mul_(d) if inplace else x * d
        if noise is None and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
        elif noise is None and noise_mode == "const":
            noise = self.noise_const
        if noise is not None:
            n = (noise * self.noise_strength).to(x.dtype)
            x = x.add_(n) if inplace else x + n
        clamp = self.clamp * gain if self.clamp is not None else None
        return bias_act(x, self.bias, "lrelu", gain, clamp)

    def inference_weights(self, winograd: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum_k w_oik^2 (out, in), the weight channels-last, as (in, out, k, k) when up-sampling, or its
        Winograd kernels), kept until the weight changes (in-place updates and loads bump its version):
        demodulating then costs a small matrix product per image and modulating one contiguous pass.
        (Writes through `.data` bypass the version counter and are not seen; load_state_dict, optimizers
        and EMA updates are.)"""
        key = (self.weight._version, self.weight.data_ptr(), winograd)
        if getattr(self, "_inference_key", None) != key:
            weight = self.weight.detach()
            self._energy = weight.square().sum((2, 3))
            if winograd:
                self._inference_weight = fast.winograd_weight(weight)
            else:
                self._inference_weight = (weight.transpose(0, 1) if self.up else weight).contiguous(memory_format=CHANNELS_LAST)
            self._inference_key = key
        return self._energy, self._inference_weight

    def forward_cpu(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None, noise_mode: str,
                    gain: float) -> torch.Tensor:
        """`forward` for one image (x (1, in, r', r') channels-last) on the CPU inference road."""
        g = gain * SQRT2  # the lrelu gain, folded into the weights, bias and noise
        winograd = not self.up and self.kernel == 3 and fast.use_winograd(*self.weight.shape[1::-1], x.shape[-1])
        energy, weight = self.inference_weights(winograd)
        styles = self.affine(w)  # (1, in)
        d = (styles.square() @ energy.t() + 1e-8).rsqrt().mul_(g)  # demodulation x gain, (1, out)
        if noise is None and noise_mode == "random":
            noise = torch.randn(self.resolution, self.resolution)
        elif noise is None and noise_mode == "const":
            noise = self.noise_const
        strength = float(self.noise_strength) * g
        bias = self.bias * g
        if winograd:
            x = fast.winograd_conv3x3(x, weight, styles[0], d[0], bias)
        else:
            scale = styles.t() * d if self.up else d.t() * styles  # w_oik s_i d_o g: (in, out) up, else (out, in)
            weight = weight * scale[:, :, None, None]  # channels-last like `weight`
        if self.up:  # the transposed convolution, then the filter (x 4, padding 1) with the bias
            if x.shape[-1] >= fast.POLYPHASE_FROM:
                x, pad = fast.conv_transpose_phases(x, weight), 0  # padded already
            else:
                x, pad = F.conv_transpose2d(x, weight, stride=2), 1
            x = F.conv2d(x, fir_kernel_cl(x.shape[1], 4.0), bias, padding=pad, groups=x.shape[1])
        elif not winograd:
            x = F.conv2d(x, weight, bias, padding=self.kernel // 2)
        return noise_lrelu_clamp_(x, noise, strength, self.clamp * gain if self.clamp is not None else None)


class ToRGB(nn.Module):
    """NVIDIA's ToRGBLayer: a modulated 1x1 convolution without demodulation (styles times 1 / sqrt(in)),
    bias, clamp."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, clamp: float | None = None):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(randn(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain, self.clamp = 1 / math.sqrt(in_ch), clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # (B, in)
        if x.shape[0] == 1 and cpu_inference(x):  # the styles folded into the weights
            weight = (self.weight * styles.reshape(1, -1, 1, 1)).contiguous(memory_format=CHANNELS_LAST)
            x = F.conv2d(x, weight, self.bias)
            return x.clamp_(-self.clamp, self.clamp) if self.clamp is not None else x
        x = F.conv2d(x * styles[:, :, None, None].to(x.dtype), self.weight.to(x.dtype))
        return bias_act(x, self.bias, "linear", 1.0, self.clamp)


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
