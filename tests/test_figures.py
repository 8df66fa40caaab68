"""Figures: Kingma & Welling's latent grid, annotations in a margin, --scale, --outdir, animations, the
extension -> format rule and the loss plots."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import one_line_error, run
from PIL import Image

from gencli import api
from gencli.checkpoint import load_model
from gencli.images import curves_figure, make_grid, save_grid, to_pil
from gencli.inference import vae as vae_inference
from gencli.runs import bundled_checkpoint

CELL, PAD = 28, 2


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def cell(grid: np.ndarray, i: int, j: int, size: int = CELL) -> np.ndarray:
    """The image in row i, column j of a make_grid array (padding 2)."""
    top, left = PAD + i * (size + PAD), PAD + j * (size + PAD)
    return grid[top : top + size, left : left + size]


def as_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [0, 1] -> (N, H, W) uint8, rounded as the PNG writer does."""
    return (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


# --- the latent grid -----------------------------------------------------------------------------------

def test_prior_coordinates_are_normal_quantiles():
    z = vae_inference.prior_coordinates(5)
    assert z[2] == 0  # the middle cell of an odd grid is z = 0
    assert torch.allclose(z, -z.flip(0))  # symmetric
    assert (z.diff() > 0).all()
    # (i + 0.5) / 20 reaches 0.975 at i = 19: the probit of 0.975 is 1.959964
    assert vae_inference.prior_coordinates(20)[-1].item() == pytest.approx(1.959964, abs=1e-5)
    assert vae_inference.prior_coordinates(2).tolist() == pytest.approx([-0.6744898, 0.6744898], abs=1e-6)
    assert vae_inference.prior_coordinates(1).tolist() == [0.0]


def test_latent_grid_defaults_to_the_prior_quantiles(tmp_path, vae_ckpt):
    result = run("latent-grid", "-c", vae_ckpt, "--steps", 3, "-o", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    model, _ = load_model(vae_ckpt)
    q = torch.special.ndtri(torch.tensor(1 / 6)).item()  # the first of (i + 0.5) / 3
    # top-left is (low z0, high z1), the centre is the origin
    expected = vae_inference.decode(model, torch.tensor([[q, -q], [0.0, 0.0]]))
    grid = pixels(tmp_path / "g.png")
    assert np.abs(cell(grid, 0, 0).astype(int) - as_uint8(expected)[0]).max() <= 1
    assert np.abs(cell(grid, 1, 1).astype(int) - as_uint8(expected)[1]).max() <= 1


def test_range_minmax_is_the_previous_default(tmp_path, vae_ckpt):
    result = run("latent-grid", "-c", vae_ckpt, "--steps", 4, "--range", "minmax", "-o", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    model, meta = load_model(vae_ckpt)
    lo, hi = meta["extra"]["latent_min"], meta["extra"]["latent_max"]
    # the grid as it was drawn before: linspace over the stored range, rows from high to low z1
    xs, ys = torch.linspace(lo[0], hi[0], 4), torch.linspace(lo[1], hi[1], 4).flip(0)
    z = torch.stack([xs.repeat(4), ys.repeat_interleave(4)], 1)
    with torch.no_grad():
        images = torch.sigmoid(model.decode(z, None))
    save_grid(images, tmp_path / "old.png", nrow=4)
    assert (tmp_path / "g.png").read_bytes() == (tmp_path / "old.png").read_bytes()
    result = run("latent-grid", "-c", vae_ckpt, "--steps", 4, "--range", "auto", "-o", tmp_path / "auto.png")
    assert result.exit_code == 0 and (tmp_path / "auto.png").read_bytes() == (tmp_path / "old.png").read_bytes()
    one_line_error(run("latent-grid", "-c", vae_ckpt, "--range", "wide", "-o", tmp_path / "x.png"),
                   "--range", "prior, minmax")


# --- annotations and --scale -----------------------------------------------------------------------------

def margin_and_inside(annotated: np.ndarray, plain: np.ndarray) -> tuple[int, int]:
    """The annotated figure holds the plain grid unchanged in its bottom-right corner, below and right of
    a white margin; returns (top, left) margins."""
    top, left = annotated.shape[0] - plain.shape[0], annotated.shape[1] - plain.shape[1]
    assert top >= 0 and left >= 0 and top + left > 0
    assert (annotated[top:, left:] == plain).all()
    return top, left


def test_annotate_adds_a_margin_and_keeps_the_cells(tmp_path, vae_ckpt, cvae_ckpt):
    for args in (["latent-grid", "-c", vae_ckpt, "--steps", 4], ["sample", "cvae", "-c", cvae_ckpt, "-n", 20]):
        assert run(*args, "-o", tmp_path / "plain.png").exit_code == 0
        result = run(*args, "--annotate", "-o", tmp_path / "labelled.png")
        assert result.exit_code == 0, result.output
        annotated = pixels(tmp_path / "labelled.png")
        top, left = margin_and_inside(annotated, pixels(tmp_path / "plain.png"))
        assert (annotated[:, :left] < 128).any()  # dark text: the row labels
        assert (top > 0) == (args[0] == "latent-grid")  # z values above the columns; a cvae's rows only


def test_style_mix_headers_and_scale(tmp_path):
    G = bundled_checkpoint("stylegan")
    common = dict(checkpoint=G, rows=[0, 1], cols=[4, 5, 6], cutoff=4)
    plain = pixels(api.style_mix(**common, out=tmp_path / "plain.png"))
    big = pixels(api.style_mix(**common, out=tmp_path / "big.png", scale=3))
    assert big.shape[:2] == (3 * plain.shape[0], 3 * plain.shape[1])
    assert (big == plain.repeat(3, 0).repeat(3, 1)).all()  # nearest neighbour
    labelled = pixels(api.style_mix(**common, out=tmp_path / "labelled.png", annotate=True))
    margin_and_inside(labelled, plain)


def test_cyclegan_sample_grid_headers_only_when_asked(tmp_path):
    from gencli.training.cyclegan import CycleGANTask

    cells = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for annotate in (False, True):
        task = SimpleNamespace(sample_grid=lambda: cells, annotate=annotate, lr=1.0, epochs=2,
                               sample_headers=CycleGANTask.sample_headers)
        CycleGANTask.end_epoch(task, 1, tmp_path / str(annotate), final=False)
    plain = tmp_path / "False" / "samples" / "epoch_001.png"
    save_grid(cells, tmp_path / "reference.png", nrow=6)
    assert plain.read_bytes() == (tmp_path / "reference.png").read_bytes()  # unchanged by default
    top, left = margin_and_inside(pixels(tmp_path / "True" / "samples" / "epoch_001.png"), pixels(plain))
    assert top > 0


# --- one file per seed ------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["vae", "stylegan"])
def test_outdir_writes_one_png_per_seed_equal_to_the_cells(tmp_path, vae_ckpt, family):
    ckpt = vae_ckpt if family == "vae" else bundled_checkpoint("stylegan")
    result = run("sample", family, "-c", ckpt, "--seeds", "3,7,42", "--nrow", 3, "-o", tmp_path / "grid.png",
                 "--outdir", tmp_path / "each")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "each").iterdir())
    assert files == ["seed0003.png", "seed0007.png", "seed0042.png"]
    grid = pixels(tmp_path / "grid.png")
    for j, name in enumerate(["seed0003.png", "seed0007.png", "seed0042.png"]):
        single = pixels(tmp_path / "each" / name)
        assert (cell(grid, 0, j, single.shape[0]) == single).all()


def test_outdir_that_is_a_file_is_refused(tmp_path, vae_ckpt):
    (tmp_path / "f").write_text("keep")
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "-o", tmp_path / "g.png", "--outdir", tmp_path / "f"),
                   "--outdir")
    assert (tmp_path / "f").read_text() == "keep"


# --- animations ----------------------------------------------------------------------------------------------

def test_interpolate_gif_has_one_frame_per_point_of_the_path(tmp_path):
    G = bundled_checkpoint("stylegan")
    path = api.interpolate(checkpoint=G, seeds=[0, 1, 2], steps=5, out=tmp_path / "walk.gif", scale=2)
    still = pixels(api.interpolate(checkpoint=G, seeds=[0, 1, 2], steps=5, out=tmp_path / "strips.png"))
    gif = Image.open(path)
    assert gif.format == "GIF" and gif.n_frames == 2 * (5 - 1) + 1  # the shared ends once
    assert gif.size == (64, 64) and gif.info["loop"] == 0
    gif.seek(gif.n_frames - 1)  # the last frame is the last seed's image, scaled twice
    last = np.asarray(gif.convert("L"))
    assert np.abs(last.astype(int) - cell(still, 1, 4, 32).repeat(2, 0).repeat(2, 1)).max() <= 8


def test_latent_grid_animate_walks_the_cells(tmp_path, vae_ckpt):
    result = run("latent-grid", "-c", vae_ckpt, "--steps", 3, "--animate", "-o", tmp_path / "walk.gif")
    assert result.exit_code == 0, result.output
    assert run("latent-grid", "-c", vae_ckpt, "--steps", 3, "-o", tmp_path / "grid.png").exit_code == 0
    grid = pixels(tmp_path / "grid.png")
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 9 and gif.size == (CELL, CELL)
    walk = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0), (2, 0), (2, 1), (2, 2)]  # rows, alternating
    for k, (i, j) in enumerate(walk):
        gif.seek(k)
        assert (np.asarray(gif.convert("L")) == cell(grid, i, j)).all()
    result = run("latent-grid", "-c", vae_ckpt, "--steps", 3, "--animate", "--annotate", "-o", tmp_path / "a.webp")
    assert result.exit_code == 0, result.output
    webp = Image.open(tmp_path / "a.webp")
    assert webp.format == "WEBP" and webp.n_frames == 9 and webp.size[1] > CELL  # a caption band
    one_line_error(run("latent-grid", "-c", vae_ckpt, "--animate", "-o", tmp_path / "walk.png"), ".gif")
    assert not (tmp_path / "walk.png").exists()


# --- the extension names the format ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,magic", [("g.jpg", b"\xff\xd8\xff"), ("g.JPEG", b"\xff\xd8\xff"),
                                        ("g.gif", b"GIF8"), ("g.webp", b"RIFF"), ("g.png", b"\x89PNG")])
def test_output_format_follows_the_extension(tmp_path, vae_ckpt, name, magic):
    result = run("sample", "vae", "-c", vae_ckpt, "-n", 4, "-o", tmp_path / name)
    assert result.exit_code == 0, result.output
    assert (tmp_path / name).read_bytes().startswith(magic)
    image = Image.open(tmp_path / name)
    assert getattr(image, "n_frames", 1) == 1 and image.size == (4 * 30 + 2, 32)  # a still: one frame


@pytest.mark.parametrize("command", [["sample", "vae"], ["latent-grid"], ["reconstruct"]])
def test_unknown_extension_is_refused_before_any_work(tmp_path, vae_ckpt, command):
    one_line_error(run(*command, "-c", vae_ckpt, "-o", tmp_path / "g.bmp"), "g.bmp", ".png")
    one_line_error(run(*command, "-c", vae_ckpt, "-o", tmp_path / "g"), "extension")
    assert list(tmp_path.iterdir()) == []


def test_translate_refuses_an_unknown_extension(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/monet2photo: the bundled model
    src = Path(__file__).resolve().parents[1] / "assets" / "cyclegan" / "monet_1.jpg"
    one_line_error(run("translate", "monet2photo", src, "-o", tmp_path / "out.tif"), ".tif")


# --- loss plots ----------------------------------------------------------------------------------------------

def test_epoch_ticks_are_integers():
    rows = [{"epoch": e, "train_loss": 3.0 / e, "test_loss": 3.5 / e} for e in (1, 2, 3)]
    fig = curves_figure(rows, ("train_loss", "test_loss"))
    ax = fig.axes[0]
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "epoch"


def test_cyclegan_parts_and_stylegan_kimg():
    from gencli.training.cyclegan import CycleGANTask
    from gencli.training.stylegan import StyleGANTask

    keys = ("G", "G_adv", "G_cycle", "G_identity", "D", "D_A", "D_B")
    rows = [{"epoch": e, **{f"train_{k}": float(e + i) for i, k in enumerate(keys)}} for e in (1, 2)]
    fig = curves_figure(rows, CycleGANTask.curves, "cyclegan")
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert {"adversarial", "cycle", "identity", "D_A", "D_B"} <= set(labels)
    rows = [{"epoch": t, "kimg": 4.0 * t, "train_d_loss": 1.0, "train_g_loss": 2.0} for t in (1, 2, 3)]
    ax = curves_figure(rows, StyleGANTask.curves).axes[0]
    assert "kimg" in ax.get_xlabel() and list(ax.get_lines()[0].get_xdata()) == [4.0, 8.0, 12.0]


def test_make_grid_keeps_grey_one_channel():
    grid = make_grid(torch.zeros(3, 1, 5, 5), nrow=3)
    assert grid.shape == (1, 9, 3 * 7 + 2) and to_pil(grid).mode == "L"
