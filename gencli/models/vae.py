"""Variational autoencoder and conditional VAE on 28x28 grey images.

VAE: Kingma & Welling, "Auto-Encoding Variational Bayes" (2014). An MLP encoder gives the mean and
log-variance of q(z|x); z = mu + sigma * eps (reparameterization); an MLP decoder gives Bernoulli
logits of p(x|z). CVAE: Sohn et al., "Learning Structured Output Representation using Deep
Conditional Generative Models" (2015): the one-hot label y joins the encoder input and the latent.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gencli.losses import vae_loss


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
        mu, logvar = self.encode(x, labels)
        return self.decode(self.reparameterize(mu, logvar, eps), labels), mu, logvar


def build(config: VAEConfig) -> VAE:
    return VAE(config)


@torch.no_grad()
def evaluate(model: VAE, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000, seed: int = 0
             ) -> tuple[dict[str, float], torch.Tensor]:
    """Mean negative ELBO (loss, bce, kl in nats per image) over a set, and the latent means (N, latent_dim).

    The reparameterization noise comes from a fixed seed, so the figure is repeatable.
    """
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    totals = {"loss": 0.0, "bce": 0.0, "kl": 0.0}
    means = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float() / 255
        y = labels[start : start + batch_size].to(device)
        mu, logvar = model.encode(x, y)
        z = mu + torch.randn(mu.shape, generator=g, device=device) * (0.5 * logvar).exp()
        loss, bce, kl = vae_loss(model.decode(z, y), x, mu, logvar)
        for key, value in zip(totals, (loss, bce, kl)):
            totals[key] += value.item() * len(x)
        means.append(mu.cpu())
    return {k: v / len(images) for k, v in totals.items()}, torch.cat(means)


def prior_samples(model: VAE, seeds: list[int], labels: torch.Tensor | None = None) -> torch.Tensor:
    """One image per seed (z from N(0, I) drawn with that seed), in [0, 1], shape (N, 1, H, W)."""
    device = next(model.parameters()).device
    model.eval()  # no dropout (training steps switch it back on)
    z = torch.stack([torch.randn(model.config.latent_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        return torch.sigmoid(model.decode(z.to(device), None if labels is None else labels.to(device))).cpu()


class VAETask:
    """What the training loop needs from the vae/cvae family: one Adam-trained network."""

    curves = ("train_loss", "test_loss")

    def __init__(self, family: str, config: VAEConfig, train_set, test_set, *, dataset: str, lr: float,
                 batch_size: int, seed: int, device: torch.device, epochs: int, lr_schedule: str = "constant",
                 ema_decay: float = 0.9999):
        from gencli import distributed
        from gencli.data import shuffled_batches

        self.family, self.config, self.seed, self.device = family, config, seed, device
        self.dataset = dataset
        self.model = build(config).to(device)
        self.net = distributed.wrap(self.model, device)  # DistributedDataParallel under torchrun
        # Polyak averaging: an exponential moving average of the weights is evaluated and saved. With a
        # constant learning rate it acts like stochastic weight averaging: the noisy high-rate iterates
        # generalize better than a decayed rate's, which overfits (2-D CVAE, 50 epochs: 125.8 nats
        # against 126.8 with a cosine decay and decay 0.999).
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if ema_decay > 0 else self.model
        self.ema_decay = ema_decay
        w = distributed.world()
        # The fused kernel updates all parameters in one call: about 20% faster per step on a CPU.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))
        self.lr, self.epochs, self.lr_schedule = lr, epochs, lr_schedule
        self.train_x, self.train_y = train_set.images.to(device), train_set.labels.to(device)
        self.test_set = test_set
        self.batch_size = batch_size
        self._batches = lambda epoch: shuffled_batches(len(self.train_y), batch_size, seed, epoch,
                                                       rank=w.rank, world_size=w.world_size)
        # The same noise (and, for the cvae, the digits 0-9 in turn) decoded after every epoch.
        self.sample_seeds = list(range(64))
        self.sample_labels = torch.arange(64) % 10 if config.num_classes else None
        self.extra: dict = {}

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        if self.lr_schedule == "cosine":  # from lr down to lr/100 over the run; derived from the epoch alone
            lr = self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / self.epochs)))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        # One noise vector per training image and epoch, drawn from (seed, epoch): the result depends
        # neither on the number of processes nor on where a resumed run restarted.
        # (A stream of its own: drawn from the shuffling's seed, it would be correlated with the order.)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 2**31)  # CPU seeds are 32-bit
        self.noise = torch.randn(len(self.train_y), self.config.latent_dim, generator=g).to(self.device)
        return self._batches(epoch)

    def train_step(self, idx: torch.Tensor) -> dict[str, float]:
        self.model.train()
        idx = idx.to(self.device)
        x = self.train_x[idx].float() / 255
        y = self.train_y[idx]
        logits, mu, logvar = self.net(x, y, self.noise[idx])
        loss, bce, kl = vae_loss(logits, x, mu, logvar)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not self.model:
            self._update_average()
        return {"loss": loss.item(), "bce": bce.item(), "kl": kl.item()}

    @torch.no_grad()
    def _update_average(self) -> None:
        # The average warms up (decay (1+t)/(10+t), so it spans about the last ninth of the steps) until
        # it reaches ema_decay; short runs are not dominated by the initial weights. t is Adam's own step
        # count, so a resumed run continues where it was.
        step = float(self.optimizer.state[self.optimizer.param_groups[0]["params"][0]]["step"])
        decay = min(self.ema_decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - decay)

    def end_epoch(self, epoch: int, run_dir: Path, final: bool) -> dict[str, float]:
        from gencli.images import plot_latent, save_grid

        metrics, means = evaluate(self.ema, self.test_set.images, self.test_set.labels, seed=self.seed)
        # The observed latent range of the test set: `latent-grid --range auto` spans it.
        self.extra = {
            "dataset": self.dataset,
            "latent_min": means.min(0).values.tolist(),
            "latent_max": means.max(0).values.tolist(),
        }
        save_grid(prior_samples(self.ema, self.sample_seeds, self.sample_labels),
                  run_dir / "samples" / f"epoch_{epoch:03d}.png", nrow=8)
        if final and self.config.latent_dim >= 2:
            plot_latent(means, self.test_set.labels, run_dir / "latent.png",
                        title=f"{self.family}: test-set latent means (epoch {epoch})")
        return {f"test_{k}": v for k, v in metrics.items()}

    def networks(self) -> dict[str, nn.Module]:
        return {"model": self.model, "ema": self.ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def export(self) -> tuple[nn.Module, dict]:
        """The model to write to model.safetensors (the averaged weights) and its extra metadata."""
        return self.ema, self.extra
