"""The FLOP floor that the speed benchmarks print, against hand-counted products."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from compute_floor import step_flops  # noqa: E402


def test_step_flops_of_a_vae_training_step_match_a_hand_count(data_dir):
    from gencli.data import load_idx_dataset
    from gencli.models.vae import VAEConfig
    from gencli.training.vae import VAETask

    train, test = load_idx_dataset("mnist", data_dir, download=False)
    task = VAETask("vae", VAEConfig(hidden=(16,), latent_dim=3), train, test, dataset="mnist", lr=1e-3,
                   batch_size=10, seed=0, device=torch.device("cpu"), epochs=1)
    batch = task.epoch_batches(1)[0]
    # Per image, every linear layer costs 2*in*out FLOPs for its output, its input gradient and its weight
    # gradient, except that the first layer's input is the data and needs no gradient.
    layers = [(784, 16), (16, 3), (16, 3), (3, 16), (16, 784)]
    per_image = 2 * (3 * sum(i * o for i, o in layers) - 784 * 16)
    assert step_flops(lambda: task.train_step(batch)) == per_image * len(batch)


def test_stylegan2_benchmark_names_every_weight_as_nvidia_does():
    from stylegan2_speed import nvidia_state

    from gencli.models import stylegan2 as sg2

    config = sg2.StyleGAN2Config(img_resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=16)
    G = sg2.build(config)
    state = nvidia_state(G)
    assert len(state) == len(G.state_dict())
    assert {"mapping.w_avg", "mapping.fc1.bias", "synthesis.b4.const", "synthesis.b4.conv1.noise_const",
            "synthesis.b16.conv0.affine.weight", "synthesis.b16.torgb.bias"} <= set(state)
    assert not [k for k in state if "blocks" in k or "layers" in k]
    assert torch.equal(state["synthesis.b8.conv1.weight"], G.synthesis.blocks[1].conv1.weight)
