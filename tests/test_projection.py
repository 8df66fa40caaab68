"""Projection (`gencli project`): the schedule and the noise regularization by hand, the recovery of a w
the network drew itself, the feature networks (TorchScript stand-ins with the interfaces of NVIDIA's
VGG16 file and of the Inception file), finding and downloading the VGG16 file, the command end to end
with its fallback lines, and w files. Tiny networks, few steps, one torch thread."""

from __future__ import annotations

import functools
import http.server
import json
import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import one_line_error, run
from gencli import metrics, perceptual
from gencli.api import projection as api_projection
from gencli.checkpoint import save_model
from gencli.errors import GencliError
from gencli.images import to_unit
from gencli.inference import projection as proj
from gencli.models import stylegan as sg

TINY = dict(resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2, tanh_output=True)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for name in ("GENCLI_VGG16", "GENCLI_INCEPTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(perceptual, "VGG16_DOWNLOADS", (("http://127.0.0.1:9/vgg16.pt", None),))
    monkeypatch.chdir(tmp_path)
    yield
    torch.set_num_threads(threads)


def tiny_generator(seed=0, **overrides) -> sg.Generator:
    """Noise weights stay 0, so an image is a function of its w alone."""
    torch.manual_seed(seed)
    return sg.Generator(sg.StyleGANConfig(**{**TINY, **overrides})).eval()


def drawn_target(G, seed=5, label=None):
    """(target (C, H, W) in [0, 255], its true w (w_dim,)): an image the network drew from seed's z."""
    z = torch.randn(1, G.config.z_dim, generator=torch.Generator().manual_seed(seed))
    labels = None if label is None else torch.tensor([label])
    with torch.no_grad():
        w = G.mapping(z, labels)
        image = G.synthesis(G.broadcast(w), noise=proj._zero_noise(G, "cpu"))
    return to_unit(image[0]) * 255, w[0]


@pytest.fixture
def checkpoint(tmp_path):
    G = tiny_generator()
    return save_model(tmp_path / "tiny.safetensors", "stylegan", G, G.config, epoch=1, seed=0, extra={"dataset": "x"})


def photo(path, size=(24, 20), mode="RGB", seed=0):
    g = torch.Generator().manual_seed(seed)
    channels = 3 if mode == "RGB" else 1
    array = (torch.rand(size[1], size[0], channels, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(array if channels == 3 else array[..., 0], mode).save(path)
    return path


# --- stand-ins for the feature network files --------------------------------------------------------------

class StandInVGG(torch.nn.Module):
    """The call signature of NVIDIA's vgg16.pt: float RGB images in [0, 255]; refuses what projection
    never asks for (its own resizing, or no LPIPS vectors)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(6, 3, 3, 3, generator=g) / 27**0.5)

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        assert not resize_images and return_lpips
        assert img.shape[1] == 3 and img.shape[-1] <= 256
        x = F.relu(F.conv2d(img / 127.5 - 1, self.weight, padding=1))
        x = x * torch.rsqrt(x.pow(2).sum(1, keepdim=True) + 1e-10)
        return (x / (x.shape[-1] * x.shape[-2]) ** 0.5).flatten(1)


class StandInInception(torch.nn.Module):
    """An Inception-file stand-in: a bare network whose `layers` run in order, halving the resolution
    twice; forward(x) on 299 px input, as the bare re-export."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(4, 5, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(1)


def script_file(module, path):
    torch.jit.script(module).save(str(path))
    return path


# --- the schedule and the noise regularization ------------------------------------------------------------

def test_learning_rate_ramps_up_linearly_and_down_by_a_cosine():
    assert proj.learning_rate(0.0) == 0.0
    assert proj.learning_rate(0.025) == pytest.approx(0.05)  # half way up the 5% ramp
    assert proj.learning_rate(0.5) == pytest.approx(0.1)
    assert proj.learning_rate(0.875) == pytest.approx(0.05)  # (1 - cos(pi / 2)) / 2 of the way down
    assert proj.learning_rate(1.0) == pytest.approx(0.0)
    assert proj.w_noise_scale(0.0, 2.0) == pytest.approx(0.1)
    assert proj.w_noise_scale(0.375, 2.0) == pytest.approx(0.1 * 0.25)  # (1 - 0.5)^2
    assert proj.w_noise_scale(0.8, 2.0) == 0.0


def test_noise_regularization_by_hand():
    # A constant map correlates fully with its shifts: 1^2 + 1^2 per scale; 16 px has scales 16 and 8.
    assert float(proj.noise_regularization([torch.ones(1, 1, 16, 16)])) == pytest.approx(4.0)
    assert float(proj.noise_regularization([torch.ones(1, 1, 4, 4)])) == pytest.approx(2.0)
    # A checkerboard is anticorrelated with its shifts, which squares away: the same 2 at 8 px.
    board = (torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 2.0 - 1
    assert float(proj.noise_regularization([board.view(1, 1, 8, 8)])) == pytest.approx(2.0)
    white = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    assert float(proj.noise_regularization([white])) < 0.01


# --- projection -----------------------------------------------------------------------------------------

def test_projection_recovers_a_w_the_network_drew():
    G = tiny_generator()
    target, w_true = drawn_target(G)
    mean, w_std = proj.w_stats(G)
    seen = []
    result = proj.project(G, target, perceptual.PixelFeatures(), steps=150,
                          progress=lambda step, steps, d: seen.append((step, steps, d)))
    assert result.ws.shape == (G.num_ws, 8) and torch.equal(result.ws[0], result.ws[-1])  # space w: one w
    assert seen[0][:2] == (1, 150) and seen[-1][:2] == (150, 150) and len(result.distances) == 150
    assert result.distance < 0.02 * result.distances[0]
    assert float((result.ws[0] - w_true).norm()) < 0.5 * float((mean - w_true).norm())
    assert proj.psnr(result.image, target / 255) > 20  # from about 5 dB at the mean w
    assert all(n.shape == (1, 1, r, r) for n, r in zip(result.noise, G.synthesis.layer_resolutions))
    for n in result.noise:  # renormalized after every step
        assert float(n.mean()) == pytest.approx(0, abs=1e-5) and float(n.std(unbiased=False)) == pytest.approx(1, abs=1e-4)
    short = [proj.project(G, target, perceptual.PixelFeatures(), steps=5, seed=seed).ws for seed in (1, 1, 2)]
    assert torch.equal(short[0], short[1]) and not torch.equal(short[0], short[2])  # seeded


def test_w_plus_space_and_frames_and_a_conditional_network():
    G = tiny_generator(num_classes=3)
    target, _ = drawn_target(G, label=2)
    result = proj.project(G, target, perceptual.PixelFeatures(), steps=20, space="w+", label=2, frame_every=5,
                          keep_steps=True)
    assert result.ws.shape == (G.num_ws, 8) and not torch.equal(result.ws[0], result.ws[-1])
    assert result.frames.shape == (5, 1, 16, 16) and torch.equal(result.frames[-1], result.image)
    assert result.steps_ws.shape == (20, G.num_ws, 8)
    assert result.distance < result.distances[0]
    with pytest.raises(GencliError, match="--label must be between 0 and 2"):
        proj.project(G, target, perceptual.PixelFeatures(), steps=1, label=3)
    with pytest.raises(GencliError, match="target image is"):
        proj.project(G, target[:, :8], perceptual.PixelFeatures(), steps=1)
    assert all(p.requires_grad for p in G.parameters())  # left as it was


# --- feature networks ---------------------------------------------------------------------------------

def test_lpips_features_follow_nvidia_s_calling_convention():
    net = perceptual.LPIPSFeatures(torch.jit.script(StandInVGG()))
    grey = torch.rand(2, 1, 16, 16) * 255
    assert torch.allclose(net(grey), net(grey.expand(-1, 3, -1, -1)))  # grey repeated to RGB
    big = torch.rand(1, 3, 512, 512) * 255
    assert torch.allclose(net(big), net(F.interpolate(big, size=(256, 256), mode="area")))  # area to 256 px
    with pytest.raises(GencliError, match="not the VGG16 LPIPS network"):
        perceptual.LPIPSFeatures(torch.jit.script(torch.nn.Identity()))
    G = tiny_generator(channels=3)
    target, _ = drawn_target(G)
    result = proj.project(G, target, net, steps=40)
    assert result.distance < 0.5 * result.distances[0]


def test_inception_layers_tap_before_each_halving_and_give_a_distance():
    net = perceptual.InceptionLayers(torch.jit.script(StandInInception()))
    assert net.taps == [1, 4]  # the ReLUs before the two poolings; the layers after them are dropped
    assert len(net.stages) == 5
    images = (torch.rand(2, 1, 16, 16) * 255).requires_grad_()
    feats = net(images)
    # Two taps, each of unit length per position and weighed by 1 / sqrt(positions): |f|^2 = 2 per image
    # (up to positions where every channel is 0). Inputs are resized to twice their size, at least 75 px.
    assert feats.shape == (2, 4 * 75 * 75 + 5 * 37 * 37)
    assert torch.all(feats.pow(2).sum(1) <= 2 + 1e-4) and torch.all(feats.pow(2).sum(1) > 1.5)
    (feats[0] - feats[1]).square().sum().backward()
    assert images.grad.abs().sum() > 0
    with pytest.raises(GencliError, match="no layer stack"):
        perceptual.InceptionLayers(torch.jit.script(torch.nn.Identity()))


# --- the VGG16 file ---------------------------------------------------------------------------------

def test_vgg16_file_from_option_environment_and_cache(tmp_path, monkeypatch):
    file = script_file(StandInVGG(), tmp_path / "my vgg.pt")
    assert perceptual.find_vgg16(file) == file
    monkeypatch.setenv("GENCLI_VGG16", str(file))
    assert perceptual.find_vgg16() == file
    monkeypatch.setenv("GENCLI_VGG16", str(tmp_path / "missing.pt"))
    with pytest.raises(GencliError, match="GENCLI_VGG16 .*missing.pt: no such file"):
        perceptual.find_vgg16()
    monkeypatch.delenv("GENCLI_VGG16")
    with pytest.raises(GencliError) as nowhere:
        perceptual.find_vgg16()
    message = str(nowhere.value)
    assert len(message.splitlines()) == 1 and perceptual.VGG16_URL in message
    assert str(perceptual.vgg16_cache_path()) in message and "--features PATH" in message and "download failed" in message
    assert str(perceptual.vgg16_cache_path()).startswith(str(tmp_path / "cache" / "gencli"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(GencliError, match="not a TorchScript file"):
        perceptual.load_vgg16(junk)
    with pytest.raises(GencliError, match="not the VGG16 LPIPS network"):
        perceptual.load_vgg16(script_file(torch.nn.Identity(), tmp_path / "other.pt"))


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_vgg16_download_from_a_local_server_is_checked(local_server):
    base, folder = local_server
    good = script_file(StandInVGG(), folder / "vgg16.pt")
    script_file(torch.nn.Identity(), folder / "other.pt")
    url, digest = f"{base}/vgg16.pt", metrics.sha256sum(good)
    cached = perceptual.vgg16_cache_path()
    with pytest.raises(GencliError, match="SHA-256") as bad:
        perceptual.find_vgg16(downloads=[(url, "0" * 64)])
    assert len(str(bad.value).splitlines()) == 1
    with pytest.raises(GencliError, match="not the VGG16 LPIPS network"):  # no known checksum: the interface
        perceptual.find_vgg16(downloads=[(f"{base}/other.pt", None)])
    assert not cached.exists() and list(cached.parent.iterdir()) == []  # nothing half-written kept
    assert perceptual.find_vgg16(downloads=[(url, digest)]) == cached
    assert cached.read_bytes() == good.read_bytes()
    cached.unlink()
    assert perceptual.find_vgg16(downloads=[(url, None)]) == cached  # a file of the right interface
    assert isinstance(perceptual.load_vgg16(download=False), perceptual.LPIPSFeatures)


# --- the command -------------------------------------------------------------------------------------------

def test_project_command_writes_what_it_says_and_falls_back_to_pixels(checkpoint, tmp_path):
    picture = photo(tmp_path / "holiday.png", size=(24, 20))
    result = run("project", "-c", checkpoint, picture, "--steps", 30, "--animate", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["distance"] == "pixel" and out["steps"] == 30 and math.isfinite(out["final_distance"])
    assert "Target: holiday.png, 24x20 RGB, converted to grey, center-cropped to 20x20, resized to 16x16" in result.stderr
    fallback = [line for line in result.stderr.splitlines() if line.startswith("Distance:")]
    assert len(fallback) == 1 and "Distance: pixel (no VGG16 file for lpips" in fallback[0]
    assert perceptual.VGG16_URL in fallback[0] and "no Inception file either" in fallback[0]
    assert out["output"] == "holiday_projected.png"
    assert Image.open(out["output"]).size == (16, 16)
    assert Image.open(out["compare"]).size == (2 * 16 + 3 * 2, 16 + 2 * 2)  # photo | projection
    gif = Image.open(out["animation"])
    assert gif.n_frames > 1
    ws, noise, meta = api_projection.load_w(out["w_file"], tiny_generator())
    assert ws.shape == (6, 8) and len(noise) == 6
    assert meta["space"] == "w" and meta["distance"] == "pixel" and meta["steps"] == 30
    assert meta["final_distance"] == pytest.approx(out["final_distance"]) and "tiny.safetensors" in meta["model"]
    # The projection is g(ws, noise): redrawing it from the file gives the written image.
    G = tiny_generator()
    with torch.no_grad():
        again = to_unit(G.synthesis(ws[None], noise=[n for n in noise]))[0]
    written = torch.from_numpy(np.array(Image.open(out["output"]))).float() / 255
    assert (again[0] - written).abs().max() <= 1 / 255 + 1e-6
    text = run("project", "-c", checkpoint, picture, "--steps", 2, "--space", "w+", "-o", tmp_path / "p.png")
    assert text.exit_code == 0, text.output
    assert "Projection written to" in text.stdout and "distance pixel" in text.stdout
    assert api_projection.load_w(tmp_path / "p_w.safetensors")[2]["space"] == "w+"


def test_project_falls_back_to_inception_and_uses_lpips_given_its_file(checkpoint, tmp_path, monkeypatch):
    picture = photo(tmp_path / "p.png", size=(16, 16), mode="L")
    monkeypatch.setenv("GENCLI_INCEPTION", str(script_file(StandInInception(), tmp_path / "inception.pt")))
    result = run("project", "-c", checkpoint, picture, "--steps", 3, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["distance"] == "inception"
    assert "Target: p.png, 16x16 L, used as it is" in result.stderr
    assert "Distance: inception (no VGG16 file for lpips" in result.stderr
    vgg = script_file(StandInVGG(), tmp_path / "vgg.pt")
    result = run("project", "-c", checkpoint, picture, "--steps", 3, "--features", vgg, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["distance"] == "lpips" and "Distance:" not in result.stderr
    assert api_projection.load_w(out["w_file"])[2]["distance"] == "lpips"
    explicit = run("project", "-c", checkpoint, picture, "--steps", 3, "--distance", "inception", "--json")
    assert explicit.exit_code == 0 and json.loads(explicit.stdout)["distance"] == "inception"


def test_project_bad_input_is_one_line(checkpoint, tmp_path):
    picture = photo(tmp_path / "p.png", size=(16, 16))
    lpips = run("project", "-c", checkpoint, picture, "--distance", "lpips")
    one_line_error(lpips, "VGG16 weights for --distance lpips not found", perceptual.VGG16_URL, "GENCLI_VGG16")
    assert lpips.exit_code == 1 and not (tmp_path / "p_projected.png").exists()
    one_line_error(run("project", "-c", checkpoint, tmp_path / "missing.png"), "missing.png: no such file")
    (tmp_path / "text.png").write_text("not an image")
    one_line_error(run("project", "-c", checkpoint, tmp_path / "text.png", "--steps", 1), "cannot read image")
    space = run("project", "-c", checkpoint, picture, "--space", "z")
    assert space.exit_code == 2
    steps = run("project", "-c", checkpoint, picture, "--steps", 0)
    assert steps.exit_code == 2 and "--steps must be positive" in steps.output
    one_line_error(run("project", "-c", checkpoint, picture, "--label", 1, "--steps", 1), "--label needs a conditional")
    one_line_error(run("project", "-c", checkpoint, picture, "-o", tmp_path / "x.bmp"), "unknown image extension")
    one_line_error(run("project", "-c", checkpoint, picture, "--distance", "pixel", "--features", picture),
                   "--features")
    assert run("project").exit_code == 2


def test_w_file_of_another_model_is_refused(tmp_path):
    G = tiny_generator()
    api_projection.save_w(tmp_path / "w.safetensors", torch.zeros(6, 8), [], space="w", model="m")
    with pytest.raises(GencliError, match="projected into another model"):
        api_projection.load_w(tmp_path / "w.safetensors", tiny_generator(w_dim=4, z_dim=4))
    ws, noise, meta = api_projection.load_w(tmp_path / "w.safetensors", G)
    assert ws.shape == (6, 8) and noise == [] and meta["model"] == "m"
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(GencliError, match="not a readable w file"):
        api_projection.load_w(tmp_path / "junk.safetensors")


# --- a w file where a seed goes ----------------------------------------------------------------------------

def test_seed_items_parse_seeds_and_w_files():
    from pathlib import Path

    from gencli.api.common import item_label, parse_seed_items
    from gencli.errors import OptionError

    assert parse_seed_items("0-2, me_w.safetensors,5") == [0, 1, 2, Path("me_w.safetensors"), 5]
    assert parse_seed_items("7") == [7] and item_label(Path("d/me_w.safetensors")) == "me" and item_label(3) == "3"
    with pytest.raises(OptionError, match="bad seed list --rows"):
        parse_seed_items("0,me.png", "--rows")


def cells(path, n, cell=16, pad=2):
    """The n cells of the first row of a grid image (grey), each (cell, cell) in [0, 1]."""
    grid = torch.from_numpy(np.array(Image.open(path))).float() / 255
    return [grid[pad : pad + cell, pad + k * (cell + pad) : pad + k * (cell + pad) + cell] for k in range(n)]


def test_a_projected_w_stands_where_a_seed_goes(checkpoint, tmp_path):
    G = tiny_generator()
    target, _ = drawn_target(G)
    Image.fromarray(target[0].round().to(torch.uint8).numpy(), "L").save(tmp_path / "me.png")
    Image.fromarray(drawn_target(G, seed=9)[0][0].round().to(torch.uint8).numpy(), "L").save(tmp_path / "you.png")
    for name in ("me", "you"):
        result = run("project", "-c", checkpoint, tmp_path / f"{name}.png", "--steps", 40, "-o", tmp_path / f"{name}.png".replace(".", "_p."))
        assert result.exit_code == 0, result.output
    me, you = tmp_path / "me_p_w.safetensors", tmp_path / "you_p_w.safetensors"
    projected = torch.from_numpy(np.array(Image.open(tmp_path / "me_p.png"))).float() / 255

    result = run("sample", "-c", checkpoint, "--seeds", f"{me},0-1", "-o", tmp_path / "s.png", "--outdir", tmp_path / "cells")
    assert result.exit_code == 0, result.output
    assert (torch.from_numpy(np.array(Image.open(tmp_path / "cells" / "me_p_w.png"))).float() / 255
            - projected).abs().max() <= 1 / 255 + 1e-6  # the projection itself: its noise, no truncation
    plain = run("sample", "-c", checkpoint, "--seeds", "0-1", "-o", tmp_path / "plain.png", "--outdir", tmp_path / "plain")
    assert plain.exit_code == 0
    assert (tmp_path / "cells" / "seed0001.png").read_bytes() == (tmp_path / "plain" / "seed0001.png").read_bytes()

    mix = run("style-mix", "-c", checkpoint, "--rows", f"{me},0", "--cols", f"1,{you}", "-o", tmp_path / "mix.png")
    assert mix.exit_code == 0, mix.output
    assert Image.open(tmp_path / "mix.png").size == (3 * 18 + 2, 3 * 18 + 2)
    grid = torch.from_numpy(np.array(Image.open(tmp_path / "mix.png"))).float() / 255
    row_image = grid[20:36, 2:18]  # the row header of `me` (its noise weights are 0: noise plays no part)
    assert (row_image - projected).abs().max() <= 1 / 255 + 1e-6
    labelled = run("style-mix", "-c", checkpoint, "--rows", f"{me},0", "--cols", "1", "--annotate", "-o", tmp_path / "m2.png")
    assert labelled.exit_code == 0, labelled.output

    walk = run("interpolate", "-c", checkpoint, "--seeds", f"{me},0,{you}", "--steps", 3, "-o", tmp_path / "walk.png")
    assert walk.exit_code == 0, walk.output
    assert (cells(tmp_path / "walk.png", 1)[0] - projected).abs().max() <= 1 / 255 + 1e-6  # from the photo
    gif = run("interpolate", "-c", checkpoint, "--seeds", f"{me},{you}", "--steps", 3, "--annotate", "-o", tmp_path / "w.gif")
    assert gif.exit_code == 0 and Image.open(tmp_path / "w.gif").n_frames == 3

    other = tiny_generator(w_dim=4, z_dim=4)
    elsewhere = save_model(tmp_path / "other.safetensors", "stylegan", other, other.config, epoch=1, seed=0, extra={})
    one_line_error(run("sample", "-c", elsewhere, "--seeds", str(me), "-o", tmp_path / "x.png"), "another model")
    one_line_error(run("style-mix", "-c", checkpoint, "--rows", tmp_path / "none_w.safetensors", "-o", tmp_path / "x.png"),
                   "no such file")
    one_line_error(run("sample", "vae", "--seeds", str(me), "-o", tmp_path / "x.png"), "stylegan models")
