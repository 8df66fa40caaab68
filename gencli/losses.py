"""Pure loss functions: tensors in, tensors out, no state. Each one is tested against a closed form."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels, per image (B,), in nats.

    Computed from logits (log-sum-exp form), so it stays finite where sigmoid would round to 0 or 1.
    """
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row (B,), in nats (Kingma & Welling 2014, App. B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def vae_loss(logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The negative ELBO averaged over the batch: (loss, bce, kl), each in nats per image."""
    bce = bernoulli_nll(logits, target).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return bce + kl, bce, kl
