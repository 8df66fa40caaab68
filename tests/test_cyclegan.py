"""The cyclegan family: losses, networks, training through the CLI, translation, official weights, downloads.

Tiny generators (ngf 4, 1-2 blocks) and 32 px images; one torch thread, since the machine is shared.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile

import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA, one_line_error, run
from gencli.losses import discriminator_loss, gan_loss, l1_loss, lsgan_loss, vanilla_gan_loss
from gencli import api
from gencli.data import load_unpaired
from gencli.errors import GencliError
from gencli.inference import cyclegan as cg_infer
from gencli.models import cyclegan as cg
from gencli.training import cyclegan as cg_train
from gencli.weights import cyclegan as cg_weights

TINY = ["--image-size", 32, "--ngf", 4, "--n-blocks", 1, "--ndf", 4, "--device", "cpu"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    """One torch thread (the CPUs are shared: two threads fight), models folder inside tmp_path."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(tmp_path / "models"))
    yield
    torch.set_num_threads(threads)


def noise_image(path, size=(40, 36), mode="RGB", seed=0):
    g = torch.Generator().manual_seed(seed)
    array = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
    image = Image.fromarray(array)
    image = image.convert(mode) if mode != "RGB" else image
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_dataset(root, n_a=5, n_b=4, n_test=2):
    """trainA/trainB/testA/testB of noise images; names with spaces, mixed formats and modes."""
    for i in range(n_a):
        noise_image(root / "trainA" / f"painting {i}.jpg", seed=i)
    for i in range(n_b):
        noise_image(root / "trainB" / f"photo {i}.png", size=(48, 40), mode="L" if i == 0 else "RGB", seed=10 + i)
    for domain in "AB":
        for i in range(n_test):
            noise_image(root / f"test{domain}" / f"t {i}.jpg", seed=20 + i)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny two-epoch run through the CLI: (run directory, data folder)."""
    torch.set_num_threads(1)
    root = make_dataset(tmp_path_factory.mktemp("cg_data") / "toy2art")
    out = tmp_path_factory.mktemp("cg_run") / "run"
    result = run("train", "cyclegan", "--data", root, "--out", out, "--epochs", 2, *TINY)
    assert result.exit_code == 0, result.output
    return out, root


# --- losses ------------------------------------------------------------------------------------------

def test_losses_against_hand_computed_values():
    pred = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    # (0-1)^2, 0, (2-1)^2, (-1-1)^2 -> mean (1 + 0 + 1 + 4) / 4
    assert lsgan_loss(pred, True).item() == pytest.approx(1.5)
    assert lsgan_loss(pred, False).item() == pytest.approx((0 + 1 + 4 + 1) / 4)
    logits = torch.tensor([0.0, math.log(3.0)])  # sigmoid: 1/2 and 3/4
    assert vanilla_gan_loss(logits, True).item() == pytest.approx((math.log(2) - math.log(0.75)) / 2, rel=1e-6)
    assert vanilla_gan_loss(logits, False).item() == pytest.approx((math.log(2) - math.log(0.25)) / 2, rel=1e-6)
    assert gan_loss(pred, True, "vanilla").item() == pytest.approx(vanilla_gan_loss(pred, True).item())
    assert l1_loss(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 0.0, 1.0])).item() == pytest.approx(3.5 / 3)
    # D: (mean((1-1)^2, (0.5-1)^2) + mean(0.5^2, 0^2)) / 2 = (0.125 + 0.125) / 2
    d = discriminator_loss(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.0]))
    assert d.item() == pytest.approx(0.125)
    with pytest.raises(ValueError):
        gan_loss(pred, True, "wgan")


def test_learning_rate_is_constant_then_decays_linearly():
    factors = [cg_train.lr_factor(e, 200) for e in range(1, 201)]
    assert factors[:100] == [1.0] * 100
    assert factors[100] == pytest.approx(1 - 1 / 101) and factors[-1] == pytest.approx(1 / 101)
    assert all(a > b for a, b in zip(factors[100:], factors[101:]))
    assert [cg_train.lr_factor(e, 4) for e in (1, 2, 3, 4)] == pytest.approx([1, 1, 2 / 3, 1 / 3])


def test_image_pool_keeps_fifty_and_returns_old_images():
    pool = cg_train.ImagePool(50)
    torch.manual_seed(0)
    first = torch.arange(60.0).view(60, 1, 1, 1)
    out = pool.query(first[:50])
    assert torch.equal(out, first[:50]) and len(pool.images) == 50  # filling up: the new images pass through
    later = torch.arange(100.0, 300.0).view(200, 1, 1, 1)
    out = pool.query(later)
    swapped = (out != later).flatten().float().mean().item()
    assert len(pool.images) == 50 and 0.3 < swapped < 0.7  # about half come from the history
    assert torch.equal(cg_train.ImagePool(0).query(first), first)


# --- networks --------------------------------------------------------------------------------------------

def test_networks_follow_the_paper_and_reference_layout():
    g = cg.ResnetGenerator(ngf=4, n_blocks=9)
    keys = list(g.state_dict())
    assert keys[0] == "model.1.weight" and keys[-1] == "model.26.bias"  # as the official 9-block files
    assert not any("running" in k for k in keys)  # instance norm: no affine, no running statistics
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    d = cg.PatchDiscriminator(ndf=4)
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 patches, as in pix2pix/CycleGAN
    convs = [m for m in cg.PatchDiscriminator(64).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1] and all(c.kernel_size == (4, 4) for c in convs)
    model = cg.build(cg.CycleGANConfig(ngf=4, n_blocks=1, directions=("b2a",)))
    assert model.G_AB is None and all(k.startswith("G_BA.") for k in model.state_dict())


def test_resize_upsampling_keeps_the_reference_indices():
    deconv, resize = cg.ResnetGenerator(ngf=4, n_blocks=2), cg.ResnetGenerator(ngf=4, n_blocks=2, upsample="resize")
    # The decoder's two upsamplings sit in one Sequential slot each, so every later key keeps its index.
    rename = {"model.12.weight": "model.12.conv.weight", "model.12.bias": "model.12.conv.bias",
              "model.15.weight": "model.15.conv.weight", "model.15.bias": "model.15.conv.bias"}
    assert [rename.get(k, k) for k in deconv.state_dict()] == list(resize.state_dict())
    assert isinstance(resize.model[12], cg.ResizeConv) and resize.model[12].conv.weight.shape == (8, 16, 3, 3)
    x = torch.rand(1, 3, 20, 28) * 2 - 1
    assert resize(x).shape == x.shape
    # A constant map stays constant through nearest x2 + reflection padding: no checkerboard.
    up = cg.ResizeConv(1, 1)
    with torch.no_grad():
        up.conv.weight.fill_(1.0)
        up.conv.bias.zero_()
    assert torch.equal(up(torch.ones(1, 1, 4, 4)), torch.full((1, 1, 8, 8), 9.0))
    # Checkpoints and official imports without the field are deconv; a bad value names the field.
    assert cg.CycleGANConfig().upsample == "deconv"
    with pytest.raises(Exception, match="upsample"):
        cg.CycleGANConfig(upsample="bilinear")


# --- training --------------------------------------------------------------------------------------------

def test_train_writes_every_output(trained):
    from gencli.checkpoint import load_model, read_metadata

    out, _ = trained
    for name in ("model.safetensors", "resume.pt", "metrics.jsonl", "loss.png", "options.json",
                 "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    parts = {"train_G", "train_G_adv", "train_G_cycle", "train_G_identity", "train_D", "train_D_A", "train_D_B"}
    assert parts <= set(rows[0])
    for r in rows:
        assert r["train_G"] == pytest.approx(r["train_G_adv"] + r["train_G_cycle"] + r["train_G_identity"], rel=1e-4)
    assert [r["lr"] for r in rows] == pytest.approx([2e-4, 1e-4])
    # samples: 2 test images per domain, rows of real A | fake B | rec A | real B | fake A | rec B, 32 px cells
    assert Image.open(out / "samples" / "epoch_002.png").size == (6 * 34 + 2, 2 * 34 + 2)
    meta = read_metadata(out / "model.safetensors")
    assert meta["family"] == "cyclegan" and meta["epoch"] == 2 and meta["extra"]["dataset"] == "toy2art"
    model, _ = load_model(out / "model.safetensors")  # generators only: the discriminators stay in resume.pt
    assert set(k.split(".")[0] for k in model.state_dict()) == {"G_AB", "G_BA"}
    state = torch.load(out / "resume.pt", weights_only=True)
    assert {"generators", "D_A", "D_B"} == set(state["networks"]) and {"G", "D"} == set(state["optimizers"])


def test_resume_continues_exactly(trained, tmp_path):
    from safetensors.torch import load_file

    _, root = trained
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run("train", "cyclegan", "--data", root, "--out", straight, "--epochs", 2, *TINY).exit_code == 0
    assert run("train", "cyclegan", "--data", root, "--out", resumed, "--epochs", 1, *TINY).exit_code == 0
    result = run("train", "cyclegan", "--data", root, "--out", resumed, "--epochs", 2, "--resume", "--device", "cpu")
    assert result.exit_code == 0, result.output
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["lr"] == pytest.approx(1e-4)
    # a second run does not clobber the first
    one_line_error(run("train", "cyclegan", "--data", root, "--out", resumed, "--epochs", 1, *TINY), "--resume")


def test_train_bad_data(tmp_path):
    one_line_error(run("train", "cyclegan", "--data", tmp_path / "nope", *TINY), "no data folder")
    root = make_dataset(tmp_path / "d")
    for p in (root / "trainB").iterdir():
        p.unlink()
    (root / "trainB" / "notes.txt").write_text("not an image")
    one_line_error(run("train", "cyclegan", "--data", root, "--out", tmp_path / "r", *TINY), "no image files", "trainB")
    shutil.rmtree(root / "trainB")
    one_line_error(run("train", "cyclegan", "--data", root, "--out", tmp_path / "r", *TINY), "trainB")
    one_line_error(run("train", "cyclegan", "--data", root, "--out", tmp_path / "r", "--resume", *TINY), "nothing to resume")
    one_line_error(run("train", "cyclegan", "--data", root, "--image-size", 30), "multiple of 4")


def test_unreadable_training_images_are_skipped_with_a_warning(tmp_path):
    root = make_dataset(tmp_path / "d", n_a=2, n_b=2, n_test=1)
    (root / "trainA" / "broken.jpg").write_bytes(b"not a jpeg")
    seen = []
    data = load_unpaired(root, 32, on_skip=lambda p, m: seen.append(p.name))
    assert seen == ["broken.jpg"] and data.train_a.shape == (2, 3, 35, 35) and data.test_a.shape == (1, 3, 32, 32)
    data = load_unpaired(root, 32, max_images=1)
    assert len(data.train_a) == 1 and len(data.train_b) == 1


# --- translation -----------------------------------------------------------------------------------------

def test_translate_any_size_and_mode(trained, tmp_path):
    out, _ = trained
    inputs = {"odd.png": ((37, 29), "RGB"), "grey.png": ((33, 41), "L"), "alpha.png": ((30, 30), "RGBA"),
              "palette.gif": ((25, 19), "P"), "tiny.png": ((3, 2), "RGB")}
    folder = tmp_path / "in"
    for name, (size, mode) in inputs.items():
        noise_image(folder / name, size=size, mode=mode)
    (folder / "broken.png").write_bytes(b"\x89PNG nonsense")
    result = run("translate", out / "model.safetensors", folder, "-o", tmp_path / "res", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Warning: cannot read image" in result.output and "broken.png" in result.output and "skipped" in result.output
    for name, (size, _) in inputs.items():
        image = Image.open(tmp_path / "res" / f"{name.rsplit('.', 1)[0]}.png")
        assert image.size == size and image.mode == "RGB"
    # one file, b2a, resized short side, bf16
    result = run("translate", out, folder / "odd.png", "-o", tmp_path / "one.jpg", "--direction", "b2a",
                 "--size", 16, "--precision", "bf16", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "one.jpg").size == (20, 16)
    assert Image.open(tmp_path / "one.jpg").format == "JPEG"
    # the extension names the format, as for every image gencli writes
    result = run("translate", out, folder / "odd.png", "-o", tmp_path / "one.webp", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "one.webp").format == "WEBP"


def test_translate_exif_rotation(trained, tmp_path):
    out, _ = trained
    image = Image.new("RGB", (40, 24), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    result = run("translate", out, tmp_path / "rotated.jpg", "-o", tmp_path / "r.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "r.png").size == (24, 40)


def test_translate_bad_input(trained, tmp_path, vae_ckpt, monkeypatch):
    out, _ = trained
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    one_line_error(run("translate", out, bad, "--device", "cpu"), "cannot read image")
    one_line_error(run("translate", out, tmp_path / "missing.png", "--device", "cpu"), "not found")
    good = noise_image(tmp_path / "g.png")
    one_line_error(run("translate", vae_ckpt, good, "--device", "cpu"), "translate does not apply to vae")
    monkeypatch.chdir(tmp_path)
    one_line_error(run("translate", "no_such_model", good), "no model named 'no_such_model'")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run("translate", out, empty, "--device", "cpu"), "no image files")
    # NAME resolves to runs/NAME/model.safetensors
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "toy").symlink_to(out)
    result = run("translate", "toy", good, "--device", "cpu")
    assert result.exit_code == 0 and (tmp_path / "g_a2b.png").is_file(), result.output


def test_tiles_share_statistics_and_match_the_whole_image():
    torch.manual_seed(0)
    g = cg.ResnetGenerator(ngf=4, n_blocks=2).eval()
    cg.init_weights(g)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 150, 174) * 2 - 1, 5, 1, 2)
    whole = cg_infer.translate_tensor(g, x)
    assert whole.shape == x.shape
    # forced tiling, statistics from the whole image: the same output up to the tile borders' context
    tiled = cg_infer.translate_tensor(g, x, tile=96, overlap=48, margin=12, whole_max_pixels=0, stats_size=10_000)
    assert tiled.shape == x.shape
    assert (tiled - whole).abs().mean() < 2e-3 and (tiled - whole).abs().max() < 0.08
    # naive tiles (each normalised by itself) differ far more: that is what shared statistics fix
    naive = torch.zeros_like(x)
    for top in (0, 75):
        for left in (0, 87):
            naive[..., top : top + 75, left : left + 87] = cg_infer.translate_tensor(g, x[..., top : top + 75, left : left + 87])
    assert (naive - whole).abs().mean() > 5 * (tiled - whole).abs().mean()
    # statistics from a downscaled copy: still one normalisation for all tiles, close to the whole image
    approx = cg_infer.translate_tensor(g, x, tile=96, overlap=48, margin=12, whole_max_pixels=0, stats_size=96)
    assert (approx - whole).abs().mean() < 0.1


# --- official weights --------------------------------------------------------------------------------------

class OfficialResnetBlock(torch.nn.Module):
    """The reference code's ResnetBlock (models/networks.py), instance norm, reflection padding."""

    def __init__(self, dim, use_dropout):
        super().__init__()
        nn = torch.nn
        block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True)]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


class OfficialResnetGenerator(torch.nn.Module):
    """The reference code's ResnetGenerator, written out independently of gencli's."""

    def __init__(self, ngf=64, n_blocks=9, use_dropout=False):
        super().__init__()
        nn = torch.nn
        model = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, padding=0, bias=True), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                      nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        model += [OfficialResnetBlock(ngf * 4, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                      nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


def official_file(path, n_blocks=9, dropout=False, running_stats=True, seed=0):
    torch.manual_seed(seed)
    net = OfficialResnetGenerator(ngf=4, n_blocks=n_blocks, use_dropout=dropout).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    state = net.state_dict()
    if running_stats:  # old official files carry these for their affine-free instance norms
        for i in (2, 5, 8):
            state[f"model.{i}.running_mean"] = torch.zeros(net.model[i].num_features)
            state[f"model.{i}.running_var"] = torch.ones(net.model[i].num_features)
            state[f"model.{i}.num_batches_tracked"] = torch.tensor(0)
    torch.save(state, path)
    return net


@pytest.mark.parametrize("n_blocks,dropout", [(9, False), (6, True)])
def test_import_official_weights_matches_numerically(tmp_path, n_blocks, dropout):
    from gencli.checkpoint import load_model

    net = official_file(tmp_path / "latest_net_G.pth", n_blocks, dropout)
    result = run("import-weights", "cyclegan", tmp_path / "latest_net_G.pth", "--name", "toy", "--direction", "a2b")
    assert result.exit_code == 0, result.output
    path = tmp_path / "models" / "toy.safetensors"
    model, meta = load_model(path)
    assert meta["config"]["n_blocks"] == n_blocks and meta["config"]["dropout"] == dropout
    x = torch.rand(1, 3, 36, 28) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.generator("a2b")(x), net(x), atol=1e-5)
    # translate finds the imported model by name, and refuses the direction it does not have
    image = noise_image(tmp_path / "in.png")
    result = run("translate", "toy", image, "-o", tmp_path / "o.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    one_line_error(run("translate", "toy", image, "--direction", "b2a", "--device", "cpu"), "only translates a2b")


def test_import_merges_the_two_directions_and_rejects_foreign_files(tmp_path):
    from gencli.checkpoint import load_model

    official_file(tmp_path / "monet2photo.pth", n_blocks=2, seed=0)
    net_b = official_file(tmp_path / "style_monet.pth", n_blocks=2, seed=1)
    assert run("import-weights", "cyclegan", tmp_path / "monet2photo.pth").exit_code == 0
    result = run("import-weights", "cyclegan", tmp_path / "style_monet.pth", "--name", "monet2photo", "--direction", "b2a")
    assert result.exit_code == 0, result.output
    model, meta = load_model(tmp_path / "models" / "monet2photo.safetensors")
    assert meta["config"]["directions"] == ["a2b", "b2a"]
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.generator("b2a")(x), net_b(x), atol=1e-5)
    one_line_error(run("import-weights", "cyclegan", tmp_path / "monet2photo.pth"), "already exists", "--overwrite")

    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "other.pth")
    one_line_error(run("import-weights", "cyclegan", tmp_path / "other.pth"), "not a CycleGAN")
    state = torch.load(tmp_path / "monet2photo.pth", weights_only=True)
    del state["model.10.conv_block.5.weight"]
    torch.save(state, tmp_path / "cut.pth")
    one_line_error(run("import-weights", "cyclegan", tmp_path / "cut.pth"), "not a CycleGAN ResNet generator")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled.pth")  # a whole pickled module: refused by weights_only
    one_line_error(run("import-weights", "cyclegan", tmp_path / "pickled.pth"), "loaded safely")
    (tmp_path / "text.pth").write_text("nope")
    one_line_error(run("import-weights", "cyclegan", tmp_path / "text.pth"), "loaded safely")
    one_line_error(run("translate", tmp_path / "monet2photo.pth", tmp_path / "x.png"), "import-weights")


def test_export_fp16_halves_the_file(trained, tmp_path):
    from gencli.checkpoint import load_model

    out, _ = trained
    path = cg_weights.export_fp16(out / "model.safetensors", tmp_path / "assets" / "toy.safetensors")
    assert path.stat().st_size < 0.6 * (out / "model.safetensors").stat().st_size
    full, _ = load_model(out / "model.safetensors")
    half, meta = load_model(path)
    assert meta["epoch"] == 2 and next(half.parameters()).dtype == torch.float32
    assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(full.parameters(), half.parameters()))


# --- downloads -----------------------------------------------------------------------------------------

def make_zip(path, members: dict[str, bytes], links: tuple[str, ...] = ()):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, "/etc/passwd")
    return path


def test_download_dataset_from_a_file_url(tmp_path):
    served = tmp_path / "server"
    served.mkdir()
    png = (noise_image(tmp_path / "x.png")).read_bytes()
    make_zip(served / "monet2photo.zip", {f"monet2photo/{d}/img {i}.png": png for d in ("trainA", "trainB", "testA", "testB")
                                          for i in range(2)})
    data = tmp_path / "data"
    result = run("download", "monet2photo", "--data-dir", data, "--base-url", served.as_uri())
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (data / "monet2photo").iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert (data / "monet2photo" / "trainA" / "img 0.png").read_bytes() == png
    assert sorted(p.name for p in data.iterdir()) == ["monet2photo"]  # no zip or staging folder left behind
    again = run("download", "monet2photo", "--data-dir", data, "--base-url", served.as_uri(), "--json")
    assert again.exit_code == 0, again.output  # already there: said so, nothing fetched or changed
    assert json.loads(again.stdout)["downloaded"] is False
    assert "already in" in run("download", "monet2photo", "--data-dir", data).stdout  # no server asked
    (data / "monet2photo" / "trainA" / "img 0.png").write_bytes(b"changed")
    forced = run("download", "monet2photo", "--data-dir", data, "--base-url", served.as_uri(), "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["downloaded"] is True, forced.output
    assert (data / "monet2photo" / "trainA" / "img 0.png").read_bytes() == png
    one_line_error(run("download", "not_a_dataset", "--data-dir", data), "unknown CycleGAN data set")
    one_line_error(run("download", "missing", "--data-dir", data, "--base-url", served.as_uri()), "cannot download")


@pytest.mark.parametrize("members,links,message", [
    ({"evil/trainA/a.png": b"x", "evil/../../escaped.txt": b"gotcha"}, (), "outside"),
    ({"/tmp/gencli_absolute.txt": b"gotcha"}, (), "absolute"),
    ({"evil/trainA/a.png": b"x"}, ("evil/trainB",), "symbolic link"),
])
def test_download_rejects_archives_that_escape(tmp_path, members, links, message):
    served = tmp_path / "server"
    served.mkdir()
    make_zip(served / "evil.zip", members, links)
    data = tmp_path / "data"
    result = run("download", "evil", "--data-dir", data, "--base-url", served.as_uri())
    one_line_error(result, "unsafe archive", message)
    assert not (tmp_path / "escaped.txt").exists() and not (data / "evil").exists()
    assert not any(p.name != "server" and p.name != "data" for p in tmp_path.iterdir())


def test_download_rejects_a_corrupt_zip(tmp_path):
    served = tmp_path / "server"
    served.mkdir()
    (served / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    one_line_error(run("download", "broken", "--data-dir", tmp_path / "d", "--base-url", served.as_uri()), "not a zip")


def test_download_weights_over_http(tmp_path):
    import functools
    import http.server
    import threading

    served = tmp_path / "server"
    served.mkdir()
    net = official_file(served / "style_monet.pth", n_blocks=1)
    requests = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(args)

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        one_line_error(run("download-weights", "style_monet", "--name", "../x", "--base-url", base), "bad model name")
        assert not requests  # refused before downloading anything
        result = run("download-weights", "style_monet", "--base-url", base)
        assert result.exit_code == 0, result.output
        one_line_error(run("download-weights", "nothing_here", "--base-url", base), "HTTP 404")
    finally:
        server.shutdown()
        server.server_close()
    from gencli.checkpoint import load_model

    model, meta = load_model(tmp_path / "models" / "monet2photo.safetensors")  # style_monet is monet2photo's b2a
    assert meta["config"]["directions"] == ["b2a"]
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.generator("b2a")(x), net(x), atol=1e-5)
    one_line_error(run("download-weights", "unknown_model"), "unknown pretrained CycleGAN")


# --- CLI surface and real data ------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["train", "cyclegan"], ["translate"], ["download"], ["download-weights"],
                                     ["import-weights", "cyclegan"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output, result.output


@pytest.mark.skipif(not (SHARED_DATA / "monet2photo" / "trainA").is_dir(), reason="real monet2photo not available")
def test_real_monet2photo_one_step():
    data = load_unpaired(SHARED_DATA / "monet2photo", 32, max_images=2)
    assert data.train_a.shape == (2, 3, 35, 35) and data.train_b.shape == (2, 3, 35, 35)
    task = cg_train.CycleGANTask(cg.CycleGANConfig(image_size=32, ngf=4, n_blocks=1, ndf=4), data, epochs=1)
    logs = task.train_step(task.epoch_batches(1)[0])
    assert all(math.isfinite(v) for v in logs.values())


def test_bundled_monet2photo_translates_offline(tmp_path, monkeypatch):
    """No runs/ and no imported models: `translate monet2photo` uses the bundled fp16 model, both ways."""
    from gencli.runs import bundled_checkpoint
    from gencli.checkpoint import read_metadata

    path = bundled_checkpoint("monet2photo")
    assert path is not None and path.stat().st_size < 12 * 2**20
    meta = read_metadata(path)
    assert meta["family"] == "cyclegan" and meta["config"]["image_size"] == 128
    monkeypatch.chdir(tmp_path)
    source = noise_image(tmp_path / "in.png", size=(50, 38))
    for direction in ("a2b", "b2a"):
        result = run("translate", "monet2photo", source, "--direction", direction, "-o", f"{direction}.png")
        assert result.exit_code == 0, result.output
        out = Image.open(tmp_path / f"{direction}.png")
        assert out.size == (50, 38) and out.mode == "RGB"


# --- upsampling, load size and precision through the CLI ------------------------------------------------

def test_new_models_resize_and_record_precision_and_load_size(trained):
    from gencli.checkpoint import read_metadata

    out, _ = trained
    meta = read_metadata(out / "model.safetensors")
    assert meta["config"]["upsample"] == "resize" and meta["extra"]["load_size"] is None
    options = json.loads((out / "options.json").read_text())
    assert options["data"]["load_size"] == 35 and options["options"]["load_size"] is None  # 1.12 x 32
    assert options["resolved"]["precision"] in ("fp32", "bf16") and options["resolved"]["precision_reason"].startswith("auto")


def test_load_size_deconv_and_fp32_are_kept_on_resume(tmp_path):
    from gencli.checkpoint import read_metadata

    root = make_dataset(tmp_path / "d", n_a=2, n_b=2, n_test=1)
    out = tmp_path / "run"
    flags = ["--data", root, "--out", out, "--load-size", 42, "--upsample", "deconv", "--precision", "fp32", *TINY]
    result = run("train", "cyclegan", "--epochs", 1, *flags)
    assert result.exit_code == 0 and "precision fp32 (asked for)" in result.output, result.output
    meta = read_metadata(out / "model.safetensors")
    assert meta["config"]["upsample"] == "deconv" and meta["extra"]["load_size"] == 42
    # The sample grid shows whole test images at the loaded scale (rounded down to a multiple of 4).
    assert Image.open(out / "samples" / "epoch_001.png").size == (6 * 42 + 2, 40 + 4)
    result = run("train", "cyclegan", "--data", root, "--out", out, "--epochs", 2, "--resume", "--device", "cpu",
                 "--precision", "fp32")
    assert result.exit_code == 0, result.output
    options = json.loads((out / "options.json").read_text())
    assert options["options"]["load_size"] == 42 and options["config"]["upsample"] == "deconv"
    assert read_metadata(out / "model.safetensors")["epoch"] == 2
    one_line_error(run("train", "cyclegan", "--data", root, "--out", tmp_path / "r", "--load-size", 30, *TINY),
                   "--load-size", "32")
    with pytest.raises(GencliError, match="fp16"):  # the CLI offers auto, fp32 and bf16 only
        api.train_cyclegan(data=root, run_dir=tmp_path / "r", precision="fp16")


def test_precision_auto_follows_the_hardware(monkeypatch):
    from gencli import distributed

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert distributed.resolve_precision("auto", cpu) == ("fp32", "auto: no native bf16 on this CPU")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert distributed.resolve_precision("auto", cpu)[0] == "bf16"
    assert distributed.resolve_precision("fp32", cpu) == ("fp32", "asked for")
