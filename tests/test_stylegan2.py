"""gencli's StyleGAN2 (NVIDIA's networks): the interface the shared StyleGAN code uses, checkpoints with a
discriminator beside G, and (below) the import of NVIDIA's pickles, checked against images their code drew."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from typer.testing import CliRunner

from gencli.api import import_stylegan
from gencli.checkpoint import load_discriminator, load_model, read_metadata, save_model
from gencli.cli import app
from gencli.errors import ConfigError, GencliError, OptionError
from gencli.models import stylegan2 as sg2
from gencli.weights import safe_pickle
from gencli.weights.stylegan2 import convert, from_nvidia_pickle

TINY = dict(z_dim=8, w_dim=8, img_resolution=16, mapping_layers=2, channel_base=64, channel_max=16,
            d_channel_base=64, d_channel_max=16, num_fp16_res=1)


def tiny(**overrides) -> sg2.StyleGAN2Config:
    return sg2.StyleGAN2Config(**{**TINY, **overrides})


@pytest.mark.parametrize("arch", ["skip", "resnet", "orig"])
def test_generator_interface(arch):
    torch.manual_seed(0)
    G = sg2.build(tiny(architecture=arch)).eval()
    assert G.num_ws == 6 and G.w_avg.shape == (8,)
    assert G.synthesis.layer_resolutions == [4, 8, 8, 16, 16]
    z = torch.randn(3, 8)
    with torch.no_grad():
        w = G.mapping(z)
        assert w.shape == (3, 8)
        ws = G.broadcast(w)
        assert ws.shape == (3, 6, 8)
        img = G.synthesis(ws)
        assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32
        # const noise is the stored buffer: the same images twice; random differs once strengths are nonzero
        assert torch.equal(img, G.synthesis(ws, noise_mode="const"))
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
        const = G.synthesis(ws)
        assert not torch.allclose(const, G.synthesis(ws, noise_mode="random"))
        assert not torch.allclose(const, G.synthesis(ws, noise_mode="none"))
        # noise given: used as is, the stored buffers as a list give the const images
        stored = [m.noise_const.expand(3, 1, -1, -1) for m in G.modules() if isinstance(m, sg2.ModulatedConv2d)]
        assert torch.allclose(G.synthesis(ws, noise=stored), const, atol=1e-6)
        zeros = [torch.zeros(3, 1, r, r) for r in G.synthesis.layer_resolutions]
        assert torch.allclose(G.synthesis(ws, noise=zeros), G.synthesis(ws, noise_mode="none"), atol=1e-6)
        assert torch.allclose(G(z), G.synthesis(ws), atol=1e-6)


def test_truncation_and_cutoff():
    torch.manual_seed(0)
    G = sg2.build(tiny()).eval()
    G.w_avg.normal_()
    w = torch.randn(2, 8)
    assert G.truncate(w, 1.0) is w
    assert torch.allclose(G.truncate(w, 0.0), G.w_avg.expand(2, -1))
    assert torch.allclose(G.truncate(G.broadcast(w), 0.5), G.broadcast(G.w_avg + 0.5 * (w - G.w_avg)))
    z = torch.randn(2, 8)
    with torch.no_grad():
        ws = G.broadcast(G.mapping(z))
        cut = torch.cat([G.truncate(ws[:, :2], 0.5), ws[:, 2:]], 1)
        assert torch.allclose(G(z, truncation=0.5, truncation_cutoff=2), G.synthesis(cut), atol=1e-6)
        assert not torch.allclose(G(z, truncation=0.5), G.synthesis(cut), atol=1e-4)


def test_conditional_needs_labels():
    G = sg2.build(tiny(c_dim=3))
    assert G.config.num_classes == 3
    with pytest.raises(GencliError, match="conditional"):
        G.mapping(torch.randn(2, 8))
    a, b = G.mapping(torch.randn(1, 8).expand(2, -1), torch.tensor([0, 2]))
    assert not torch.allclose(a, b)
    D = sg2.build_discriminator(tiny(c_dim=3))
    assert D(torch.zeros(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])).shape == (4, 1)


@pytest.mark.parametrize("arch", ["resnet", "skip", "orig"])
def test_discriminator(arch):
    D = sg2.build_discriminator(tiny(d_architecture=arch, mbstd_group_size=2))
    assert len(D.blocks) == 2 and D.blocks[0].fromrgb is not None  # blocks[0] reads the image
    assert D(torch.zeros(4, 3, 16, 16)).shape == (4, 1)


@pytest.mark.parametrize("field, value, match", [
    ("img_resolution", 48, "power of two"), ("architecture", "fancy", "skip, resnet, orig"),
    ("conv_clamp", -1.0, "non-negative"), ("c_dim", 1, "at least 2"), ("mapping_lr_mul", 0.0, "positive")])
def test_config_errors(field, value, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**{field: value})


def test_checkpoint_keeps_discriminator(tmp_path):
    torch.manual_seed(0)
    config = tiny()
    G, D = sg2.build(config).eval(), sg2.build_discriminator(config).eval()
    path = save_model(tmp_path / "m.safetensors", "stylegan2", G, config, epoch=0, seed=0, discriminator=D)
    G2, meta = load_model(path, "stylegan2")
    assert meta["family"] == "stylegan2" and G2.config == config
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(G(z), G2(z))
    D2, _ = load_discriminator(path)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(D(x), D2(x))
    only_g = save_model(tmp_path / "g.safetensors", "stylegan2", G, config, epoch=0, seed=0)
    with pytest.raises(GencliError, match="holds no discriminator"):
        load_discriminator(only_g)
    # a discriminator of another config is refused before anything is loaded
    other = sg2.build_discriminator(tiny(d_channel_max=8))
    bad = save_model(tmp_path / "bad.safetensors", "stylegan2", G, config, epoch=0, seed=0, discriminator=other)
    with pytest.raises(GencliError, match="discriminator weights do not match"):
        load_model(bad)
    assert read_metadata(path)["config"]["conv_clamp"] == 256.0


# --- NVIDIA's pickles -------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
PICKLES = ["sg3_ffhq_like", "ada_cifar_like", "ada_resnet", "sg3_orig"]
FILES = {**{name: f"{name}.pkl" for name in PICKLES}, "rosinality_v2": "rosinality_v2.pt"}


def nvidia_z(seed: int, z_dim: int) -> torch.Tensor:
    """z as NVIDIA's gen_images.py / generate.py draw it for a seed."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Their PNG conversion: x * 127.5 + 128, clamped, (N, H, W, C)."""
    return (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module", params=list(FILES))
def imported(request, tmp_path_factory):
    """(name, checkpoint path) of a fixture file imported through the CLI."""
    name = request.param
    out = tmp_path_factory.mktemp(name) / f"{name}.safetensors"
    result = CliRunner().invoke(app, ["import-weights", "stylegan", str(FIXTURES / FILES[name]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert ("Imported g_ema of a rosinality/stylegan2-pytorch" if name.startswith("rosinality")
            else "Imported G_ema of a nvidia-") in result.output
    return name, out


@pytest.mark.parametrize("fast_roads_everywhere", [False, True])
def test_same_images_as_nvidia(imported, fast_roads_everywhere, monkeypatch):
    """The acceptance test of the import: every seed, truncation, cutoff and noise mode their code drew
    (reference images made with NVIDIA's networks; see fixtures/stylegan2/README.md) within 3/255; also
    with the CPU's fast convolutions (phases, Winograd) taken at every layer, not only the large ones."""
    from gencli.models import cpu_convolutions

    if fast_roads_everywhere:
        monkeypatch.setattr(cpu_convolutions, "POLYPHASE_FROM", 1)
        monkeypatch.setattr(cpu_convolutions, "WINOGRAD_MIN_CHANNELS", 1)
    name, path = imported
    G, meta = load_model(path, "stylegan2")
    if not name.startswith("rosinality"):
        assert meta["extra"]["z_source"] == "numpy" and meta["extra"]["network"] == "G_ema"
    with safe_open(str(FIXTURES / f"{name}.reference.safetensors"), framework="pt") as f:
        cases = json.loads(f.metadata()["cases"])
        reference = {k: f.get_tensor(k) for k in f.keys()}
    worst = 0
    with torch.no_grad():
        for case in cases:
            images = []
            for seed, label in zip(case["seeds"], case["labels"] or [None] * len(case["seeds"])):
                labels = None if label is None else torch.tensor([label])
                images.append(G(nvidia_z(seed, G.config.z_dim), labels, truncation=case["truncation"],
                                truncation_cutoff=case["truncation_cutoff"], noise_mode=case["noise_mode"]))
            ours, theirs = to_uint8(torch.cat(images)).int(), reference[case["name"]].int()
            assert ours.shape == theirs.shape
            worst = max(worst, (ours - theirs).abs().max().item())
            assert (ours - theirs).abs().max() <= 3, (name, case["name"])
        # the cases differ from one another, so each checks something
        assert not torch.equal(reference["psi1_const"], reference["psi07_const"])
        if "psi1_none" in reference:
            assert not torch.equal(reference["psi07_const"], reference["psi07_cut4_const"])
            assert not torch.equal(reference["psi1_const"], reference["psi1_none"])
        D, _ = load_discriminator(path)
        x = reference["psi1_const"].permute(0, 3, 1, 2).float() / 127.5 - 1
        labels = reference["d_labels"] if G.config.c_dim else None
        assert torch.allclose(D(x, labels), reference["d_scores"], atol=1e-4, rtol=1e-4)
    print(f"{name}: largest difference {worst}/255")


def test_import_takes_the_chosen_network(tmp_path):
    """G_ema by default; --network G takes the training generator (the fixtures' two differ)."""
    pkl = FIXTURES / "sg3_orig.pkl"
    ema = import_stylegan(pkl, out=tmp_path / "ema.safetensors")
    raw = import_stylegan(pkl, out=tmp_path / "g.safetensors", network="G")
    (G1, _), (G2, meta) = load_model(ema), load_model(raw)
    assert meta["extra"]["network"] == "G"
    z = nvidia_z(0, 16)
    with torch.no_grad():
        assert not torch.allclose(G1(z), G2(z))
    with pytest.raises(OptionError, match="--network"):
        import_stylegan(pkl, out=tmp_path / "x.safetensors", network="D")


def test_reload_gives_the_same_images(imported, tmp_path):
    """The converted checkpoint reloads through load_model and draws what the converter built."""
    name, path = imported
    G, D, config, _ = convert(FIXTURES / FILES[name])
    G2, meta = load_model(path)
    assert G2.config == config and meta["family"] == "stylegan2"
    z = torch.randn(2, config.z_dim)
    labels = torch.tensor([1, 2]) if config.c_dim else None
    with torch.no_grad():
        assert torch.equal(G(z, labels, truncation=0.7), G2(z, labels, truncation=0.7))
    info = CliRunner().invoke(app, ["info", str(path)])
    assert info.exit_code == 0
    assert f"{config.img_resolution} px, {config.architecture}" in info.output
    assert f"source    {FILES[name]} (" in info.output


# --- safety ------------------------------------------------------------------------------------------------

class RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def fake_persistence_pickle(module_src: str) -> bytes:
    """A pickle in NVIDIA's format (their persistence record, as torch_utils.persistence writes it) whose
    embedded module source is `module_src`, made without their code: a stand-in module of that name."""
    import types

    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: gencli reads the record as data
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class Net:
        def __reduce__(self):
            meta = dict(type="class", version=4, module_src=module_src, class_name="Generator",
                        state={"_modules": {}, "z_dim": 8})
            return _reconstruct_persistent_obj, (meta,)

    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"], sys.modules["torch_utils.persistence"] = types.ModuleType("torch_utils"), persistence
    try:
        return pickle.dumps({"G": Net(), "D": Net(), "G_ema": Net()})
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_a_pickle_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": RunsACommand(marker)}))
    result = CliRunner().invoke(app, ["import-weights", "stylegan", str(evil), "-o", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 1
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"the global {os.system.__module__}.system, which could run code" in message


def test_embedded_module_source_is_never_run(tmp_path):
    marker = tmp_path / "written"
    source = f"open({str(marker)!r}, 'w').write('the embedded source ran')\\nclass Generator: pass\\n"
    pkl = tmp_path / "network.pkl"
    pkl.write_bytes(fake_persistence_pickle(source))
    result = CliRunner().invoke(app, ["import-weights", "stylegan", str(pkl), "-o", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 1
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    assert len(result.output.strip().splitlines()) == 1 and "not a StyleGAN2 network" in result.output
    # read as data: the record holds the source as text
    data = safe_pickle.load(pkl)
    assert isinstance(data["G_ema"], safe_pickle.Record) and data["G_ema"]["module_src"] == source


def test_stylegan3_networks_are_refused_in_one_line(tmp_path):
    data = safe_pickle.load(FIXTURES / "sg3_orig.pkl")
    synthesis = data["G_ema"].state["_modules"]["synthesis"]
    synthesis.state["_modules"]["input"] = synthesis.state["_modules"].pop("b4")  # StyleGAN3's SynthesisInput
    with pytest.raises(GencliError, match=r"StyleGAN3 \(alias-free\) networks are not supported yet; "
                                          r"StyleGAN2 networks \(stylegan2-\*\.pkl\) are"):
        from_nvidia_pickle(data, "stylegan3-r.pkl")


def test_resolution_is_for_stylegan1_only(tmp_path):
    result = CliRunner().invoke(app, ["import-weights", "stylegan", str(FIXTURES / "sg3_orig.pkl"),
                                      "--resolution", "16", "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "--resolution is for rosinality StyleGAN1 files only" in result.output


def test_stylegan1_files_still_need_their_resolution(tmp_path):
    from test_stylegan import rosinality_v1_state

    src = tmp_path / "stylegan1.model"
    torch.save({"g_running": rosinality_v1_state(), "generator": {}, "step": 2}, src)
    result = CliRunner().invoke(app, ["import-weights", "stylegan", str(src), "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "does not record its resolution: give --resolution" in result.output
    assert len(result.output.strip().splitlines()) == 1



def test_unpickler_allows_numpy_1_names_and_refuses_the_rest():
    import io

    unpickler = safe_pickle.RestrictedUnpickler(io.BytesIO(b""))
    assert unpickler.find_class("numpy.core.multiarray", "scalar") is unpickler.find_class("numpy._core.multiarray", "scalar")
    assert unpickler.find_class("__builtin__", "set") is set  # protocol 2's name for it
    for module, name in [("builtins", "eval"), ("torch", "load"), ("numpy", "load"), ("subprocess", "Popen")]:
        with pytest.raises(safe_pickle.Refused):
            unpickler.find_class(module, name)


def test_gradients_flow_for_fine_tuning():
    """With autograd on (training), every op is out of place and G and D get gradients everywhere."""
    torch.manual_seed(0)
    config = tiny(architecture="resnet", c_dim=3)
    G, D = sg2.build(config), sg2.build_discriminator(config)
    labels = torch.tensor([0, 1, 2, 0])
    score = D(G(torch.randn(4, 8), labels, noise_mode="random"), labels).sum()
    score.backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert G.synthesis.blocks[-1].conv1.weight.grad.abs().sum() > 0


def test_rosinality_generator_alone(tmp_path):
    """A bare g_ema state dict (no latent_avg, no d): w_avg is the mean w of seeded random z; no D kept."""
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(FIXTURES / "rosinality_v2.pt", map_location="cpu", weights_only=True)
    bare = tmp_path / "g_ema.pt"
    torch.save(ckpt["g_ema"], bare)
    out = import_stylegan(bare, out=tmp_path / "g.safetensors")
    G, meta = load_model(out)
    assert meta["extra"]["discriminator"] is False and meta["extra"]["format"] == "rosinality/stylegan2-pytorch"
    with torch.no_grad():
        w = G.mapping(torch.randn(4096, 16, generator=torch.Generator().manual_seed(0))).mean(0)
    assert torch.allclose(G.w_avg, w, atol=1e-5)
    with pytest.raises(GencliError, match="holds no discriminator"):
        load_discriminator(out)


def test_tensorflow_and_foreign_pickles_are_refused_in_one_line(tmp_path):
    tf = tmp_path / "stylegan2-ffhq-config-f.pkl"
    tf.write_bytes(b"cdnnlib.tflib.network\nNetwork\n)\x81.")  # protocol 0: the global, then an instance
    with pytest.raises(GencliError, match="TensorFlow pickle .* only the PyTorch pickles"):
        import_stylegan(tf, out=tmp_path / "x.safetensors")
    other = tmp_path / "list.pkl"
    other.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(GencliError, match="not an NVIDIA network pickle"):
        import_stylegan(other, out=tmp_path / "x.safetensors")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(GencliError, match="is not a readable network pickle"):
        import_stylegan(junk, out=tmp_path / "x.safetensors")


def test_stylegan_commands_draw_from_an_imported_network(tmp_path):
    path = import_stylegan(FIXTURES / "ada_cifar_like.pkl", out=tmp_path / "cifar.safetensors")
    for args in (["sample", "stylegan", "-c", path, "--seeds", "0-3", "--label", "3", "-o", tmp_path / "s.png"],
                 ["style-mix", "-c", path, "--rows", "0,1", "--cols", "2", "-o", tmp_path / "m.png"],
                 ["interpolate", "-c", path, "--seeds", "0,1", "--steps", "3", "-o", tmp_path / "i.gif"]):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        assert Path(args[-1]).stat().st_size > 0
def _nonzero(G):
    """Biases, noise strengths and w_avg drawn nonzero, so every term of the layers counts."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.normal_(0, 0.5)
    return G


def test_transposed_convolution_by_phases():
    from gencli.models.cpu_convolutions import CHANNELS_LAST, conv_transpose_phases

    torch.manual_seed(0)
    for h, w in ((1, 1), (5, 7), (8, 8)):
        x = torch.randn(1, 6, h, w).contiguous(memory_format=CHANNELS_LAST)
        weight = torch.randn(6, 4, 3, 3)
        ref = F.pad(F.conv_transpose2d(x, weight, stride=2), (1, 1, 1, 1))
        out = conv_transpose_phases(x, weight)
        assert out.shape == ref.shape == (1, 4, 2 * h + 3, 2 * w + 3)
        assert out.is_contiguous(memory_format=CHANNELS_LAST)
        assert (out - ref).abs().max() < 1e-5


def test_winograd_convolution_is_the_3x3_convolution():
    """F(2x2, 3x3) with the scales on the image's channels equals F.conv2d with the scaled weight, for
    square and oblong images, more output channels than input and the reverse."""
    from gencli.models.cpu_convolutions import CHANNELS_LAST, winograd_conv3x3, winograd_weight

    torch.manual_seed(0)
    for (h, w), (cin, cout) in (((4, 4), (3, 5)), ((8, 12), (7, 4)), ((16, 16), (16, 16))):
        x = torch.randn(1, cin, h, w).contiguous(memory_format=CHANNELS_LAST)
        weight, bias = torch.randn(cout, cin, 3, 3), torch.randn(cout)
        s, d = torch.rand(cin) + 0.5, torch.rand(cout) + 0.5
        ref = F.conv2d(x, weight * s[None, :, None, None] * d[:, None, None, None], bias, padding=1)
        out = winograd_conv3x3(x, winograd_weight(weight), s, d, bias)
        assert out.shape == ref.shape == (1, cout, h, w) and out.is_contiguous(memory_format=CHANNELS_LAST)
        assert (out - ref).abs().max() < 1e-5 * ref.abs().max()


@pytest.mark.parametrize("arch, clamp, phases_from, winograd_from", [
    ("skip", 256.0, 128, 128), ("skip", 0.3, 128, 1), ("resnet", 0.3, 1, 1), ("orig", None, 1, 128),
    ("skip", 0.3, 1, 128)])
def test_cpu_inference_road_is_the_same_function(arch, clamp, phases_from, winograd_from, monkeypatch):
    """No-grad CPU synthesis (one image at a time, channels-last, folded weights; transposed convolutions
    by phases from `phases_from` px, Winograd 3x3 convolutions from `winograd_from` channels) equals the
    batched road autograd takes, with the clamp active or not, for every noise mode and for given noise."""
    from gencli.models import cpu_convolutions
    from gencli.models.stylegan2_layers import cpu_inference

    monkeypatch.setattr(cpu_convolutions, "POLYPHASE_FROM", phases_from)
    monkeypatch.setattr(cpu_convolutions, "WINOGRAD_MIN_CHANNELS", winograd_from)

    torch.manual_seed(0)
    G = _nonzero(sg2.build(tiny(architecture=arch, conv_clamp=clamp)).eval())
    ws = torch.randn(3, G.num_ws, 8)
    noise = [torch.randn(3, 1, r, r) for r in G.synthesis.layer_resolutions]
    for kwargs in (dict(), dict(noise_mode="none"), dict(noise=noise)):
        with torch.enable_grad():
            assert not cpu_inference(ws)
            ref = G.synthesis(ws, **kwargs)
        with torch.no_grad():
            assert cpu_inference(ws)
            fast = G.synthesis(ws, **kwargs)
        assert fast.shape == ref.shape and fast.is_contiguous()
        assert (fast - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max().item())
    if clamp == 0.3:  # the clamp bounds what each layer gives the next; images still vary
        assert not torch.allclose(fast[0], fast[1])
    # weights changed in place (an optimizer step, a load) reach the next images
    with torch.no_grad():
        G.synthesis.blocks[1].conv0.weight.add_(torch.randn_like(G.synthesis.blocks[1].conv0.weight))
        fast2 = G.synthesis(ws)
    ref2 = G.synthesis(ws)
    assert not torch.allclose(fast2, fast, atol=1e-4)
    assert (fast2 - ref2).abs().max() < 1e-5 * max(1.0, ref2.abs().max().item())


def test_training_road_backpropagates():
    torch.manual_seed(0)
    G = _nonzero(sg2.build(tiny()))
    img = G(torch.randn(2, 8))
    img.square().mean().backward()
    grads = {n: p.grad for n, p in G.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["synthesis.blocks.2.conv0.weight"].abs().sum() > 0
    assert grads["mapping.layers.0.weight"].abs().sum() > 0


def test_traced_synthesis_keeps_the_batch_free():
    """Tracing (export) records the batched road, not the per-image CPU loop: a trace made with two
    images runs three."""
    torch.manual_seed(0)
    G = _nonzero(sg2.build(tiny()).eval())
    with torch.no_grad():
        traced = torch.jit.trace(G.synthesis, (torch.randn(2, G.num_ws, 8),), check_trace=False)
        ws = torch.randn(3, G.num_ws, 8)
        assert torch.allclose(traced(ws), G.synthesis(ws), atol=1e-5)
