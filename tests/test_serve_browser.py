"""`gencli serve` in a real browser: headless Chromium (the system's, driven by Playwright) opens the page,
moves over the latent plane, changes a StyleGAN seed and uploads an image to the CycleGAN, and checks
that the images change. Skipped when Playwright or Chromium is not installed.

With GENCLI_SCREENSHOTS set to a folder, it saves a screenshot of each tab there (the README's come
from this test against the bundled models, with the real MNIST test set when ../shared/data has it).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import SHARED_DATA

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install "gencli[serve]"')
pytest.importorskip("uvicorn", reason='the serve extra is not installed: pip install "gencli[serve]"')
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = os.environ.get("GENCLI_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
if not CHROMIUM:
    pytest.skip("no Chromium installed (apt-get install chromium, or set GENCLI_CHROMIUM)", allow_module_level=True)

MONET = Path(__file__).resolve().parents[1] / "assets" / "cyclegan" / "monet_1.jpg"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# A number made of an image's pixels (drawn into a canvas), to tell whether two images differ.
DIGEST = """(id) => {
  const img = document.getElementById(id);
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 0;
  for (let i = 0; i < data.length; i++) h = (h * 31 + data[i]) >>> 0;
  return `${canvas.width}x${canvas.height}:${h}`;
}"""
LOADED_AND_NEW = """([id, old]) => {
  const img = document.getElementById(id);
  return img.complete && img.naturalWidth > 0 && img.src !== old;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_dir):
    import uvicorn

    from gencli.serve.app import create_app
    from gencli.serve.models import ModelStore

    root = tmp_path_factory.mktemp("browser")
    data = SHARED_DATA if (SHARED_DATA / "mnist").is_dir() else data_dir
    store = ModelStore(root / "runs", data_dir=data, imported_dir=root / "imported")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 860})
        except Exception as e:  # e.g. a Chromium too old or too new for this Playwright
            pytest.skip(f"Chromium at {CHROMIUM} did not start under Playwright: {str(e).splitlines()[0]}")
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(server)
        page.wait_for_selector("body[data-ready=true]")
        yield page
        context.close()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("GENCLI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def wait_for_new_image(page, image_id: str, old_src: str | None) -> str:
    page.wait_for_function(LOADED_AND_NEW, arg=[image_id, old_src or ""])
    return page.evaluate(DIGEST, image_id)


def test_moving_over_the_latent_plane_decodes_new_digits(page):
    page.click("nav button[data-tab=vae]")
    first = wait_for_new_image(page, "vae-image", None)
    assert first.startswith("28x28:")
    box = page.locator("#vae-plane").bounding_box()
    src = page.get_attribute("#vae-image", "src")
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.3)
    second = wait_for_new_image(page, "vae-image", src)
    src = page.get_attribute("#vae-image", "src")
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.65)
    third = wait_for_new_image(page, "vae-image", src)
    assert len({first, second, third}) == 3
    assert "vae_point.png" in page.inner_text("#vae-command")
    page.wait_for_function("() => document.getElementById('vae-scatter-note').textContent.includes('test images')")
    screenshot(page, "serve_vae.png")


def test_changing_the_stylegan_seed_changes_the_image(page):
    page.click("nav button[data-tab=stylegan]")
    first = wait_for_new_image(page, "sg-image", None)
    for image_id in ("mix-image", "interp-image"):
        wait_for_new_image(page, image_id, None)
    src = page.get_attribute("#sg-image", "src")
    page.fill("#sg-seed", "2")
    second = wait_for_new_image(page, "sg-image", src)
    src = page.get_attribute("#sg-image", "src")
    page.click("#sg-next")
    third = wait_for_new_image(page, "sg-image", src)
    assert len({first, second, third}) == 3
    assert "--seeds 3 " in page.inner_text("#sg-command")
    # Other seeds for the style mix and the interpolation (digits that differ, for the screenshot).
    for field, value in (("#mix-row", "8"), ("#mix-col", "16"), ("#interp-start", "3"), ("#interp-end", "8")):
        page.fill(field, value)
    page.wait_for_function("() => document.getElementById('mix-command').textContent.includes('--rows 8 --cols 16')"
                           " && document.getElementById('interp-command').textContent.includes('--seeds 3,8')")
    page.wait_for_function("() => ['mix-image', 'interp-image'].every((id) => document.getElementById(id).complete)")
    screenshot(page, "serve_stylegan.png")


def test_an_uploaded_image_is_translated_beside_it(page):
    page.click("nav button[data-tab=cyclegan]")
    page.set_input_files("#cg-file", str(MONET))
    output = wait_for_new_image(page, "cg-output", None)
    assert output.startswith("256x256:")
    assert page.evaluate(DIGEST, "cg-input") != output
    assert "gencli translate monet2photo monet_1.jpg --direction a2b" in page.inner_text("#cg-command")
    assert page.get_attribute("#cg-download", "download") == "monet_1_a2b.png"
    screenshot(page, "serve_cyclegan.png")


def test_a_photo_is_projected_shown_beside_it_mixed_with_the_seed_and_interpolated_to_it(page, tmp_path):
    from gencli import perceptual

    with pytest.MonkeyPatch.context() as mp:  # no feature network files: the pixel distance, with its note
        mp.setattr(perceptual, "VGG16_DOWNLOADS", (("http://127.0.0.1:9/vgg16.pt", None),))
        mp.setenv("XDG_CACHE_HOME", str(tmp_path))
        for name in ("GENCLI_VGG16", "GENCLI_INCEPTION"):
            mp.delenv(name, raising=False)
        page.click("nav button[data-tab=stylegan]")
        page.fill("#proj-steps", "5")
        page.set_input_files("#proj-file", str(MONET))
        for image_id in ("proj-image", "pmix-image", "pmixr-image", "pinterp-image"):
            wait_for_new_image(page, image_id, None)
    status = page.inner_text("#proj-status")
    assert "projected: step 5 of 5, distance pixel" in status and "no VGG16 file" in status
    assert page.get_attribute("#proj-w", "download") == "monet_1_projected_w.safetensors"
    seed = int(page.input_value("#sg-seed"))
    assert f"--rows monet_1_projected_w.safetensors --cols {seed} " in page.inner_text("#pmix-command")
    assert f"--rows {seed} --cols monet_1_projected_w.safetensors " in page.inner_text("#pmixr-command")
    assert f"--seeds monet_1_projected_w.safetensors,{seed} " in page.inner_text("#pinterp-command")
    sources = {image_id: page.get_attribute(f"#{image_id}", "src") for image_id in ("pmix-image", "pinterp-image")}
    page.click("#sg-next")
    for image_id, src in sources.items():
        wait_for_new_image(page, image_id, src)
    assert f"--cols {seed + 1} " in page.inner_text("#pmix-command")
    assert f"--seeds monet_1_projected_w.safetensors,{seed + 1} " in page.inner_text("#pinterp-command")
    src = page.get_attribute("#pmix-image", "src")
    page.fill("#mix-cutoff", "2")
    page.dispatch_event("#mix-cutoff", "input")
    wait_for_new_image(page, "pmix-image", src)
    assert "--cutoff 2 " in page.inner_text("#pmix-command")
    screenshot(page, "serve_projection.png")
