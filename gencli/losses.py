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


# --- CycleGAN ---
# Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks" (2017).
# `pred` is a PatchGAN map of patch scores; every loss is a mean over all patches and images.

def lsgan_loss(pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017), CycleGAN's default: mean((D(x) - t)^2), t = 1 or 0."""
    return (pred - (1.0 if target_is_real else 0.0)).pow(2).mean()


def vanilla_gan_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """The original GAN loss (Goodfellow et al. 2014): binary cross-entropy of sigmoid(logits) against 1
    or 0 (for the generator, the non-saturating -log D(G(x)))."""
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    return F.binary_cross_entropy_with_logits(logits, target)


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """The adversarial loss chosen by name: 'lsgan' or 'vanilla'."""
    if mode == "lsgan":
        return lsgan_loss(pred, target_is_real)
    if mode == "vanilla":
        return vanilla_gan_loss(pred, target_is_real)
    raise ValueError(f"unknown GAN loss {mode!r}; use lsgan or vanilla")


def l1_loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference: the cycle-consistency ||F(G(x)) - x||_1 and identity ||G(y) - y||_1 terms."""
    return (x - target).abs().mean()


def discriminator_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """D's loss, halved as in the paper (Sec. 4) to slow D relative to G: (L(D(y), 1) + L(D(G(x)), 0)) / 2."""
    return 0.5 * (gan_loss(real_pred, True, mode) + gan_loss(fake_pred, False, mode))


# --- StyleGAN ---
# Karras et al., "A Style-Based Generator Architecture for GANs" (2019), Sec. 4 / App. C: the
# non-saturating logistic loss of Goodfellow et al. (2014) with the R1 penalty of Mescheder et al.
# (2018). `*_pred` are raw discriminator scores (logits), shape (B, 1).

def d_logistic_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """D's logistic loss: mean softplus(-D(x)) + mean softplus(D(G(z))) = -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def d_r1_loss(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """R1 = E ||grad_x D(x)||^2 on real images (the caller scales it by gamma / 2); `real_img` must
    require grad and `real_pred` must come from it. Keeps the graph so the penalty can be trained."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def g_nonsaturating_loss(fake_pred: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: mean softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_pred).mean()
