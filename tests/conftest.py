"""Shared fixtures: synthetic IDX files (so the real loading code runs) and tiny trained models."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch

# Where the tests that need real data (MNIST, monet2photo) look: $GENCLI_DATA_DIR, else ../shared/data beside
# the checkout; they are skipped when the data set is not there. (Read once here: the tests themselves run
# with GENCLI_DATA_DIR unset, see no_network.)
SHARED_DATA = (Path(os.environ["GENCLI_DATA_DIR"]).expanduser() if os.environ.get("GENCLI_DATA_DIR")
               else Path(__file__).resolve().parents[1].parent / "shared" / "data")


def write_idx(path: Path, array: torch.Tensor, compress: bool = True) -> Path:
    """Write a uint8 tensor as an IDX file (magic 0x0000 0x08 ndim, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.to(torch.uint8).contiguous().numpy().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """28x28 images whose content depends on the label: a bright bar at a label-dependent row."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = (torch.rand(n, 28, 28, generator=g) * 40).to(torch.uint8)
    for i, y in enumerate(labels.tolist()):
        images[i, 2 + 2 * y : 5 + 2 * y, 4:24] = 255
    return images, labels.to(torch.uint8)


def write_mnist(folder: Path, n_train: int = 300, n_test: int = 100, compress: bool = True) -> Path:
    suffix = ".gz" if compress else ""
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return folder


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data directory holding a synthetic `mnist/` of 300 train and 100 test images."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root / "mnist")
    return root


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Point every download at a closed port on this machine, so no test reaches the internet."""
    import torchvision.datasets

    for name in ("MNIST", "FashionMNIST"):
        monkeypatch.setattr(getattr(torchvision.datasets, name), "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.delenv("GENCLI_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-gencli-cache")


def run(*args):
    """Invoke the gencli CLI in-process; arguments may be paths or numbers."""
    from typer.testing import CliRunner

    from gencli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments):
    """One line of error (after the informational lines: the model opened, a training's precision), and a
    non-zero exit."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines()
             if line.strip() and not line.startswith(("Model: ", "Note: ", "precision "))]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


def tiny_train(family: str, data_dir: Path, out: Path, epochs: int = 2, **kw) -> Path:
    from gencli import api

    options = dict(family=family, data_dir=data_dir, epochs=epochs, batch_size=50, hidden=(32,), seed=0, device="cpu")
    options.update(kw)
    calls = {k: options.pop(k) for k in ("resume", "overwrite", "progress") if k in options}
    return api.train_vae(run_dir=out, **calls, **options)


@pytest.fixture(scope="session")
def vae_ckpt(data_dir, tmp_path_factory) -> Path:
    return tiny_train("vae", data_dir, tmp_path_factory.mktemp("vae"))


@pytest.fixture(scope="session")
def cvae_ckpt(data_dir, tmp_path_factory) -> Path:
    return tiny_train("cvae", data_dir, tmp_path_factory.mktemp("cvae"))
