"""What the command line tells and accepts: provenance lines, `info`, the option vocabulary and its
aliases, usage errors (exit 2) for bad numbers, one-line errors for torch/safetensors/PIL exceptions,
--json results, progress without a terminal, and what answers without importing torch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import one_line_error, run
from gencli.catalog import bundled_checkpoint
from gencli.models import cyclegan as cg

NO_TORCH_PROBE = """
import sys
from gencli.cli import main
try:
    main()
finally:
    sys.stderr.write("\\ntorch loaded: %s\\n" % ("torch" in sys.modules))
"""


def cli_without_torch(*args, env=None):
    """Run the console entry point in a fresh interpreter; returns (result, whether torch was imported)."""
    out = subprocess.run([sys.executable, "-c", NO_TORCH_PROBE, *map(str, args)], capture_output=True, text=True,
                         timeout=120, env=env)
    loaded = out.stderr.strip().splitlines()[-1] == "torch loaded: True"
    out.stderr = "\n".join(out.stderr.strip().splitlines()[:-1])
    return out, loaded


def model_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Model: ")]


# --- answers without torch ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["--version"], ["sample", "--help"], ["train", "cyclegan", "--help"],
                                  ["info", "vae"], ["info", "monet2photo", "--json"], ["nonsense"],
                                  ["sample", "vae", "--seed", "-5"], ["train", "vae", "--lr", "nan"],
                                  ["sample", "vae", "--seeds", "0-2**70"], ["info", "no_such_model"],
                                  ["models"], ["models", "--json"], ["info", "bundled:vae"]])
def test_help_version_info_and_errors_load_no_torch(args):
    out, torch_loaded = cli_without_torch(*args)
    assert not torch_loaded, (args, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr


def test_shell_completion_is_on():
    result = run("--help")
    assert "--install-completion" in result.output and "--show-completion" in result.output


# --- provenance -----------------------------------------------------------------------------------------

def test_provenance_line_for_bundled_run_folder_imported_and_path(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(tmp_path / "models"))
    result = run("sample", "vae", "--seeds", "0-1", "-o", "a.png")
    assert result.exit_code == 0, result.output
    assert model_lines(result.output) == [f"Model: vae, epoch 50, bundled vae ({bundled_checkpoint('vae')})"]

    result = run("train", "vae", "--epochs", 1, "--batch-size", 50, "--hidden", 32, "--data-dir", data_dir,
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Note: runs/vae will shadow the bundled vae" in result.output
    assert "`gencli sample bundled:vae` still uses the bundled one" in result.output
    result = run("sample", "vae", "--seeds", "0-1", "-o", "b.png")
    line = model_lines(result.output)[0]
    assert line.startswith("Model: vae, epoch 1, run folder runs/vae") and "shadows the bundled vae" in line

    result = run("sample", "-c", tmp_path / "runs" / "vae" / "model.safetensors", "--seeds", "0", "-o", "c.png")
    assert model_lines(result.output) == [f"Model: vae, epoch 1, run folder {tmp_path / 'runs' / 'vae'}"]

    (tmp_path / "models").mkdir()
    shutil.copy(tmp_path / "runs" / "vae" / "model.safetensors", tmp_path / "models" / "digits.safetensors")
    shutil.copy(tmp_path / "runs" / "vae" / "model.safetensors", tmp_path / "loose.safetensors")
    result = run("sample", "digits", "--seeds", "0", "-o", "d.png", "--json")
    assert result.exit_code == 0, result.output
    used = json.loads(result.stdout)["models"][0]
    assert (used["epoch"], used["origin"], used["name"]) == (1, "imported", "digits")  # not a mere file
    result = run("info", "digits", "--json")
    assert json.loads(result.stdout)["origin"] == "imported"
    result = run("sample", "-c", "loose.safetensors", "--seeds", "0", "-o", "e.png")
    assert model_lines(result.output) == ["Model: vae, epoch 1, file loose.safetensors"]


def test_translate_names_the_bundled_model_it_uses(tmp_path):
    Image.new("RGB", (32, 32), (200, 100, 50)).save(tmp_path / "in.png")
    result = run("translate", "monet2photo", tmp_path / "in.png", "--direction", "BtoA", "-o", tmp_path / "out.png",
                 "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    from gencli.checkpoint import read_metadata
    from gencli.runs import bundled_checkpoint

    epoch = read_metadata(bundled_checkpoint("monet2photo"))["epoch"]
    assert model_lines(result.output)[0].startswith(f"Model: cyclegan, epoch {epoch}, bundled monet2photo")
    answer = json.loads(result.stdout)
    assert answer["direction"] == "b2a" and answer["outputs"] == [str(tmp_path / "out.png")]
    assert answer["models"][0]["origin"] == "bundled"


# --- info -------------------------------------------------------------------------------------------------

def test_info_on_a_run_folder_a_bundled_name_and_a_file(vae_ckpt):
    result = run("info", vae_ckpt.parent)
    assert result.exit_code == 0, result.output
    assert "family    vae, epoch 2" in result.output and "parameters" in result.output
    data = json.loads(run("info", vae_ckpt.parent, "--json").stdout)
    assert data["origin"] == "run" and data["config"]["hidden"] == [32] and data["parameters"] > 0
    data = json.loads(run("info", "monet2photo", "--json").stdout)
    assert data["origin"] == "bundled" and data["family"] == "cyclegan" and data["dtypes"] == ["F16"]
    data = json.loads(run("info", vae_ckpt, "--json").stdout)
    assert data["origin"] == "run" and data["epoch"] == 2


def test_info_errors(tmp_path):
    one_line_error(run("info", "no_such_model"), "no model named")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 20)
    one_line_error(run("info", tmp_path / "bad.safetensors"), "not a readable safetensors")


# --- the option vocabulary ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["train", "vae"], ["train", "cvae"], ["train", "cyclegan"], ["train", "stylegan"],
                                     ["sample"], ["latent-grid"], ["reconstruct"], ["evaluate"], ["translate"],
                                     ["download"], ["download-weights"], ["import-weights", "cyclegan"],
                                     ["import-weights", "stylegan"], ["style-mix"], ["interpolate"], ["project"], ["info"],
                                     ["export"], ["models"]])
def test_every_command_has_examples(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Examples" in result.output and "gencli " in result.output, result.output


@pytest.mark.parametrize("command, choices", [
    (["train", "vae"], ["mnist|fashion-mnist", "constant|cosine", "auto|cpu|cuda"]),
    (["train", "stylegan"], ["adain|demod"]),
    (["train", "cyclegan"], ["lsgan|vanilla", "fp32|bf16"]),
    (["translate"], ["a2b|b2a", "fp32|bf16|fp16"]),
    (["export"], ["onnx|torchscript|safetensors"]),
    (["sample"], ["auto|cpu|cuda"]),
])
def test_enumerated_options_show_their_choices(command, choices):
    from typer.testing import CliRunner

    from gencli.cli import app

    output = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250"}).output.replace(" ", "")
    for choice in choices:
        assert choice in output, choice


def test_aliases(tmp_path, vae_ckpt, cvae_ckpt, data_dir):
    # --network for -c, --class for --label, --model for the positional MODEL, -o/--out/--outdir for --run-dir
    assert run("sample", "--network", vae_ckpt, "--seeds", "0", "-o", tmp_path / "a.png").exit_code == 0
    assert run("sample", "--model", "cvae", "-c", cvae_ckpt, "--class", 3, "--seeds", "0-1",
               "-o", tmp_path / "b.png").exit_code == 0
    assert run("latent-grid", "cvae", "-c", cvae_ckpt, "--label", 2, "--steps", 2, "-o", tmp_path / "c.png").exit_code == 0
    assert run("latent-grid", "-m", "cvae", "-c", cvae_ckpt, "--label", 2, "--steps", 2,
               "-o", tmp_path / "d.png").exit_code == 0
    for i, spelling in enumerate(["--run-dir", "--out", "-o", "--outdir"]):
        result = run("train", "vae", "--epochs", 1, "--batch-size", 100, "--hidden", 8, "--dataset", "mnist",
                     "--data-dir", data_dir, spelling, tmp_path / f"r{i}", "--device", "cpu")
        assert result.exit_code == 0 and (tmp_path / f"r{i}" / "model.safetensors").is_file(), result.output
    result = run("train", "vae", "--help")
    assert "--dataset" not in result.output and "--out " not in result.output  # hidden


def test_import_weights_cyclegan_output_and_its_old_spelling(tmp_path):
    torch.manual_seed(0)
    state = cg.ResnetGenerator(ngf=4, n_blocks=1).state_dict()
    torch.save(state, tmp_path / "g.pth")
    for spelling in ("-o", "--output", "--out"):
        target = tmp_path / f"g{spelling.strip('-')}.safetensors"
        result = run("import-weights", "cyclegan", tmp_path / "g.pth", spelling, target, "--direction", "BtoA", "--json")
        assert result.exit_code == 0 and target.is_file(), result.output
        assert json.loads(result.stdout)["direction"] == "b2a"


# --- usage errors exit 2 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["train", "vae", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "vae", "--lr", "inf"], "--lr"),
    (["train", "stylegan", "--kimg", "nan"], "--kimg"),
    (["sample", "stylegan", "--truncation", "inf"], "--truncation"),
    (["sample", "stylegan", "--truncation", "1.5"], "--truncation"),
    (["train", "cyclegan", "--lambda-cycle", "-5"], "--lambda-cycle must be 0 or more"),
    (["train", "cyclegan", "--lambda-identity", "-0.5"], "--lambda-identity"),
    (["train", "stylegan", "--r1-gamma", "-1"], "--r1-gamma"),
    (["train", "stylegan", "--mixing-prob", "1.5"], "--mixing-prob"),
    (["train", "vae", "--ema-decay", "1"], "--ema-decay"),
    (["train", "vae", "--epochs", "0"], "--epochs"),
    (["train", "vae", "--batch-size", str(2**70)], "--batch-size"),
    (["sample", "vae", "--seed", "-5"], "--seed"),
    (["sample", "vae", "--seed", str(2**63)], "--seed"),
    (["sample", "vae", "--seeds", "-3"], "seed"),
    (["sample", "vae", "--seeds", "0-2**70"], "seed"),
    (["sample", "vae", "--seeds", f"0-{2**70}"], "--seeds"),
    (["sample", "vae", "--seeds", f"{2**32}"], "seeds are between 0 and 4294967295"),
    (["sample", "vae", "-n", "-3"], "-n"),
    (["sample", "vae", "-n", "5", "--seed", str(2**32 - 2)], "seed"),
    (["style-mix", "--rows", "0-200000"], "--rows"),
    (["interpolate", "--noise-seed", "-1"], "--noise-seed"),
    (["train", "vae", "--resume", "--overwrite"], "exclude"),
    (["translate", "monet2photo", "x.png", "--tile", "-1"], "--tile"),
    (["latent-grid", "--range", "nan,1"], "--range"),
])
def test_bad_numbers_are_usage_errors(tmp_path, args, fragment):
    result = run(*args, *(["--run-dir", tmp_path / "r"] if args[0] == "train" else []))
    assert result.exit_code == 2, result.output
    one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()


def test_click_usage_errors_still_exit_2():
    assert run("sample", "vae", "-n", "many").exit_code == 2
    assert run("translate", "monet2photo", "x.png", "--direction", "sideways").exit_code == 2


# --- exceptions of torch, safetensors and PIL: one line, in one place ------------------------------------------

@pytest.mark.parametrize("make, fragment", [
    (lambda: RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore detail"), "out of memory"),
    (lambda: torch.OutOfMemoryError("CUDA out of memory."), "out of memory"),
    (lambda: RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(trace)"), "RuntimeError: mat1 and mat2"),
    (lambda: Image.DecompressionBombError("Image size (2500000000 pixels) exceeds limit"), "image too large"),
    (lambda: __import__("safetensors").SafetensorError("Error while deserializing header"), "not a readable safetensors"),
    (lambda: Image.UnidentifiedImageError("cannot identify image file 'x.png'"), "cannot read image"),
    (lambda: MemoryError(), "out of memory"),
])
def test_library_exceptions_become_one_line(monkeypatch, tmp_path, make, fragment):
    from gencli import api

    def boom(*args, **kwargs):
        raise make()

    api.sample  # noqa: B018  (imported on first use; then replaced)
    monkeypatch.setattr(api, "sample", boom)
    result = run("sample", "vae", "-o", tmp_path / "x.png")
    assert result.exit_code == 1
    one_line_error(result, fragment)


def test_gencli_debug_shows_the_traceback(monkeypatch, tmp_path):
    from gencli import api

    api.sample  # noqa: B018
    monkeypatch.setattr(api, "sample", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    monkeypatch.setenv("GENCLI_DEBUG", "1")
    result = run("sample", "vae", "-o", tmp_path / "x.png")
    assert isinstance(result.exception, RuntimeError)


# --- results and progress ---------------------------------------------------------------------------------

def test_json_results_parse(tmp_path, vae_ckpt, cvae_ckpt, data_dir):
    answers = {
        "sample": run("sample", "-c", vae_ckpt, "--seeds", "0-3", "-o", tmp_path / "s.png", "--json"),
        "latent-grid": run("latent-grid", "-c", vae_ckpt, "--steps", 2, "-o", tmp_path / "g.png", "--json"),
        "reconstruct": run("reconstruct", "-c", cvae_ckpt, "-n", 10, "--data-dir", data_dir,
                           "-o", tmp_path / "r.png", "--json"),
    }
    for name, result in answers.items():
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert Path(answer["output"]).is_file() and answer["models"][0]["family"] in ("vae", "cvae"), name
    assert json.loads(answers["sample"].stdout)["seeds"] == [0, 1, 2, 3]
    assert json.loads(answers["reconstruct"].stdout)["loss"] > 0


def test_training_without_a_terminal_logs_lines_and_ends_with_a_summary(tmp_path, data_dir):
    run_dir = tmp_path / "r"
    result = run("train", "vae", "--epochs", 2, "--batch-size", 50, "--hidden", 16, "--data-dir", data_dir,
                 "--run-dir", run_dir, "--device", "cpu", "--log-every", 0)
    assert result.exit_code == 0, result.output
    steps = [line for line in result.output.splitlines() if " step " in line]
    assert len(steps) == 2 * 6 and steps[0].startswith("epoch 1/2  elapsed ")  # 300 images, batch 50
    assert "img/s" in steps[0] and "run eta" in steps[0]
    ends = [line for line in result.output.splitlines() if line.startswith("epoch 2/2  train_loss")]
    assert len(ends) == 1 and "run eta 0:00:00" in ends[0]
    assert "Done in 0:00:" in result.output and f"Next: gencli sample vae -c {run_dir}" in result.output
    result = run("train", "vae", "--epochs", 3, "--resume", "--data-dir", data_dir, "--run-dir", run_dir,
                 "--device", "cpu", "--json")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["metrics"]["epoch"] == 3 and "model.safetensors" in answer["files"]
    assert answer["next"] == f"gencli sample vae -c {run_dir}"


def test_progress_numbers():
    from gencli.cli.progress import clock, losses, speed

    assert speed(3, 2) == "1.5 img/s" and speed(0.4, 1) == "0.4 img/s" and speed(250, 2) == "125 img/s"
    assert clock(3725.9) == "1:02:05"
    assert losses({"G_cycle": 1.23456, "D_A": 0.5}) == "cyc 1.23  D_A 0.5"


def test_result_lines_are_not_wrapped(tmp_path, vae_ckpt):
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / "samples.png"
    result = run("sample", "-c", vae_ckpt, "--seeds", "0", "-o", deep)
    assert result.exit_code == 0
    assert f"Samples written to {deep}" in result.stdout.splitlines()


# --- optional extras ---------------------------------------------------------------------------------

def test_a_missing_onnx_names_the_pip_command(tmp_path, monkeypatch, vae_ckpt):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    result = run("export", vae_ckpt, "-o", tmp_path / "v.onnx")
    one_line_error(result, "--format onnx needs onnx", 'pip install "gencli[export]"')
    assert not (tmp_path / "v.onnx").exists()
    assert run("export", vae_ckpt, "--format", "torchscript", "-o", tmp_path / "v.pt").exit_code == 0  # no onnx needed


# --- messages ----------------------------------------------------------------------------------------------

def test_a_failed_training_leaves_no_runs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("train", "vae", "--data-dir", tmp_path / "nodata", "--epochs", 1, "--device", "cpu")
    one_line_error(result, "mnist is not in")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither runs/vae nor runs/ nor the data folder
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "mine.txt").write_text("kept")
    assert run("train", "vae", "--data-dir", tmp_path / "nodata", "--epochs", 1, "--device", "cpu").exit_code == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mine.txt"]


def test_a_digit_label_is_not_named_twice(tmp_path):
    result = run("sample", "stylegan", "--label", 7, "--seeds", "0-1", "-o", tmp_path / "s.png", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("(class 7)") and "7: 7" not in result.stdout


def test_published_weights_of_an_older_pickle_protocol_load_without_a_warning(tmp_path):
    import warnings

    from gencli.files import load_foreign_state

    torch.save({"w": torch.ones(2)}, tmp_path / "old.pth", pickle_protocol=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = load_foreign_state(tmp_path / "old.pth")
    assert torch.equal(state["w"], torch.ones(2))
    assert not [w for w in caught if "pickle protocol" in str(w.message)], [str(w.message) for w in caught]
    with warnings.catch_warnings(record=True) as caught:  # the warning silenced is torch's own
        warnings.simplefilter("always")
        torch.load(tmp_path / "old.pth", weights_only=True)
    assert [w for w in caught if "pickle protocol" in str(w.message)]


# --- models named by where they come from ---------------------------------------------------------------

def test_model_ids_pick_exactly_one_model_and_the_shadow_line_names_the_command(tmp_path, monkeypatch, vae_ckpt):
    import re
    import shlex

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "runs" / "vae").mkdir(parents=True)
    shutil.copy(vae_ckpt, tmp_path / "runs" / "vae" / "model.safetensors")
    (tmp_path / "models").mkdir()
    shutil.copy(vae_ckpt, tmp_path / "models" / "vae.safetensors")

    result = run("sample", "vae", "--seeds", "0", "-o", "a.png")
    line = model_lines(result.output)[0]
    assert "run folder runs/vae" in line and "shadows the imported vae" in line
    command = re.search(r"`(gencli sample imported:vae \.\.\.)` uses that one", line).group(1)
    again = run(*shlex.split(command)[1:-1], "--seeds", "0", "-o", "b.png")  # the command the line names
    assert again.exit_code == 0 and model_lines(again.output) == [
        f"Model: vae, epoch 2, imported vae ({tmp_path / 'models' / 'vae.safetensors'})"], again.output
    bundled = run("sample", "bundled:vae", "--seeds", "0", "-o", "c.png", "--json")
    assert json.loads(bundled.stdout)["models"][0]["id"] == "bundled:vae"
    assert model_lines(run("sample", "run:vae", "--seeds", "0", "-o", "d.png").output)[0].startswith(
        "Model: vae, epoch 2, run folder runs/vae")  # chosen by id: nothing said of what it hides
    assert json.loads(run("info", "bundled:vae", "--json").stdout)["epoch"] == 50
    assert json.loads(run("info", "-c", "runs/vae", "--json").stdout)["origin"] == "run"
    assert run("latent-grid", "bundled:cvae", "--label", 3, "--steps", 2, "-o", "g.png").exit_code == 0

    listing = run("models")
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert list(rows)[:2] == ["run:vae", "imported:vae"] and "bundled:monet2photo" in rows
    assert "the name vae picks run:vae" in rows["imported:vae"] and "picks" not in rows["run:vae"]
    assert "bundled:mnist_classifier" not in rows  # a judge of samples, not a model to use
    listed = json.loads(run("models", "--json").stdout)["models"]
    assert [m["named_by_name"] for m in listed if m["name"] == "vae"] == [True, False, False]

    one_line_error(run("sample", "bundled:nope", "-o", "x.png"), "no model with id bundled:nope", "gencli models")
    one_line_error(run("sample", "nope", "-o", "x.png"), "no model named 'nope'", "`gencli models` lists")


def test_the_ids_that_serve_lists_work_on_the_command_line(tmp_path, monkeypatch, vae_ckpt):
    pytest.importorskip("fastapi")
    from gencli.catalog import locate_model
    from gencli.serve.models import ModelStore

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    shutil.copy(vae_ckpt, tmp_path / "runs" / "mine" / "model.safetensors")
    entries = ModelStore("runs").scan()
    assert {"run:mine", "bundled:vae", "bundled:monet2photo"} <= {e.id for e in entries}
    for entry in entries:
        assert locate_model(entry.id).path.resolve() == entry.path.resolve(), entry.id


def test_translate_export_and_info_take_a_checkpoint_option(tmp_path, vae_ckpt):
    from gencli.runs import bundled_checkpoint

    Image.new("RGB", (32, 32), (200, 100, 50)).save(tmp_path / "in.png")
    Image.new("RGB", (32, 32), (20, 100, 50)).save(tmp_path / "in2.png")
    result = run("translate", "-c", bundled_checkpoint("monet2photo"), tmp_path / "in.png", tmp_path / "in2.png",
                 "--outdir", tmp_path / "out", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    outputs = [Path(p) for p in json.loads(result.stdout)["outputs"]]
    assert sorted(p.name for p in outputs) == ["in.png", "in2.png"] and {p.parent.name for p in outputs} == {"out"}
    result = run("translate", "bundled:monet2photo", tmp_path / "in.png", "-o", tmp_path / "b.png", "--device", "cpu")
    assert result.exit_code == 0 and (tmp_path / "b.png").is_file(), result.output
    one_line_error(run("translate", "monet2photo"), "name the images to translate")
    one_line_error(run("translate"), "name a model", "-c PATH")
    result = run("export", "-c", vae_ckpt.parent, "--format", "torchscript", "-o", tmp_path / "v.pt", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["family"] == "vae", result.output
    one_line_error(run("export", "vae", "-c", vae_ckpt), "give one")
    one_line_error(run("info", "-c", tmp_path / "missing"), "checkpoint not found")
    one_line_error(run("info"), "name a model", "gencli models")


# --- output files -------------------------------------------------------------------------------------------

def test_default_output_names_carry_what_varies(tmp_path, monkeypatch, vae_ckpt, cvae_ckpt):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "cvae").mkdir(parents=True)
    shutil.copy(cvae_ckpt, tmp_path / "runs" / "cvae" / "model.safetensors")
    written = {}
    for args in (["sample", "cvae", "--seeds", "0-1"], ["sample", "cvae", "--seeds", "0-1", "--label", 3],
                 ["latent-grid", "-c", vae_ckpt, "--steps", 2], ["latent-grid", "-c", vae_ckpt, "--steps", 2, "--range", "minmax"],
                 ["latent-grid", "-c", vae_ckpt, "--steps", 2, "--range=-3,3", "--annotate", "--scale", 2],
                 ["latent-grid", "--label", 8, "--steps", 2],
                 ["style-mix", "--rows", 0, "--cols", 1, "--label", 4], ["interpolate", "--seeds", "0,1", "--steps", 2, "--annotate"],
                 ["sample", "bundled:vae", "--seeds", 0]):
        result = run(*args, "--device", "cpu", "--json")
        assert result.exit_code == 0, (args, result.output)
        written[" ".join(map(str, args))] = json.loads(result.stdout)["output"]
    names = list(written.values())
    assert names == ["cvae_samples.png", "cvae_samples_label3.png", f"{vae_ckpt.parent.name}_latent_grid_steps2.png",
                     f"{vae_ckpt.parent.name}_latent_grid_minmax_steps2.png",
                     f"{vae_ckpt.parent.name}_latent_grid_range-3_3_steps2_annotated_x2.png",
                     "cvae_latent_grid_label8_steps2.png", "stylegan_style_mix_label4.png",
                     "stylegan_interpolation_annotated.png", "vae_samples.png"], names
    assert all((tmp_path / name).is_file() for name in names)  # none replaced another
    again = run("sample", "cvae", "--seeds", "0-1", "--label", 3, "--device", "cpu")
    assert "Samples written to cvae_samples_label3.png (replacing the file that was there)" in again.stdout
    explicit = run("sample", "cvae", "--seeds", "0", "-o", "cvae_samples.png", "--device", "cpu")
    assert "(replacing the file that was there)" in explicit.stdout  # -o replaces, and says so
    from typer.testing import CliRunner

    from gencli.cli import app

    assert "(an existing one is replaced)" in CliRunner().invoke(app, ["sample", "--help"], env={"COLUMNS": "400"}).output


def test_reconstruct_annotate_and_the_label_of_an_annotated_cvae_grid(tmp_path, vae_ckpt, cvae_ckpt, data_dir):
    sizes = {}
    for name, extra in (("plain", []), ("annotated", ["--annotate"])):
        result = run("reconstruct", "-c", cvae_ckpt, "-n", 6, "--nrow", 3, "--data-dir", data_dir,
                     "-o", tmp_path / f"{name}.png", *extra)
        assert result.exit_code == 0, result.output
        sizes[name] = Image.open(tmp_path / f"{name}.png").size
    assert sizes["annotated"][1] == sizes["plain"][1] and sizes["annotated"][0] > sizes["plain"][0] + 40  # "reconstruction"
    grid = {}
    for name, args in (("vae", ["-c", vae_ckpt]), ("cvae", ["-c", cvae_ckpt, "--label", 3])):
        assert run("latent-grid", *args, "--steps", 2, "--annotate", "-o", tmp_path / f"{name}.png").exit_code == 0
        grid[name] = Image.open(tmp_path / f"{name}.png").size
    assert grid["cvae"][1] == grid["vae"][1] and grid["cvae"][0] > grid["vae"][0]  # "label 3: " in the corner


def test_the_real_data_tests_read_gencli_data_dir(tmp_path):
    import os

    root = Path(__file__).resolve().parents[1]
    code = "import sys; sys.path.insert(0, 'tests'); import conftest; print(conftest.SHARED_DATA)"
    env = {k: v for k, v in os.environ.items() if k != "GENCLI_DATA_DIR"}
    given = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                           env={**env, "GENCLI_DATA_DIR": str(tmp_path)})
    assert given.stdout.strip() == str(tmp_path), given.stderr
    default = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert default.stdout.strip() == str(root.parent / "shared" / "data"), default.stderr
