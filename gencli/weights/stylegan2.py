"""StyleGAN2 weights from elsewhere into gencli's StyleGAN2 (gencli.models.stylegan2): NVIDIA's network
pickles (stylegan2-ada-pytorch, and the StyleGAN2 networks of the StyleGAN3 release), read by the restricted
unpickler of gencli.weights.safe_pickle without running their code, and rosinality/stylegan2-pytorch's
`.pt` files (torch.load with weights_only=True; their key map is in gencli.weights.stylegan2_rosinality).

NVIDIA's state dict names and ours (res = 4, 8, ..., R; block k is resolution 4 * 2^k; i counts layers):

    mapping.fc{i}.*, mapping.embed.*, mapping.w_avg     -> mapping.layers.{i}.*, mapping.embed.*, w_avg
    synthesis.b{res}.{const,conv0,conv1,torgb,skip}.*    -> synthesis.blocks.{k}.(the same)
    D: b{res}.{fromrgb,conv0,conv1,skip}.* (res = R..8)  -> blocks.{k}.* (k = 0 reads the image)
    D: b4.{fromrgb,conv,fc,out}.*, mapping.fc{i}.*       -> epilogue.*, mapping.layers.{i}.*

Their `resample_filter` buffers (the [1, 3, 3, 1] filter) are checked and dropped: ours is fixed.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import torch

from gencli.checkpoint import save_model
from gencli.errors import GencliError, OptionError
from gencli.files import check_writable, load_state_checked
from gencli.models.stylegan2 import StyleGAN2Config, build, build_discriminator
from gencli.models.stylegan2_layers import fir_kernel
from gencli.weights import safe_pickle
from gencli.weights import stylegan as stylegan_v1
from gencli.weights.stylegan2_rosinality import from_rosinality
from gencli.weights.safe_pickle import Record

_FC = re.compile(r"^(mapping\.)fc(\d+)\.(.*)$")


def _check_filter(key: str, value: torch.Tensor, source: str) -> None:
    expected = fir_kernel(1)[0, 0]
    if tuple(value.shape) != (4, 4) or not torch.allclose(value.float(), expected, atol=1e-6):
        raise GencliError(f"{source}: {key} is not the [1, 3, 3, 1] filter; other filters are not supported")


def nvidia_generator_state(state: dict[str, torch.Tensor], source: str = "the file") -> dict[str, torch.Tensor]:
    """NVIDIA's Generator state dict (names as their modules give them) -> gencli's StyleGAN2 names."""
    out = {}
    for key, value in state.items():
        if key.endswith("resample_filter"):
            _check_filter(key, value, source)
            continue
        if key == "mapping.w_avg":
            out["w_avg"] = value
            continue
        m = _FC.match(key)
        if m:
            out[f"mapping.layers.{m.group(2)}.{m.group(3)}"] = value
            continue
        m = re.match(r"^synthesis\.b(\d+)\.(.*)$", key)
        if m:
            k = int(math.log2(int(m.group(1)))) - 2
            out[f"synthesis.blocks.{k}.{m.group(2)}"] = value
            continue
        out[key] = value  # mapping.embed.*; anything else is reported by the shape check
    return out


def nvidia_discriminator_state(state: dict[str, torch.Tensor], img_resolution: int,
                               source: str = "the file") -> dict[str, torch.Tensor]:
    """NVIDIA's Discriminator state dict -> gencli's names (blocks counted from the input side)."""
    top = int(math.log2(img_resolution))
    out = {}
    for key, value in state.items():
        if key.endswith("resample_filter"):
            _check_filter(key, value, source)
            continue
        m = _FC.match(key)
        if m:
            out[f"mapping.layers.{m.group(2)}.{m.group(3)}"] = value
            continue
        m = re.match(r"^b(\d+)\.(.*)$", key)
        if m and m.group(1) == "4":
            out[f"epilogue.{m.group(2)}"] = value
            continue
        if m:
            out[f"blocks.{top - int(math.log2(int(m.group(1))))}.{m.group(2)}"] = value
            continue
        out[key] = value
    return out


# --- NVIDIA's pickles: the records of their persistent modules, read as data --------------------------------

NVIDIA_ADA = "nvidia-stylegan2-ada-pytorch pickle"
NVIDIA_SG3 = "nvidia-stylegan3-release pickle (stylegan2 network)"
STYLEGAN3_REFUSAL = ("StyleGAN3 (alias-free) networks are not supported yet; StyleGAN2 networks "
                     "(stylegan2-*.pkl) are")


class _Net:
    """A view of one Record (see gencli.weights.safe_pickle): attributes, children and tensors."""

    def __init__(self, record, path: str, source: str):
        if not isinstance(record, Record):
            raise GencliError(f"{source}: {path} is not one of NVIDIA's network records")
        self.record, self.path, self.source = record, path, source
        self.state = record.state

    def attr(self, name: str, default=None):
        return self.state.get(name, default)

    def child(self, name: str) -> "_Net":
        modules = self.modules()
        if name not in modules:
            raise GencliError(f"{self.source}: the network has no {self.path}.{name}; not a StyleGAN2 network")
        return _Net(modules[name], f"{self.path}.{name}", self.source)

    def modules(self) -> dict:
        modules = self.state.get("_modules")
        return modules if isinstance(modules, dict) else {}

    def has(self, name: str) -> bool:
        return self.modules().get(name) is not None

    def kwargs(self) -> dict:
        kwargs = self.state.get("_init_kwargs")
        return dict(kwargs) if isinstance(kwargs, dict) else {}

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The state dict of this module and its children, as torch's state_dict() names it."""
        out: dict[str, torch.Tensor] = {}
        skip = self.state.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, t in (self.state.get(group) or {}).items():
                if t is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(t, torch.Tensor):
                    raise GencliError(f"{self.source}: {self.path}.{name} is not a tensor")
                out[prefix + name] = t.detach().to(torch.float32) if t.is_floating_point() else t.detach()
        for name, child in self.modules().items():
            if child is not None:
                out.update(_Net(child, f"{self.path}.{name}", self.source).tensors(f"{prefix}{name}."))
        return out


def _number(value, what: str, source: str, *, none: bool = False):
    if value is None and none:
        return None
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GencliError(f"{source}: {what} is {value!r}, not a number")
    return value


def _lrelu(net: _Net, source: str) -> None:
    act = net.attr("activation")
    if act != "lrelu":
        raise GencliError(f"{source}: {net.path} uses activation {act!r}; only NVIDIA's default lrelu is supported")


def _is_stylegan3(G: _Net) -> bool:
    if not G.has("synthesis"):
        return False
    syn = G.child("synthesis")
    names = set(syn.modules())
    return syn.has("input") or any(n.startswith("L") and "_" in n for n in names) or \
        "Alias-Free" in str(syn.record.get("module_src", ""))[:4000]


def nvidia_config(G: _Net, D: _Net | None, source: str) -> tuple[StyleGAN2Config, str]:
    """The StyleGAN2Config that NVIDIA's records describe (their attributes first, then their init_kwargs
    with NVIDIA's defaults), and which of their code bases wrote them."""
    num = lambda value, what, **kw: _number(value, what, source, **kw)  # noqa: E731
    kw = G.kwargs()
    syn_kw = dict(kw.get("synthesis_kwargs") or kw)
    mapping, synthesis = G.child("mapping"), G.child("synthesis")
    res = int(num(G.attr("img_resolution"), "img_resolution"))
    if res < 8 or res & (res - 1):
        raise GencliError(f"{source}: img_resolution {res} is not a power of two >= 8")
    resolutions = [2**i for i in range(2, int(math.log2(res)) + 1)]
    blocks = [synthesis.child(f"b{r}") for r in resolutions]
    written_by = NVIDIA_SG3 if "fused_modconv_default" in blocks[0].state else NVIDIA_ADA
    first = blocks[0].child("conv1")
    for layer in [first] + [mapping.child(f"fc{i}") for i in range(int(num(mapping.attr("num_layers"), "num_layers")))]:
        _lrelu(layer, source)
    fc0 = mapping.child("fc0")
    w_dim = int(num(G.attr("w_dim"), "w_dim"))
    layers = int(num(mapping.attr("num_layers"), "mapping num_layers"))
    c_dim = int(num(G.attr("c_dim"), "c_dim"))
    weight = lambda net, name: (net.state.get("_parameters") or {}).get(name)  # noqa: E731
    fp16 = syn_kw.get("num_fp16_res", synthesis.attr("num_fp16_res"))
    if fp16 is None:
        fp16 = sum(bool(b.attr("use_fp16")) for b in blocks)
    g_fields = dict(
        z_dim=int(num(G.attr("z_dim"), "z_dim")), c_dim=c_dim, w_dim=w_dim, img_resolution=res,
        img_channels=int(num(G.attr("img_channels"), "img_channels")), mapping_layers=layers,
        embed_features=int(weight(mapping.child("embed"), "weight").shape[0]) if c_dim else None,
        layer_features=int(weight(fc0, "weight").shape[0]) if layers > 1 else None,
        mapping_lr_mul=float(num(fc0.attr("bias_gain"), "the mapping's lr multiplier")),
        w_avg_beta=float(num(mapping.attr("w_avg_beta", 0.998), "w_avg_beta", none=True) or 0.998),
        channel_base=int(num(syn_kw.get("channel_base", 32768), "channel_base")),
        channel_max=int(num(syn_kw.get("channel_max", 512), "channel_max")),
        num_fp16_res=int(num(fp16, "num_fp16_res")),
        conv_clamp=num(first.attr("conv_clamp"), "conv_clamp", none=True),
        architecture=str(blocks[0].attr("architecture")))
    if D is None:
        d_fields = dict(d_architecture="resnet", d_channel_base=g_fields["channel_base"],
                        d_channel_max=g_fields["channel_max"])
    else:
        d_kw = D.kwargs()
        d_blocks = [D.child(f"b{r}") for r in resolutions[::-1][:-1]]
        epilogue = D.child("b4")
        mbstd = epilogue.child("mbstd") if epilogue.has("mbstd") else None
        for net in [d_blocks[0].child("conv0"), epilogue.child("conv")]:
            _lrelu(net, source)
        d_fp16 = d_kw.get("num_fp16_res")
        d_fields = dict(
            d_architecture=str(d_blocks[0].attr("architecture")),
            d_channel_base=int(num(d_kw.get("channel_base", 32768), "D channel_base")),
            d_channel_max=int(num(d_kw.get("channel_max", 512), "D channel_max")),
            d_num_fp16_res=int(num(d_fp16 if d_fp16 is not None else sum(bool(b.attr("use_fp16")) for b in d_blocks),
                                   "D num_fp16_res")),
            d_conv_clamp=num(d_blocks[0].child("conv0").attr("conv_clamp"), "D conv_clamp", none=True),
            mbstd_group_size=(None if mbstd is None or mbstd.attr("group_size") is None
                              else int(num(mbstd.attr("group_size"), "mbstd group size"))),
            mbstd_num_channels=int(num(mbstd.attr("num_channels"), "mbstd channels")) if mbstd is not None else 0,
            cmap_dim=int(num(epilogue.attr("cmap_dim"), "cmap_dim")) or None if c_dim else None)
        if c_dim:
            d_map = D.child("mapping")
            d_fields.update(d_mapping_layers=int(num(d_map.attr("num_layers"), "D mapping num_layers")),
                            d_mapping_lr_mul=float(num(d_map.child("fc0").attr("bias_gain"), "D mapping lr multiplier")))
    try:
        return StyleGAN2Config(**g_fields, **d_fields), written_by
    except GencliError as e:
        raise GencliError(f"{source}: not a StyleGAN2 network gencli can rebuild ({e})") from None


def from_nvidia_pickle(data, source: str, network: str = "G_ema"):
    """(G, D or None, config, format) from the unpickled snapshot dict of NVIDIA's training loop (records
    of G, D, G_ema, augment_pipe, training_set_kwargs)."""
    if not isinstance(data, dict) or not any(isinstance(data.get(k), Record) for k in ("G", "G_ema", "D")):
        raise GencliError(f"{source} is not an NVIDIA network pickle (a dict with G, D and G_ema)")
    if network not in ("G", "G_ema"):
        raise GencliError(f"--network must be G or G_ema, got {network!r}")
    if not isinstance(data.get(network), Record):
        raise GencliError(f"{source} holds no {network} network")
    try:
        G_net = _Net(data[network], network, source)
        if _is_stylegan3(G_net):
            raise GencliError(f"{source}: {STYLEGAN3_REFUSAL}")
        D_net = _Net(data["D"], "D", source) if isinstance(data.get("D"), Record) else None
        config, written_by = nvidia_config(G_net, D_net, source)
        G = build(config)
        load_state_checked(G, nvidia_generator_state(G_net.tensors(), source), network, source)
        D = None
        if D_net is not None:
            D = build_discriminator(config)
            load_state_checked(D, nvidia_discriminator_state(D_net.tensors(), config.img_resolution, source), "D", source)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError, RuntimeError) as e:  # malformed records
        raise GencliError(f"{source}: not a StyleGAN2 network gencli can read ({e.__class__.__name__}: "
                          f"{str(e)[:120]})") from None
    return G.eval(), D.eval() if D is not None else None, config, written_by


# --- the importer --------------------------------------------------------------------------------------------

def _torch_file(path: Path):
    """A torch.save file read with torch.load(weights_only=True); the argparse Namespace of rosinality's
    training checkpoints ("args": plain values) is the one class allowed besides tensors and containers."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GencliError(f"{path} is not a PyTorch file that can be loaded safely ({e.__class__.__name__}); "
                          "files that need arbitrary unpickling are refused") from None


def read_weights(path: Path) -> tuple[str, object]:
    """("nvidia", the snapshot dict) for an NVIDIA network pickle, ("torch", the object) for a torch.save
    file (rosinality's); one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GencliError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":  # torch.save's zip format
        return "torch", _torch_file(path)
    data = safe_pickle.load(path)
    if isinstance(data, int):  # torch.save's legacy format starts with a pickled magic number
        return "torch", _torch_file(path)
    return "nvidia", data


def convert(path: Path, network: str = "G_ema", read: tuple[str, object] | None = None):
    """(G, D or None, config, extra metadata) of a StyleGAN2 file: an NVIDIA pickle or a rosinality .pt
    (`read`: what read_weights already returned for it)."""
    path = Path(path)
    kind, data = read or read_weights(path)
    if kind == "nvidia":
        G, D, config, written_by = from_nvidia_pickle(data, str(path), network)
        extra = {"z_source": "numpy"}  # their gen_images.py: RandomState(seed).randn(1, z_dim)
    elif not isinstance(data, dict):
        raise GencliError(f"{path} holds no state dict (a {type(data).__name__})")
    else:
        try:
            G, D, config, written_by = from_rosinality(data, str(path))
        except (AttributeError, TypeError, KeyError, ValueError, IndexError, RuntimeError) as e:
            raise GencliError(f"{path}: not a rosinality/stylegan2-pytorch network gencli can read "
                              f"({e.__class__.__name__}: {str(e)[:120]})") from None
        network, extra = "g_ema", {}
    extra = {"imported_from": path.name, "format": written_by, "network": network,
             "architecture": config.architecture, "discriminator": D is not None, **extra}
    return G, D, config, extra


def import_weights(file, *, out, network: str = "G_ema", class_names: list[str] | None = None,
                   resolution: int | None = None) -> Path:
    """Convert StyleGAN weights into a gencli checkpoint, the format detected from the file: an NVIDIA
    pickle or a rosinality/stylegan2-pytorch .pt become a stylegan2 checkpoint holding the generator
    (G_ema by default) and, where the file has one, the discriminator; a rosinality/style-based-gan-pytorch
    (StyleGAN1) file, which does not record its resolution, a stylegan checkpoint cut at `resolution`."""
    file, out = Path(file), check_writable(Path(out))
    kind, data = read_weights(file)
    if kind == "torch" and stylegan_v1.is_v1(data):
        if resolution is None:
            raise OptionError("a rosinality/style-based-gan-pytorch (StyleGAN1) file does not record its "
                              "resolution: give --resolution (the size it was trained to, e.g. 256)")
        return stylegan_v1.save_v1(stylegan_v1.v1_state(data, file), file, resolution=resolution, out=out)
    if resolution is not None:
        raise OptionError("--resolution is for rosinality StyleGAN1 files only; this file records its own")
    G, D, config, extra = convert(file, network, (kind, data))
    if class_names is not None:
        if len(class_names) != config.c_dim:
            raise GencliError(f"{len(class_names)} class names for a network of {config.c_dim} classes")
        extra["class_names"] = list(class_names)
    return save_model(out, "stylegan2", G, config, epoch=0, seed=0, extra=extra, discriminator=D)
