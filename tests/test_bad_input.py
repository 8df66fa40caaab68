"""Bad input, one case each: the exit code, the one line that explains it, and that nothing the user had
was written over or lost (every file hashed before and after). Numbered as the items of the safety issue."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import one_line_error, run, tiny_train

from gencli.checkpoint import MODEL_FILE, RESUME_FILE, load_model, read_metadata, save_model
from gencli.errors import GencliError


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones too) and the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def image(path: Path, size=(20, 16), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A 'PNG' of a few dozen bytes that declares width x height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.fixture(scope="module")
def cyclegan_ckpt(tmp_path_factory) -> Path:
    """An untrained tiny CycleGAN: translation works, the pixels do not matter here."""
    from gencli.models.cyclegan import CycleGANConfig, build

    config = CycleGANConfig(image_size=32, ngf=4, n_blocks=1, ndf=4)
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("cg") / "model.safetensors", "cyclegan", build(config), config,
                      epoch=1, seed=0)


# --- 1. translate never writes over an input, never maps two inputs to one output --------------------------

def test_translate_into_its_own_input_folder_is_refused(cyclegan_ckpt, tmp_path):
    folder = tmp_path / "photos"
    image(folder / "good.png", seed=1)
    image(folder / "other.jpg", seed=2)
    before = snapshot(tmp_path)
    result = run("translate", cyclegan_ckpt, folder, "-o", folder, "--device", "cpu")
    one_line_error(result, "good.png would be written over the input")
    assert snapshot(tmp_path) == before
    # one file onto itself
    one_line_error(run("translate", cyclegan_ckpt, folder / "good.png", "-o", folder / "good.png", "--device", "cpu"),
                   "would be written over the input")
    assert snapshot(tmp_path) == before


def test_translate_gives_inputs_that_share_a_stem_their_own_outputs(cyclegan_ckpt, tmp_path):
    folder = tmp_path / "photos"
    image(folder / "good.jpg", seed=1)
    image(folder / "good.png", seed=2)
    image(folder / "other.png", seed=3)
    before = snapshot(folder)
    result = run("translate", cyclegan_ckpt, folder, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_jpg.png", "good_png.png", "other.png"]
    assert snapshot(folder) == before
    # into the input folder itself: the disambiguated names are new files, the inputs stay as they were
    (folder / "other.png").unlink()
    result = run("translate", cyclegan_ckpt, folder, "-o", folder, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["good.jpg", "good.png", "good_jpg.png", "good_png.png"]
    assert all(snapshot(folder)[name] == before[name] for name in ("good.jpg", "good.png"))


def test_translate_refuses_two_inputs_with_one_output_name(cyclegan_ckpt, tmp_path):
    image(tmp_path / "a" / "x.png", seed=1)
    image(tmp_path / "b" / "x.png", seed=2)
    before = snapshot(tmp_path)
    one_line_error(run("translate", cyclegan_ckpt, tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out",
                       "--device", "cpu"), "would both be written to")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


# --- 2. download --force keeps the old data set until the new one is complete ------------------------------

def test_failed_forced_download_keeps_the_old_data_set(tmp_path):
    data = tmp_path / "data"
    image(data / "horse2zebra" / "trainA" / "a.png")
    image(data / "horse2zebra" / "trainB" / "b.png")
    served = tmp_path / "server"
    served.mkdir()
    before = snapshot(data)
    one_line_error(run("download", "horse2zebra", "--data-dir", data, "--base-url", served.as_uri(), "--force"),
                   "cannot download")
    assert snapshot(data) == before
    (served / "horse2zebra.zip").write_bytes(b"PK\x03\x04 truncated")  # downloads, fails verification
    one_line_error(run("download", "horse2zebra", "--data-dir", data, "--base-url", served.as_uri(), "--force"),
                   "not a zip")
    assert snapshot(data) == before
    with zipfile.ZipFile(served / "horse2zebra.zip", "w") as z:  # a good archive replaces it
        for d in ("trainA", "trainB"):
            z.writestr(f"horse2zebra/{d}/new.png", b"png")
    result = run("download", "horse2zebra", "--data-dir", data, "--base-url", served.as_uri(), "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (data / "horse2zebra" / "trainA").iterdir()) == ["new.png"]
    assert sorted(p.name for p in data.iterdir()) == ["horse2zebra"]


# --- 3. one training per run folder ------------------------------------------------------------------------

def test_a_run_folder_in_use_is_refused_at_once(data_dir, tmp_path):
    from gencli.runs import hold_run_dir

    out = tmp_path / "run"
    with hold_run_dir(out):  # as another training would hold it
        before = snapshot(out)
        result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 1, "--hidden", 8,
                     "--device", "cpu")
        one_line_error(result, "in use by another training")
        assert snapshot(out) == before
    result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 1, "--hidden", 8, "--device", "cpu")
    assert result.exit_code == 0, result.output  # free again once released


# --- 4. a failed write keeps the last good pair -------------------------------------------------------------

def test_a_failed_checkpoint_write_keeps_the_last_pair(data_dir, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=1)
    before = snapshot(out)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("gencli.checkpoint.torch.save", full_disk)
    result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 2, "--batch-size", 50,
                 "--hidden", 32, "--device", "cpu", "--resume")
    one_line_error(result, "cannot write", "No space left on device", "checkpoint of epoch 1 is kept")
    after = snapshot(out)
    for name in (MODEL_FILE, RESUME_FILE):
        assert after[name] == before[name]
    assert not [n for n in after if n.endswith(".tmp")]
    assert read_metadata(out / MODEL_FILE)["epoch"] == 1
    monkeypatch.undo()
    result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 2, "--batch-size", 50,
                 "--hidden", 32, "--device", "cpu", "--resume")
    assert result.exit_code == 0, result.output


# --- 5. a non-finite loss stops the run, names where, saves nothing of it ----------------------------------

def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    from gencli.training import vae as training

    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=1)
    before = snapshot(out)
    calls = []

    def diverging(*args):  # the third loss of the resumed run (epoch 2, step 3) overflows
        calls.append(1)
        loss, bce, kl = vae_loss(*args)
        return (loss * float("inf") if len(calls) == 3 else loss), bce, kl

    vae_loss = training.vae_loss
    monkeypatch.setattr(training, "vae_loss", diverging)
    result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 2, "--batch-size", 50,
                 "--hidden", 32, "--device", "cpu", "--resume")
    one_line_error(result, "training diverged at epoch 2, step 3: loss is inf", "checkpoint of epoch 1 is kept")
    after = snapshot(out)
    assert after[MODEL_FILE] == before[MODEL_FILE] and after[RESUME_FILE] == before[RESUME_FILE]
    load_model(out / MODEL_FILE)  # finite weights
    monkeypatch.undo()
    fresh = tmp_path / "fresh"  # --lr 1e30: the weights overflow within the first epoch
    one_line_error(run("train", "vae", "--data-dir", data_dir, "--out", fresh, "--epochs", 1, "--hidden", 32,
                       "--device", "cpu", "--lr", "1e30"), "training diverged at epoch 1, step")
    assert not (fresh / MODEL_FILE).exists()


# --- 6. a pixel limit, checked from the header -----------------------------------------------------------------

def test_huge_images_are_refused_alone_and_skipped_in_folders(cyclegan_ckpt, tmp_path):
    folder = tmp_path / "in"
    image(folder / "fine.png")
    bomb = png_header(folder / "bomb.png", 50000, 50000)
    before = snapshot(folder)
    one_line_error(run("translate", cyclegan_ckpt, bomb, "-o", tmp_path / "o.png", "--device", "cpu"),
                   "50000x50000 pixels", "GENCLI_MAX_PIXELS")
    result = run("translate", cyclegan_ckpt, folder, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "bomb.png" in warnings[0] and warnings[0].endswith("; skipped")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fine.png"]
    assert snapshot(folder) == before


def test_the_pixel_limit_can_be_changed(tmp_path, monkeypatch):
    from gencli.data import load_image_tensor, open_rgb

    small = image(tmp_path / "small.png", size=(20, 16))
    monkeypatch.setenv("GENCLI_MAX_PIXELS", "100")
    with pytest.raises(GencliError, match="20x16 pixels, above the limit of 100"):
        open_rgb(small)
    skipped = []
    with pytest.raises(GencliError, match="none of the 1 files"):  # training folders skip it the same way
        load_image_tensor([small], 8, on_skip=lambda p, m: skipped.append(p))
    assert skipped == [small]
    monkeypatch.setenv("GENCLI_MAX_PIXELS", str(20 * 16))
    assert open_rgb(small).size == (20, 16)


# --- 7. checkpoint metadata checked before anything is built ------------------------------------------------

def _tampered(tmp_path: Path, **changes) -> Path:
    from gencli.models.vae import VAE, VAEConfig

    config = VAEConfig(hidden=(8,), latent_dim=2)
    good = save_model(tmp_path / "good.safetensors", "vae", VAE(config), config, epoch=1, seed=0)
    with safe_open(str(good), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    if "config_fields" in changes:
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), **changes.pop("config_fields")})
    metadata.update(changes)
    path = tmp_path / "bad.safetensors"
    save_file(tensors, path, metadata=metadata)
    return path


@pytest.mark.parametrize("changes,message", [
    ({"config": "{not json"}, "'config' metadata is not valid JSON"),
    ({"config": "null"}, "must be a JSON object, got null"),
    ({"config": "5"}, "must be a JSON object, got an integer"),
    ({"extra": "[1]"}, "'extra' metadata must be a JSON object"),
    ({"epoch": "-3"}, "'epoch' metadata must be a non-negative integer"),
    ({"family": "gpt"}, "unknown model family"),
    ({"config_fields": {"hidden": "wide"}}, "hidden must be a list, got a string"),
    ({"config_fields": {"latent_dim": -1}}, "latent_dim must be between 0 and"),
    ({"config_fields": {"latent_dim": None}}, "latent_dim must be int, got null"),
    ({"config_fields": {"hidden": [0]}}, "hidden must hold positive sizes"),
    ({"config_fields": {"latent_dim": 3}}, "weights do not match the stored vae config"),
    ({"config_fields": {"hidden": [1000000, 1000000]}}, "weights do not match"),  # would need 4 TB: not allocated
    ({"config_fields": {"wings": 2}}, "unknown VAEConfig fields"),
    ({"config": '{"dropout": NaN}'}, "'config' metadata is not valid JSON"),
])
def test_bad_checkpoint_metadata_is_one_line(tmp_path, changes, message):
    path = _tampered(tmp_path, **changes)
    before = snapshot(tmp_path)
    one_line_error(run("sample", "-c", path, "-o", tmp_path / "s.png"), message)
    assert snapshot(tmp_path) == before


def test_a_malformed_latent_range_is_one_line(tmp_path):
    path = _tampered(tmp_path, extra=json.dumps({"latent_min": "low", "latent_max": [1, 2]}))
    one_line_error(run("latent-grid", "-c", path, "--range", "minmax", "-o", tmp_path / "g.png"), "latent range is malformed")


def test_flipped_bytes_in_the_weights_fail_the_checksum(tmp_path):
    path = _tampered(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # a bit of the last tensor's data
    path.write_bytes(bytes(data))
    one_line_error(run("sample", "-c", path, "-o", tmp_path / "s.png"), "do not match their checksum")


def test_bundled_checkpoints_without_a_checksum_still_load():
    from gencli.runs import bundled_checkpoint

    for name in ("vae", "cvae"):
        path = bundled_checkpoint(name)
        assert read_metadata(path)["sha256"] is None
        load_model(path)


# --- 9. a half-written metrics line is dropped on resume, with a warning -------------------------------------

def test_resume_drops_a_half_written_metrics_line(data_dir, tmp_path):
    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=1)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_lo')
    result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 2, "--batch-size", 50,
                 "--hidden", 32, "--device", "cpu", "--resume")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output and "dropped 1 unreadable line" in result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


# --- 11. more than 8 bits per pixel --------------------------------------------------------------------------

def test_16_bit_and_float_images_are_scaled_to_8_bits(tmp_path):
    from gencli.data import open_rgb

    a16 = np.array([[0, 257 * 100], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    assert np.asarray(open_rgb(tmp_path / "g16.png"))[..., 0].tolist() == [[0, 100], [128, 255]]
    unit = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    assert np.asarray(open_rgb(tmp_path / "unit.tif"))[..., 0].tolist() == [[0, 128], [255, 64]]
    bytes_range = np.array([[0.0, 100.0], [255.0, 300.0]], dtype=np.float32)
    Image.fromarray(bytes_range).save(tmp_path / "b.tif")
    assert np.asarray(open_rgb(tmp_path / "b.tif"))[..., 0].tolist() == [[0, 100], [255, 255]]


# --- 12. import-weights names stay inside the models folder ---------------------------------------------------

@pytest.mark.parametrize("name", ["../escaped", ".hidden", "a/b"])
def test_import_weights_refuses_names_that_leave_the_models_folder(tmp_path, monkeypatch, name):
    models = tmp_path / "models"
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(models))
    pth = tmp_path / "g.pth"
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, pth)
    before = snapshot(tmp_path)
    one_line_error(run("import-weights", "cyclegan", pth, "--name", name), "bad model name")
    assert snapshot(tmp_path) == before and not models.exists()


# --- 13. zip bombs ---------------------------------------------------------------------------------------------

def test_zip_bombs_are_refused(tmp_path, monkeypatch):
    served = tmp_path / "server"
    served.mkdir()
    with zipfile.ZipFile(served / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/trainA/a.png", b"\0" * (4 << 20))  # 4 MiB of zeros: about 1000:1
        z.writestr("bomb/trainB/b.png", b"x")
    data = tmp_path / "data"
    one_line_error(run("download", "bomb", "--data-dir", data, "--base-url", served.as_uri()), "unsafe archive",
                   "zip bomb")
    assert sorted(p.name for p in data.iterdir()) == []
    with zipfile.ZipFile(served / "big.zip", "w") as z:
        for d in ("trainA", "trainB"):
            z.writestr(f"big/{d}/a.png", b"y" * 5000)
    monkeypatch.setenv("GENCLI_MAX_EXTRACT_BYTES", "8000")
    one_line_error(run("download", "big", "--data-dir", data, "--base-url", served.as_uri()), "unsafe archive",
                   "above the limit of 8,000")
    assert sorted(p.name for p in data.iterdir()) == []


# --- 14. validation before side effects; --overwrite; --resume with nothing left to do ----------------------------

def test_failed_validation_leaves_no_run_folder(data_dir, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "no_such_data"
    one_line_error(run("train", "vae", "--data-dir", missing, "--out", out, "--epochs", 1, "--device", "cpu"),
                   "could not be downloaded")
    assert not out.exists() and not missing.exists()
    one_line_error(run("train", "vae", "--data-dir", data_dir, "--out", out, "--resume", "--device", "cpu"),
                   "nothing to resume")
    assert not out.exists()
    one_line_error(run("train", "cyclegan", "--data", tmp_path / "nowhere", "--out", out, "--device", "cpu"),
                   "no data folder")
    assert not out.exists()


def test_overwrite_clears_the_old_runs_outputs(data_dir, tmp_path):
    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=2)
    (out / "notes.txt").write_text("mine")
    result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", 1, "--batch-size", 50,
                 "--hidden", 32, "--device", "cpu", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png"]
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_with_nothing_left_to_do_changes_nothing(data_dir, tmp_path):
    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=2)
    before = snapshot(out)
    for epochs in (2, 1):
        result = run("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", epochs, "--device", "cpu",
                     "--resume")
        assert result.exit_code == 0, result.output
        assert "Nothing to do" in result.output and "finished 2 epochs" in result.output
        assert f"{epochs} {'was' if epochs == 1 else 'were'} asked for" in result.output
        assert snapshot(out) == before
