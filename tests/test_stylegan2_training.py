"""Training NVIDIA's StyleGAN2 networks (gencli.training.stylegan2): fine-tuning the tiny networks NVIDIA's
code made (tests/fixtures/stylegan2), training one from scratch, Freeze-D, ADA, resume, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import one_line_error, run
from gencli import api
from gencli.checkpoint import load_discriminator, load_model
from gencli.errors import GencliError
from gencli.models.stylegan2 import StyleGAN2Config
from gencli.training import stylegan2 as sg2
from gencli.training.augment import ada_adjust, diff_augment, draw_augment
from gencli.training.loop import TrainingHooks

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"
# 4 steps of 4 images a tick; R1 on every second step, so that a short run computes it
FAST = dict(batch_size=4, tick_kimg=0.016, r1_every=2, device="cpu")
SCRATCH = dict(architecture="stylegan2", resolution=16, channel_base=64, channel_max=16, z_dim=8, w_dim=8,
               mapping_layers=2)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """NVIDIA's FFHQ-like 32 px network (G_ema with its D), imported by the command line."""
    out = tmp_path_factory.mktemp("source") / "ffhq_like.safetensors"
    result = run("import-weights", "stylegan", FIXTURES / "sg3_ffhq_like.pkl", "-o", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """12 random photos of assorted sizes and shapes (none 32 px square)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(12):
        w, h = [(40, 40), (64, 48), (37, 90)][i % 3]
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


class Notes(TrainingHooks):
    def __init__(self):
        self.lines = []

    def note(self, message: str) -> None:
        self.lines.append(message)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fine_tune_moves_g_and_d_with_finite_losses_and_writes_a_stylegan2_checkpoint(source, photos, tmp_path):
    notes = Notes()
    path = api.train_stylegan(init_from=source, data=str(photos), kimg=0.032, **FAST, run_dir=tmp_path / "run",
                              progress=notes)
    rows = metrics(tmp_path / "run")
    assert len(rows) == 2
    for row in rows:
        for key in ("train_g_loss", "train_d_loss", "train_r1"):
            assert np.isfinite(row[key])
    assert rows[-1]["train_r1"] > 0  # R1 was computed
    # the images were made to fit the 32 px network, and the run said so in one line
    assert "data " + str(photos) + ": resized 12 of 12 images to 32 px (short side), cropped 8 to square (centre)" \
        in notes.lines
    assert any("NVIDIA's objective" in line for line in notes.lines)
    before, after = tensors(source), tensors(path)
    assert set(before) == set(after)  # G_ema and D, as the import holds them
    moved = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert any(k.startswith("discriminator.") for k in moved) and any(k.startswith("synthesis.") for k in moved)
    G, meta = load_model(path)
    assert meta["family"] == "stylegan2" and isinstance(G.config, StyleGAN2Config)
    assert meta["extra"]["discriminator"] is True and meta["extra"]["init_from"] == str(source)
    D, _ = load_discriminator(path)
    assert D(torch.zeros(2, 3, 32, 32)).shape == (2, 1)
    options = json.loads((tmp_path / "run" / "options.json").read_text())["options"]
    # NVIDIA's 'auto' settings: lr 0.0025, gamma 0.0002 res^2 / batch, EMA batch x 10 / 32
    assert options["architecture"] == "stylegan2" and options["lr"] == 0.0025
    assert options["r1_gamma"] == pytest.approx(0.0002 * 32**2 / 4) and options["ema_kimg"] == pytest.approx(4 * 10 / 32)
    # the checkpoint samples like any stylegan2
    result = run("sample", "stylegan", "-c", tmp_path / "run", "--seeds", "0-3", "-o", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "grid.png").size[0] > 32


def test_freeze_d_keeps_the_first_blocks_fixed(source, photos, tmp_path):
    path = api.train_stylegan(init_from=source, data=str(photos), kimg=0.016, freeze_d=2, freeze_mapping=True,
                              **FAST, run_dir=tmp_path / "run")
    before, after = tensors(source), tensors(path)
    for key in before:
        same = torch.equal(before[key], after[key])
        if key.startswith(("discriminator.blocks.0.", "discriminator.blocks.1.", "mapping.")):
            assert same, key
    assert not torch.equal(before["discriminator.blocks.2.conv0.weight"], after["discriminator.blocks.2.conv0.weight"])
    assert not torch.equal(before["discriminator.epilogue.out.weight"], after["discriminator.epilogue.out.weight"])


def test_ada_adjust_moves_p_by_the_sign_within_0_and_1():
    step = 64 / (500 * 1000)
    assert ada_adjust(0.0, 0.9, 0.6, 64, 500) == pytest.approx(step)
    assert ada_adjust(0.5, 0.1, 0.6, 64, 500) == pytest.approx(0.5 - step)
    assert ada_adjust(0.0, 0.1, 0.6, 64, 500) == 0.0
    assert ada_adjust(1.0, 1.0, 0.6, 64, 500) == 1.0
    assert ada_adjust(0.3, 0.6, 0.6, 64, 500) == 0.3
    # 0 -> 1 in ada_kimg thousand images
    p = 0.0
    for _ in range(500 * 1000 // 64):
        p = ada_adjust(p, 1.0, 0.6, 64, 500)
    assert p == pytest.approx(1.0, abs=step)


def test_ada_probability_decides_which_images_are_augmented():
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    g = torch.Generator().manual_seed(0)
    none = diff_augment(x, draw_augment("color,translation,cutout", 64, 16, g, p=0.0))
    assert torch.equal(none, x)
    params = draw_augment("cutout", 64, 16, torch.Generator().manual_seed(1), p=0.5)
    out = diff_augment(x, params)
    changed = (out != x).flatten(1).any(1)
    assert torch.equal(changed, params["cutout_on"])
    assert 10 < int(changed.sum()) < 54


def _ada_task(bias: float, p: float = 0.0) -> sg2.StyleGAN2Task:
    config = StyleGAN2Config(img_resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=16,
                             d_channel_base=64, d_channel_max=16)
    task = sg2.StyleGAN2Task(config, torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), dataset="x",
                             batch_size=4, lr=1e-9, r1_gamma=0.0, ema_kimg=1.0, tick_images=16, augment="ada",
                             ada_kimg=0.08)  # p moves by 16 / 80 = 0.2 every 4 steps
    with torch.no_grad():
        task.D.epilogue.out.bias.fill_(bias)  # a D that always says "real" (or "fake")
    task.ada_p = p
    return task


def test_ada_p_rises_when_d_says_real_and_falls_when_it_says_fake():
    up = _ada_task(1000.0)
    for batch in up.epoch_batches(1) + up.epoch_batches(2):  # 8 steps: two adjustments
        logs = up.train_step(batch)
    assert up.ada_p == pytest.approx(0.4) and logs["ada_p"] == pytest.approx(0.4)
    down = _ada_task(-1000.0, p=0.5)
    for batch in down.epoch_batches(1):
        down.train_step(batch)
    assert down.ada_p == pytest.approx(0.3)


def test_resume_is_bit_exact_and_keeps_the_ada_probability(source, photos, tmp_path):
    common = dict(init_from=source, data=str(photos), augment="ada", ada_kimg=0.05, **FAST)
    straight = api.train_stylegan(**common, kimg=0.048, run_dir=tmp_path / "straight")
    api.train_stylegan(**common, kimg=0.016, run_dir=tmp_path / "resumed")
    resumed = api.train_stylegan(run_dir=tmp_path / "resumed", resume=True, kimg=0.048)
    a, b = tensors(straight), tensors(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    rows = metrics(tmp_path / "straight")
    assert drop(rows) == drop(metrics(tmp_path / "resumed"))
    assert [r["ada_p"] for r in rows][-1] != 0 or all("ada_p" in r for r in rows)
    assert (tmp_path / "resumed" / "loss.png").is_file()


def test_scratch_stylegan2_trains_at_a_small_size(photos, tmp_path):
    path = api.train_stylegan(**SCRATCH, data=str(photos), kimg=0.016, **FAST, run_dir=tmp_path / "run")
    G, meta = load_model(path)
    assert meta["family"] == "stylegan2"
    assert (G.config.img_resolution, G.config.channel_base, G.config.channel_max) == (16, 64, 16)
    assert G.config.mbstd_group_size == 4 and G.config.mapping_layers == 2
    options = json.loads((tmp_path / "run" / "options.json").read_text())["options"]
    assert options["channel_base"] == 64 and options["resolution"] == 16
    # and it can be fine-tuned in turn: --init-from a run folder
    api.train_stylegan(init_from=tmp_path / "run", data=str(photos), kimg=0.016, **FAST, run_dir=tmp_path / "tuned")
    assert load_model(tmp_path / "tuned" / "model.safetensors")[1]["family"] == "stylegan2"


def test_cli_fine_tune_with_augment_ada(source, photos, tmp_path, monkeypatch):
    """--init-from by model name (an imported network in the models folder), as `-c NAME` finds it."""
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(source.parent))
    result = run("train", "stylegan", "--init-from", source.stem, "--data", photos, "--kimg", 0.016, "--tick-kimg", 0.016,
                 "--batch-size", 4, "--augment", "ada", "--run-dir", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "ADA target 0.6" in result.output and "resized 12 of 12 images" in result.output
    options = json.loads((tmp_path / "run" / "options.json").read_text())["options"]
    assert options["augment"] == "ada" and options["ada_kimg"] == 100  # NVIDIA's speed when fine-tuning
    assert "ada_p" in metrics(tmp_path / "run")[0]


@pytest.mark.parametrize("args, fragments", [
    (["--arch", "stylegan", "--augment", "ada"], ["--augment ada", "--arch stylegan2"]),
    (["--channel-base", "64"], ["--channel-base is for --arch stylegan2"]),
    (["--arch", "stylegan2", "--resolution", "16", "--channel-base", "64", "--widths", "8,8,8"], ["--widths"]),
    (["--arch", "stylegan2", "--resolution", "16", "--channel-base", "64", "--batch-size", "6"],
     ["multiple of D's minibatch-std group of 4"]),
    (["--arch", "stylegan2", "--resolution", "16", "--channel-base", "64", "--batch-size", "16"],
     ["holds 12 images, fewer than one batch of 16"]),
])
def test_bad_inputs_are_one_line(photos, tmp_path, args, fragments):
    result = run("train", "stylegan", "--data", photos, "--kimg", 0.016, "--run-dir", tmp_path / "run",
                 "--device", "cpu", *args)
    one_line_error(result, *fragments)


def test_bad_init_from_is_one_line(source, photos, tmp_path):
    base = ["train", "stylegan", "--data", photos, "--kimg", 0.016, "--batch-size", 4, "--run-dir", tmp_path / "r"]
    one_line_error(run(*base, "--init-from", source, "--resolution", 64), "--init-from fixes the architecture")
    one_line_error(run(*base, "--init-from", source, "--freeze-d", 9), "--freeze-d", "between 0 and 3")
    one_line_error(run(*base, "--init-from", source, "--cond"), "unconditional")
    one_line_error(run(*base, "--init-from", tmp_path / "missing.safetensors"), "--init-from", "not found")
    G, _ = load_model(source)
    from gencli.checkpoint import save_model

    save_model(tmp_path / "g_only.safetensors", "stylegan2", G, G.config, epoch=0, seed=0)
    one_line_error(run(*base, "--init-from", tmp_path / "g_only.safetensors"), "needs the discriminator")


def test_too_few_images_refused_by_the_library(photos, tmp_path):
    with pytest.raises(GencliError, match="fewer than one batch"):
        api.train_stylegan(**SCRATCH, data=str(photos), kimg=0.016, batch_size=16, device="cpu",
                           run_dir=tmp_path / "run")
