"""rosinality/stylegan2-pytorch's StyleGAN2 (`.pt` files: a training checkpoint with g_ema and d, a converted
one with g_ema and latent_avg, or a bare generator state dict) into gencli's StyleGAN2. Their networks
compute what NVIDIA's do (the same modulated convolutions, [1, 3, 3, 1] filters and ws order) without
conv_clamp, with channels min(16384 * channel_multiplier / r, 512)."""

from __future__ import annotations

import re

import torch

from gencli.errors import GencliError
from gencli.files import load_state_checked
from gencli.models.stylegan2 import StyleGAN2Config, build, build_discriminator
from gencli.models.stylegan2_layers import fir_kernel


ROSINALITY = "rosinality/stylegan2-pytorch"


def _rosinality_config(g: dict[str, torch.Tensor], source: str) -> StyleGAN2Config:
    """size, style_dim, n_mlp and channel_multiplier from the tensor shapes (their lr_mlp: the default 0.01)."""
    n_mlp = sum(1 for k in g if re.fullmatch(r"style\.\d+\.weight", k))
    n_rgb = sum(1 for k in g if re.fullmatch(r"to_rgbs\.\d+\.bias", k))
    if not n_mlp or "input.input" not in g or "to_rgb1.bias" not in g:
        raise GencliError(f"{source} is not a rosinality/stylegan2-pytorch generator (no style.*, input.input, to_rgb1)")
    res = 2 ** (n_rgb + 2)
    style_dim = g["style.1.weight"].shape[1]
    widths = {4: g["input.input"].shape[1]}
    for j in range(n_rgb):
        widths[2 ** (j + 3)] = g[f"convs.{2 * j}.conv.weight"].shape[1]
    # their channels: min(16384 * channel_multiplier / r, 512); other channel tables of the same form too
    cmax = widths[4]
    candidates = [16384 * m for m in (2, 1)] + [c * r for r, c in sorted(widths.items())]
    base = next((b for b in candidates if all(min(b // r, cmax) == c for r, c in widths.items())), None)
    if base is None:
        raise GencliError(f"{source}: channels {widths} per resolution are not of the form min(base / r, max)")
    try:
        return StyleGAN2Config(z_dim=style_dim, w_dim=style_dim, img_resolution=res,
                               img_channels=g["to_rgb1.bias"].shape[1], mapping_layers=n_mlp, channel_base=base,
                               channel_max=cmax, num_fp16_res=0, conv_clamp=None,
                               architecture="skip", d_channel_base=base, d_channel_max=cmax, d_num_fp16_res=0,
                               d_conv_clamp=None)
    except GencliError as e:
        raise GencliError(f"{source}: not a StyleGAN2 network gencli can rebuild ({e})") from None


def rosinality_generator_state(g: dict[str, torch.Tensor], config: StyleGAN2Config,
                               latent_avg: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Their Generator's state dict -> ours. style.{i} (i >= 1) -> mapping.layers.{i - 1}; input.input ->
    the constant; conv1/to_rgb1 -> block 0; convs.{2j}, convs.{2j + 1}, to_rgbs.{j} -> block j + 1's conv0,
    conv1, torgb; noises.noise_{i} -> the i-th convolution's noise_const; latent_avg -> w_avg."""
    out = {}
    for i in range(config.mapping_layers):
        for p in ("weight", "bias"):
            out[f"mapping.layers.{i}.{p}"] = g[f"style.{i + 1}.{p}"]
    out["synthesis.blocks.0.const"] = g["input.input"][0]

    def styled(src: str, dst: str):
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = g[f"{src}.noise.weight"].reshape(())
        out[f"{dst}.bias"] = g[f"{src}.activate.bias"]

    def torgb(src: str, dst: str):
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = g[f"{src}.bias"].reshape(-1)

    styled("conv1", "synthesis.blocks.0.conv1")
    torgb("to_rgb1", "synthesis.blocks.0.torgb")
    convs = ["synthesis.blocks.0.conv1"]
    for j in range(len(config.resolutions) - 1):
        styled(f"convs.{2 * j}", f"synthesis.blocks.{j + 1}.conv0")
        styled(f"convs.{2 * j + 1}", f"synthesis.blocks.{j + 1}.conv1")
        torgb(f"to_rgbs.{j}", f"synthesis.blocks.{j + 1}.torgb")
        convs += [f"synthesis.blocks.{j + 1}.conv0", f"synthesis.blocks.{j + 1}.conv1"]
    for i, name in enumerate(convs):
        out[f"{name}.noise_const"] = g[f"noises.noise_{i}"][0, 0]
    if latent_avg is not None:
        out["w_avg"] = latent_avg.reshape(-1)
    return {k: v.float() for k, v in out.items()}


def rosinality_discriminator_state(d: dict[str, torch.Tensor], config: StyleGAN2Config) -> dict[str, torch.Tensor]:
    """Their Discriminator (resnet) -> ours: convs.0 -> blocks.0.fromrgb; convs.{k} (ResBlock conv1, conv2,
    skip) -> blocks.{k - 1}.conv0, conv1, skip; final_conv, final_linear.0, final_linear.1 -> the epilogue's
    conv, fc, out (their blur kernels are the fixed filter)."""
    out = {"blocks.0.fromrgb.weight": d["convs.0.0.weight"], "blocks.0.fromrgb.bias": d["convs.0.1.bias"]}
    for k in range(1, len(config.resolutions)):
        p, q = f"convs.{k}.", f"blocks.{k - 1}."
        out.update({q + "conv0.weight": d[p + "conv1.0.weight"], q + "conv0.bias": d[p + "conv1.1.bias"],
                    q + "conv1.weight": d[p + "conv2.1.weight"], q + "conv1.bias": d[p + "conv2.2.bias"],
                    q + "skip.weight": d[p + "skip.1.weight"]})
    out.update({"epilogue.conv.weight": d["final_conv.0.weight"], "epilogue.conv.bias": d["final_conv.1.bias"],
                "epilogue.fc.weight": d["final_linear.0.weight"], "epilogue.fc.bias": d["final_linear.0.bias"],
                "epilogue.out.weight": d["final_linear.1.weight"], "epilogue.out.bias": d["final_linear.1.bias"]})
    return {k: v.float() for k, v in out.items()}


def _check_kernels(state: dict[str, torch.Tensor], source: str) -> None:
    """Their blur and up-sampling kernels (buffers) must be the [1, 3, 3, 1] filter (times a gain)."""
    expected = fir_kernel(1)[0, 0]
    for key, value in state.items():
        if key.endswith(".kernel") and not (tuple(value.shape) == (4, 4) and value.sum() > 0 and
                                            torch.allclose(value / value.sum(), expected, atol=1e-6)):
            raise GencliError(f"{source}: {key} is not the [1, 3, 3, 1] filter; other filters are not supported")


def from_rosinality(data: dict, source: str):
    """(G, D or None, config, format) from a rosinality/stylegan2-pytorch file: a training checkpoint
    (g_ema, d, ...), a converted one (g_ema, latent_avg) or a bare generator state dict. Without their
    latent_avg, w_avg is the mean w of 4096 seeded random z (as their generate.py computes it)."""
    g = data.get("g_ema", data)
    if not isinstance(g, dict) or not all(isinstance(v, torch.Tensor) for v in g.values()):
        raise GencliError(f"{source}: its g_ema is not a state dict of tensors")
    g = {k.removeprefix("module."): v for k, v in g.items()}
    _check_kernels(g, source)
    config = _rosinality_config(g, source)
    latent_avg = data.get("latent_avg") if isinstance(data.get("latent_avg"), torch.Tensor) else None
    G = build(config)
    try:
        state = rosinality_generator_state(g, config, latent_avg)
    except KeyError as e:
        raise GencliError(f"{source}: not a rosinality/stylegan2-pytorch generator (no {e.args[0]})") from None
    if latent_avg is None:
        state["w_avg"] = G.w_avg
    load_state_checked(G, state, "generator", source)
    if latent_avg is None:
        with torch.no_grad():
            z = torch.randn(4096, config.z_dim, generator=torch.Generator().manual_seed(0))
            G.w_avg.copy_(G.mapping(z).mean(0))
    D = None
    if isinstance(data.get("d"), dict):
        D = build_discriminator(config)
        d = {k.removeprefix("module."): v for k, v in data["d"].items()}
        _check_kernels(d, source)
        try:
            load_state_checked(D, rosinality_discriminator_state(d, config), "discriminator", source)
        except KeyError as e:
            raise GencliError(f"{source}: its d is not a rosinality/stylegan2-pytorch discriminator "
                              f"(no {e.args[0]})") from None
    return G.eval(), D.eval() if D is not None else None, config, ROSINALITY
