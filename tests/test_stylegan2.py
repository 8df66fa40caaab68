"""gencli's StyleGAN2 (NVIDIA's networks): the interface the shared StyleGAN code uses, checkpoints with a
discriminator beside G, and (below) the import of NVIDIA's pickles, checked against images their code drew."""

from __future__ import annotations

import pytest
import torch

from gencli.checkpoint import load_discriminator, load_model, read_metadata, save_model
from gencli.errors import ConfigError, GencliError
from gencli.models import stylegan2 as sg2

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


def _nonzero(G):
    """Biases, noise strengths and w_avg drawn nonzero, so every term of the layers counts."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.normal_(0, 0.5)
    return G


@pytest.mark.parametrize("arch, clamp", [("skip", 256.0), ("skip", 0.3), ("resnet", 0.3), ("orig", None)])
def test_cpu_inference_road_is_the_same_function(arch, clamp):
    """No-grad CPU synthesis (one image at a time, channels-last, folded weights) equals the batched
    road autograd takes, with the clamp active or not, for every noise mode and for given noise."""
    from gencli.models.stylegan2_layers import cpu_inference

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
