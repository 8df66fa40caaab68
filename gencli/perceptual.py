"""Feature networks for the distances of projection (gencli.inference.projection). Each maps float images
(N, C, H, W) with values in [0, 255] to one vector per image, differentiably, such that the squared
Euclidean distance of two images' vectors is their distance:

- "lpips": LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
  Metric") on VGG16, as NVIDIA's TorchScript file `vgg16.pt` of the StyleGAN2-ADA metrics computes it:
  forward(img, resize_images, return_lpips) on float RGB images in [0, 255]; with return_lpips=True one
  vector per image whose squared distances are LPIPS distances. Their projector calls it without its own
  resizing (resize_images=False) on images area-downsampled to 256 px when larger; so does gencli.
- "inception": the Inception-v3 file of `gencli evaluate` (gencli.metrics.find_inception), its
  intermediate activations: the image resampled to twice its size (at least 75 px, Inception's smallest
  input, at most its 299) and scaled as the network expects, its layers
  run one by one, and the activations taken just before each of the first four halvings of resolution
  (64, 192, 288 and 768 channels for Inception-v3; at 147, 71, 35 and 17 px for a 299 px input), as LPIPS
  taps VGG16 before its poolings. Each is normalized to unit length over channels and weighed by 1 / sqrt(H W), so that the
  distance is LPIPS's sum over layers of the mean over positions, with every channel weighed 1 (LPIPS
  learns those weights for VGG16; nobody has for Inception).
- "pixel": the mean squared difference of pixels in [0, 1] (no network).

The VGG16 file is found as the Inception file is: `--features PATH`, else $GENCLI_VGG16, else
<cache>/gencli/vgg16/vgg16.pt, else downloaded there once from NVIDIA's URL. gencli does not know the
file's SHA-256 yet (it could not be downloaded where gencli was written), so a download is kept only if it
is a TorchScript module with that forward's arguments. Files are read with torch.jit.load (TorchScript:
code and tensors, no pickled Python objects).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from gencli import metrics
from gencli.errors import GencliError

VGG16_FILE = "vgg16.pt"
VGG16_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt"
VGG16_SHA256: str | None = None  # not known yet: a download is checked by its interface (see above)
VGG16_DOWNLOADS: tuple[tuple[str, str | None], ...] = ((VGG16_URL, VGG16_SHA256),)
LPIPS_SIZE = 256  # larger images are area-downsampled to this before VGG16 (NVIDIA's projector)
MIN_INCEPTION_SIZE = 75  # Inception-v3's smallest input
DISTANCES = ("lpips", "inception", "pixel")


def vgg16_cache_path() -> Path:
    return metrics.cache_root() / "vgg16" / VGG16_FILE


def vgg16_where() -> str:
    return (f"VGG16 weights for --distance lpips not found: save {VGG16_URL} as {vgg16_cache_path()}, "
            "or pass --features PATH or set GENCLI_VGG16")


def load_script(file: Path, where: str) -> torch.jit.ScriptModule:
    """A TorchScript file on the CPU in eval mode, or a one-line GencliError ending in `where`."""
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice is no news to the user
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(file), map_location="cpu").eval()
    except Exception:
        raise GencliError(f"{file} is not a TorchScript file; {where}") from None


def _arguments(net) -> list[str]:
    try:
        return [a.name for a in net.forward.schema.arguments]
    except AttributeError:
        return []


def check_vgg16(net, file: Path | str) -> None:
    if not {"resize_images", "return_lpips"} <= set(_arguments(net)):
        raise GencliError(f"{file} is not the VGG16 LPIPS network: its forward takes no resize_images and "
                          f"return_lpips; {vgg16_where()}")


def _check_vgg16_file(file: Path) -> None:
    check_vgg16(load_script(file, vgg16_where()), VGG16_URL)


def find_vgg16(path: str | Path | None = None, *, download: bool = True,
               downloads: Iterable[tuple[str, str | None]] | None = None, progress=None) -> Path:
    """The VGG16 LPIPS file: `path`, else $GENCLI_VGG16, else the cached file, else a checked download into
    the cache; else a one-line GencliError saying where to put it."""
    return metrics.find_weights_file(
        path, option="--features", env="GENCLI_VGG16", cached=vgg16_cache_path(),
        downloads=VGG16_DOWNLOADS if downloads is None else downloads, where=vgg16_where(), download=download,
        progress=progress, check=_check_vgg16_file)


class LPIPSFeatures(nn.Module):
    """Float images (N, 1 or 3, H, W) in [0, 255] -> NVIDIA's VGG16 LPIPS vectors (N, D); grey images are
    repeated to three channels, images above 256 px area-downsampled to 256 first."""

    def __init__(self, net: torch.jit.ScriptModule):
        super().__init__()
        check_vgg16(net, "the network")
        self.net = net.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        if x.shape[-1] > LPIPS_SIZE:
            x = F.interpolate(x, size=(LPIPS_SIZE, LPIPS_SIZE), mode="area")
        return self.net(x, resize_images=False, return_lpips=True)


def _layer_stack(net) -> nn.Module | None:
    """The module whose children the Inception file runs in order: `layers`, or `net.layers` (the bare
    re-export wraps the network once)."""
    for holder in (net, getattr(net, "net", None)):
        layers = getattr(holder, "layers", None) if holder is not None else None
        if layers is not None and len(list(layers.named_children())) > 1:
            return layers
    return None


def unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Activations (N, C, H, W) divided by their Euclidean length over channels at every position."""
    return x * torch.rsqrt(x.pow(2).sum(1, keepdim=True) + eps)


class InceptionLayers(nn.Module):
    """Float images (N, 1 or 3, H, W) in [0, 255] -> intermediate Inception activations (N, D), see the
    module docstring. `taps`: how many halvings of resolution to tap before (4)."""

    def __init__(self, net: torch.jit.ScriptModule, taps: int = 4, size: int = metrics.FEATURE_SIZE):
        super().__init__()  # `size`: the largest input size, the one the layers are probed at
        layers = _layer_stack(net)
        if layers is None:
            raise GencliError("the Inception file has no layer stack to take intermediate features from; "
                              "use --distance pixel")
        self.size = size
        self.stages = nn.ModuleList(m for _, m in layers.named_children())
        # Probe the resolution after every layer; tap the last layer before each halving.
        with torch.no_grad():
            x, sizes = torch.zeros(1, 3, size, size), []
            for stage in self.stages:
                x = stage(x)
                sizes.append(x.shape[-1] if x.ndim == 4 else 0)
        halves = [i for i in range(len(sizes) - 1) if abs(sizes[i + 1] - sizes[i] / 2) <= 1 and sizes[i + 1] > 1]
        self.taps = halves[:taps]  # (a global pooling to 1 x 1 is no halving)
        if not self.taps:
            raise GencliError("the Inception file's layers never halve the resolution; use --distance pixel")
        self.stages = self.stages[: self.taps[-1] + 1]
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        size = min(self.size, max(MIN_INCEPTION_SIZE, 2 * x.shape[-1]))
        x = (metrics.nv_resize(x, size) - 128) / 128
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.taps:
                out.append((unit_channels(x) / math.sqrt(x.shape[-2] * x.shape[-1])).flatten(1))
        return torch.cat(out, 1)


class PixelFeatures(nn.Module):
    """Float images (N, C, H, W) in [0, 255] -> pixels in [0, 1] / sqrt(C H W): squared distances are
    mean squared errors."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) / (255 * math.sqrt(images[0].numel()))


def load_vgg16(path: str | Path | None = None, *, download: bool = True, device="cpu", progress=None) -> LPIPSFeatures:
    file = find_vgg16(path, download=download, progress=progress)
    net = load_script(file, vgg16_where())
    check_vgg16(net, file)
    return LPIPSFeatures(net).to(device)


def load_inception_layers(path: str | Path | None = None, *, download: bool = True, device="cpu",
                          progress=None) -> InceptionLayers:
    file = metrics.find_inception(path, download=download, progress=progress)
    return InceptionLayers(load_script(file, metrics.where_to_put_it())).to(device)
