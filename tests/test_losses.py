import math

import torch

from gencli.losses import bernoulli_nll, gaussian_kl, vae_loss


def test_bernoulli_nll_matches_hand_computed_values():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    target = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    # -[t log s(l) + (1 - t) log(1 - s(l))] per pixel, summed per row
    sig = lambda v: 1 / (1 + math.exp(-v))
    row0 = -math.log(sig(0.0)) - math.log(1 - sig(2.0))
    row1 = -(0.5 * math.log(sig(-1.0)) + 0.5 * math.log(1 - sig(-1.0))) - math.log(sig(3.0))
    assert torch.allclose(bernoulli_nll(logits, target), torch.tensor([row0, row1]), atol=1e-6)


def test_bernoulli_nll_is_finite_for_saturated_logits():
    logits = torch.tensor([[200.0, -200.0]])
    target = torch.tensor([[0.0, 1.0]])
    value = bernoulli_nll(logits, target)
    assert torch.isfinite(value).all()
    assert torch.allclose(value, torch.tensor([400.0]))


def test_gaussian_kl_closed_form():
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]])
    # KL(N(m, s^2) || N(0, 1)) = 0.5 (s^2 + m^2 - 1 - log s^2) per dimension
    expected = torch.tensor([0.0, 0.5 * (4 + 1 - 1 - math.log(4)) + 0.5 * 4])
    assert torch.allclose(gaussian_kl(mu, logvar), expected, atol=1e-6)


def test_vae_loss_is_batch_mean_of_parts():
    torch.manual_seed(0)
    logits, target = torch.randn(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2)
    loss, bce, kl = vae_loss(logits, target, mu, logvar)
    assert torch.isclose(bce, bernoulli_nll(logits, target).mean())
    assert torch.isclose(kl, gaussian_kl(mu, logvar).mean())
    assert torch.isclose(loss, bce + kl)
