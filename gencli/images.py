"""Image grids, plots and image files. Every grid is `torchvision.utils.make_grid` with its default
padding of 2 pixels, so a grid can be cut back into its cells."""

from __future__ import annotations

from pathlib import Path

import torch

from gencli.files import atomic_write


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Network images in [-1, 1] (tanh range) -> [0, 1] in float32, clamped (saving clamps too)."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def to_pil(image: torch.Tensor):
    """(C, H, W) in [0, 1] -> PIL image."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def save_image(image: torch.Tensor, path: Path) -> Path:
    path = Path(path)
    pil = to_pil(image)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt))


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Images (N, C, H, W) in [0, 1] as one PNG grid, `nrow` images per row."""
    from torchvision.utils import make_grid

    grid = make_grid(images.float().cpu(), nrow=nrow)
    return save_image(grid[:1] if images.shape[1] == 1 else grid, path)  # grey stays one channel


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_curves(rows: list[dict], keys: tuple[str, ...], path: Path, title: str = "") -> Path:
    """Metric curves against the epoch, one line per key present in the rows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        points = [(r["epoch"], r[key]) for r in rows if key in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save_figure(fig, path)


def plot_latent(means: torch.Tensor, labels: torch.Tensor, path: Path, title: str = "", dims=(0, 1)) -> Path:
    """Scatter of latent means (two chosen dimensions) coloured by class, with a legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10")
    for digit in range(int(labels.max()) + 1):
        m = means[labels == digit]
        ax.scatter(m[:, dims[0]], m[:, dims[1]], s=2, color=cmap(digit % 10), label=str(digit), alpha=0.6)
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title)
    ax.legend(markerscale=6, title="label", loc="center left", bbox_to_anchor=(1, 0.5))
    return _save_figure(fig, path)
