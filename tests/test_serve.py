"""`gencli serve`: the API through FastAPI's test client, with the bundled models.

Every image endpoint's X-Gencli-Command is run through the CLI here, and the file it writes must be
byte for byte the PNG the server answered.
"""

from __future__ import annotations

import io
import shlex
import shutil
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install "gencli[serve]"')
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (the test extra)")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from conftest import run  # noqa: E402
from gencli.serve.app import create_app  # noqa: E402
from gencli.serve.models import MAX_UPLOAD_BYTES, ModelStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MONET = REPO / "assets" / "cyclegan" / "monet_1.jpg"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with runs/myvae (a copy of the bundled VAE) and a folder that is no run."""
    from gencli.api import bundled_checkpoint

    root = tmp_path_factory.mktemp("serve")
    (root / "runs" / "myvae").mkdir(parents=True)
    shutil.copy(bundled_checkpoint("vae"), root / "runs" / "myvae" / "model.safetensors")
    (root / "runs" / "notes").mkdir()
    (root / "runs" / "notes" / "model.safetensors").write_bytes(b"not a checkpoint")
    (root / "imported").mkdir()
    tiny_conditional_stylegan(root / "runs" / "letters" / "model.safetensors")
    return root


def tiny_conditional_stylegan(path: Path) -> Path:
    """A 16 px class-conditional StyleGAN of three classes, untrained (random weights, noise switched on)."""
    import torch

    from gencli.checkpoint import save_model
    from gencli.models.stylegan import Generator, StyleGANConfig

    torch.manual_seed(0)
    config = StyleGANConfig(resolution=16, widths=(16, 8, 8), z_dim=8, w_dim=8, mapping_layers=2, num_classes=3)
    G = Generator(config)
    with torch.no_grad():
        G.w_avg.normal_()
    path.parent.mkdir(parents=True)
    return save_model(path, "stylegan", G, config, epoch=1, seed=0, extra={"class_names": ["a", "b", "c"]})


@pytest.fixture(scope="module")
def client(workdir, data_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        store = ModelStore("runs", data_dir=data_dir, imported_dir=workdir / "imported")
        with TestClient(create_app(store)) as c:
            yield c


@pytest.fixture
def in_workdir(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    return workdir


def png(width: int, height: int, color=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def reproduce(response, folder: Path) -> bytes:
    """Run the response's X-Gencli-Command in `folder` and return the file it writes."""
    command = shlex.split(response.headers["x-gencli-command"])
    assert command[0] == "gencli"
    output = Path(command[command.index("-o") + 1])
    result = run(*command[1:])
    assert result.exit_code == 0, result.output
    return (folder / output).read_bytes()


def assert_png(response, size=None, mode=None) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith('inline; filename="')
    image = Image.open(io.BytesIO(response.content))
    if size:
        assert image.size == size
    if mode:
        assert image.mode == mode
    return image


# --- listing and the page -----------------------------------------------------------------------------

def test_models_lists_runs_and_bundled_models_with_families_and_the_cli_default(client):
    body = client.get("/api/models").json()
    models = {m["id"]: m for m in body["models"]}
    assert {"bundled:vae", "bundled:cvae", "bundled:stylegan", "bundled:monet2photo", "run:myvae"} <= set(models)
    assert "run:notes" not in models  # not a gencli checkpoint
    assert models["run:myvae"]["family"] == "vae" and models["run:myvae"]["source"] == "run"
    assert models["run:myvae"]["checkpoint"] == "runs/myvae/model.safetensors"
    assert models["bundled:monet2photo"]["family"] == "cyclegan"
    assert models["bundled:monet2photo"]["info"]["domains"] == ["monet", "photo"]
    assert models["bundled:stylegan"]["info"]["num_ws"] == 8
    # Without runs/vae the CLI uses the bundled VAE, and says so.
    assert models["bundled:vae"]["default"] and not models["run:myvae"]["default"]
    assert body["limits"]["max_upload_bytes"] == MAX_UPLOAD_BYTES


def test_imported_models_are_listed(workdir, data_dir):
    from gencli.api import bundled_checkpoint

    imported = workdir / "imported-only"
    imported.mkdir()
    shutil.copy(bundled_checkpoint("stylegan"), imported / "digits.safetensors")
    store = ModelStore(workdir / "none", data_dir=data_dir, imported_dir=imported)
    ids = {m["id"]: m for m in store.describe()}
    assert ids["imported:digits"]["family"] == "stylegan" and ids["imported:digits"]["source"] == "imported"


def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere: works offline
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]


# --- VAE and CVAE ----------------------------------------------------------------------------------------

def test_decoding_a_point_gives_the_digit_and_a_python_line_that_writes_the_same_png(client, in_workdir):
    response = client.get("/api/vae/bundled:vae/decode", params={"x": 0.5, "y": -1.25})
    assert_png(response, (28, 28), "L")
    command = shlex.split(response.headers["x-gencli-command"])
    assert command[:2] == ["python", "-c"]
    exec(command[2], {})  # the same Python line, run here
    assert (in_workdir / "vae_point.png").read_bytes() == response.content
    other = client.get("/api/vae/run:myvae/decode", params={"x": 3, "y": 2})
    assert "load_model('runs/myvae/model.safetensors')" in other.headers["x-gencli-command"]
    exec(shlex.split(other.headers["x-gencli-command"])[2], {})
    assert (in_workdir / "vae_point.png").read_bytes() == other.content != response.content


def test_a_cvae_point_needs_a_label_and_the_label_changes_the_digit(client):
    missing = client.get("/api/vae/bundled:cvae/decode", params={"x": 0, "y": 0})
    assert missing.status_code == 400 and "label between 0 and 9" in missing.json()["detail"]
    out_of_range = client.get("/api/vae/bundled:cvae/decode", params={"x": 0, "y": 0, "label": 10})
    assert out_of_range.status_code == 400
    three = client.get("/api/vae/bundled:cvae/decode", params={"x": 0, "y": 0, "label": 3})
    five = client.get("/api/vae/bundled:cvae/decode", params={"x": 0, "y": 0, "label": 5})
    assert_png(three, (28, 28))
    assert three.content != five.content
    assert "torch.tensor([3])" in three.headers["x-gencli-command"]


def test_a_vae_takes_no_label(client):
    response = client.get("/api/vae/bundled:vae/decode", params={"x": 0, "y": 0, "label": 2})
    assert response.status_code == 400 and "not conditional" in response.json()["detail"]


def test_bad_coordinates_are_refused(client):
    assert client.get("/api/vae/bundled:vae/decode", params={"x": "left", "y": 0}).status_code == 422
    assert client.get("/api/vae/bundled:vae/decode", params={"x": 0}).status_code == 422
    assert client.get("/api/vae/bundled:vae/decode", params={"x": 1e9, "y": 0}).status_code == 422


def test_the_grid_is_the_latent_grid_commands_file(client, in_workdir):
    response = client.get("/api/vae/bundled:vae/grid", params={"steps": 4})
    assert_png(response, (4 * 30 + 2, 4 * 30 + 2))
    assert response.headers["x-gencli-command"] == "gencli latent-grid -m vae --steps 4 -o vae_latent_grid.png"
    assert reproduce(response, in_workdir) == response.content


def test_a_run_folders_grid_names_its_checkpoint(client, in_workdir):
    response = client.get("/api/vae/run:myvae/grid", params={"steps": 3})
    assert " -c runs/myvae/model.safetensors " in response.headers["x-gencli-command"]
    assert reproduce(response, in_workdir) == response.content


def test_a_cvae_grid_takes_the_label(client, in_workdir):
    response = client.get("/api/vae/bundled:cvae/grid", params={"steps": 3, "label": 8})
    assert "--label 8" in response.headers["x-gencli-command"]
    assert reproduce(response, in_workdir) == response.content


def test_scatter_holds_the_test_sets_latent_means_and_labels_and_is_cached(client):
    first = client.get("/api/vae/bundled:cvae/scatter")
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["x"]) == len(body["y"]) == len(body["labels"]) == 100  # the synthetic test set
    assert set(body["labels"]) <= set(range(10))
    started = time.perf_counter()
    assert client.get("/api/vae/bundled:cvae/scatter").json() == body
    assert time.perf_counter() - started < 0.5


def test_scatter_without_the_test_set_says_so(tmp_path):
    store = ModelStore(tmp_path / "runs", data_dir=tmp_path / "empty", imported_dir=tmp_path)
    with TestClient(create_app(store)) as c:
        response = c.get("/api/vae/bundled:vae/scatter")
    assert response.status_code == 404
    assert "no latent scatter" in response.json()["detail"] and "mnist not found" in response.json()["detail"]


# --- StyleGAN --------------------------------------------------------------------------------------------

def test_a_seeds_image_is_the_sample_commands_file(client, in_workdir):
    response = client.get("/api/stylegan/bundled:stylegan/image", params={"seed": 3, "truncation": 0.5})
    assert_png(response, (32, 32))  # make_grid leaves one image unpadded
    assert response.headers["x-gencli-command"] == (
        "gencli sample stylegan --seeds 3 --nrow 1 --truncation 0.5 --label 0 -o stylegan_seed3_label0.png")
    assert reproduce(response, in_workdir) == response.content
    other = client.get("/api/stylegan/bundled:stylegan/image", params={"seed": 4, "truncation": 0.5})
    assert other.content != response.content


def test_style_mix_and_interpolation_are_the_commands_files(client, in_workdir):
    mix = client.get("/api/stylegan/bundled:stylegan/mix", params={"row": 1, "col": 2, "cutoff": 2})
    assert_png(mix, (2 * 34 + 2, 2 * 34 + 2))
    assert "gencli style-mix --rows 1 --cols 2 --cutoff 2 " in mix.headers["x-gencli-command"]
    assert reproduce(mix, in_workdir) == mix.content
    strip = client.get("/api/stylegan/bundled:stylegan/interpolate", params={"start": 5, "end": 9, "steps": 4})
    assert_png(strip, (4 * 34 + 2, 34 + 2))
    assert reproduce(strip, in_workdir) == strip.content


def test_stylegan_parameters_out_of_range_are_refused(client):
    image = "/api/stylegan/bundled:stylegan/image"
    assert client.get(image, params={"seed": -1}).status_code == 422
    assert client.get(image, params={"seed": 1, "truncation": 1.5}).status_code == 422
    cutoff = client.get("/api/stylegan/bundled:stylegan/mix", params={"cutoff": 9})
    assert cutoff.status_code == 400 and "between 0 and 8" in cutoff.json()["detail"]
    assert client.get("/api/stylegan/bundled:stylegan/interpolate", params={"steps": 1}).status_code == 422


def test_a_conditional_stylegan_gets_a_label_picker_and_the_label_reaches_every_view(client, in_workdir):
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    info = models["run:letters"]["info"]
    assert info["conditional"] and info["num_classes"] == 3 and info["class_names"] == ["a", "b", "c"]
    assert models["bundled:stylegan"]["info"]["conditional"]  # the bundled digits are class-conditional
    assert models["bundled:stylegan"]["info"]["num_classes"] == 10
    base = "/api/stylegan/run:letters"
    first = client.get(f"{base}/image", params={"seed": 2, "label": 1})
    assert_png(first, (16, 16))
    assert first.headers["x-gencli-command"] == (
        "gencli sample stylegan --seeds 2 --nrow 1 --truncation 0.7 --label 1 -c runs/letters/model.safetensors "
        "-o stylegan_seed2_label1.png")
    assert reproduce(first, in_workdir) == first.content
    other = client.get(f"{base}/image", params={"seed": 2, "label": 2})
    assert other.content != first.content  # the class changes the image
    default = client.get(f"{base}/image", params={"seed": 2})  # no label: class 0, as the CLI
    assert "--label 0" in default.headers["x-gencli-command"]
    for kind, params in (("mix", {"row": 1, "col": 2, "cutoff": 2, "label": 2}),
                         ("interpolate", {"start": 0, "end": 3, "steps": 3, "label": 2})):
        response = client.get(f"{base}/{kind}", params=params)
        assert_png(response)
        assert "--label 2" in response.headers["x-gencli-command"]
        assert reproduce(response, in_workdir) == response.content
    bad = client.get(f"{base}/image", params={"seed": 0, "label": 3})
    assert bad.status_code == 400 and "between 0 and 2" in bad.json()["detail"]
    digits = client.get("/api/stylegan/bundled:stylegan/image", params={"seed": 0, "label": 10})
    assert digits.status_code == 400 and "between 0 and 9" in digits.json()["detail"]
    page = client.get("/static/app.js").text
    assert "sg-labels" in page and "class_names" in page and 'id="sg-labels"' in client.get("/").text


# --- CycleGAN --------------------------------------------------------------------------------------------

def test_translation_keeps_the_size_and_is_the_translate_commands_file(client, in_workdir):
    data = png(70, 45)
    (in_workdir / "small.png").write_bytes(data)
    response = client.post("/api/cyclegan/bundled:monet2photo/translate",
                           params={"direction": "b2a", "filename": "small.png"}, content=data)
    assert_png(response, (70, 45), "RGB")
    assert response.headers["x-gencli-command"] == (  # fp32 named: the command's default is auto
        "gencli translate monet2photo small.png --direction b2a --precision fp32 -o small_b2a.png")
    assert reproduce(response, in_workdir) == response.content


def test_a_bf16_translation_is_the_translate_commands_bf16_file(client, in_workdir):
    data = png(40, 40, (30, 90, 160))
    (in_workdir / "blue.png").write_bytes(data)
    url = "/api/cyclegan/bundled:monet2photo/translate"
    response = client.post(url, params={"filename": "blue.png", "precision": "bf16"}, content=data)
    assert "--precision bf16" in response.headers["x-gencli-command"]
    assert reproduce(response, in_workdir) == response.content
    fp16 = client.post(url, params={"precision": "fp16"}, content=data)
    assert fp16.status_code == 400 and "not available on cpu" in fp16.json()["detail"]


def test_the_uploads_name_is_display_only(client):
    response = client.post("/api/cyclegan/bundled:monet2photo/translate",
                           params={"filename": "../../etc/pass wd.png"}, content=png(16, 16))
    assert response.status_code == 200
    assert "translate monet2photo pass_wd.png " in response.headers["x-gencli-command"]


def test_bad_uploads_get_clear_answers(client):
    url = "/api/cyclegan/bundled:monet2photo/translate"
    cases = {
        "not an image": (b"GIF89a, or so it says", 422, "not an image"),
        "nothing": (b"", 422, "holds no image"),
        "too many pixels": (png_header_only(50000, 50000), 422, "too large"),
        "above the limit, below PIL's": (png_header_only(5000, 5000), 422, "5000 x 5000 = 25.0 M pixels"),
        "truncated": (png(64, 64)[:60], 422, "not an image"),
        "too many bytes": (b"\0" * (MAX_UPLOAD_BYTES + 1), 413, "the limit is 32 MiB"),
    }
    for name, (data, status, message) in cases.items():
        response = client.post(url, content=data)
        assert response.status_code == status, name
        assert message in response.json()["detail"], (name, response.json())


def test_an_upload_without_a_declared_length_is_cut_off_at_the_limit(client):
    def chunks():
        block = b"\0" * 2**20
        for _ in range(MAX_UPLOAD_BYTES // 2**20 + 2):
            yield block

    response = client.post("/api/cyclegan/bundled:monet2photo/translate", content=chunks())
    assert response.status_code == 413


def test_wrong_ids_directions_and_families_are_refused(client):
    missing = client.get("/api/vae/bundled:nothing/decode", params={"x": 0, "y": 0})
    assert missing.status_code == 404 and "no model with id 'bundled:nothing'" in missing.json()["detail"]
    path_like = client.get("/api/stylegan/..%2F..%2Fetc%2Fpasswd/image")
    assert path_like.status_code == 404
    wrong_family = client.post("/api/cyclegan/bundled:vae/translate", content=png(8, 8))
    assert wrong_family.status_code == 404 and "vae model; this view needs cyclegan" in wrong_family.json()["detail"]
    assert client.get("/api/stylegan/bundled:vae/image").status_code == 404
    direction = client.post("/api/cyclegan/bundled:monet2photo/translate", params={"direction": "sideways"},
                            content=png(8, 8))
    assert direction.status_code == 422


# --- concurrency -----------------------------------------------------------------------------------------

def test_concurrent_requests_all_succeed(client):
    urls = [f"/api/vae/bundled:vae/decode?x={i / 10}&y=0" for i in range(12)]
    urls += [f"/api/stylegan/bundled:stylegan/image?seed={i}" for i in range(6)]
    urls += [f"/api/vae/bundled:cvae/decode?x=0&y=0&label={i % 10}" for i in range(12)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(client.get, urls))
    assert [r.status_code for r in responses] == [200] * len(urls)
    assert len({r.content for r in responses[:12]}) == 12


def hold(monkeypatch, owner, name: str) -> tuple[threading.Event, threading.Event]:
    """Make owner.name set `started` when called, then wait for `release` before running; returns both."""
    started, release = threading.Event(), threading.Event()
    original = getattr(owner, name)

    def slow(*args, **kwargs):
        started.set()
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)
    return started, release


def test_a_second_translation_gets_429_while_latent_points_still_decode(client, monkeypatch):
    started, release = hold(monkeypatch, client.app.state.store, "cyclegan_translate")
    url = "/api/cyclegan/bundled:monet2photo/translate"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, url, content=png(16, 16))
        assert started.wait(10)
        second = client.post(url, content=png(16, 16))
        t0 = time.perf_counter()
        point = client.get("/api/vae/bundled:vae/decode", params={"x": 1, "y": 1})
        decode_seconds = time.perf_counter() - t0
        release.set()
        assert first.result(30).status_code == 200
    assert second.status_code == 429 and "already running" in second.json()["detail"]
    assert point.status_code == 200 and decode_seconds < 2
    assert client.post(url, content=png(16, 16)).status_code == 200  # the slot is free again


# --- projection -------------------------------------------------------------------------------------------

LETTERS = "/api/stylegan/run:letters"


def finished(client, model: str, job: str, seconds: float = 60) -> dict:
    """Poll the job until it is no longer running."""
    deadline = time.monotonic() + seconds
    while True:
        status = client.get(f"{model}/project/{job}")
        assert status.status_code == 200, status.text
        if status.json()["state"] != "running" or time.monotonic() > deadline:
            return status.json()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def projected(client):
    """A finished projection of a 20 x 24 photo into run:letters (pixel distance, 20 steps)."""
    response = client.post(f"{LETTERS}/project", content=png(20, 24, (30, 160, 90)),
                           params={"steps": 20, "distance": "pixel", "filename": "my photo.png"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "running" and job["steps"] == 20 and response.headers["location"].endswith(job["id"])
    return finished(client, LETTERS, job["id"])


def test_a_projection_runs_as_a_job_and_gives_the_project_commands_files(client, projected, in_workdir):
    assert projected["state"] == "done", projected
    assert projected["step"] == projected["steps"] == 20 and projected["distance_name"] == "pixel"
    assert projected["error"] is None and projected["w_file"] == "my_photo_projected_w.safetensors"
    assert any(note.startswith("Target: my_photo.png, 20x24 RGB") for note in projected["notes"])
    base = f"{LETTERS}/project/{projected['id']}"
    image = client.get(f"{base}/image")
    assert_png(image, size=(16, 16))
    assert image.headers["x-gencli-command"] == (
        "gencli project -c runs/letters/model.safetensors my_photo.png --steps 20 --distance pixel --label 0 "
        "-o my_photo_projected.png")
    assert 'filename="my_photo_projected.png"' in image.headers["content-disposition"]
    assert_png(client.get(f"{base}/compare"), size=(2 * 16 + 6, 16 + 4))  # photo | projection, save_grid's padding
    w = client.get(f"{base}/w")
    assert w.status_code == 200 and 'filename="my_photo_projected_w.safetensors"' in w.headers["content-disposition"]
    (in_workdir / "my_photo_projected_w.safetensors").write_bytes(w.content)
    Image.open(io.BytesIO(png(20, 24, (30, 160, 90)))).save(in_workdir / "my_photo.png")
    assert reproduce(image, in_workdir) == image.content  # the command writes the same projection


@pytest.fixture
def w_file(client, projected, in_workdir) -> Path:
    """The projection's w download, saved in the working directory under the name the server gives it."""
    path = in_workdir / projected["w_file"]
    path.write_bytes(client.get(f"{LETTERS}/project/{projected['id']}/w").content)
    return path


def test_the_w_download_is_a_w_file_of_the_model_that_draws_the_projection(client, projected, w_file):
    from gencli.api.projection import fixed_ws, load_w
    from gencli.inference import stylegan
    from gencli.images import png_bytes

    _, G, _ = client.app.state.store.load("run:letters", ("stylegan",))
    ws, noise, meta = load_w(w_file, G)
    assert tuple(ws.shape) == (G.num_ws, G.w_avg.shape[-1]) and len(noise) == len(G.synthesis.layer_resolutions)
    assert meta["distance"] == "pixel" and meta["steps"] == 20 and meta["target"] == "my_photo.png"
    drawn = stylegan.generate(G, fixed_ws(G, [w_file]))[0]
    assert png_bytes(drawn) == client.get(f"{LETTERS}/project/{projected['id']}/image").content


def test_a_projection_mixes_in_place_of_a_seed_as_style_mix_does_with_its_w_file(client, projected, w_file):
    from gencli.api.projection import fixed_ws
    from gencli.inference import stylegan
    from gencli.serve.models import grid_png

    seeds = client.get(f"{LETTERS}/mix", params={"row": 3, "col": 5, "cutoff": 2})
    mixed = client.get(f"{LETTERS}/mix", params={"row": 3, "col": 5, "cutoff": 2, "row_w": projected["id"]})
    assert_png(mixed, size=(2 * 16 + 6, 2 * 16 + 6))
    assert mixed.content != seeds.content
    assert mixed.headers["x-gencli-command"] == (
        "gencli style-mix --rows my_photo_projected_w.safetensors --cols 5 --cutoff 2 --truncation 0.7 --label 0 "
        "-c runs/letters/model.safetensors -o stylegan_style_mix_my_photo_projected_5_cutoff2_label0.png")
    _, G, _ = client.app.state.store.load("run:letters", ("stylegan",))
    parts = stylegan.style_mix(G, fixed_ws(G, [w_file]), [5], 2, 0.7, noise_seed=0, label=0)
    assert grid_png(stylegan.style_mix_grid(*parts), nrow=2) == mixed.content
    assert reproduce(mixed, w_file.parent) == mixed.content
    reverse = client.get(f"{LETTERS}/mix", params={"row": 5, "cutoff": 2, "col_w": projected["id"]})
    assert "--rows 5 --cols my_photo_projected_w.safetensors" in reverse.headers["x-gencli-command"]
    assert reverse.content not in (mixed.content, seeds.content)


def test_a_projection_stands_in_place_of_a_seed_in_the_image_and_the_interpolation(client, projected, w_file):
    job = projected["id"]
    image = client.get(f"{LETTERS}/image", params={"seed": 3, "w": job})
    assert image.content == client.get(f"{LETTERS}/project/{job}/image").content  # with its own noise
    assert image.headers["x-gencli-command"] == (
        "gencli sample stylegan --seeds my_photo_projected_w.safetensors --nrow 1 --truncation 0.7 --label 0 "
        "-c runs/letters/model.safetensors -o stylegan_my_photo_projected_label0.png")
    assert reproduce(image, w_file.parent) == image.content
    params = {"start": 3, "end": 5, "steps": 4}
    seeds = client.get(f"{LETTERS}/interpolate", params=params)
    strip = client.get(f"{LETTERS}/interpolate", params={**params, "start_w": job})
    assert_png(strip, size=(4 * 16 + 10, 16 + 4))
    assert strip.content != seeds.content
    assert strip.headers["x-gencli-command"] == (
        "gencli interpolate --seeds my_photo_projected_w.safetensors,5 --steps 4 --truncation 0.7 --label 0 "
        "-c runs/letters/model.safetensors -o stylegan_interpolation_my_photo_projected_5_label0.png")
    assert reproduce(strip, w_file.parent) == strip.content
    reverse = client.get(f"{LETTERS}/interpolate", params={**params, "end_w": job})
    assert "--seeds 3,my_photo_projected_w.safetensors " in reverse.headers["x-gencli-command"]
    assert reverse.content not in (strip.content, seeds.content)


def test_a_second_projection_gets_429_while_one_runs(client, monkeypatch):
    from gencli.api import projection

    started, release = hold(monkeypatch, projection, "project")
    params = {"steps": 2, "distance": "pixel"}
    first = client.post(f"{LETTERS}/project", content=png(16, 16), params=params)
    assert first.status_code == 202 and started.wait(10)
    second = client.post(f"{LETTERS}/project", content=png(16, 16), params=params)
    assert second.status_code == 429 and second.headers["retry-after"]
    assert "already running" in second.json()["detail"]
    early = client.get(f"{LETTERS}/project/{first.json()['id']}/image")
    assert early.status_code == 409 and "still running" in early.json()["detail"]
    release.set()
    assert finished(client, LETTERS, first.json()["id"])["state"] == "done"
    again = client.post(f"{LETTERS}/project", content=png(16, 16), params=params)
    assert again.status_code == 202  # the slot is free again
    assert finished(client, LETTERS, again.json()["id"])["state"] == "done"


def test_a_failing_projection_reports_its_error_in_the_job(client, monkeypatch):
    from gencli.api import projection

    def broken(**kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(projection, "project", broken)
    job = client.post(f"{LETTERS}/project", content=png(16, 16), params={"distance": "pixel"}).json()
    status = finished(client, LETTERS, job["id"])
    assert status["state"] == "error" and status["error"] == "out of memory, say"
    image = client.get(f"{LETTERS}/project/{job['id']}/image")
    assert image.status_code == 409 and "out of memory, say" in image.json()["detail"]
    for view, param in (("mix", "row_w"), ("image", "w"), ("interpolate", "start_w")):
        assert client.get(f"{LETTERS}/{view}", params={param: job["id"]}).status_code == 409


def test_projection_requests_that_are_wrong_get_clear_answers(client):
    url = f"{LETTERS}/project"
    assert client.post(url, content=b"\0" * (MAX_UPLOAD_BYTES + 1)).status_code == 413
    bad = client.post(url, content=b"not an image")
    assert bad.status_code == 422 and "not an image" in bad.json()["detail"]
    assert client.post(url, content=png(16, 16), params={"steps": 0}).status_code == 422
    assert client.post(url, content=png(16, 16), params={"steps": 1001}).status_code == 422
    assert client.post(url, content=png(16, 16), params={"label": 3}).status_code == 400  # three classes
    assert client.post("/api/stylegan/bundled:vae/project", content=png(16, 16)).status_code == 404
    for path in ("", "/image", "/compare", "/w"):
        unknown = client.get(f"{url}/0123456789ab{path}")
        assert unknown.status_code == 404 and "no projection" in unknown.json()["detail"]
    for view, param in (("mix", "row_w"), ("mix", "col_w"), ("image", "w"), ("interpolate", "end_w")):
        missing = client.get(f"{LETTERS}/{view}", params={param: "nope"})
        assert missing.status_code == 404 and "no projection" in missing.json()["detail"]


def test_only_the_newest_projections_are_kept(client, monkeypatch):
    from gencli.serve import models

    monkeypatch.setattr(models, "PROJECTION_JOBS", 2)
    ids = []
    for _ in range(3):
        ids.append(client.post(f"{LETTERS}/project", content=png(16, 16),
                               params={"steps": 1, "distance": "pixel"}).json()["id"])
        finished(client, LETTERS, ids[-1])
    assert client.get(f"{LETTERS}/project/{ids[0]}").status_code == 404
    assert [client.get(f"{LETTERS}/project/{i}").json()["state"] for i in ids[1:]] == ["done", "done"]
