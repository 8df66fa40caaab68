"""Using a trained VAE or CVAE: prior samples, latent grids, reconstructions and the test-set ELBO.
Tensors in and out, images in [0, 1]; gencli.api checks the options and writes the files."""

from __future__ import annotations

import torch

from gencli.losses import vae_loss
from gencli.models.vae import VAE


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


def sample_labels(model: VAE, n: int, label: int | None, nrow: int) -> torch.Tensor | None:
    """Labels of `n` samples: none for a VAE; `label` for every image, else one digit per row in turn."""
    classes = model.config.num_classes
    if not classes:
        return None
    return torch.full((n,), label) if label is not None else torch.arange(n) // nrow % classes


def prior_coordinates(steps: int) -> torch.Tensor:
    """Kingma & Welling's grid (Fig. 4 of the VAE paper): `steps` evenly spaced points of (0, 1),
    (i + 0.5) / steps, mapped through the inverse CDF of the standard normal (the prior's quantiles), so
    that every point is a likely code. Odd `steps` put 0 in the middle; the points are symmetric about 0."""
    return torch.special.ndtri((torch.arange(steps, dtype=torch.float64) + 0.5) / steps).float()


def linear_coordinates(lo: float, hi: float, steps: int) -> torch.Tensor:
    """`steps` evenly spaced points from lo to hi, both included."""
    return torch.linspace(lo, hi, steps)


def grid_codes(xs: torch.Tensor, ys: torch.Tensor, dims: tuple[int, int], latent_dim: int) -> torch.Tensor:
    """Codes (len(ys) * len(xs), latent_dim) of a grid, row by row, others held at 0: columns go left to
    right along dims[0] over xs, rows top to bottom from the last to the first of ys (high to low, as on
    a plot)."""
    z = torch.zeros(len(ys) * len(xs), latent_dim)
    z[:, dims[0]] = xs.repeat(len(ys))
    z[:, dims[1]] = ys.flip(0).repeat_interleave(len(xs))
    return z


def decode(model: VAE, z: torch.Tensor, label: int | None = None) -> torch.Tensor:
    """Images in [0, 1] (N, 1, H, W) of the codes z (N, latent_dim), all with `label` for a cvae."""
    dev = next(model.parameters()).device
    model.eval()
    labels = None if label is None else torch.full((len(z),), label, device=dev)
    with torch.no_grad():
        return torch.sigmoid(model.decode(z.to(dev), labels)).cpu()


def latent_grid(model: VAE, xs: torch.Tensor, ys: torch.Tensor, dims: tuple[int, int],
                label: int | None = None) -> torch.Tensor:
    """len(ys) x len(xs) decoded images over two latent dimensions (see `grid_codes`), row by row."""
    return decode(model, grid_codes(xs, ys, dims, model.config.latent_dim), label)


def serpentine(rows: int, cols: int) -> list[int]:
    """Cell indices of a rows x cols grid (row by row) in a walk that sweeps the rows alternately left to
    right and right to left, so each cell is next to the one before."""
    order = []
    for r in range(rows):
        cells = [r * cols + c for c in range(cols)]
        order += cells if r % 2 == 0 else cells[::-1]
    return order


def reconstruction_rows(model: VAE, images: torch.Tensor, labels: torch.Tensor, nrow: int) -> torch.Tensor:
    """uint8 images, each row of `nrow` inputs followed by a row of their reconstructions (decoded from the
    latent mean; a cvae is given the true label), in [0, 1]."""
    dev = next(model.parameters()).device
    x = images.float().to(dev) / 255
    with torch.no_grad():
        mu, _ = model.encode(x, labels.to(dev))
        recon = torch.sigmoid(model.decode(mu, labels.to(dev))).cpu()
    rows = []
    for start in range(0, len(x), nrow):
        rows += [x[start : start + nrow].cpu(), recon[start : start + nrow]]
        if len(rows[-1]) < nrow:  # pad a short last row so inputs and outputs stay aligned
            pad = torch.zeros(nrow - len(rows[-1]), *x.shape[1:])
            rows[-2], rows[-1] = torch.cat([rows[-2], pad]), torch.cat([rows[-1], pad])
    return torch.cat(rows)
