"""Variational autoencoder and conditional VAE on 28x28 grey images.

VAE: Kingma & Welling, "Auto-Encoding Variational Bayes" (2014). An MLP encoder gives the mean and
log-variance of q(z|x); z = mu + sigma * eps (reparameterization); an MLP decoder gives Bernoulli
logits of p(x|z). CVAE: Sohn et al., "Learning Structured Output Representation using Deep
Conditional Generative Models" (2015): the one-hot label y joins the encoder input and the latent.

Networks only: training is in gencli.training.vae, sampling and evaluation in gencli.inference.vae.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VAEConfig:
    image_size: int = 28  # images are 1 x image_size x image_size, pixel values in [0, 1]
    hidden: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them
    latent_dim: int = 2  # 2 lets the latent space be plotted, as in the study
    num_classes: int = 0  # > 0: conditional VAE on a one-hot label of this many classes
    dropout: float = 0.0  # dropout after every hidden layer while training (a regularizer)


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        pixels = config.image_size**2
        c = config.num_classes
        hidden = list(config.hidden)
        self.encoder = mlp([pixels + c, *hidden], config.dropout)
        self.to_mu = nn.Linear(hidden[-1], config.latent_dim)
        self.to_logvar = nn.Linear(hidden[-1], config.latent_dim)
        self.decoder = nn.Sequential(mlp([config.latent_dim + c, *reversed(hidden)], config.dropout), nn.Linear(hidden[0], pixels))

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def _with_label(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return h
        if labels is None:
            raise ValueError("a conditional VAE needs labels")
        return torch.cat([h, F.one_hot(labels, self.config.num_classes).to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, H, W) in [0, 1] -> mean and log-variance of q(z|x), each (B, latent_dim)."""
        h = self.encoder(self._with_label(x.flatten(1), labels))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> Bernoulli logits (B, 1, H, W); sigmoid gives the image."""
        s = self.config.image_size
        return self.decoder(self._with_label(z, labels)).view(-1, 1, s, s)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) (drawn here unless given)."""
        eps = torch.randn_like(mu) if eps is None else eps
        return mu + eps * (0.5 * logvar).exp()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, eps: torch.Tensor | None = None):
        mu, logvar = (t.float() for t in self.encode(x, labels))  # fp32 latents also under bf16 autocast
        return self.decode(self.reparameterize(mu, logvar, eps), labels), mu, logvar


def build(config: VAEConfig) -> VAE:
    return VAE(config)
