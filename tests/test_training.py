"""Resume: an interrupted run continued with --resume ends where an uninterrupted run ends."""

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_train
from gencli.checkpoint import load_model
from gencli.cli import app
from gencli.training import Progress


class InterruptAt(Progress):
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
    import gencli.cli as cli

    monkeypatch.setattr(cli, "rich_progress", lambda: InterruptAt(epoch=2, step=1))
    result = CliRunner().invoke(app, ["train", "vae", "--epochs", "3", "--batch-size", "50", "--hidden", "32",
                                      "--data-dir", str(data_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    assert "--resume" in result.output
    assert load_model(tmp_path / "r" / "model.safetensors")[1]["epoch"] == 1
