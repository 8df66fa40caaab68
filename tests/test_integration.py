"""Checks on the real MNIST in ../shared/data/mnist; skipped where it is not present."""

import pytest
import torch

from conftest import SHARED_DATA
from gencli import api

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="real MNIST not available")


def test_real_mnist_loads_whole():
    from gencli.data import load_idx_dataset

    train, test = load_idx_dataset("mnist", SHARED_DATA, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("family,target", [
    ("vae", 138.0),  # the bundled vae measures 135.9
    ("cvae", 126.0),  # the bundled cvae measures 125.8
])
def test_bundled_models_meet_their_quality_targets(family, target):
    path = api.bundled_checkpoint(family)
    if path is None:
        pytest.skip(f"no bundled {family} checkpoint")
    metrics = api.evaluate(family, checkpoint=path, data_dir=SHARED_DATA)
    assert metrics["loss"] <= target
    assert metrics["loss"] == pytest.approx(metrics["bce"] + metrics["kl"], rel=1e-5)
