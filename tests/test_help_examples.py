"""Every example in every command's `--help` runs as written, in a folder laid out as the examples expect:
tiny models under runs/, small images and data sets (synthetic MNIST and Fashion-MNIST, a small
monet2photo) in $GENCLI_DATA_DIR, a stand-in for the Inception file. An example that needs a network is
skipped with its reason. Training examples get tiny sizes appended (the last value of an option wins), so
each example's own options are parsed and checked as written while the runs stay short, and their lengths
shrink (--epochs N becomes N // 10 for a cyclegan, N // 25 for a vae, at least 1; 1 when none is given)."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import run, tiny_train, write_mnist
from test_projection import StandInVGG

NEEDS_NETWORK = {
    "gencli download horse2zebra --data-dir data --json": "downloads a data set",
    "gencli download-weights ffhq": "downloads published weights",
    "gencli download-weights monet2photo": "downloads published weights",
    "gencli download-weights horse2zebra --json": "downloads published weights",
}
# Appended to training examples: tiny networks, few images (see the module docstring).
TINY = {
    "vae": ["--hidden", "16", "--batch-size", "100"],
    "cvae": ["--hidden", "16", "--batch-size", "100"],
    "cyclegan": ["--image-size", "32", "--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--max-images", "2"],
    "stylegan": ["--resolution", "16", "--widths", "16,8,8", "--z-dim", "8", "--w-dim", "8", "--mapping-layers", "2",
                 "--batch-size", "8", "--tick-kimg", "0.016", "--kimg", "0.016"],
}
EPOCHS_DIVISOR = {"vae": 25, "cvae": 25, "cyclegan": 10}


def shortened(args: list[str]) -> list[str]:
    """A training example with tiny sizes and a short length (see the module docstring)."""
    family = args[1]
    if family in EPOCHS_DIVISOR:
        if "--epochs" in args:
            i = args.index("--epochs") + 1
            args = [*args[:i], str(max(1, int(args[i]) // EPOCHS_DIVISOR[family])), *args[i + 1:]]
        else:
            args = [*args, "--epochs", "1"]
    return args + TINY[family]


def command_examples() -> list[tuple[str, list[str]]]:
    """(command words, its examples) of every command of the CLI that has an epilog."""
    import typer

    from gencli.cli import app

    found = []

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])
        if not hasattr(command, "commands") and command.epilog:
            lines = [line.strip() for line in command.epilog.splitlines() if line.strip().startswith("gencli ")]
            found.append((" ".join(words), lines))

    walk(typer.main.get_command(app), [])
    return found


EXAMPLES = command_examples()


def image(path: Path, size=(48, 40), colour=(180, 90, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(len(str(path)))
    noise = (torch.rand(size[1], size[0], 3, generator=g) * 60 + torch.tensor(colour)).clamp(0, 255)
    Image.fromarray(noise.to(torch.uint8).numpy()).save(path)
    return path


def unpaired(folder: Path, n: int = 2) -> Path:
    for k, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        for i in range(n):
            image(folder / sub / f"{i}.jpg", (32, 32), (60 * k, 90, 200 - 50 * k))
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The folder the examples run in (copied for each command) and the data and models folders."""
    from test_cyclegan import official_file
    from test_stylegan import rosinality_v1_state

    from gencli import api
    from gencli.checkpoint import save_model
    from gencli.models.cyclegan import CycleGANConfig, build

    root = tmp_path_factory.mktemp("examples")
    data = root / "data"
    write_mnist(data / "mnist")
    write_mnist(data / "fashion-mnist")
    unpaired(data / "monet2photo")
    work = root / "work"
    models = work / "_runs"  # becomes runs/ for the commands that read models; training starts without one
    tiny_train("vae", data, models / "vae", epochs=1)
    tiny_train("vae", data, models / "vae16", epochs=1, latent_dim=16)
    torch.manual_seed(0)
    cyclegan = build(CycleGANConfig(ngf=4, n_blocks=1))
    (models / "h2z").mkdir(parents=True)
    save_model(models / "h2z" / "model.safetensors", "cyclegan", cyclegan, cyclegan.config, epoch=1, seed=0,
               extra={"dataset": "horse2zebra"})
    shutil.copy(models / "h2z" / "model.safetensors", work / "horse2zebra.safetensors")
    api.train_stylegan(data="mnist", data_dir=data, run_dir=models / "photos", resolution=16, widths=(16, 8, 8), z_dim=8,
                       w_dim=8, mapping_layers=2, batch_size=8, tick_kimg=0.016, kimg=0.016, device="cpu")
    for name in ("painting.jpg", "horse.jpg", "holiday/beach.jpg", "holiday/hills.png",
                 *(f"{folder}/{k}.png" for folder in ("photos", "monet") for k in "abcdefgh")):  # a batch of 8 each
        image(work / name)
    unpaired(work / "path" / "to" / "horse2zebra")
    for name in ("latest_net_G_A.pth", "style_monet.pth", "G.pth"):
        official_file(work / name, n_blocks=1)
    torch.save({"g_running": rosinality_v1_state(widths=(8,) * 7)}, work / "ffhq-256.model")
    torch.save({"g_running": rosinality_v1_state(widths=(8,) * 7)}, work / "stylegan1-256.model")
    fixtures = Path(__file__).parent / "fixtures" / "stylegan2"  # small networks in NVIDIA's and rosinality's formats
    shutil.copy(fixtures / "sg3_ffhq_like.pkl", work / "ffhq.pkl")
    shutil.copy(fixtures / "rosinality_v2.pt", work / "550000.pt")
    api.import_stylegan(fixtures / "sg3_ffhq_like.pkl", out=work / "ffhq256.safetensors")
    shutil.copytree(models / "photos", models / "faces")
    for name in ("photo.png", "face.jpg"):
        image(work / name)
    torch.jit.script(StandInVGG()).save(str(work / "vgg16.pt"))

    class TinyFeatures(torch.nn.Module):  # a TorchScript stand-in for the Inception file
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x.float(), 2).flatten(1)

    torch.jit.script(TinyFeatures()).save(str(root / "inception.pt"))
    return root


@pytest.mark.parametrize("command, lines", EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_every_help_example_runs(command, lines, workspace, tmp_path, monkeypatch):
    assert lines, f"`gencli {command} --help` shows no example"
    work = tmp_path / "work"
    shutil.copytree(workspace / "work", work, ignore=shutil.ignore_patterns("_runs"))
    if not command.startswith("train"):
        shutil.copytree(workspace / "work" / "_runs", work / "runs")
    monkeypatch.chdir(work)
    monkeypatch.setenv("GENCLI_DATA_DIR", str(workspace / "data"))
    monkeypatch.setenv("GENCLI_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("GENCLI_INCEPTION", str(workspace / "inception.pt"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    skipped = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if " ".join(words) in NEEDS_NETWORK:
            skipped.append(f"{line}: {NEEDS_NETWORK[' '.join(words)]}")
            continue
        args = words[1:]
        if "--format" not in args and args[0] == "export" and not any(a.endswith((".pt", ".safetensors")) for a in args):
            pytest.importorskip("onnx", reason=f"{line} needs onnx (the export extra)")
        if args[0] == "train":
            args = shortened(args)
        if args[0] == "project":
            args = [*args, "--steps", "2"]
        result = run(*args, *(["--device", "cpu"] if "--device" not in args and takes_device(args) else []))
        assert result.exit_code == 0, f"{line}\n{result.output}"
        assert "Traceback" not in result.output
    if skipped:
        pytest.skip("ran the others; " + "; ".join(skipped))


def takes_device(args: list[str]) -> bool:
    """Whether the command of `args` has --device (the examples run on the CPU, whatever the machine has)."""
    result = run(*args[: 2 if args[0] in ("train", "import-weights") else 1], "--help")
    return "--device" in result.output
