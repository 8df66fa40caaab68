"""The CLI end to end through typer's CliRunner, into tmp_path."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from conftest import one_line_error, run, tiny_train
from gencli import __version__, api
from gencli.checkpoint import load_model



def grid_shape(rows, cols, cell=28, pad=2):
    """(width, height) of a make_grid PNG with the default padding of 2."""
    return cols * (cell + pad) + pad, rows * (cell + pad) + pad


@pytest.mark.parametrize("command", [[], ["train"], ["train", "vae"], ["train", "cvae"], ["sample"], ["latent-grid"],
                                     ["reconstruct"], ["evaluate"], ["info"]])
def test_every_help_works(command):
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("args", [["train", "vae", "--bogus"], ["sample", "vae", "-n", "many"], ["nonsense"]])
def test_usage_errors_are_one_line_from_the_console_script(args):
    out = subprocess.run([sys.executable, "-m", "gencli", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), out.stderr


def test_no_arguments_shows_help():
    for args in ([], ["train"]):
        out = subprocess.run([sys.executable, "-m", "gencli", *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "Usage" in out.stdout and "Error" not in out.stderr


def test_module_entry_point_and_lazy_torch():
    out = subprocess.run([sys.executable, "-m", "gencli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "latent-grid" in out.stdout
    probe = "import sys, gencli.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_train_writes_the_whole_run_directory(tmp_path, data_dir):
    out = tmp_path / "run"
    result = run("train", "cvae", "--epochs", 2, "--batch-size", 50, "--hidden", "32", "--data-dir", data_dir,
                 "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    for name in ("model.safetensors", "resume.pt", "metrics.jsonl", "loss.png", "latent.png", "options.json",
                 "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "train_bce", "train_kl", "test_loss", "test_bce", "test_kl", "seconds"} <= set(rows[0])
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    model, meta = load_model(out / "model.safetensors")
    assert meta["family"] == "cvae" and meta["epoch"] == 2 and meta["config"]["hidden"] == [32]
    assert len(meta["extra"]["latent_min"]) == 2 and meta["extra"]["dataset"] == "mnist"
    assert Image.open(out / "samples" / "epoch_002.png").size == grid_shape(8, 8)


def test_train_refuses_to_overwrite_a_run(tmp_path, data_dir):
    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=1)
    before = (out / "model.safetensors").read_bytes()
    result = run("train", "vae", "--epochs", 1, "--data-dir", data_dir, "--out", out)
    assert result.exit_code == 1 and "--resume" in result.output
    assert (out / "model.safetensors").read_bytes() == before


def test_sample_vae_and_cvae(tmp_path, vae_ckpt, cvae_ckpt):
    result = run("sample", "vae", "-c", vae_ckpt, "-n", 12, "--nrow", 4, "-o", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "s.png").size == grid_shape(3, 4)
    result = run("sample", "cvae", "-c", cvae_ckpt, "--nrow", 5, "-o", tmp_path / "digits.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "digits.png").size == grid_shape(10, 5)  # one row per digit
    result = run("sample", "-c", cvae_ckpt, "--label", 3, "--seeds", "0-5", "-o", tmp_path / "three.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "three.png").size == grid_shape(1, 6)


def test_sample_cells_are_independent_of_batch(tmp_path, vae_ckpt):
    run("sample", "vae", "-c", vae_ckpt, "--seeds", "0-3", "--nrow", 4, "-o", tmp_path / "a.png")
    run("sample", "vae", "-c", vae_ckpt, "--seeds", "2", "-o", tmp_path / "b.png")
    import numpy as np

    a = np.asarray(Image.open(tmp_path / "a.png"))
    b = np.asarray(Image.open(tmp_path / "b.png"))
    x = 2 + 2 * 30  # third cell; a grid of one image is that image, without padding
    assert a.shape == (32, 4 * 30 + 2) and b.shape == (28, 28)
    assert (a[2:30, x : x + 28] == b).all()


def test_latent_grid_spans_stored_range_and_label(tmp_path, vae_ckpt, cvae_ckpt):
    result = run("latent-grid", "-c", vae_ckpt, "--steps", 5, "--range", "minmax", "-o", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "g.png").size == grid_shape(5, 5)
    result = run("latent-grid", "-c", cvae_ckpt, "--label", 8, "--range=-2,2", "-o", tmp_path / "g8.png")
    assert result.exit_code == 0, result.output
    # The corner cells decode the corners of the range: top-left is (lo, hi).
    model, _ = load_model(cvae_ckpt)
    with torch.no_grad():
        corner = torch.sigmoid(model.decode(torch.tensor([[-2.0, 2.0]]), torch.tensor([8])))[0, 0]
    import numpy as np

    cell = np.asarray(Image.open(tmp_path / "g8.png").convert("L"))[2:30, 2:30]
    assert np.abs(cell.astype(float) - (corner * 255).round().numpy()).max() <= 1


def test_latent_grid_needs_dims_beyond_2d(tmp_path, data_dir):
    ckpt = tiny_train("vae", data_dir, tmp_path / "r", epochs=1, latent_dim=4)
    result = run("latent-grid", "-c", ckpt, "-o", tmp_path / "g.png")
    assert result.exit_code == 2 and "--dims" in result.output  # a usage error
    result = run("latent-grid", "-c", ckpt, "--dims", "1,3", "-o", tmp_path / "g.png")
    assert result.exit_code == 0, result.output


def test_reconstruct_and_evaluate(tmp_path, data_dir, cvae_ckpt):
    result = run("reconstruct", "-c", cvae_ckpt, "-n", 25, "--nrow", 10, "--data-dir", data_dir,
                 "-o", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    assert "mean loss" in result.output
    assert Image.open(tmp_path / "r.png").size == grid_shape(6, 10)  # 3 input rows, 3 output rows
    result = run("evaluate", "-c", cvae_ckpt, "--json", "--data-dir", data_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # the model's line is on stderr
    assert {"loss", "bce", "kl"} <= set(metrics) and metrics["models"][0]["path"] == str(cvae_ckpt)
    assert metrics["models"][0]["family"] == "cvae" and metrics["models"][0]["name"] is None  # a path names no model
    assert metrics["loss"] == pytest.approx(metrics["bce"] + metrics["kl"], rel=1e-5)
    # The same figure as the last epoch's test loss in metrics.jsonl.
    last = json.loads((cvae_ckpt.parent / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["loss"] == pytest.approx(last["test_loss"], rel=1e-4)


def test_default_checkpoint_prefers_runs_dir(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    tiny_train("vae", data_dir, None, epochs=1)  # writes runs/vae
    assert api.find_checkpoint("vae") == tmp_path / "runs" / "vae" / "model.safetensors" or \
        api.find_checkpoint("vae").resolve() == (tmp_path / "runs" / "vae" / "model.safetensors").resolve()
    result = run("sample", "vae", "-o", "x.png")
    assert result.exit_code == 0 and (tmp_path / "x.png").is_file()


# --- bad input: one line, non-zero exit, nothing overwritten --------------------------------------------

def test_bad_inputs(tmp_path, data_dir, vae_ckpt, cvae_ckpt):
    png = tmp_path / "o.png"
    one_line_error(run("sample", "vae", "-c", tmp_path / "missing.safetensors", "-o", png), "not found")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(vae_ckpt.read_bytes()[:100])
    one_line_error(run("sample", "vae", "-c", truncated, "-o", png), "truncated")
    one_line_error(run("latent-grid", "-c", vae_ckpt, "--label", 8, "-o", png), "vae", "cvae")
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "--label", 3, "-o", png), "--label", "cvae")
    one_line_error(run("sample", "cvae", "-c", cvae_ckpt, "--label", 10, "-o", png), "--label", "0 and 9")
    one_line_error(run("sample", "cvae", "-c", cvae_ckpt, "--label", -1, "-o", png), "--label")
    one_line_error(run("sample", "cvae", "-c", vae_ckpt, "-o", png), "holds a vae model")
    one_line_error(run("train", "vae", "--epochs", 0, "--out", tmp_path / "r"), "--epochs")
    one_line_error(run("train", "vae", "--batch-size", -5, "--out", tmp_path / "r"), "--batch-size")
    one_line_error(run("train", "vae", "--hidden", "32,-1", "--out", tmp_path / "r"), "--hidden")
    one_line_error(run("train", "cvae", "--dropout", 1.5, "--out", tmp_path / "r"), "--dropout")
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "-n", -3, "-o", png), "-n")
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "--seeds", "5-1", "-o", png), "seed")
    one_line_error(run("latent-grid", "-c", vae_ckpt, "--range", "3,1", "-o", png), "--range")
    one_line_error(run("train", "vae", "--data-dir", tmp_path / "empty", "--out", tmp_path / "r2"),
                   "could not be downloaded")
    assert not png.exists()


def test_unwritable_output_path(tmp_path, vae_ckpt):
    # /proc refuses new files even to root, so this holds whoever runs the tests.
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "-o", "/proc/gencli-test/x.png"), "/proc")
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    one_line_error(run("sample", "vae", "-c", vae_ckpt, "-o", blocker / "x.png"), "not a folder")
    assert blocker.read_text() == "keep me"
