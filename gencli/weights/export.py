"""Exporting the network that makes images, for use outside gencli: ONNX (for onnxruntime and friends) or
TorchScript (for C++ or Python without gencli), images in [0, 1], (N, C, H, W) float.

- vae / cvae: the decoder, z (N, latent_dim) [and label (N,) int64 for a cvae] -> sigmoid(logits).
- stylegan: the generator, z (N, z_dim) [, label (N,) int64 for a conditional model] [, truncation (1,)
  unless baked in] -> image; the per-pixel noise is fixed (drawn from noise seed 0, the same for every
  image, as `interpolate` and `style-mix` draw it).
- cyclegan: one generator, image (N, 3, H, W) -> image of the same size; H and W any multiples of 4.

Every export is reloaded (torch.jit.load; onnxruntime when installed, else onnx's checker) and its output
compared with PyTorch's on a sample input.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch
from torch import nn

import torch.nn.functional as F

from gencli.errors import GencliError
from gencli.images import to_unit
from gencli.models.stylegan import Blur


class VAEDecoder(nn.Module):
    """z (N, latent_dim) -> image (N, 1, 28, 28) in [0, 1]."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.vae.decode(z))


class CVAEDecoder(VAEDecoder):
    """z (N, latent_dim), label (N,) int64 -> image (N, 1, 28, 28) in [0, 1]."""

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(self.vae.decode(z, label))


class FixedBlur(nn.Module):
    """Blur with its channel count fixed: the exporters need the kernel's shape as a constant."""

    def __init__(self, blur: Blur, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("weight", blur.kernel.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=1, groups=self.channels)


def with_fixed_blurs(G: nn.Module) -> nn.Module:
    """A copy of the generator whose Blur layers know their channel counts (found by one forward pass)."""
    G = copy.deepcopy(G)
    channels: dict[nn.Module, int] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: channels.__setitem__(mod, args[0].shape[1]))
             for m in G.modules() if isinstance(m, Blur)]
    labels = torch.zeros(1, dtype=torch.long) if G.config.num_classes else None
    with torch.no_grad():
        G(torch.zeros(1, G.config.z_dim), labels=labels)
    for h in hooks:
        h.remove()
    for module in list(G.modules()):
        for name, child in list(module.named_children()):
            if child in channels:
                setattr(module, name, FixedBlur(child, channels[child]))
    return G


class StyleGANSampler(nn.Module):
    """z (N, z_dim) [, truncation (1,)] -> image in [0, 1], with fixed noise (`noise_seed`). With `psi` given,
    the truncation w_avg + psi (w - w_avg) is baked in; else it is the second input."""

    def __init__(self, G: nn.Module, psi: float | None = None, noise_seed: int = 0):
        super().__init__()
        self.G, self.psi = with_fixed_blurs(G), psi
        g = torch.Generator().manual_seed(noise_seed)  # as gencli.inference.stylegan.seed_inputs draws it
        for i, r in enumerate(G.synthesis.layer_resolutions):
            self.register_buffer(f"noise{i}", torch.randn(1, r, r, generator=g)[None])

    def noise(self, n: int) -> list[torch.Tensor]:
        return [getattr(self, f"noise{i}").expand(n, -1, -1, -1) for i in range(len(self.G.synthesis.layer_resolutions))]

    def forward(self, z: torch.Tensor, truncation: torch.Tensor | None = None) -> torch.Tensor:
        G = self.G
        w = G.mapping(z)
        psi = self.psi if truncation is None else truncation
        w = G.w_avg + psi * (w - G.w_avg)
        return to_unit(G.synthesis(G.broadcast(w), self.noise(z.shape[0])))


class StyleGAN2Sampler(nn.Module):
    """z (N, z_dim) [, label (N,) int64 of a conditional network] [, truncation (1,)] -> image in [0, 1],
    with the network's constant noise (NVIDIA's default noise mode). With `psi` given, the truncation
    w_avg + psi (w - w_avg) is baked in; else it is the last input."""

    def __init__(self, G: nn.Module, psi: float | None = None):
        super().__init__()
        self.G, self.psi, self.conditional = G, psi, G.config.c_dim > 0

    def forward(self, z: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        G = self.G
        w = G.mapping(z, inputs[0] if self.conditional else None)
        psi = self.psi if self.psi is not None else inputs[-1]
        w = G.w_avg + psi * (w - G.w_avg)
        return to_unit(G.synthesis(G.broadcast(w), None, "const"))


class ConditionalStyleGANSampler(StyleGANSampler):
    """z (N, z_dim), label (N,) int64 [, truncation (1,)] -> image in [0, 1]: a conditional generator, whose
    truncation pulls each image toward its own class's mean w (as gencli samples it)."""

    def forward(self, z: torch.Tensor, label: torch.Tensor, truncation: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        G = self.G
        w = G.mapping(z, label)
        psi = self.psi if truncation is None else truncation
        center = G.w_avg[label]  # (N, w_dim)
        w = center + psi * (w - center)
        return to_unit(G.synthesis(G.broadcast(w), self.noise(z.shape[0])))


class CycleGANTranslator(nn.Module):
    """image (N, 3, H, W) in [0, 1] -> translated image of the same size in [0, 1]."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return to_unit(self.generator(image * 2 - 1))


def image_network(model: nn.Module, family: str, *, direction: str = "a2b", truncation: float | None = None):
    """(network, example inputs, input names, dynamic axes) of a model's image-making network."""
    g = torch.Generator().manual_seed(0)
    if family in ("vae", "cvae"):
        c = model.config
        z = torch.randn(4, c.latent_dim, generator=g)
        if c.num_classes:
            labels = torch.arange(4) % c.num_classes
            return CVAEDecoder(model), (z, labels), ["z", "label"], {"z": {0: "n"}, "label": {0: "n"}, "image": {0: "n"}}
        return VAEDecoder(model), (z,), ["z"], {"z": {0: "n"}, "image": {0: "n"}}
    if family == "stylegan":
        z = torch.randn(4, model.config.z_dim, generator=g)
        classes = model.config.num_classes
        sampler = ConditionalStyleGANSampler if classes else StyleGANSampler
        inputs, names, dynamic = (z,), ["z"], {"z": {0: "n"}, "image": {0: "n"}}
        if classes:
            inputs, names = (z, torch.arange(4) % classes), ["z", "label"]
            dynamic["label"] = {0: "n"}
        if truncation is not None:
            return sampler(model, truncation), inputs, names, dynamic
        return sampler(model), (*inputs, torch.tensor([0.7])), [*names, "truncation"], dynamic
    if family == "stylegan2":
        z = torch.randn(4, model.config.z_dim, generator=g)
        labels = (torch.arange(4) % model.config.c_dim,) if model.config.c_dim else ()
        names = ["z"] + (["label"] if labels else [])
        axes = {"z": {0: "n"}, "image": {0: "n"}, **({"label": {0: "n"}} if labels else {})}
        if truncation is not None:
            return StyleGAN2Sampler(model, truncation), (z, *labels), names, axes
        return StyleGAN2Sampler(model), (z, *labels, torch.tensor([1.0])), names + ["truncation"], axes
    if family == "cyclegan":
        image = torch.rand(2, 3, 64, 48, generator=g)
        return (CycleGANTranslator(model.generator(direction)), (image,), ["image"],
                {"image": {0: "n", 2: "height", 3: "width"}, "output": {0: "n", 2: "height", 3: "width"}})
    raise GencliError(f"export does not know the {family} family")


def _half(inputs: tuple) -> tuple:
    return tuple(x.half() if x.is_floating_point() else x for x in inputs)


def check_inputs(inputs: tuple, family: str) -> tuple:
    """Inputs for the comparison, of another batch size (and for a cyclegan another image size) than the
    traced ones, so that the dynamic axes are exercised."""
    g = torch.Generator().manual_seed(1)
    if family == "cyclegan":
        return (torch.rand(3, 3, 48, 72, generator=g),)
    z = torch.randn(3, inputs[0].shape[1], generator=g)
    rest = tuple(torch.tensor([3, 1, 4]) % (int(x.max()) + 1) if x.dtype == torch.int64 else x for x in inputs[1:])
    return (z, *rest)


def export_torchscript(net: nn.Module, inputs: tuple, out: Path, family: str, fp16: bool) -> float:
    """Trace `net` into TorchScript at `out`; reload it and return the largest difference from `net`."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes used as Python numbers
        traced = torch.jit.trace(net, inputs, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        out.write_bytes(buffer.getvalue())
        reloaded = torch.jit.load(str(out))
        probe = check_inputs(inputs, family)
        probe = _half(probe) if fp16 else probe
        expected, got = net(*probe).float(), reloaded(*probe).float()
    return (expected - got).abs().max().item()


def export_onnx(net: nn.Module, inputs: tuple, names: list[str], dynamic: dict, out: Path, family: str,
                fp16: bool) -> float:
    """Export `net` to ONNX at `out` (opset 17, dynamic batch and, for a cyclegan, image size); check it with
    onnxruntime when it is installed (else onnx's checker) and return the largest difference from `net`
    (0 when it could not be run)."""
    output = "output" if family == "cyclegan" else "image"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy (TorchScript-based) exporter is deprecated, not gone
        buffer = io.BytesIO()
        torch.onnx.export(net, inputs, buffer, dynamo=False, input_names=names, output_names=[output],
                          dynamic_axes=dynamic, opset_version=17)
    out.write_bytes(buffer.getvalue())
    try:
        import onnxruntime
    except ImportError:
        try:
            import onnx
        except ImportError:
            return 0.0
        onnx.checker.check_model(str(out))
        return 0.0
    probe = check_inputs(inputs, family)
    probe = _half(probe) if fp16 else probe
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: x.numpy() for n, x in zip(names, probe)})[0]
    with torch.no_grad():
        expected = net(*probe).float()
    return (expected - torch.from_numpy(got).float()).abs().max().item()


def export_network(model: nn.Module, family: str, fmt: str, out: Path, *, fp16: bool = False,
                   direction: str = "a2b", truncation: float | None = None) -> dict:
    """Write the image-making network of `model` as `fmt` (onnx or torchscript) to `out`; returns what the
    export takes and how far the reloaded file is from PyTorch (max_abs_diff, on images in [0, 1])."""
    net, inputs, names, dynamic = image_network(model, family, direction=direction, truncation=truncation)
    net = net.eval()
    if fp16:
        net, inputs = net.half(), _half(inputs)
    if fmt == "torchscript":
        diff = export_torchscript(net, inputs, out, family, fp16)
    else:
        diff = export_onnx(net, inputs, names, dynamic, out, family, fp16)
    return {"inputs": names, "max_abs_diff": diff}
