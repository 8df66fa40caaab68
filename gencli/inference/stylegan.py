"""Using a trained StyleGAN: samples with the truncation trick, the style-mixing grid and interpolation
in w space (Karras et al. 2019, Sec. 3 and Fig. 3). Tensors in and out, images in [0, 1]; every image
draws its z and noise from its own seed, so it does not depend on the batch. A conditional model draws
the class it is given (`labels`; `generate`'s default is class 0, and style mixing and interpolation draw
each seed as its own class without one)."""

from __future__ import annotations

import torch

from gencli.errors import GencliError
from gencli.images import to_unit
from gencli.models.stylegan import Generator


def seed_inputs(G: Generator, seeds: list[int], noise_seed: int | None = None):
    """z (N, z_dim) and per-layer noise [(N, 1, r, r)] from each image's own seed, so an image does not
    depend on the batch; with `noise_seed` every image gets the same noise (drawn from that seed)."""
    def layer_noise(g):
        return [torch.randn(1, r, r, generator=g) for r in G.synthesis.layer_resolutions]

    zs, noises = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        zs.append(torch.randn(G.config.z_dim, generator=g))
        noises.append(layer_noise(g))
    if noise_seed is not None:
        shared = layer_noise(torch.Generator().manual_seed(noise_seed))
        noises = [shared] * len(seeds)
    return torch.stack(zs), [torch.stack(layer) for layer in zip(*noises)]


@torch.no_grad()
def synthesize(G: Generator, ws: torch.Tensor, noise: list[torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    """g(ws) in chunks, as images in [0, 1] on the CPU."""
    dev = G.w_avg.device
    out = []
    for i in range(0, len(ws), batch_size):
        chunk = [n[i : i + batch_size].to(dev) for n in noise]
        out.append(to_unit(G.synthesis(ws[i : i + batch_size].to(dev), chunk)).cpu())
    return torch.cat(out)


def seed_classes(G: Generator, seeds: list[int], label: int | None) -> torch.Tensor | int | None:
    """What `style_mix` and `interpolate` draw each seed as: class `label` when given; else a conditional G
    draws seed s as class s % classes, so that its pictures show the classes (and a seed is always the
    same image); None for an unconditional G."""
    classes = G.config.num_classes
    if label is not None or not classes:
        return label
    return torch.tensor(seeds) % classes


def class_rows(n: int, nrow: int, num_classes: int) -> torch.Tensor | None:
    """Labels of an n-image grid whose row r shows class r % num_classes (None when unconditional)."""
    return torch.arange(n) // nrow % num_classes if num_classes else None


def seed_labels(G: Generator, n: int, labels) -> torch.Tensor | None:
    """`labels` as an (n,) tensor for a conditional G: one int for all, or one per image (default 0);
    None for an unconditional G, which takes no label."""
    classes = G.config.num_classes
    if not classes:
        if labels is not None:
            raise GencliError("--label needs a conditional stylegan (trained with --cond); this one is unconditional")
        return None
    labels = torch.as_tensor(0 if labels is None else labels).long()
    labels = labels.expand(n) if labels.ndim == 0 else labels
    if len(labels) != n or labels.min() < 0 or labels.max() >= classes:
        raise GencliError(f"--label must be between 0 and {classes - 1}")
    return labels


@torch.no_grad()
def seed_ws(G: Generator, seeds: list[int], truncation: float = 1.0, noise_seed: int | None = None, labels=None):
    """(ws (N, num_ws, w_dim), noise) for the seeds, truncated. A conditional G draws class `labels` (an int
    for every seed, or one per seed; default 0)."""
    z, noise = seed_inputs(G, seeds, noise_seed)
    labels = seed_labels(G, len(seeds), labels)
    w = G.truncate(G.mapping(z.to(G.w_avg.device), labels), truncation, labels)
    return G.broadcast(w).cpu(), noise


def generate(G: Generator, seeds: list[int], truncation: float = 1.0, noise_seed: int | None = None,
             labels=None) -> torch.Tensor:
    """One image per seed, (N, C, H, W) in [0, 1]; conditional: of class `labels` (see seed_ws)."""
    G.eval()
    return synthesize(G, *seed_ws(G, seeds, truncation, noise_seed, labels))


def style_mix(G: Generator, row_seeds: list[int], col_seeds: list[int], cutoff: int, truncation: float = 1.0,
              noise_seed: int = 0, label: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's Fig. 3: cell (i, j) takes the styles of layers < `cutoff` (the coarse ones) from row
    seed i and the rest from column seed j; the noise is the same everywhere. Returns (row images (R, ...),
    column images (C, ...), cells (R, C, ...)). cutoff 0 gives the column image, num_ws the row image.
    A conditional G draws class `label`, or without it each seed as its class (see `seed_classes`)."""
    if not 0 <= cutoff <= G.num_ws:
        raise GencliError(f"--cutoff must be between 0 and {G.num_ws} (this model's style layers), got {cutoff}")
    G.eval()
    rows, noise = seed_ws(G, row_seeds, truncation, noise_seed, seed_classes(G, row_seeds, label))
    cols, _ = seed_ws(G, col_seeds, truncation, noise_seed, seed_classes(G, col_seeds, label))
    r, c = len(row_seeds), len(col_seeds)
    mixed = cols.unsqueeze(0).repeat(r, 1, 1, 1)  # (R, C, num_ws, w_dim)
    mixed[:, :, :cutoff] = rows[:, None, :cutoff]
    shared = [n[:1] for n in noise]
    expand = lambda k: [n.expand(k, -1, -1, -1) for n in shared]  # noqa: E731
    cells = synthesize(G, mixed.flatten(0, 1), expand(r * c))
    return synthesize(G, rows, expand(r)), synthesize(G, cols, expand(c)), cells.unflatten(0, (r, c))


def style_mix_grid(rows: torch.Tensor, cols: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Lay style_mix's output out as the paper does: column sources along the top, row sources down the
    left, a blank corner; (R + 1) * (C + 1) images, to be shown C + 1 per row."""
    blank = torch.zeros_like(cols[:1])
    out = [blank, cols]
    for i in range(len(rows)):
        out += [rows[i : i + 1], cells[i]]
    return torch.cat(out)


def interpolate(G: Generator, seeds: list[int], steps: int = 8, truncation: float = 1.0,
                noise_seed: int = 0, label: int | None = None) -> torch.Tensor:
    """Strips between consecutive seeds, linear in w: (len(seeds) - 1) * steps images, each strip starting
    at one seed's image and ending at the next's; the noise is the same for every image. A conditional G
    draws class `label`, or without it each seed as its class (see `seed_classes`): a strip from seed 0
    to seed 1 turns a 0 into a 1."""
    if len(seeds) < 2:
        raise GencliError("interpolate needs at least two seeds, e.g. --seeds 0,1")
    if steps < 2:
        raise GencliError(f"--steps must be at least 2, got {steps}")
    G.eval()
    ws, noise = seed_ws(G, seeds, truncation, noise_seed, seed_classes(G, seeds, label))
    t = torch.linspace(0, 1, steps)[:, None, None]
    path = torch.cat([ws[k].lerp(ws[k + 1], t) for k in range(len(seeds) - 1)])  # lerp broadcasts over t
    return synthesize(G, path, [n[:1].expand(len(path), -1, -1, -1) for n in noise])
