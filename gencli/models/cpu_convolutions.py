"""Convolutions of one channels-last image that beat oneDNN's own on the CPU, for StyleGAN2's inference
road (gencli.models.stylegan2_layers): the same functions as F.conv_transpose2d(stride=2) and
F.conv2d(padding=1) up to float rounding, with fewer multiplications or faster kernels.

- `conv_transpose_phases`: a stride-2 transposed 3x3 convolution as four ordinary convolutions, one per
  output phase (oneDNN's transposed convolution runs at half the speed of its ordinary one), written
  with the zero border the filter after it needs.
- `winograd_conv3x3`: Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for
  Convolutional Neural Networks", CVPR 2016): each 4x4 output tile from a 6x6 input tile in 36
  multiplications per channel pair instead of 144, as 36 matrix products over all tiles. The transforms
  are passes over memory, so it pays where the channels are many and the image small (StyleGAN2's 8 to
  256 px layers: a third to a half of oneDNN's time there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNELS_LAST = torch.channels_last
POLYPHASE_FROM = 128  # input side from which conv_transpose_phases beats oneDNN's transposed convolution
WINOGRAD_MIN_CHANNELS = 128  # fewer input or output channels: oneDNN's direct convolution is faster

# F(4x4, 3x3) at the points 0, 1, -1, 2, -2, infinity: the kernel transform G (6 x 3) and the output
# transform A^T (4 x 6), applied on both axes (A^T (x) A^T: 16 outputs from 36 products); the input
# transform B^T is written out in `_input_transform`.
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                   [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)
_G2 = torch.kron(_G, _G).float()  # (36, 9): G w G^T of a row-major 3x3 w, flattened
_AT2 = torch.kron(_AT, _AT).float()  # (16, 36)
TILE = 4  # output pixels per tile side


def conv_transpose_phases(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """F.pad(F.conv_transpose2d(x, weight, stride=2), (1, 1, 1, 1)) of one channels-last image and a 3x3
    weight (in, out, 3, 3), as four ordinary convolutions, one per output phase: pixel (2m + a, 2n + b)
    takes, along each axis, tap 1 of input m when odd, taps 0 and 2 of inputs m and m - 1 when even.
    The phases are written interleaved into one contiguous channels-last tensor of (2r + 3)^2 pixels
    whose border is the zero padding that the up-sampling filter after it needs (no copy to pad)."""
    h, w = x.shape[-2:]
    kernels = weight.transpose(0, 1)  # (out, in, 3, 3)
    y = x.new_empty(1, 2 * h + 3, 2 * w + 3, kernels.shape[0])
    for border in (y[:, 0], y[:, -1], y[:, :, 0], y[:, :, -1]):
        border.zero_()
    phases = y[0, 1:, 1:].view(h + 1, 2, w + 1, 2, -1)  # [m, a, n, b, channel]
    taps = ([2, 0], [1])  # even, odd
    for a in (0, 1):
        for b in (0, 1):
            k = kernels[:, :, taps[a]][:, :, :, taps[b]].contiguous(memory_format=CHANNELS_LAST)
            phases[: h + 1 - a, a, : w + 1 - b, b] = F.conv2d(x, k, padding=(1 - a, 1 - b))[0].permute(1, 2, 0)
    return y.permute(0, 3, 1, 2)


def use_winograd(in_ch: int, out_ch: int, resolution: int) -> bool:
    """Whether `winograd_conv3x3` is the faster road for a 3x3 convolution of this shape."""
    return min(in_ch, out_ch) >= WINOGRAD_MIN_CHANNELS and resolution >= 2 * TILE and resolution % TILE == 0


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """The transformed kernels G w G^T of a 3x3 weight (out, in, 3, 3), as 36 matrices (36, in, out) (a
    transposed view: one matrix product makes them, and the products take them as they are)."""
    out_ch, in_ch = weight.shape[:2]
    u = _G2.to(weight.dtype) @ weight.reshape(out_ch * in_ch, 9).t()  # (36, out in)
    return u.view(36, out_ch, in_ch).transpose(1, 2)


def _input_transform(d: list[torch.Tensor], out: torch.Tensor) -> None:
    """out[a] = sum_i B^T[a, i] d[i] for the six views d of one axis, B^T's rows being
    (4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1), with their common terms computed once."""
    t1, t2 = torch.add(d[4], d[2], alpha=-4), torch.add(d[3], d[1], alpha=-4)
    t3, t4 = d[4] - d[2], d[3] - d[1]
    torch.add(t3, d[0] - d[2], alpha=4, out=out[0])
    torch.add(t1, t2, out=out[1])
    torch.sub(t1, t2, out=out[2])
    torch.add(t3, t4, alpha=2, out=out[3])
    torch.add(t3, t4, alpha=-2, out=out[4])
    torch.add(d[5] - d[3], t4, alpha=-4, out=out[5])


def _input_tiles(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """B^T d B of every 6x6 tile d (stride 4) of x (1, C, H, W) channels-last, its channels times `scale`
    and zero-padded by 1: (36, H W / 16, C)."""
    _, c, h, w = x.shape
    th, tw = h // TILE, w // TILE
    padded = x.new_zeros(h + 2, w + 2, c)
    torch.mul(x[0].permute(1, 2, 0), scale, out=padded[1 : h + 1, 1 : w + 1])
    rows = x.new_empty(6, th, w + 2, c)
    _input_transform([padded[i : i + TILE * th : TILE] for i in range(6)], rows)
    del padded
    tiles = x.new_empty(6, 6, th, tw, c)
    _input_transform([rows[:, :, j : j + TILE * tw : TILE] for j in range(6)], tiles.transpose(0, 1))
    return tiles.view(36, th * tw, c)


def winograd_conv3x3(x: torch.Tensor, kernels: torch.Tensor, in_scale: torch.Tensor, out_scale: torch.Tensor,
                     bias: torch.Tensor) -> torch.Tensor:
    """F.conv2d(x, w * in_scale[i] * out_scale[o], bias, padding=1) for one channels-last image x
    (1, in, H, W) with H, W multiples of 4 and `kernels` = winograd_weight(w): channels-last (1, out, H, W).
    The scales act on the image's channels, so the transformed kernels are made once per weight."""
    _, _, h, w = x.shape
    products = torch.bmm(_input_tiles(x, in_scale), kernels)  # (36, tiles, out)
    out_ch = kernels.shape[2]
    tiles = torch.mm(_AT2.to(x.dtype), products.view(36, -1)).view(TILE, TILE, h // TILE, w // TILE, out_ch)
    del products
    y = x.new_empty(1, h, w, out_ch)
    y.view(h // TILE, TILE, w // TILE, TILE, out_ch).copy_(tiles.permute(2, 0, 3, 1, 4))
    del tiles
    torch.addcmul(bias, y, out_scale, out=y)
    return y.permute(0, 3, 1, 2)
