"""Resume: an interrupted run continued with --resume ends where an uninterrupted run ends."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_train
from gencli.checkpoint import load_model
from gencli.cli import app
from gencli.training.loop import TrainingHooks


class InterruptAt(TrainingHooks):
    """Raise KeyboardInterrupt in the middle of an epoch, as Ctrl-C would."""

    def __init__(self, epoch, step):
        self.at = (epoch, step)

    def epoch_start(self, epoch, steps):
        self.epoch = epoch

    def step(self, step, logs, images):
        if (self.epoch, step) == self.at:
            raise KeyboardInterrupt


def weights(path):
    return load_model(path)[0].state_dict()


def test_interrupted_run_resumes_to_the_same_model(tmp_path, data_dir):
    straight = tiny_train("vae", data_dir, tmp_path / "a", epochs=3)

    with pytest.raises(KeyboardInterrupt):
        tiny_train("vae", data_dir, tmp_path / "b", epochs=3, progress=InterruptAt(epoch=2, step=3))
    # The checkpoint of epoch 1 survived the interruption.
    assert load_model(tmp_path / "b" / "model.safetensors")[1]["epoch"] == 1
    result = CliRunner().invoke(app, ["train", "vae", "--resume", "--epochs", "3", "--batch-size", "50",
                                      "--data-dir", str(data_dir), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    resumed = tmp_path / "b" / "model.safetensors"
    for key, value in weights(straight).items():
        assert torch.allclose(value, weights(resumed)[key], atol=1e-6), key
    rows = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    a_rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["test_loss"] == pytest.approx(a_rows[-1]["test_loss"], rel=1e-5)


def test_resume_extends_a_finished_run(tmp_path, data_dir):
    tiny_train("cvae", data_dir, tmp_path / "r", epochs=1)
    path = tiny_train("cvae", data_dir, tmp_path / "r", epochs=2, resume=True)
    assert load_model(path)[1]["epoch"] == 2


def test_cli_interrupt_exits_130_and_keeps_checkpoints(tmp_path, data_dir, monkeypatch):
    import gencli.cli.training as cli

    monkeypatch.setattr(cli, "training_progress", lambda log_every, kimg: InterruptAt(epoch=2, step=1))
    result = CliRunner().invoke(app, ["train", "vae", "--epochs", "3", "--batch-size", "50", "--hidden", "32",
                                      "--data-dir", str(data_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    assert "--resume" in result.output
    assert load_model(tmp_path / "r" / "model.safetensors")[1]["epoch"] == 1


def test_cosine_schedule_runs_from_lr_to_a_hundredth(data_dir):
    from gencli.data import load_idx_dataset
    from gencli.models.vae import VAEConfig
    from gencli.training.vae import VAETask

    train, test = load_idx_dataset("mnist", data_dir, download=False)
    lrs = {}
    for schedule in ("cosine", "constant"):
        task = VAETask("vae", VAEConfig(hidden=(8,)), train, test, dataset="mnist", lr=0.1, batch_size=50, seed=0,
                       device=torch.device("cpu"), epochs=5, lr_schedule=schedule)
        lrs[schedule] = []
        for epoch in range(1, 6):
            task.epoch_batches(epoch)
            lrs[schedule].append(task.optimizer.param_groups[0]["lr"])
    assert lrs["constant"] == [0.1] * 5
    assert lrs["cosine"][0] == pytest.approx(0.1)
    # epoch 3 of 5 starts 2/5 of the way through: 0.1 * (0.01 + 0.99 * (1 + cos(0.4 pi)) / 2)
    assert lrs["cosine"][2] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5 * (1 + math.cos(0.4 * math.pi))))
    assert all(a > b for a, b in zip(lrs["cosine"], lrs["cosine"][1:]))


def test_saved_model_is_the_weight_average(tmp_path, data_dir):
    from gencli.data import load_idx_dataset
    from gencli.models.vae import VAEConfig
    from gencli.training.vae import VAETask

    train, test = load_idx_dataset("mnist", data_dir, download=False)
    for decay in (0.0, 0.9):
        torch.manual_seed(0)
        task = VAETask("vae", VAEConfig(hidden=(8,)), train, test, dataset="mnist", lr=0.01, batch_size=50, seed=0,
                       device=torch.device("cpu"), epochs=1, ema_decay=decay)
        before = [p.clone() for p in task.ema.parameters()]
        for batch in task.epoch_batches(1)[:3]:
            previous = [p.clone() for p in task.ema.parameters()]
            task.train_step(batch)
        params, averaged = list(task.model.parameters()), list(task.ema.parameters())
        if decay == 0.0:  # no averaging: the saved model is the trained one
            assert all(torch.equal(a, p) for a, p in zip(averaged, params))
        else:  # third step: decay min(0.9, (1 + 3) / (10 + 3)) = 4/13
            d = 4 / 13
            assert all(torch.allclose(a, d * q + (1 - d) * p) for a, q, p in zip(averaged, previous, params))
            assert not all(torch.equal(a, b) for a, b in zip(averaged, before))
        assert task.exported_model()[0] is task.ema


def test_vae_precision_is_an_option_and_bf16_trains(tmp_path, data_dir):
    """--precision auto|fp32|bf16 for the vae family: bf16 autocasts the forward pass, the loss stays fp32."""
    result = CliRunner().invoke(app, ["train", "cvae", "--epochs", "1", "--batch-size", "50", "--hidden", "32",
                                      "--precision", "bf16", "--device", "cpu", "--data-dir", str(data_dir),
                                      "--out", str(tmp_path / "bf16")])
    assert result.exit_code == 0 and "precision bf16 (asked for)" in result.output, result.output
    options = json.loads((tmp_path / "bf16" / "options.json").read_text())
    assert options["resolved"]["precision"] == "bf16" and options["resolved"]["precision_reason"] == "asked for"
    row = json.loads((tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()[0])
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
    tiny_train("vae", data_dir, tmp_path / "auto", epochs=1)
    options = json.loads((tmp_path / "auto" / "options.json").read_text())
    assert options["resolved"]["precision"] in ("fp32", "bf16")
    assert options["resolved"]["precision_reason"].startswith("auto: ")
    result = CliRunner().invoke(app, ["train", "vae", "--precision", "fp16", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "fp16" in result.output
