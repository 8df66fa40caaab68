"""Data-parallel training with 2 CPU processes (gloo on 127.0.0.1), spawned by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_train
from gencli.checkpoint import load_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vae_worker(rank: int, world_size: int, port: int, data_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gencli import distributed
    from gencli.data import load_idx_dataset
    from gencli.models.vae import VAEConfig, VAETask
    from gencli.training import fit, seed_everything

    device = distributed.init(torch.device("cpu"))
    seed_everything(0)
    train, test = load_idx_dataset("mnist", data_dir, download=False)
    task = VAETask("vae", VAEConfig(hidden=(32,)), train, test, dataset="mnist", lr=1e-2, batch_size=25, seed=0,
                   device=device, epochs=2)
    fit(task, out, epochs=2)
    torch.save({"model": task.model.state_dict(), "ema": task.ema.state_dict()}, os.path.join(out, f"rank{rank}.pt"))
    distributed.shutdown()


def test_two_ranks_agree_with_one_process_on_the_global_batch(tmp_path, data_dir):
    out = tmp_path / "ddp"
    mp.start_processes(_vae_worker, args=(2, free_port(), str(data_dir), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    # One process, global batch 2 x 25, same seed: the same model within float tolerance.
    single, _ = load_model(tiny_train("vae", data_dir, tmp_path / "one", epochs=2, batch_size=50, lr=1e-2))
    for key, value in single.state_dict().items():  # the saved (averaged) weights
        assert torch.equal(rank0["model"][key], rank1["model"][key]), key
        assert torch.equal(rank0["ema"][key], rank1["ema"][key]), key
        assert torch.allclose(rank0["ema"][key], value, atol=1e-5), key
    # Only rank 0 wrote the run directory, and its model is the ranks' model.
    written, meta = load_model(out / "model.safetensors")
    assert meta["epoch"] == 2
    assert all(torch.equal(written.state_dict()[k], rank0["ema"][k]) for k in rank0["ema"])
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def torchrun(*args, port: int, timeout: int = 300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "gencli", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_under_torchrun_writes_one_run_and_resumes(tmp_path, data_dir):
    out = tmp_path / "run"
    common = ["train", "vae", "--batch-size", 25, "--hidden", 32, "--data-dir", data_dir, "--out", out,
              "--device", "cpu"]
    result = torchrun(*common, "--epochs", 1, port=free_port())
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Model written to") == 1  # rank 0 alone reports
    result = torchrun(*common, "--epochs", 2, "--resume", port=free_port())
    assert result.returncode == 0, result.stderr[-2000:]
    _, meta = load_model(out / "model.safetensors")
    assert meta["epoch"] == 2
    assert [line.count('"epoch"') for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 1]
    import json

    options = json.loads((out / "options.json").read_text())
    assert options["processes"] == 2 and options["global_batch_size"] == 50


@pytest.mark.parametrize("family", ["cyclegan", "stylegan"])
def test_gan_families_refuse_torchrun_clearly(monkeypatch, tmp_path, family):
    from conftest import one_line_error, run

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    one_line_error(run("train", family, "--out", tmp_path / "r"), "torchrun")
    assert not (tmp_path / "r").exists()
