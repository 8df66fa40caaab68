"""StyleGAN: layers against hand-computed values, truncation, style mixing, EMA, losses, the CLI end to
end on tiny configs, transfer learning with freezing, weight import, bad input, class-conditional
training, DiffAugment and the precision option."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import one_line_error, run
from gencli.checkpoint import load_model, load_resume
from gencli.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss
from gencli import api
from gencli.errors import GencliError
from gencli.images import to_unit
from gencli.inference import stylegan as sg_infer
from gencli.models import stylegan as sg
from gencli.training import common
from gencli.training import augment as sg_aug
from gencli.training import stylegan as sg_train
from gencli.weights import stylegan as sg_weights

TINY = dict(resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2)
TINY_FLAGS = ["--resolution", 16, "--widths", "16,8,8", "--z-dim", 8, "--w-dim", 8, "--mapping-layers", 2,
              "--batch-size", 8, "--tick-kimg", 0.032, "--r1-every", 2, "--device", "cpu"]


def grid_size(rows, cols, cell=16, pad=2):
    return cols * (cell + pad) + pad, rows * (cell + pad) + pad


def tiny_generator(seed=0):
    torch.manual_seed(seed)
    G = sg.Generator(sg.StyleGANConfig(**TINY))
    with torch.no_grad():  # noise weights start at 0; make them matter, and move w_avg off the origin
        for name, p in G.named_parameters():
            if "noise" in name:
                p.normal_()
        G.w_avg.normal_()
    return G.eval()


@pytest.fixture(scope="module")
def sg_run(data_dir, tmp_path_factory):
    """A tiny run of 2 ticks of 32 images (4 steps each, R1 every 2 steps) on the synthetic MNIST."""
    out = tmp_path_factory.mktemp("stylegan") / "run"
    api.train_stylegan(data="mnist", data_dir=data_dir, run_dir=out, **TINY, batch_size=8, kimg=0.064, tick_kimg=0.032,
             r1_every=2, device="cpu")
    return out


# --- layers against hand-computed values ---------------------------------------------------------

def test_equal_linear_scales_weight_and_bias_at_run_time():
    layer = sg.EqualLinear(4, 2, gain=2.0, lr_mul=0.5)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, -1.0, 2.0], [0.5, 0.5, 0.5, 0.5]]))
        layer.bias.copy_(torch.tensor([1.0, -2.0]))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # scale = gain * lr_mul / sqrt(in) = 2 * 0.5 / 2 = 0.5; bias * lr_mul = (0.5, -1)
    expected = torch.tensor([[0.5 * (1 - 3 + 8) + 0.5, 0.5 * 0.5 * 10 - 1.0]])
    assert torch.allclose(layer(x), expected)
    # Stored weights are N(0, 1 / lr_mul^2), so the applied weight starts at N(0, gain^2 / in) whatever lr_mul.
    big = sg.EqualLinear(1000, 1000, lr_mul=0.01)
    assert big.weight.std().item() == pytest.approx(100, rel=0.02)
    assert (big.weight * big.scale).std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.02)


def test_equal_conv_uses_he_constant():
    conv = sg.EqualConv2d(2, 1, 3)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.25)
    x = torch.ones(1, 2, 3, 3)
    out = conv(x)
    c = math.sqrt(2) / math.sqrt(2 * 9)  # gain / sqrt(fan_in) = 1/3
    assert out.shape == (1, 1, 3, 3)
    assert out[0, 0, 1, 1].item() == pytest.approx(18 * c + 0.25)  # all 2 * 9 taps inside
    assert out[0, 0, 0, 0].item() == pytest.approx(8 * c + 0.25)  # corner: 2 * 4 taps


def test_adain_normalizes_then_applies_style():
    adain = sg.AdaIN(1, 2)
    with torch.no_grad():  # A(w) = (y_s, y_b) = (w0, w1): applied weight identity, bias 0
        adain.affine.weight.copy_(torch.eye(2) / adain.affine.scale)
        adain.affine.bias.zero_()
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    w = torch.tensor([[2.0, 0.5]])
    mean, std = 2.5, math.sqrt(1.25)  # population std over the 4 pixels
    expected = torch.tensor([2 * (v - mean) / std + 0.5 for v in (1, 2, 3, 4)]).view(1, 1, 2, 2)
    assert torch.allclose(adain(x, w), expected, atol=1e-5)
    fresh = sg.AdaIN(3, 4)  # A starts at y_s = 1, y_b = 0: plain instance norm
    assert torch.equal(fresh.affine.bias * fresh.affine.lr_mul, torch.tensor([1.0, 1, 1, 0, 0, 0]))


def test_minibatch_stddev_appends_group_std():
    x = torch.zeros(4, 2, 4, 4)
    x[1] = 2.0  # groups of 4 images: image i of each group is x[i]; std over {0, 2, 0, 0} is sqrt(0.75)
    y = sg.minibatch_stddev(x, 4)
    assert y.shape == (4, 3, 4, 4)
    assert torch.allclose(y[:, 2], torch.full((4, 4, 4), math.sqrt(0.75 + 1e-8)))


def test_minibatch_stddev_groups_a_batch_of_64_in_fours():
    # The training batch: 16 groups of 4, image i in group i mod 16 (strided, as in the official code).
    x = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    y = sg.minibatch_stddev(x, 4)[:, 3]
    for j in range(16):
        group = x[j::16]
        expected = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(y[j::16], expected.expand(4, 4, 4))
    assert y[:, 0, 0].unique().numel() == 16


def test_modulated_conv_scales_inputs_then_normalizes_each_output_channel():
    conv = sg.ModulatedConv2d(2, 3, w_dim=2)
    with torch.no_grad():  # s = A(w) = w: applied weight identity, bias 0
        conv.affine.weight.copy_(torch.eye(2) / conv.affine.scale)
        conv.affine.bias.zero_()
    x, w = torch.randn(1, 2, 5, 5), torch.tensor([[2.0, -0.5]])
    weight = conv.weight * conv.scale
    modulated = weight * w.view(1, 2, 1, 1)  # w'_ijk = s_i w_ijk
    expected = F.conv2d(x, modulated / modulated.pow(2).sum((1, 2, 3), keepdim=True).sqrt(), padding=1)
    assert torch.allclose(conv(x, w), expected, atol=1e-5)
    # Demodulation keeps unit-variance inputs at about unit variance, whatever the style's scale.
    x = torch.randn(64, 2, 16, 16)
    assert conv(x, 100 * w.expand(64, -1)).std().item() == pytest.approx(1.0, rel=0.15)


def test_skip_generator_sums_upsampled_rgb_of_every_resolution():
    G = sg.Generator(sg.StyleGANConfig(**TINY, skip_rgb=True)).eval()
    synth = G.synthesis
    ws = G.broadcast(G.mapping(torch.randn(2, 8)))
    noise = [torch.randn(2, 1, r, r) for r in synth.layer_resolutions]
    x, expected = None, None
    for i, block in enumerate(synth.blocks):
        x = block(x, ws[:, 2 * i], ws[:, 2 * i + 1], noise[2 * i], noise[2 * i + 1])
        rgb = (synth.skip_rgbs[i] if i < len(synth.skip_rgbs) else synth.to_rgb)(x)
        expected = rgb if expected is None else rgb + F.interpolate(expected, scale_factor=2, mode="bilinear")
    assert torch.allclose(synth(ws, noise), expected, atol=1e-6)
    plain = sg.Generator(sg.StyleGANConfig(**TINY, skip_rgb=False))
    assert plain.synthesis.skip_rgbs is None and not any("skip" in n for n, _ in plain.named_parameters())


# --- shapes and the generator's tricks --------------------------------------------------------------

@pytest.mark.parametrize("res,widths,channels,style,tanh", [(8, (8, 8), 1, "adain", True), (16, (16, 8, 8), 3, "demod", False)])
def test_shapes(res, widths, channels, style, tanh):
    config = sg.StyleGANConfig(resolution=res, widths=widths, channels=channels, z_dim=8, w_dim=6, mapping_layers=3,
                               style=style, tanh_output=tanh)
    G, D = sg.Generator(config), sg.Discriminator(config)
    assert G.num_ws == 2 * len(widths) and len(G.mapping.layers) == 3
    images = G(torch.randn(4, 8))
    assert images.shape == (4, channels, res, res)
    if tanh:
        assert images.abs().max() <= 1
    assert D(images).shape == (4, 1)
    assert G.mapping(torch.randn(5, 8)).shape == (5, 6)


def test_config_validation():
    with pytest.raises(Exception, match="power of two"):
        sg.StyleGANConfig(resolution=24, widths=(8, 8))
    with pytest.raises(Exception, match="widths needs 4"):
        sg.StyleGANConfig(resolution=32, widths=(8, 8))
    assert sg.default_widths(32) == (128, 64, 32, 16) == sg.StyleGANConfig().widths
    assert sg.default_widths(64) == (128, 64, 32, 16, 16)


def test_truncation_zero_with_fixed_noise_gives_the_w_avg_image():
    G = tiny_generator()
    images = sg_infer.generate(G, [0, 1, 2, 3], truncation=0.0, noise_seed=7)
    _, noise = sg_infer.seed_inputs(G, [0], noise_seed=7)
    with torch.no_grad():
        expected = to_unit(G.synthesis(G.broadcast(G.w_avg[None]), noise))
    for image in images:
        assert torch.allclose(image, expected[0], atol=1e-6)
    # psi = 1 is the plain generator, and different seeds give different images.
    plain = sg_infer.generate(G, [0, 1], truncation=1.0, noise_seed=7)
    assert not torch.allclose(plain[0], plain[1])


def test_each_image_depends_only_on_its_seed():
    G = tiny_generator()
    batch = sg_infer.generate(G, [5, 6, 7])
    alone = sg_infer.generate(G, [6])
    assert torch.allclose(batch[1], alone[0], atol=1e-6)
    # Noise comes from the seed too: same seed, same image; another noise seed changes it.
    assert not torch.allclose(sg_infer.generate(G, [6], noise_seed=1), alone)


def test_style_mixing_cutoff_at_either_end_is_a_parent():
    G = tiny_generator()
    rows, cols, cells = sg_infer.style_mix(G, [0, 1], [2, 3, 4], cutoff=0)
    assert cells.shape == (2, 3, 1, 16, 16)
    for i in range(2):
        assert torch.allclose(cells[i], cols, atol=1e-6)  # no layer from the rows
    _, _, cells = sg_infer.style_mix(G, [0, 1], [2, 3, 4], cutoff=G.num_ws)
    for j in range(3):
        assert torch.allclose(cells[:, j], rows, atol=1e-6)  # every layer from the rows
    _, _, mid = sg_infer.style_mix(G, [0, 1], [2, 3, 4], cutoff=2)
    assert not torch.allclose(mid[0, 0], rows[0]) and not torch.allclose(mid[0, 0], cols[0])
    grid = sg_infer.style_mix_grid(rows, cols, cells)
    assert grid.shape[0] == 3 * 4 and torch.equal(grid[0], torch.zeros_like(grid[0]))
    with pytest.raises(Exception, match="--cutoff"):
        sg_infer.style_mix(G, [0], [1], cutoff=G.num_ws + 1)


def test_interpolation_ends_at_the_seeds():
    G = tiny_generator()
    strip = sg_infer.interpolate(G, [3, 9], steps=5, truncation=0.7, noise_seed=0)
    ends = sg_infer.generate(G, [3, 9], truncation=0.7, noise_seed=0)
    assert strip.shape == (5, 1, 16, 16)
    assert torch.allclose(strip[0], ends[0], atol=1e-6) and torch.allclose(strip[-1], ends[1], atol=1e-6)
    assert sg_infer.interpolate(G, [0, 1, 2], steps=3).shape[0] == 6  # one strip per consecutive pair


# --- training pieces ----------------------------------------------------------------------------------

def test_accumulate_is_an_exponential_moving_average():
    torch.manual_seed(0)
    model, ema = sg.Generator(sg.StyleGANConfig(**TINY)), sg.Generator(sg.StyleGANConfig(**TINY))
    model.w_avg.fill_(3.0)
    before = [p.clone() for p in ema.parameters()]
    common.accumulate(ema, model, 0.9)
    for b, p_ema, p in zip(before, ema.parameters(), model.parameters()):
        assert torch.allclose(p_ema, 0.9 * b + 0.1 * p, atol=1e-6)
    assert torch.equal(ema.w_avg, model.w_avg)  # buffers are copied
    common.accumulate(ema, model, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(ema.parameters(), model.parameters()))


def test_style_mixing_takes_the_layers_from_the_cutoff_on_from_the_second_z():
    G = tiny_generator()
    rng = torch.Generator().manual_seed(0)
    latents = sg_train.draw_latents(G, 3, 1.0, rng)
    assert latents["mix_z"].shape == latents["z"].shape and 1 <= latents["cutoff"] < G.num_ws
    noise, cut = latents["noise"], latents["cutoff"]
    mixed, w = G(latents["z"], noise=noise, mix_z=latents["mix_z"], cutoff=cut, return_w=True)
    ws = G.broadcast(w).clone()
    ws[:, cut:] = G.broadcast(G.mapping(latents["mix_z"]))[:, cut:]
    assert torch.allclose(mixed, G.synthesis(ws, noise), atol=1e-6)
    assert not torch.allclose(mixed, G(latents["z"], noise=noise), atol=1e-3)
    plain = sg_train.draw_latents(G, 3, 0.0, torch.Generator().manual_seed(0))
    assert plain["mix_z"] is None and plain["cutoff"] is None
    # The draws depend on the generator's seed alone, and a shard is every world_size-th image.
    again = sg_train.draw_latents(G, 3, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(again["z"], latents["z"])
    part = common.shard(latents, 1, 2)
    assert torch.equal(part["z"], latents["z"][1::2]) and torch.equal(part["noise"][0], noise[0][1::2])
    assert part["cutoff"] == cut


def test_requires_grad_keeps_frozen_off():
    G = tiny_generator()
    frozen = frozenset(n for n, _ in G.named_parameters() if n.startswith("mapping."))
    common.requires_grad(G, True, frozen)
    assert all(p.requires_grad != (n in frozen) for n, p in G.named_parameters())
    common.requires_grad(G, False)
    assert not any(p.requires_grad for p in G.parameters())


def test_stream_batches_are_reproducible_and_cover_the_data():
    a = common.stream_batches(10, 4, 5, seed=1, tick=1)  # 20 indices: two passes over 10 images
    assert all(torch.equal(x, y) for x, y in zip(a, common.stream_batches(10, 4, 5, seed=1, tick=1)))
    flat = torch.cat(a)
    assert sorted(flat[:10].tolist()) == list(range(10)) and sorted(flat[10:].tolist()) == list(range(10))
    nxt = torch.cat(common.stream_batches(10, 4, 5, seed=1, tick=2))
    assert sorted(nxt[:10].tolist()) == list(range(10))  # tick 2 starts the third pass


def test_losses_against_hand_computed_values():
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731 softplus
    real, fake = torch.tensor([[1.0], [-2.0]]), torch.tensor([[0.5], [3.0]])
    expected = (sp(-1.0) + sp(2.0)) / 2 + (sp(0.5) + sp(3.0)) / 2
    assert d_logistic_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert g_nonsaturating_loss(fake).item() == pytest.approx((sp(-0.5) + sp(-3.0)) / 2, rel=1e-6)
    # D(x) = sum(a * x^2) per image: grad 2 a x, so R1 = mean over images of sum (2 a x)^2.
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    a = torch.tensor([0.5, 3.0])
    r1 = d_r1_loss((a * x**2).sum(1, keepdim=True), x)
    assert r1.item() == pytest.approx(((1**2 + 12**2) + (0 + 6**2)) / 2)
    r1.backward()  # the penalty itself is differentiable (create_graph)
    assert x.grad is not None


# --- the CLI end to end ----------------------------------------------------------------------------------

def test_every_help_works():
    for command in (["train", "stylegan"], ["style-mix"], ["interpolate"], ["import-weights", "stylegan"],
                    ["sample"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, result.output


def test_train_writes_the_run_directory_and_resumes(sg_run):
    for name in ("model.safetensors", "resume.pt", "metrics.jsonl", "loss.png", "options.json",
                 "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (sg_run / name).is_file(), name
    rows = [json.loads(line) for line in (sg_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["kimg"] == pytest.approx(0.064)
    assert {"train_d_loss", "train_g_loss", "train_r1", "train_real_score", "seconds"} <= set(rows[0])
    assert rows[0]["train_r1"] > 0  # R1 ran (every 2 steps)
    model, meta = load_model(sg_run / "model.safetensors")
    assert meta["family"] == "stylegan" and meta["epoch"] == 2 and meta["config"]["widths"] == [16, 8, 8]
    assert "w_avg" in model.state_dict() and model.w_avg.abs().sum() > 0
    state = load_resume(sg_run / "resume.pt")
    assert set(state["networks"]) == {"G", "D", "G_ema"} and set(state["optimizers"]) == {"G", "D"}
    # model.safetensors is the EMA generator, not G.
    g, ema = state["networks"]["G"], state["networks"]["G_ema"]
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, g[k]) for k, v in ema.items())
    assert Image.open(sg_run / "samples" / "epoch_002.png").size == grid_size(8, 8)
    options = json.loads((sg_run / "options.json").read_text())
    assert options["options"]["r1_gamma"] == pytest.approx(0.0002 * 16**2 / 8) and options["options"]["mirror"] is False


def test_cli_train_resume_continues(tmp_path, data_dir):
    out = tmp_path / "run"
    result = run("train", "stylegan", "--data-dir", data_dir, "--out", out, "--epochs", 1, *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    assert "Model written" in result.output
    result = run("train", "stylegan", "--data-dir", data_dir, "--out", out, "--epochs", 1, *TINY_FLAGS)
    one_line_error(result, "--resume")
    result = run("train", "stylegan", "--data-dir", data_dir, "--out", out, "--kimg", 0.064, "--resume",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert load_model(out / "model.safetensors")[1]["epoch"] == 2


def test_sample_style_mix_and_interpolate(tmp_path, sg_run):
    ckpt = sg_run / "model.safetensors"
    result = run("sample", "stylegan", "-c", ckpt, "--seeds", "0-5", "--nrow", 3, "--truncation", 0.5,
                 "-o", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "s.png").size == grid_size(2, 3)
    # A cell does not depend on the batch: seed 4 alone is the fifth cell of the grid.
    run("sample", "-c", ckpt, "--seeds", "4", "--truncation", 0.5, "-o", tmp_path / "one.png")
    grid, one = np.asarray(Image.open(tmp_path / "s.png")), np.asarray(Image.open(tmp_path / "one.png"))
    assert one.shape == (16, 16)
    assert (grid[2 + 18 : 2 + 18 + 16, 2 + 18 : 2 + 18 + 16] == one).all()
    result = run("style-mix", "-c", ckpt, "--rows", "0-2", "--cols", "3-4", "--cutoff", 2, "-o", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "m.png").size == grid_size(4, 3)
    result = run("interpolate", "-c", ckpt, "--seeds", "0,1,2", "--steps", 4, "-o", tmp_path / "i.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "i.png").size == grid_size(2, 4)
    result = run("sample", "stylegan", "-c", ckpt, "--truncation", 1, "-o", tmp_path / "t1.png")
    assert result.exit_code == 0 and Image.open(tmp_path / "t1.png").size == grid_size(8, 8)


def test_default_checkpoint_is_runs_stylegan(tmp_path, monkeypatch, sg_run):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "stylegan").mkdir(parents=True)
    (tmp_path / "runs" / "stylegan" / "model.safetensors").write_bytes((sg_run / "model.safetensors").read_bytes())
    for args in (["sample", "stylegan"], ["style-mix"], ["interpolate"]):
        result = run(*args, "-o", tmp_path / "x.png")
        assert result.exit_code == 0, result.output


def test_init_from_loads_weights_and_freezing_freezes(tmp_path, data_dir, sg_run):
    out = tmp_path / "fine"
    result = run("train", "stylegan", "--data-dir", data_dir, "--init-from", sg_run, "--freeze-mapping",
                 "--freeze-d", 1, "--out", out, "--epochs", 1, "--batch-size", 8, "--tick-kimg", 0.032,
                 "--r1-every", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    src, new = load_resume(sg_run / "resume.pt")["networks"], load_resume(out / "resume.pt")["networks"]
    g_frozen = [k for k in src["G"] if k.startswith("mapping.")]
    d_frozen = [k for k in src["D"] if k.startswith(("from_rgb.", "blocks.0."))]
    assert g_frozen and d_frozen
    for k in g_frozen:
        assert torch.equal(src["G"][k], new["G"][k]), k  # bit-identical after 4 steps
    for k in d_frozen:
        assert torch.equal(src["D"][k], new["D"][k]), k
    for net, keys in (("G", ["synthesis.blocks.2.conv2.weight", "synthesis.to_rgb.weight"]),
                      ("D", ["blocks.1.conv1.weight", "fc.weight", "out.weight"])):
        for k in keys:
            assert not torch.equal(src[net][k], new[net][k]), k  # trained
    assert load_model(out / "model.safetensors")[1]["config"]["widths"] == [16, 8, 8]


def test_init_from_without_freezing_starts_from_the_source(data_dir, sg_run):
    task = sg_train.StyleGANTask(sg.StyleGANConfig(**TINY), torch.zeros(8, 1, 16, 16, dtype=torch.uint8), dataset="x")
    task.load_source(load_resume(sg_run / "resume.pt"))
    src = load_resume(sg_run / "resume.pt")["networks"]
    for name, net in task.networks().items():
        assert all(torch.equal(v, src[name][k]) for k, v in net.state_dict().items()), name


def test_bad_inputs(tmp_path, data_dir, sg_run, vae_ckpt):
    png = tmp_path / "x.png"
    ckpt = sg_run / "model.safetensors"
    one_line_error(run("sample", "stylegan", "-c", vae_ckpt, "-o", png), "holds a vae model")
    one_line_error(run("style-mix", "-c", vae_ckpt, "-o", png), "style-mix", "vae")
    one_line_error(run("interpolate", "-c", vae_ckpt, "-o", png), "interpolate", "vae")
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "--truncation", 0.5, "-o", png), "--truncation", "stylegan")
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--truncation", 1.5, "-o", png), "--truncation")
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--truncation=-0.1", "-o", png), "--truncation")
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--seeds", "7-3", "-o", png), "seed")
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--label", 3, "-o", png), "--label")
    one_line_error(run("style-mix", "-c", ckpt, "--rows", "a-b", "-o", png), "seed")
    one_line_error(run("style-mix", "-c", ckpt, "--cutoff", 99, "-o", png), "--cutoff")
    one_line_error(run("style-mix", "-c", ckpt, "--truncation", 2, "-o", png), "--truncation")
    one_line_error(run("interpolate", "-c", ckpt, "--seeds", "3", "-o", png), "two seeds")
    one_line_error(run("train", "stylegan", "--init-from", vae_ckpt, "--out", tmp_path / "r", "--data-dir", data_dir),
                   "--init-from", "vae")
    one_line_error(run("train", "stylegan", "--init-from", sg_run, "--resolution", 32, "--out", tmp_path / "r",
                       "--data-dir", data_dir), "--resolution")
    one_line_error(run("train", "stylegan", "--init-from", sg_run, "--freeze-d", 5, "--out", tmp_path / "r",
                       "--data-dir", data_dir, "--epochs", 1), "--freeze-d")
    one_line_error(run("train", "stylegan", "--resolution", 24, "--out", tmp_path / "r", "--data-dir", data_dir),
                   "power of two")
    one_line_error(run("train", "stylegan", "--widths", "8,8", "--out", tmp_path / "r", "--data-dir", data_dir),
                   "--widths")
    one_line_error(run("train", "stylegan", "--kimg", 1, "--epochs", 1, "--out", tmp_path / "r"), "--kimg")
    one_line_error(run("train", "stylegan", "--batch-size", 0, "--out", tmp_path / "r"), "--batch-size")
    one_line_error(run("train", "stylegan", "--data", str(tmp_path / "nowhere"), "--out", tmp_path / "r"),
                   "nowhere")
    one_line_error(run("train", "stylegan", "--resume", "--out", tmp_path / "none"), "resume")


def test_image_folder_training(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # a batch: fewer images are refused
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    result = run("train", "stylegan", "--data", folder, "--out", tmp_path / "run", "--epochs", 1, *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    model, meta = load_model(tmp_path / "run" / "model.safetensors")
    assert meta["config"]["channels"] == 3 and meta["extra"]["dataset"] == str(folder)
    assert json.loads((tmp_path / "run" / "options.json").read_text())["options"]["mirror"] is True


# --- importing rosinality/style-based-gan-pytorch weights ---------------------------------------------

def rosinality_v1_state(widths=(16, 8, 8), code=8, n_mlp=2, fused_from=2, seed=0):
    """A StyledGenerator state dict in rosinality/style-based-gan-pytorch's layout (blocks at index >=
    fused_from use FusedUpsample), random values, plus the extra buffers and a deeper unused block."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    state = {}
    for i in range(n_mlp):
        state[f"style.{2 * i + 1}.linear.weight_orig"] = r(code, code)
        state[f"style.{2 * i + 1}.linear.bias"] = r(code)
    ws = list(widths) + [widths[-1]]  # one more block than the resolution needs, as in their 1024 px model
    for i, c in enumerate(ws):
        p = f"generator.progression.{i}."
        prev = ws[max(i - 1, 0)]
        if i == 0:
            state[p + "conv1.input"] = r(1, c, 4, 4)
        elif i >= fused_from:
            state[p + "conv1.0.weight"], state[p + "conv1.0.bias"] = r(prev, c, 3, 3), r(c)
            state[p + "conv1.1.weight"] = torch.ones(c, 1, 3, 3)  # Blur buffers: ignored
        else:
            state[p + "conv1.1.conv.weight_orig"], state[p + "conv1.1.conv.bias"] = r(c, prev, 3, 3), r(c)
            state[p + "conv1.2.weight"] = torch.ones(c, 1, 3, 3)
        state[p + "conv2.conv.weight_orig"], state[p + "conv2.conv.bias"] = r(c, c, 3, 3), r(c)
        for j in (1, 2):
            state[p + f"noise{j}.weight_orig"] = r(1, c, 1, 1)
            state[p + f"adain{j}.style.linear.weight_orig"] = r(2 * c, code)
            state[p + f"adain{j}.style.linear.bias"] = r(2 * c)
        state[f"generator.to_rgb.{i}.conv.weight_orig"], state[f"generator.to_rgb.{i}.conv.bias"] = r(3, c, 1, 1), r(3)
    return state


def applied(layer):
    return layer.weight * layer.scale


def test_import_matches_effective_weights():
    state = rosinality_v1_state()
    G = sg_weights.from_rosinality_v1(state, resolution=16)
    assert G.config.widths == (16, 8, 8) and G.config.z_dim == 8 and G.config.mapping_layers == 2
    assert G.config.channels == 3
    eq = lambda w: w * math.sqrt(2 / (w.shape[1] * w[0][0].numel()))  # noqa: E731 their EqualLR
    close = lambda a, b: torch.allclose(a, b, atol=1e-6)  # noqa: E731
    m = G.mapping.layers[1]
    assert close(applied(m), eq(state["style.3.linear.weight_orig"]))
    assert close(m.bias * m.lr_mul, state["style.3.linear.bias"])
    b1 = G.synthesis.blocks[1]
    p = "generator.progression.1."
    assert close(applied(b1.conv1), eq(state[p + "conv1.1.conv.weight_orig"]))
    assert close(applied(b1.conv2), eq(state[p + "conv2.conv.weight_orig"]))
    assert close(b1.noise2.weight, eq(state[p + "noise2.weight_orig"]))
    assert close(applied(b1.adain1.affine), eq(state[p + "adain1.style.linear.weight_orig"]))
    assert close(b1.adain1.affine.bias, state[p + "adain1.style.linear.bias"])
    assert close(applied(G.synthesis.to_rgb), eq(state["generator.to_rgb.2.conv.weight_orig"]))
    assert torch.equal(G.synthesis.blocks[0].const, state["generator.progression.0.conv1.input"])
    # Their FusedUpsample (a transposed conv with a 4-shift-summed kernel / 4) equals our nearest upsample + conv.
    weight, bias = state["generator.progression.2.conv1.0.weight"], state["generator.progression.2.conv1.0.bias"]
    k = F.pad(weight * math.sqrt(2 / (weight.shape[0] * 9)), [1, 1, 1, 1])
    k = (k[:, :, 1:, 1:] + k[:, :, :-1, 1:] + k[:, :, 1:, :-1] + k[:, :, :-1, :-1]) / 4
    x = torch.randn(2, 8, 8, 8)
    theirs = F.conv_transpose2d(x, k, bias, stride=2, padding=1)
    ours = G.synthesis.blocks[2].conv1(F.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.allclose(theirs, ours, atol=1e-5)
    # w_avg is the mean w of random z.
    with torch.no_grad():
        w = G.mapping(torch.randn(4096, 8, generator=torch.Generator().manual_seed(0))).mean(0)
    assert torch.allclose(G.w_avg, w, atol=1e-5)


def test_import_weights_cli(tmp_path):
    src = tmp_path / "stylegan-16px.model"
    torch.save({"g_running": rosinality_v1_state(), "generator": {}, "step": 2}, src)
    out = tmp_path / "imported.safetensors"
    result = run("import-weights", "stylegan", src, "--resolution", 16, "-o", out)
    assert result.exit_code == 0, result.output
    model, meta = load_model(out)
    assert meta["family"] == "stylegan" and meta["config"]["resolution"] == 16
    result = run("sample", "-c", out, "--seeds", "0-3", "-o", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    # Bad files: a missing layer, a resolution beyond the file, an arbitrary pickled object, no file.
    broken = rosinality_v1_state()
    del broken["generator.progression.1.conv2.conv.weight_orig"]
    torch.save(broken, tmp_path / "broken.pt")
    one_line_error(run("import-weights", "stylegan", tmp_path / "broken.pt", "--resolution", 16, "-o", out),
                   "conv2.conv.weight_orig")
    one_line_error(run("import-weights", "stylegan", src, "--resolution", 64, "-o", out), "progression.4")
    torch.save({"g_running": {"x": Image.new("L", (1, 1))}}, tmp_path / "pickled.pt")
    one_line_error(run("import-weights", "stylegan", tmp_path / "pickled.pt", "--resolution", 16, "-o", out),
                   "refused")
    one_line_error(run("import-weights", "stylegan", tmp_path / "none.pt", "--resolution", 16, "-o", out),
                   "not found")


def test_bundled_model_samples_right_after_install(tmp_path, monkeypatch):
    """No runs/ here: `sample stylegan` and `style-mix` use the bundled MNIST model, offline."""
    monkeypatch.chdir(tmp_path)
    bundled = __import__("gencli.runs", fromlist=["bundled_checkpoint"]).bundled_checkpoint("stylegan")
    assert bundled is not None
    G, meta = load_model(bundled)
    assert meta["family"] == "stylegan" and G.config.resolution == 32 and G.config.channels == 1
    result = run("sample", "stylegan", "--seeds", "0-3", "--nrow", 4, "-o", "s.png")
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(tmp_path / "s.png").convert("L"), dtype=np.float32) / 255
    assert image.shape == (36, 4 * 34 + 2)
    cells = [image[2:34, 2 + 34 * c : 34 + 34 * c] for c in range(4)]
    assert all(cell[:3].mean() < 0.1 for cell in cells)  # digits: black margins, bright strokes
    assert all(cell.max() > 0.8 for cell in cells)
    assert np.abs(cells[0] - cells[1]).mean() > 0.02  # each seed its own digit
    result = run("style-mix", "--rows", "0-1", "--cols", "2-3", "-o", "m.png")
    assert result.exit_code == 0 and (tmp_path / "m.png").is_file()


# --- class-conditional StyleGAN (StyleGAN2-ADA's conditioning) ------------------------------------------

# State-dict keys of the TINY unconditional networks before conditioning existed: they must not change,
# so that every unconditional checkpoint still loads.
UNCOND_G_KEYS = ["w_avg", "mapping.layers.0.weight", "mapping.layers.0.bias", "mapping.layers.1.weight",
                 "mapping.layers.1.bias"] + [
    f"synthesis.blocks.{i}.{k}" for i in range(3) for k in (
        (["const"] if i == 0 else ["conv1.weight", "conv1.bias"]) +
        ["noise1.weight", "adain1.affine.weight", "adain1.affine.bias", "conv2.weight", "conv2.bias",
         "noise2.weight", "adain2.affine.weight", "adain2.affine.bias"])] + [
    "synthesis.to_rgb.weight", "synthesis.to_rgb.bias", "synthesis.skip_rgbs.0.weight", "synthesis.skip_rgbs.0.bias",
    "synthesis.skip_rgbs.1.weight", "synthesis.skip_rgbs.1.bias"]
UNCOND_D_KEYS = ["from_rgb.weight", "from_rgb.bias", "blocks.0.conv1.weight", "blocks.0.conv1.bias",
                 "blocks.0.conv2.weight", "blocks.0.conv2.bias", "blocks.1.conv1.weight", "blocks.1.conv1.bias",
                 "blocks.1.conv2.weight", "blocks.1.conv2.bias", "conv.weight", "conv.bias", "fc.weight", "fc.bias",
                 "out.weight", "out.bias"]


def test_unconditional_state_dict_keys_are_unchanged():
    config = sg.StyleGANConfig(**TINY)
    G, D = sg.Generator(config), sg.Discriminator(config)
    assert list(G.state_dict()) == UNCOND_G_KEYS and G.w_avg.shape == (8,)
    assert list(D.state_dict()) == UNCOND_D_KEYS and D.out.weight.shape == (1, 16)
    # A conditional model only adds the label embeddings (and keeps one w_avg per class).
    G3, D3 = sg.Generator(sg.StyleGANConfig(**TINY, num_classes=3)), sg.Discriminator(sg.StyleGANConfig(**TINY, num_classes=3))
    assert set(G3.state_dict()) - set(UNCOND_G_KEYS) == {"mapping.embed.weight", "mapping.embed.bias"}
    assert set(D3.state_dict()) - set(UNCOND_D_KEYS) == {"embed.weight", "embed.bias"}
    assert G3.w_avg.shape == (3, 8) and G3.mapping.layers[0].weight.shape == (8, 8 + 8)
    assert D3.out.weight.shape == (16, 16)  # cmap_dim = widths[0] features
    with pytest.raises(Exception, match="num_classes"):
        sg.StyleGANConfig(**TINY, num_classes=1)


def test_a_checkpoint_from_before_num_classes_loads_as_unconditional(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from gencli.checkpoint import save_model

    path = save_model(tmp_path / "old.safetensors", "stylegan", sg.Generator(sg.StyleGANConfig(**TINY)),
                      sg.StyleGANConfig(**TINY), epoch=1, seed=0)
    with safe_open(str(path), framework="pt") as f:  # rewrite it as gencli wrote it before the field existed
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    config = json.loads(metadata["config"])
    del config["num_classes"]
    metadata["config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)
    G, meta = load_model(path)
    assert "num_classes" not in meta["config"] and G.config.num_classes == 0 and G.w_avg.ndim == 1


def test_conditional_shapes_and_the_label_matters():
    config = sg.StyleGANConfig(**TINY, num_classes=4)
    torch.manual_seed(0)
    G, D = sg.Generator(config).eval(), sg.Discriminator(config)
    z, noise = torch.randn(3, 8), [torch.zeros(3, 1, r, r) for r in G.synthesis.layer_resolutions]
    a, b = torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3])
    assert G.mapping(z, a).shape == (3, 8)
    images = G(z, noise=noise, labels=a)
    assert images.shape == (3, 1, 16, 16) and D(images, a).shape == (3, 1)
    assert not torch.allclose(images, G(z, noise=noise, labels=b), atol=1e-4)  # the label changes G's output
    assert not torch.allclose(D(images, a), D(images, b), atol=1e-5)  # and D's score
    # D's projection: score = <features, normalized label embedding> / sqrt(cmap_dim).
    feats = torch.randn(3, 16)
    D.out.forward = lambda x: feats
    cmap = sg.pixel_norm(D.embed(F.one_hot(a, 4).float()))
    assert torch.allclose(D(images, a), (feats * cmap).sum(1, keepdim=True) / 4, atol=1e-6)
    with pytest.raises(Exception, match="class label"):
        G(z)
    # Truncation pulls toward the label's own mean w.
    G.w_avg.copy_(torch.randn(4, 8))
    w = G.mapping(z, a)
    assert torch.allclose(G.truncate(w, 0.0, a), G.w_avg[a]) and torch.equal(G.truncate(w, 1.0, a), w)


def test_without_a_label_style_mixing_and_interpolation_draw_each_seed_as_its_class():
    G = sg.Generator(sg.StyleGANConfig(**TINY, num_classes=3)).eval()
    as_class = lambda seed, label: sg_infer.generate(G, [seed], 0.7, noise_seed=0, labels=label)  # noqa: E731
    rows, cols, cells = sg_infer.style_mix(G, [0, 1, 5], [4], cutoff=2, truncation=0.7)
    for i, seed in enumerate([0, 1, 5]):
        assert torch.allclose(rows[i], as_class(seed, seed % 3)[0], atol=1e-4)
    assert (rows[1] - as_class(1, 0)[0]).abs().max() > 1e-2  # not class 0 for every seed
    assert torch.allclose(cols[0], as_class(4, 1)[0], atol=1e-4)
    rows7, _, _ = sg_infer.style_mix(G, [0, 1, 5], [4], cutoff=2, truncation=0.7, label=2)  # --label: one class
    assert all(torch.allclose(rows7[i], as_class(s, 2)[0], atol=1e-4) for i, s in enumerate([0, 1, 5]))
    strip = sg_infer.interpolate(G, [1, 2], steps=3, truncation=0.7)  # from a class-1 image to a class-2 one
    assert torch.allclose(strip[0], as_class(1, 1)[0], atol=1e-4) and torch.allclose(strip[-1], as_class(2, 2)[0], atol=1e-4)
    assert sg_infer.seed_classes(tiny_generator(), [0, 1], None) is None  # unconditional: no labels


def test_sample_grids_of_a_conditional_model_show_every_class(tmp_path):
    from gencli.api.vae import grid_row_length

    assert grid_row_length(80, None, 10, None) == 8 and grid_row_length(64, None, 10, None) == 6
    assert grid_row_length(64, None, 10, 3) == 8 and grid_row_length(64, 5, 10, None) == 5  # asked for
    assert grid_row_length(64, None, 0, None) == 8 and grid_row_length(4, None, 10, None) == 1
    for n in range(1, 200):  # every class gets a row whenever there are enough seeds
        per_row = grid_row_length(n, None, 10, None)
        assert -(-n // per_row) >= min(n, 10)
    # The README's `gencli sample stylegan --seeds 0-63` on the bundled conditional model: rows 0 to 9.
    result = run("sample", "stylegan", "--seeds", "0-63", "-o", tmp_path / "s.png", "--device", "cpu")
    assert result.exit_code == 0 and "row r shows class r % 10" in flat(result), result.output
    assert Image.open(tmp_path / "s.png").size == grid_size(11, 6, cell=32)
    row9 = run("sample", "stylegan", "--label", 9, "--seeds", "54-59", "-o", tmp_path / "nines.png", "--device", "cpu")
    assert row9.exit_code == 0, row9.output
    grid, nines = np.asarray(Image.open(tmp_path / "s.png")), np.asarray(Image.open(tmp_path / "nines.png"))
    assert (grid[9 * 34 : 10 * 34 + 2] == nines).all()


def test_fake_labels_follow_the_training_labels_and_shard():
    G = sg.Generator(sg.StyleGANConfig(**TINY, num_classes=4))
    pool = torch.tensor([1, 1, 1, 3])  # classes 0 and 2 never occur
    latents = sg_train.draw_latents(G, 64, 0.5, torch.Generator().manual_seed(0), pool)
    assert set(latents["labels"].tolist()) == {1, 3}
    again = sg_train.draw_latents(G, 64, 0.5, torch.Generator().manual_seed(0), pool)
    assert torch.equal(again["labels"], latents["labels"])
    assert torch.equal(common.shard(latents, 1, 2)["labels"], latents["labels"][1::2])
    # An unconditional G draws exactly what it drew before (labels come last, and only when conditional).
    plain = sg_train.draw_latents(tiny_generator(), 64, 0.5, torch.Generator().manual_seed(0))
    assert plain["labels"] is None and torch.equal(plain["z"], latents["z"])


def test_w_avg_is_tracked_per_class():
    G = sg.Generator(sg.StyleGANConfig(**TINY, num_classes=3))
    G.w_avg.fill_(1.0)
    w, labels = torch.tensor([[2.0] * 8, [4.0] * 8, [10.0] * 8]), torch.tensor([0, 0, 2])
    sg_train.update_w_avg(G, w, labels, beta=0.5)
    assert torch.allclose(G.w_avg[:, 0], torch.tensor([(3.0 + 1) / 2, 1.0, (10.0 + 1) / 2]))  # class 1 untouched


def test_class_rows_and_seed_labels():
    assert sg_infer.class_rows(6, 2, 3).tolist() == [0, 0, 1, 1, 2, 2] and sg_infer.class_rows(4, 2, 0) is None
    G = sg.Generator(sg.StyleGANConfig(**TINY, num_classes=3))
    assert sg_infer.seed_labels(G, 2, None).tolist() == [0, 0] and sg_infer.seed_labels(G, 2, 2).tolist() == [2, 2]
    with pytest.raises(Exception, match="between 0 and 2"):
        sg_infer.seed_labels(G, 2, 3)
    with pytest.raises(Exception, match="--cond"):
        sg_infer.seed_labels(tiny_generator(), 2, 1)


# --- DiffAugment --------------------------------------------------------------------------------------------

def flat(result):
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def augment(x, policy="color,translation,cutout", seed=0):
    return sg_aug.diff_augment(x, sg_aug.draw_augment(policy, len(x), x.shape[-1], torch.Generator().manual_seed(seed)))


def test_diff_augment_shape_determinism_and_gradients():
    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    y = augment(x)
    assert y.shape == x.shape and torch.equal(y, augment(x)) and not torch.equal(y, augment(x, seed=1))
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the input
    assert sg_aug.parse_augment(True) == "color,translation,cutout" and sg_aug.parse_augment(False) == ""
    with pytest.raises(Exception, match="--augment"):
        sg_aug.parse_augment("translation,zoom")


def test_sharded_augmentation_gives_the_global_batch_gradient():
    """Under torchrun each rank augments its share of the images with its share of the global draws: the
    ranks' mean gradient is the one process's gradient."""
    G, D = tiny_generator(), sg.Discriminator(sg.StyleGANConfig(**TINY))

    def grads(world_size):
        G.zero_grad()
        for rank in range(world_size):
            rng = torch.Generator().manual_seed(5)
            latents = common.shard(sg_train.draw_latents(G, 8, 0.5, rng), rank, world_size)
            images = G(latents.pop("z"), **latents)
            params = common.shard(sg_aug.draw_augment("color,translation,cutout", 8, 16, rng), rank, world_size)
            (g_nonsaturating_loss(D(sg_aug.diff_augment(images, params))) / world_size).backward()
        return {n: p.grad.clone() for n, p in G.named_parameters()}

    one, two = grads(1), grads(2)
    for name, grad in one.items():
        assert torch.allclose(two[name], grad, rtol=1e-4, atol=1e-7), name


def test_diff_augment_translation_moves_pixels_and_pads_with_zeros():
    x = torch.arange(1.0, 65.0).view(1, 1, 8, 8)
    y = sg_aug.diff_augment(x, {"shift": torch.tensor([[1, -1]])})  # down 1, left 1
    assert torch.equal(y[0, 0, 1:, :-1], x[0, 0, :-1, 1:])
    assert (y[0, 0, 0] == 0).all() and (y[0, 0, :, -1] == 0).all()
    # Shifts are at most 1/8 of the side.
    shifts = sg_aug.draw_augment("translation", 500, 32, torch.Generator().manual_seed(0))["shift"]
    assert shifts.min() == -4 and shifts.max() == 4


def test_diff_augment_cutout_zeros_a_half_size_square():
    x = torch.ones(2, 3, 16, 16)
    y = sg_aug.diff_augment(x, {"cutout": torch.tensor([[8, 8], [0, 15]])})
    zero = y[0, 0] == 0
    assert zero.sum() == 64 and zero[4:12, 4:12].all()  # 8 x 8, centred at (8, 8)
    assert (y[1, 0] == 0).sum() == 4 * 5  # at a corner, clipped by the border
    assert torch.equal(y[:, 0], y[:, 2])  # the same region in every channel


def test_diff_augment_color_matches_the_paper():
    x = torch.randn(1, 3, 4, 4)
    f = torch.tensor([[0.75, 0.25, 0.5]])  # brightness + 0.25, saturation x 0.5, contrast x 1
    y = sg_aug.diff_augment(x, {"color": f})
    b = x + 0.25
    s = (b - b.mean(1, keepdim=True)) * 0.5 + b.mean(1, keepdim=True)
    assert torch.allclose(y, s, atol=1e-6)


# --- conditional and augmented training end to end -----------------------------------------------------------

@pytest.fixture(scope="module")
def cond_run(data_dir, tmp_path_factory):
    """A tiny conditional, augmented run through the CLI: 1 tick, then resumed to 2; and 2 ticks straight.
    The precision is the default (auto: bf16 on a CPU with native bf16), so resuming is exact in it too."""
    root = tmp_path_factory.mktemp("stylegan-cond")
    flags = ["--data-dir", data_dir, "--cond", "--augment", *TINY_FLAGS]
    results = [run("train", "stylegan", "--out", root / "run", "--epochs", 1, *flags),
               run("train", "stylegan", "--out", root / "run", "--epochs", 2, "--resume", "--device", "cpu",
                   "--data-dir", data_dir),
               run("train", "stylegan", "--out", root / "straight", "--epochs", 2, *flags)]
    for result in results:
        assert result.exit_code == 0, result.output
    return root


def test_conditional_run_records_classes_and_resumes_exactly(cond_run):
    model, meta = load_model(cond_run / "run" / "model.safetensors")
    assert meta["config"]["num_classes"] == 10 and meta["extra"]["class_names"] == [str(d) for d in range(10)]
    assert meta["epoch"] == 2 and model.w_avg.shape == (10, 8)
    options = json.loads((cond_run / "run" / "options.json").read_text())
    assert options["options"]["augment"] == "color,translation,cutout"
    assert options["resolved"]["precision"] in ("fp32", "bf16") and options["resolved"]["precision_reason"].startswith("auto")
    assert Image.open(cond_run / "run" / "samples" / "epoch_002.png").size == grid_size(10, 8)  # a row per class
    # Resuming (with --cond and --augment from options.json) gives the run that never stopped.
    resumed, straight = (load_resume(cond_run / name / "resume.pt")["networks"] for name in ("run", "straight"))
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(v, straight[net][k]) for k, v in resumed[net].items()), net


def test_sample_a_label_and_all_classes(cond_run, tmp_path):
    ckpt = cond_run / "run" / "model.safetensors"
    result = run("sample", "stylegan", "-c", ckpt, "--label", 3, "--seeds", "0-7", "-o", tmp_path / "three.png")
    assert result.exit_code == 0 and "class 3" in flat(result), result.output
    assert Image.open(tmp_path / "three.png").size == grid_size(1, 8)
    result = run("sample", "stylegan", "-c", ckpt, "-o", tmp_path / "all.png")
    assert result.exit_code == 0 and "row r shows class r % 10" in flat(result), result.output
    assert Image.open(tmp_path / "all.png").size == grid_size(10, 8)
    # Row 3 of the all-classes grid is class 3, seeds 24-31: the same images as --label 3 with those seeds.
    run("sample", "stylegan", "-c", ckpt, "--label", 3, "--seeds", "24-31", "-o", tmp_path / "row3.png")
    grid, row = np.asarray(Image.open(tmp_path / "all.png")), np.asarray(Image.open(tmp_path / "row3.png"))
    assert (grid[3 * 18 : 4 * 18 + 2] == row).all()
    for command in ("style-mix", "interpolate"):
        result = run(command, "-c", ckpt, "--label", 7, "-o", tmp_path / f"{command}.png")
        assert result.exit_code == 0, result.output
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--label", 10, "-o", tmp_path / "x.png"), "--label", "9")


def test_label_on_an_unconditional_stylegan_is_one_line(sg_run, tmp_path):
    for command in (["sample", "stylegan"], ["style-mix"], ["interpolate"]):
        one_line_error(run(*command, "-c", sg_run, "--label", 1, "-o", tmp_path / "x.png"), "--label", "--cond")


def test_conditional_training_on_class_subfolders(tmp_path, sg_run):
    folder = tmp_path / "pics"
    rng = np.random.default_rng(0)
    for name in ("dog", "cat"):
        (folder / name).mkdir(parents=True)
        for i in range(4):  # a batch of 8 in all
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / name / f"{i}.png")
    result = run("train", "stylegan", "--data", folder, "--cond", "--out", tmp_path / "run", "--epochs", 1, *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    _, meta = load_model(tmp_path / "run" / "model.safetensors")
    assert meta["extra"]["class_names"] == ["cat", "dog"] and meta["config"]["num_classes"] == 2
    result = run("sample", "stylegan", "-c", tmp_path / "run", "-o", tmp_path / "s.png")
    assert result.exit_code == 0 and "0 cat, 1 dog" in flat(result), result.output
    one_line_error(run("train", "stylegan", "--data", folder / "cat", "--cond", "--out", tmp_path / "r2", "--epochs", 1,
                       *TINY_FLAGS), "--cond", "subfolder")
    one_line_error(run("train", "stylegan", "--data", folder, "--init-from", sg_run, "--cond", "--out", tmp_path / "r3",
                       "--epochs", 1), "--init-from", "unconditional")


def test_precision_is_an_option_recorded_in_the_run(tmp_path, data_dir):
    out = tmp_path / "run"
    result = run("train", "stylegan", "--data-dir", data_dir, "--out", out, "--epochs", 1, "--precision", "fp32",
                 *TINY_FLAGS)
    assert result.exit_code == 0 and "precision fp32 (asked for)" in flat(result), result.output
    options = json.loads((out / "options.json").read_text())
    assert options["resolved"]["precision"] == "fp32" and options["resolved"]["precision_reason"] == "asked for"
    with pytest.raises(GencliError, match="fp16"):  # the CLI offers auto, fp32 and bf16 only
        api.train_stylegan(data_dir=data_dir, run_dir=tmp_path / "r", precision="fp16")


def test_a_bf16_step_trains_a_conditional_augmented_model():
    """bf16 autocast (what auto picks on a CPU with native bf16): losses and w_avg stay fp32 and finite."""
    config = sg.StyleGANConfig(**TINY, num_classes=3)
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    task = sg_train.StyleGANTask(config, images, dataset="x", batch_size=8, r1_every=1, r1_gamma=1.0,
                                 labels=torch.arange(16) % 3, augment="color,translation,cutout", precision="bf16")
    before = {k: v.clone() for k, v in task.G.state_dict().items()}
    logs = task.train_step((torch.arange(8), 1))
    assert all(math.isfinite(v) for v in logs.values()) and logs["r1"] > 0
    assert task.G.w_avg.dtype == torch.float32 and task.G.mapping.layers[0].weight.dtype == torch.float32
    assert not torch.equal(before["synthesis.to_rgb.weight"], task.G.state_dict()["synthesis.to_rgb.weight"])
