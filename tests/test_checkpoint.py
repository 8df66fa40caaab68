
import pytest
import torch
from safetensors.torch import save_file

from gencli.checkpoint import load_model, read_metadata, save_model
from gencli.errors import GencliError
from gencli.files import atomic_write
from gencli.models.vae import VAE, VAEConfig


def test_round_trip_rebuilds_model_from_metadata(tmp_path):
    config = VAEConfig(hidden=(16, 8), latent_dim=3, num_classes=10)
    model = VAE(config)
    path = save_model(tmp_path / "m.safetensors", "cvae", model, config, epoch=7, seed=11,
                      extra={"latent_min": [-1.0, -2.0, -3.0]})
    loaded, meta = load_model(path)
    assert meta["family"] == "cvae" and meta["epoch"] == 7 and meta["seed"] == 11
    assert meta["extra"]["latent_min"] == [-1.0, -2.0, -3.0]
    assert loaded.config == config  # tuples restored from JSON lists
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    config = VAEConfig(hidden=(16,))
    path = save_model(tmp_path / "m.safetensors", "vae", VAE(config), config, epoch=1, seed=0)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(GencliError, match="truncated or corrupt"):
        load_model(path)


def test_foreign_safetensors_and_wrong_family(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(GencliError, match="not a gencli checkpoint"):
        read_metadata(tmp_path / "plain.safetensors")
    config = VAEConfig(hidden=(16,))
    path = save_model(tmp_path / "m.safetensors", "vae", VAE(config), config, epoch=1, seed=0)
    with pytest.raises(GencliError, match="holds a vae model, but this needs cvae"):
        load_model(path, "cvae")


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "g.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    config = VAEConfig(hidden=(16,))
    model = VAE(config)
    with torch.no_grad():
        next(model.parameters())[0, 3] = bad
    path = save_model(tmp_path / "m.safetensors", "vae", model, config, epoch=1, seed=0)
    with pytest.raises(GencliError, match="NaN or infinite"):
        load_model(path)


def test_large_finite_weights_whose_sum_overflows_still_load(tmp_path):
    config = VAEConfig(hidden=(16,))
    model = VAE(config)
    with torch.no_grad():
        next(model.parameters()).fill_(3e38)  # finite values, an infinite float32 sum
    path = save_model(tmp_path / "m.safetensors", "vae", model, config, epoch=1, seed=0)
    loaded, _ = load_model(path)
    assert torch.equal(next(loaded.parameters()), next(model.parameters()))
