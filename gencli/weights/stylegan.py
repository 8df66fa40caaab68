"""Published StyleGAN weights: rosinality/style-based-gan-pytorch's StyleGAN (v1) generators converted
into gencli checkpoints (the key map is in `from_rosinality_v1`)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from gencli.checkpoint import save_model
from gencli.errors import GencliError
from gencli.files import check_writable, load_foreign_state, tensor_dict
from gencli.models.stylegan import Generator, StyleGANConfig


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
    file, out = Path(file), check_writable(Path(out))
    return save_v1(v1_state(load_foreign_state(file), file), file, resolution=resolution, out=out)


def v1_state(data, file: Path) -> dict[str, torch.Tensor]:
    """The generator state dict of a rosinality/style-based-gan-pytorch file (its `g_running`, the EMA
    generator, preferred)."""
    state = data
    if isinstance(state, dict):
        for key in ("g_running", "generator"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not tensor_dict(state):
        raise GencliError(f"{file} does not hold a state dict of tensors")
    return state


def is_v1(data) -> bool:
    """Whether an object read from a torch file is a rosinality/style-based-gan-pytorch (StyleGAN1) one."""
    if not isinstance(data, dict):
        return False
    state = data.get("g_running", data.get("generator", data))
    return isinstance(state, dict) and any(str(k).removeprefix("module.").startswith("generator.progression.")
                                           for k in state)


def save_v1(state: dict[str, torch.Tensor], file: Path, *, resolution: int, out: Path) -> Path:
    """The StyleGAN1 generator of `state`, cut at `resolution`, written as a gencli stylegan checkpoint."""
    G = from_rosinality_v1(state, resolution)
    return save_model(out, "stylegan", G, G.config, epoch=0, seed=0,
                      extra={"imported_from": file.name, "layout": "rosinality/style-based-gan-pytorch"})
