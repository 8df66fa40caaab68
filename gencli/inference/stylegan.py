"""Using a trained StyleGAN: samples with the truncation trick, the style-mixing grid and interpolation
in w space (Karras et al. 2019, Sec. 3 and Fig. 3). Tensors in and out, images in [0, 1]; every image
draws its z and noise from its own seed, so it does not depend on the batch. A conditional model draws
the class it is given (`labels`; `generate`'s default is class 0, and style mixing and interpolation draw
each seed as its own class without one). Where seeds go, a `FixedW` may stand (a projected photo,
gencli.inference.projection): its ws are used as they are, untruncated.

Both StyleGAN families work here (gencli's own, gencli.models.stylegan, and NVIDIA's StyleGAN2,
gencli.models.stylegan2). A StyleGAN2 draws z as NVIDIA's generate.py and gen_images.py do,
`numpy.random.RandomState(seed).randn(z_dim)`, so a seed gives the image NVIDIA's tools give, and its noise
is by default the constant noise stored in the network (their default noise mode)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from gencli.errors import GencliError, OptionError
from gencli.images import to_unit
from gencli.models.stylegan import Generator
from gencli.models.stylegan2 import StyleGAN2Config

NOISE_MODES = ("const", "random", "none")  # stored noise, noise from each image's seed, no noise


def is_stylegan2(G) -> bool:
    return isinstance(G.config, StyleGAN2Config)


def default_noise_mode(G) -> str:
    """const for a StyleGAN2 (NVIDIA's default), random (from each image's seed) for gencli's StyleGAN."""
    return "const" if is_stylegan2(G) else "random"


def check_noise_mode(G, noise_mode: str | None) -> str:
    mode = noise_mode or default_noise_mode(G)
    if mode not in NOISE_MODES:
        raise OptionError(f"--noise-mode must be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    if mode == "const" and not is_stylegan2(G):
        raise OptionError("--noise-mode const needs a network that stores constant noise (a StyleGAN2); "
                          "this stylegan draws its noise from the seeds (random) or none")
    return mode


def seed_z(G, seed: int) -> torch.Tensor:
    """z (z_dim,) of one seed: NumPy's RandomState for a StyleGAN2 (as NVIDIA's tools), else torch's generator."""
    if is_stylegan2(G):
        return torch.from_numpy(np.random.RandomState(seed).randn(G.config.z_dim)).float()
    return torch.randn(G.config.z_dim, generator=torch.Generator().manual_seed(seed))


def layer_noise(G, generator: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(1, r, r, generator=generator) for r in G.synthesis.layer_resolutions]


def seed_inputs(G, seeds: list[int], noise_seed: int | None = None, noise_mode: str | None = None):
    """z (N, z_dim) and per-layer noise [(N, 1, r, r)] from each image's own seed, so an image does not
    depend on the batch; with `noise_seed` every image gets the same noise (drawn from that seed). The
    noise is None where the network supplies it (a StyleGAN2's const and none modes)."""
    mode = check_noise_mode(G, noise_mode)
    zs = torch.stack([seed_z(G, s) for s in seeds])
    if mode == "none" and not is_stylegan2(G):
        return zs, [torch.zeros(len(seeds), 1, r, r) for r in G.synthesis.layer_resolutions]
    if mode != "random":
        return zs, None
    if noise_seed is not None:
        noises = [layer_noise(G, torch.Generator().manual_seed(noise_seed))] * len(seeds)
    elif is_stylegan2(G):
        noises = [layer_noise(G, torch.Generator().manual_seed(s)) for s in seeds]
    else:  # after z, from the same generator (as gencli's StyleGAN always drew them)
        noises = []
        for s in seeds:
            g = torch.Generator().manual_seed(s)
            torch.randn(G.config.z_dim, generator=g)
            noises.append(layer_noise(G, g))
    return zs, [torch.stack(layer) for layer in zip(*noises)]


def batch_for(G) -> int:
    """Images per synthesis call: 64 up to 64 px, fewer above, one at 512 px and more (bounded memory)."""
    res = G.synthesis.layer_resolutions[-1]
    return max(1, min(64, 2**18 // res**2))


def synthesize_chunks(G, ws: torch.Tensor, noise: list[torch.Tensor] | None, noise_mode: str | None = None,
                      batch_size: int | None = None) -> Iterator[torch.Tensor]:
    """g(ws) chunk by chunk (batch_for(G) images each), as images in [0, 1] on the CPU. `noise` None: the
    network's own (StyleGAN2 const or none, as `noise_mode` says)."""
    dev = G.w_avg.device
    batch_size = batch_size or batch_for(G)
    mode = {"noise_mode": check_noise_mode(G, noise_mode)} if is_stylegan2(G) else {}
    for i in range(0, len(ws), batch_size):
        chunk = None if noise is None else [n[i : i + batch_size].to(dev) for n in noise]
        with torch.no_grad():
            images = to_unit(G.synthesis(ws[i : i + batch_size].to(dev), chunk, **mode)).cpu()
        yield images


def synthesize(G, ws: torch.Tensor, noise: list[torch.Tensor] | None, noise_mode: str | None = None,
               batch_size: int | None = None) -> torch.Tensor:
    """All of synthesize_chunks as one tensor."""
    return torch.cat(list(synthesize_chunks(G, ws, noise, noise_mode, batch_size)))


def shared_noise(noise: list[torch.Tensor] | None, k: int) -> list[torch.Tensor] | None:
    """The first image's noise for k images (None stays None: the network's own noise is shared anyway)."""
    return None if noise is None else [n[:1].expand(k, -1, -1, -1) for n in noise]


def seed_classes(G: Generator, seeds: list[int], label: int | None) -> torch.Tensor | int | None:
    """What `style_mix` and `interpolate` draw each seed as: class `label` when given; else a conditional G
    draws seed s as class s % classes, so that its pictures show the classes (and a seed is always the
    same image); None for an unconditional G."""
    classes = G.config.num_classes
    if label is not None or not classes:
        return label
    return torch.tensor([s if isinstance(s, int) else 0 for s in seeds]) % classes  # a FixedW's class is in its w


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


def check_cutoff(G, cutoff: int | None) -> None:
    if cutoff is not None and not 0 <= cutoff <= G.num_ws:
        raise OptionError(f"--truncation-cutoff must be between 0 and {G.num_ws} (this model's style layers), got {cutoff}")


@torch.no_grad()
def seed_ws(G, seeds: list[int], truncation: float = 1.0, noise_seed: int | None = None, labels=None,
            cutoff: int | None = None, noise_mode: str | None = None):
    """(ws (N, num_ws, w_dim), noise) for the seeds, truncated (with `cutoff`, only the first `cutoff`
    layers, as NVIDIA's truncation_cutoff). A conditional G draws class `labels` (an int for every seed, or
    one per seed; default 0)."""
    check_cutoff(G, cutoff)
    z, noise = seed_inputs(G, seeds, noise_seed, noise_mode)
    labels = seed_labels(G, len(seeds), labels)
    w = G.mapping(z.to(G.w_avg.device), labels)
    ws = G.broadcast(G.truncate(w, truncation, labels))
    if cutoff is not None:
        ws = torch.cat([ws[:, :cutoff], G.broadcast(w)[:, cutoff:]], 1)
    return ws.cpu(), noise


@dataclass
class FixedW:
    """A w that stands where a seed would: ws (num_ws, w_dim), used untruncated, and its own noise maps
    [(1, 1, r, r)] (empty: no noise), used where each image has its own noise (not under a shared
    `noise_seed`). `name` heads it in grids."""

    ws: torch.Tensor
    noise: list[torch.Tensor] = field(default_factory=list)
    name: str = "w"


def network_noise(G, noise_mode: str) -> list[torch.Tensor]:
    """A StyleGAN2's own noise as explicit maps [(1, 1, r, r)]: its stored constant noise, or zeros (none)."""
    if noise_mode == "none":
        return [torch.zeros(1, 1, r, r) for r in G.synthesis.layer_resolutions]
    stored = [m.noise_const for m in G.synthesis.modules() if hasattr(m, "noise_const")]
    return [n.detach().cpu().float().reshape(1, 1, *n.shape[-2:]) for n in stored]


def item_ws(G, items: list, truncation: float = 1.0, noise_seed: int | None = None, labels=None,
            cutoff: int | None = None, noise_mode: str | None = None):
    """seed_ws for `items` that are seeds or FixedW: (ws (N, num_ws, w_dim), noise), in the order given."""
    labels = seed_labels(G, len(items), labels)
    at = [k for k, item in enumerate(items) if not isinstance(item, FixedW)]
    if len(at) == len(items):
        return seed_ws(G, items, truncation, noise_seed, labels, cutoff, noise_mode)
    mode = check_noise_mode(G, noise_mode)
    ws = torch.empty(len(items), G.num_ws, G.w_avg.shape[-1])
    own = network_noise(G, mode) if is_stylegan2(G) and mode != "random" else None  # the network's, for the seeds
    noise = [torch.zeros(len(items), 1, r, r) for r in G.synthesis.layer_resolutions]
    if at:
        seeded, seeded_noise = seed_ws(G, [items[k] for k in at], truncation, noise_seed,
                                       None if labels is None else labels[at], cutoff, noise_mode)
        ws[at] = seeded
        for layer, values in zip(noise, seeded_noise if seeded_noise is not None else own):
            layer[at] = values.to(layer)
    shared = (seed_inputs(G, [0], noise_seed, mode)[1] or own) if noise_seed is not None else None
    for k, item in enumerate(items):
        if isinstance(item, FixedW):
            ws[k] = item.ws.to(ws)
            for layer, values in zip(noise, shared if shared is not None else item.noise):  # none: zeros
                layer[k] = values.reshape(layer.shape[1:])
    return ws, noise


def generate_chunks(G, seeds: list, truncation: float = 1.0, noise_seed: int | None = None, labels=None,
                    cutoff: int | None = None, noise_mode: str | None = None) -> Iterator[torch.Tensor]:
    """One image per seed (or FixedW), in [0, 1], chunk by chunk in the order of `seeds`; conditional: of
    class `labels` (see seed_ws)."""
    G.eval()
    ws, noise = item_ws(G, seeds, truncation, noise_seed, labels, cutoff, noise_mode)
    return synthesize_chunks(G, ws, noise, noise_mode)


def generate(G, seeds: list, truncation: float = 1.0, noise_seed: int | None = None, labels=None,
             cutoff: int | None = None, noise_mode: str | None = None) -> torch.Tensor:
    """All of generate_chunks as one tensor (N, C, H, W)."""
    return torch.cat(list(generate_chunks(G, seeds, truncation, noise_seed, labels, cutoff, noise_mode)))


def style_mix(G, row_seeds: list[int], col_seeds: list[int], cutoff: int, truncation: float = 1.0,
              noise_seed: int = 0, label: int | None = None, truncation_cutoff: int | None = None,
              noise_mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's Fig. 3: cell (i, j) takes the styles of layers < `cutoff` (the coarse ones) from row
    seed i and the rest from column seed j; the noise is the same everywhere. Returns (row images (R, ...),
    column images (C, ...), cells (R, C, ...)). cutoff 0 gives the column image, num_ws the row image.
    A conditional G draws class `label`, or without it each seed as its class (see `seed_classes`)."""
    if not 0 <= cutoff <= G.num_ws:
        raise GencliError(f"--cutoff must be between 0 and {G.num_ws} (this model's style layers), got {cutoff}")
    G.eval()
    rows, noise = item_ws(G, row_seeds, truncation, noise_seed, seed_classes(G, row_seeds, label), truncation_cutoff,
                          noise_mode)
    cols, _ = item_ws(G, col_seeds, truncation, noise_seed, seed_classes(G, col_seeds, label), truncation_cutoff,
                      noise_mode)
    r, c = len(row_seeds), len(col_seeds)
    mixed = cols.unsqueeze(0).repeat(r, 1, 1, 1)  # (R, C, num_ws, w_dim)
    mixed[:, :, :cutoff] = rows[:, None, :cutoff]
    cells = synthesize(G, mixed.flatten(0, 1), shared_noise(noise, r * c), noise_mode)
    return (synthesize(G, rows, shared_noise(noise, r), noise_mode), synthesize(G, cols, shared_noise(noise, c), noise_mode),
            cells.unflatten(0, (r, c)))


def style_mix_grid(rows: torch.Tensor, cols: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Lay style_mix's output out as the paper does: column sources along the top, row sources down the
    left, a blank corner; (R + 1) * (C + 1) images, to be shown C + 1 per row."""
    blank = torch.zeros_like(cols[:1])
    out = [blank, cols]
    for i in range(len(rows)):
        out += [rows[i : i + 1], cells[i]]
    return torch.cat(out)


def interpolate(G, seeds: list[int], steps: int = 8, truncation: float = 1.0, noise_seed: int = 0,
                label: int | None = None, truncation_cutoff: int | None = None,
                noise_mode: str | None = None) -> torch.Tensor:
    """Strips between consecutive seeds, linear in w: (len(seeds) - 1) * steps images, each strip starting
    at one seed's image and ending at the next's; the noise is the same for every image. A conditional G
    draws class `label`, or without it each seed as its class (see `seed_classes`): a strip from seed 0
    to seed 1 turns a 0 into a 1."""
    if len(seeds) < 2:
        raise GencliError("interpolate needs at least two seeds, e.g. --seeds 0,1")
    if steps < 2:
        raise GencliError(f"--steps must be at least 2, got {steps}")
    G.eval()
    ws, noise = item_ws(G, seeds, truncation, noise_seed, seed_classes(G, seeds, label), truncation_cutoff, noise_mode)
    t = torch.linspace(0, 1, steps)[:, None, None]
    path = torch.cat([ws[k].lerp(ws[k + 1], t) for k in range(len(seeds) - 1)])  # lerp broadcasts over t
    return synthesize(G, path, shared_noise(noise, len(path)), noise_mode)
