"""Every StyleGAN command on an imported NVIDIA network: the fixtures of tests/fixtures/stylegan2 (small
networks made and drawn by NVIDIA's own code, see its README) imported, then sampled, mixed, interpolated,
exported, evaluated, served and downloaded through gencli."""

from __future__ import annotations

import functools
import http.server
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from conftest import one_line_error, run

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan2"


def reference(name: str) -> tuple[list[dict], dict[str, torch.Tensor]]:
    with safe_open(str(FIXTURES / f"{name}.reference.safetensors"), framework="pt") as f:
        return json.loads(f.metadata()["cases"]), {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    """The FFHQ-like (unconditional, 32 px) and CIFAR-10-like (10 classes) fixtures, imported by the CLI."""
    folder = tmp_path_factory.mktemp("imported")
    out = {}
    for name in ("sg3_ffhq_like", "ada_cifar_like"):
        result = run("import-weights", "stylegan", FIXTURES / f"{name}.pkl", "-o", folder / f"{name}.safetensors")
        assert result.exit_code == 0, result.output
        out[name] = folder / f"{name}.safetensors"
    return out


def read_pngs(folder: Path, seeds: list[int]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(Image.open(folder / f"seed{s:04d}.png"))) for s in seeds])


CASE_OPTIONS = {  # reference case -> the options of `gencli sample` that draw it
    "psi1_const": ["--truncation", "1"],
    "psi07_const": ["--truncation", "0.7"],
    "psi07_cut4_const": ["--truncation", "0.7", "--truncation-cutoff", "4"],
    "psi1_none": ["--truncation", "1", "--noise-mode", "none"],
}


@pytest.mark.parametrize("name", ["sg3_ffhq_like", "ada_cifar_like"])
def test_sample_outdir_gives_nvidias_pngs_seed_for_seed(imported, name, tmp_path):
    """`gencli sample stylegan -c NET --seeds ... --outdir DIR` writes seedNNNN.png equal to what NVIDIA's
    code drew for those seeds (z from numpy's RandomState, their uint8 conversion), within 3/255."""
    cases, ref = reference(name)
    worst = 0
    for case in cases:
        if case["name"] not in CASE_OPTIONS:
            continue
        labels = case["labels"] or [None] * len(case["seeds"])
        for label in sorted(set(labels), key=str):  # a conditional network: one call per class
            seeds = [s for s, lab in zip(case["seeds"], labels) if lab == label]
            out = tmp_path / case["name"] / str(label)
            args = ["sample", "stylegan", "-c", imported[name], "--seeds", ",".join(map(str, seeds)), "--outdir", out,
                    "-o", tmp_path / "grid.png", *CASE_OPTIONS[case["name"]]]
            result = run(*args, *(["--label", label] if label is not None else []))
            assert result.exit_code == 0, result.output
            ours = read_pngs(out, seeds).int()
            index = [case["seeds"].index(s) for s in seeds]
            theirs = ref[case["name"]][index].int()
            assert ours.shape == theirs.shape
            worst = max(worst, (ours - theirs).abs().max().item())
    assert worst <= 3


def test_default_truncation_and_noise_of_an_imported_network_are_nvidias(imported, tmp_path):
    """No options: truncation 1 and the stored constant noise, as NVIDIA's gen_images.py defaults."""
    _, ref = reference("sg3_ffhq_like")
    result = run("sample", "stylegan", "-c", imported["sg3_ffhq_like"], "--seeds", "0,1,2,42", "--outdir", tmp_path,
                 "-o", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert (read_pngs(tmp_path, [0, 1, 2, 42]).int() - ref["psi1_const"].int()).abs().max() <= 3


def test_noise_mode_random_follows_the_seed(imported, tmp_path):
    args = ["sample", "stylegan", "-c", imported["sg3_ffhq_like"], "--seeds", "5", "--noise-mode", "random"]
    for k in (1, 2):
        assert run(*args, "--outdir", tmp_path / str(k), "-o", tmp_path / f"g{k}.png").exit_code == 0
    const = run("sample", "stylegan", "-c", imported["sg3_ffhq_like"], "--seeds", "5", "--outdir", tmp_path / "c",
                "-o", tmp_path / "c.png")
    assert const.exit_code == 0
    one, two, c = (read_pngs(tmp_path / d, [5]) for d in ("1", "2", "c"))
    assert torch.equal(one, two) and not torch.equal(one, c)


def test_bad_sampling_options_are_one_line(imported, tmp_path):
    ckpt = imported["sg3_ffhq_like"]
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--truncation-cutoff", "99", "-o", tmp_path / "x.png"),
                   "--truncation-cutoff must be between 0 and")
    one_line_error(run("sample", "stylegan", "-c", ckpt, "--label", "1", "-o", tmp_path / "x.png"), "--label")
    one_line_error(run("sample", "stylegan", "-c", imported["ada_cifar_like"], "--label", "10",
                       "-o", tmp_path / "x.png"), "--label must be between 0 and 9")
    result = run("sample", "stylegan", "-c", ckpt, "--noise-mode", "loud", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_outdir_alone_writes_chunk_by_chunk_the_same_files(imported, tmp_path):
    """70 seeds of a 32 px network are two chunks (64 + 6), written while drawing; the files equal those
    written beside a grid (all images drawn first)."""
    seeds = list(range(70))
    ckpt = imported["sg3_ffhq_like"]
    assert run("sample", "stylegan", "-c", ckpt, "--seeds", "0-69", "--outdir", tmp_path / "alone").exit_code == 0
    assert run("sample", "stylegan", "-c", ckpt, "--seeds", "0-69", "--outdir", tmp_path / "grid",
               "-o", tmp_path / "grid.png").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == [f"seed{s:04d}.png" for s in seeds]
    assert torch.equal(read_pngs(tmp_path / "alone", seeds), read_pngs(tmp_path / "grid", seeds))


def test_a_conditional_network_without_label_draws_a_class_per_row(imported, tmp_path):
    result = run("sample", "stylegan", "-c", imported["ada_cifar_like"], "--seeds", "0-19", "--nrow", "2",
                 "--outdir", tmp_path, "-o", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    # row r (seeds 2r, 2r + 1) is class r: seed 2 (row 1) drawn alone with --label 1 is the same image
    alone = run("sample", "stylegan", "-c", imported["ada_cifar_like"], "--seeds", "2", "--label", "1",
                "--outdir", tmp_path / "one", "-o", tmp_path / "one.png")
    assert alone.exit_code == 0
    assert torch.equal(read_pngs(tmp_path, [2]), read_pngs(tmp_path / "one", [2]))


def test_style_mix_rows_and_columns_are_the_seeds_images(imported, tmp_path):
    """With the network's constant noise, the grid's row and column headers are the seeds' own images,
    and a cell with cutoff = all layers is its row image."""
    ckpt = imported["sg3_ffhq_like"]
    assert run("sample", "stylegan", "-c", ckpt, "--seeds", "0-2", "--outdir", tmp_path / "s",
               "-o", tmp_path / "s.png").exit_code == 0
    seeds = read_pngs(tmp_path / "s", [0, 1, 2]).numpy()
    num_ws = 2 * 5 - 2  # 32 px
    result = run("style-mix", "-c", ckpt, "--rows", "0,1", "--cols", "2", "--cutoff", num_ws, "-o", tmp_path / "mix.png")
    assert result.exit_code == 0, result.output
    grid = np.array(Image.open(tmp_path / "mix.png"))
    cell = lambda r, c: grid[2 + r * 34 : 2 + r * 34 + 32, 2 + c * 34 : 2 + c * 34 + 32]  # noqa: E731 (padding 2)
    assert np.abs(cell(0, 1).astype(int) - seeds[2]).max() <= 1  # column header: seed 2
    assert np.abs(cell(1, 0).astype(int) - seeds[0]).max() <= 1  # row header: seed 0
    assert np.abs(cell(1, 1).astype(int) - seeds[0]).max() <= 1  # all layers from the row seed
    assert np.abs(cell(2, 1).astype(int) - seeds[1]).max() <= 1


def test_interpolate_starts_and_ends_at_the_seeds(imported, tmp_path):
    ckpt = imported["sg3_ffhq_like"]
    assert run("sample", "stylegan", "-c", ckpt, "--seeds", "3,4", "--outdir", tmp_path / "s",
               "-o", tmp_path / "s.png").exit_code == 0
    ends = read_pngs(tmp_path / "s", [3, 4]).numpy().astype(int)
    result = run("interpolate", "-c", ckpt, "--seeds", "3,4", "--steps", "5", "-o", tmp_path / "walk.gif")
    assert result.exit_code == 0, result.output
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 5
    strip = run("interpolate", "-c", ckpt, "--seeds", "3,4", "--steps", "5", "-o", tmp_path / "walk.png")
    assert strip.exit_code == 0
    grid = np.array(Image.open(tmp_path / "walk.png")).astype(int)
    assert np.abs(grid[2:34, 2:34] - ends[0]).max() <= 1
    assert np.abs(grid[2:34, 2 + 4 * 34 : 2 + 4 * 34 + 32] - ends[1]).max() <= 1


def test_export_torchscript_draws_the_samples(imported, tmp_path):
    """The exported generator (z [, label], truncation) gives `sample`'s image for a seed's z."""
    for name in ("sg3_ffhq_like", "ada_cifar_like"):
        out = tmp_path / f"{name}.pt"
        result = run("export", imported[name], "--format", "torchscript", "-o", out)
        assert result.exit_code == 0, result.output
        net = torch.jit.load(str(out))
        z = torch.from_numpy(np.random.RandomState(42).randn(1, 16)).float()
        args = (z, torch.tensor([2])) if name == "ada_cifar_like" else (z,)
        image = net(*args, torch.tensor([1.0]))[0]
        _, ref = reference(name)
        ours = (image.permute(1, 2, 0) * 255).round().int()
        assert (ours - ref["psi1_const"][3].int()).abs().max() <= 3


def test_export_onnx_runs_in_onnxruntime(imported, tmp_path):
    """NVIDIA's own networks do not export to ONNX (stylegan3#57); gencli's do, conditional ones too."""
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "cifar.onnx"
    result = run("export", imported["ada_cifar_like"], "--format", "onnx", "-o", out)
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(out))
    z = np.random.RandomState(42).randn(1, 16).astype(np.float32)
    (image,) = session.run(None, {"z": z, "label": np.array([2]), "truncation": np.array([1.0], np.float32)})
    _, ref = reference("ada_cifar_like")
    ours = torch.from_numpy(image[0]).permute(1, 2, 0).mul(255).round().int()
    assert (ours - ref["psi1_const"][3].int()).abs().max() <= 3


def test_export_safetensors_keeps_the_discriminator(imported, tmp_path):
    from gencli.checkpoint import load_discriminator

    out = tmp_path / "copy.safetensors"
    result = run("export", imported["sg3_ffhq_like"], "--format", "safetensors", "--fp16", "-o", out)
    assert result.exit_code == 0, result.output
    D, meta = load_discriminator(out)
    assert meta["family"] == "stylegan2" and sum(p.numel() for p in D.parameters()) > 0


def test_evaluate_against_a_folder(imported, tmp_path, monkeypatch):
    class TinyFeatures(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    net_file = tmp_path / "standin.pt"
    torch.jit.script(TinyFeatures()).save(str(net_file))
    folder = tmp_path / "faces"
    folder.mkdir()
    g = np.random.RandomState(0)
    for i in range(6):
        Image.fromarray(g.randint(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    ckpt = imported["sg3_ffhq_like"]
    missing = run("evaluate", "-c", ckpt, "--inception", net_file, "--samples", 4)
    one_line_error(missing, "pass --data DIR")
    result = run("evaluate", "-c", ckpt, "--data", folder, "--inception", net_file, "--samples", 8, "--reference", 6,
                 "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["n_samples"] == 8 and scores["n_reference"] == 6 and math.isfinite(scores["fid"])


def test_serve_offers_an_imported_network_with_previews(imported, tmp_path, data_dir):
    pytest.importorskip("fastapi")
    import shutil

    from fastapi.testclient import TestClient

    from gencli.serve.app import create_app
    from gencli.serve.models import ModelStore

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(imported["ada_cifar_like"], models / "cifar.safetensors")
    store = ModelStore(tmp_path / "runs", data_dir=data_dir, imported_dir=models)
    with TestClient(create_app(store)) as client:
        listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        entry = listed["imported:cifar"]
        assert entry["family"] == "stylegan2" and entry["info"]["num_classes"] == 10
        assert entry["info"]["num_ws"] == 8 and entry["info"]["class_names"][3] == "3"
        response = client.get("/api/stylegan/imported:cifar/image", params={"seed": 42, "truncation": 1, "label": 2})
        assert response.status_code == 200, response.text
        image = np.array(Image.open(__import__("io").BytesIO(response.content)))
        _, ref = reference("ada_cifar_like")
        assert image.shape == (32, 32, 3)
        assert np.abs(image.astype(int) - ref["psi1_const"][3].numpy().astype(int)).max() <= 3
        assert client.get("/api/stylegan/imported:cifar/mix", params={"label": 1}).status_code == 200
        assert client.get("/api/stylegan/imported:cifar/interpolate", params={"steps": 3}).status_code == 200


def test_previews_of_large_networks_are_downscaled():
    from gencli.serve.models import PREVIEW, grid_png

    png = grid_png(torch.rand(1, 3, 2 * PREVIEW, 2 * PREVIEW), nrow=1)
    assert Image.open(__import__("io").BytesIO(png)).size == (PREVIEW, PREVIEW)


@pytest.fixture
def mirror(tmp_path):
    """A web server on 127.0.0.1 serving a folder, as NVIDIA's download site would serve the pickles."""
    folder = tmp_path / "site"
    folder.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_weights_fetches_checks_and_converts(mirror, tmp_path, monkeypatch):
    import shutil

    folder, url = mirror
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    shutil.copy(FIXTURES / "ada_cifar_like.pkl", folder / "cifar10.pkl")  # 32 px, 10 classes: as cifar10.pkl
    result = run("download-weights", "cifar10", "--base-url", url)
    assert result.exit_code == 0, result.output
    path = tmp_path / "models" / "cifar10.safetensors"
    from gencli.checkpoint import read_metadata

    extra = read_metadata(path)["extra"]
    assert extra["class_names"][0] == "airplane" and len(extra["source_sha256"]) == 64
    sample = run("sample", "stylegan", "-c", "cifar10", "--seeds", "42", "--label", "2", "--outdir", "out")
    assert sample.exit_code == 0, sample.output
    _, ref = reference("ada_cifar_like")
    assert (read_pngs(tmp_path / "out", [42]).int() - ref["psi1_const"][3:4].int()).abs().max() <= 3
    again = run("download-weights", "cifar10", "--base-url", url)
    assert again.exit_code == 0 and "already imported" in again.output
    # a file that is not the network of that name is refused, and nothing is kept
    shutil.copy(FIXTURES / "sg3_ffhq_like.pkl", folder / "brecahad.pkl")
    wrong = run("download-weights", "brecahad", "--base-url", url)
    one_line_error(wrong, "is not NVIDIA's brecahad network")
    assert not (tmp_path / "models" / "brecahad.safetensors").exists()
    one_line_error(run("download-weights", "ffhq", "--direction", "a2b"), "--direction is for CycleGAN")


def test_project_a_photo_into_an_imported_network(imported, tmp_path):
    """`gencli project` on a StyleGAN2: the projection gets closer to the photo, and its w file draws it
    again through `sample` and mixes with seeds in `style-mix`."""
    ckpt = imported["sg3_ffhq_like"]
    _, ref = reference("sg3_ffhq_like")
    photo = tmp_path / "photo.png"
    Image.fromarray(ref["psi1_const"][0].numpy()).save(photo)  # seed 0's image: a target the network can draw
    out = tmp_path / "proj.png"
    result = run("project", "-c", ckpt, photo, "--steps", 30, "--distance", "pixel", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    w_file = tmp_path / "proj_w.safetensors"
    assert out.is_file() and w_file.is_file()
    target = ref["psi1_const"][0].numpy().astype(float)
    projected = np.array(Image.open(out)).astype(float)
    mean_image = run("sample", "stylegan", "-c", ckpt, "--seeds", "0", "--truncation", "0", "--outdir", tmp_path / "avg",
                     "-o", tmp_path / "avg.png")
    assert mean_image.exit_code == 0
    start = read_pngs(tmp_path / "avg", [0])[0].numpy().astype(float)  # where the search starts: the mean w
    assert np.square(projected - target).mean() < np.square(start - target).mean()
    again = run("sample", "stylegan", "-c", ckpt, "--seeds", w_file, "--outdir", tmp_path / "again", "-o",
                tmp_path / "again.png")
    assert again.exit_code == 0, again.output
    assert run("style-mix", "-c", ckpt, "--rows", w_file, "--cols", "1,2", "-o", tmp_path / "mix.png").exit_code == 0
