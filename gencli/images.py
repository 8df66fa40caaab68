"""Image files, grids, annotations, animations and plots.

Every grid is `torchvision.utils.make_grid` with its default padding of 2 pixels, so a grid can be cut back
into its cells. The extension of an output names its format (`IMAGE_FORMATS`): one rule for every command.
Annotations (headers, axis values) go into a white margin around a grid, never over its cells."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from gencli.errors import GencliError
from gencli.files import atomic_write, check_writable

PADDING = 2  # make_grid's default
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}
ANIMATED = ("GIF", "WEBP")  # formats that hold an animation; a still image in them is one frame
FRAME_MS = 100  # duration of one animation frame
# zlib's fastest level: a 1024 px image is written ~3x faster than at Pillow's default 6 for ~10% more bytes
PNG_COMPRESS_LEVEL = 1


def image_format(path: Path, animated: bool = False) -> str:
    """The Pillow format the extension of `path` names; an unknown extension, or a still-only format
    for an animation, is refused with one line."""
    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(IMAGE_FORMATS)
        raise GencliError(f"cannot write {path}: unknown image extension {path.suffix or '(none)'!r}; use {known}")
    if animated and fmt not in ANIMATED:
        raise GencliError(f"cannot write an animation to {path}: use a .gif or .webp name")
    return fmt


def check_image_path(path: Path, animated: bool = False) -> Path:
    """Before any work: `path` can be written and its extension names a format."""
    image_format(path, animated)
    return check_writable(Path(path))


def save_pil(pil, path: Path, **options) -> Path:
    """A PIL image in the format the extension of `path` names, written atomically."""
    fmt = image_format(path, animated=bool(options.get("save_all")))
    if fmt == "WEBP":
        options.setdefault("lossless", True)  # figures: no blur on digit strokes
    elif fmt == "PNG":
        options.setdefault("compress_level", PNG_COMPRESS_LEVEL)
    return atomic_write(Path(path), lambda tmp: pil.save(tmp, format=fmt, **options))


def png_bytes(image: torch.Tensor) -> bytes:
    """(C, H, W) in [0, 1] -> PNG, encoded as `save_image` encodes it (the same bytes as its file)."""
    import io

    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Network images in [-1, 1] (tanh range) -> [0, 1] in float32, clamped (saving clamps too)."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def to_pil(image: torch.Tensor):
    """(C, H, W) in [0, 1] -> PIL image."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def upscale(image: torch.Tensor, scale: int) -> torch.Tensor:
    """(..., H, W) -> (..., scale H, scale W), nearest neighbour: every pixel becomes a scale x scale block."""
    if scale == 1:
        return image
    return image.repeat_interleave(scale, -2).repeat_interleave(scale, -1)


def save_image(image: torch.Tensor, path: Path, scale: int = 1) -> Path:
    """(C, H, W) in [0, 1], in the format the extension names."""
    return save_pil(to_pil(upscale(image, scale)), path)


def make_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] -> one grid (C, H', W'), `nrow` images per row; grey stays one channel."""
    from torchvision.utils import make_grid as tv_make_grid

    grid = tv_make_grid(images.float().cpu(), nrow=nrow, padding=PADDING)
    return grid[:1] if images.shape[1] == 1 else grid


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, *, scale: int = 1,
              col_labels: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
              corner: str = "") -> Path:
    """Images (N, C, H, W) in [0, 1] as one grid, `nrow` images per row, upscaled `scale` times; with
    labels, headers above the columns and left of the rows (see `annotate`)."""
    grid = upscale(make_grid(images, nrow), scale)
    if col_labels is None and row_labels is None:
        return save_pil(to_pil(grid), path)
    cell = (images.shape[-2], images.shape[-1])
    return save_pil(annotate(grid, cell, scale=scale, col_labels=col_labels, row_labels=row_labels,
                              corner=corner), path)


def check_folder(folder: Path) -> Path:
    """Before any work: images can be written into `folder` (made when missing)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GencliError(f"{folder} is a file; --outdir needs a folder")
    check_writable(folder / "image.png")
    return folder


def save_cells(images: torch.Tensor, names: Sequence[str], folder: Path, scale: int = 1) -> list[Path]:
    """One file per image: folder/NAME for each of `names` (their extensions name the formats)."""
    for name in names[:1]:
        check_image_path(check_folder(folder) / name)
    return [save_image(image, Path(folder) / name, scale) for image, name in zip(images, names)]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _text_image(text: str, font, mode: str, rotate: bool):
    """`text` in black on white, tightly cropped; turned to read bottom to top when `rotate`."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text or " ")
    image = Image.new(mode, (max(1, right - left), max(1, bottom - top)), "white")
    ImageDraw.Draw(image).text((-left, -top), text, fill="black", font=font)
    return image.rotate(90, expand=True) if rotate else image


def annotate(grid: torch.Tensor, cell: tuple[int, int], *, scale: int = 1, col_labels: Sequence[str] | None = None,
             row_labels: Sequence[str] | None = None, corner: str = "", gap: int = 4):
    """A grid (C, H, W) in [0, 1] (made by `make_grid`, then `upscale`d by `scale`) as a PIL image with a
    white margin: `col_labels[j]` centred above column j, `row_labels[i]` right-aligned left of row i,
    `corner` above the row labels. Column labels wider than their cell are turned upright. The grid's
    pixels are unchanged, at (left margin, top margin)."""
    from PIL import Image

    plain = to_pil(grid)
    font = _font(10 * min(scale, 2))
    pitch_h, pitch_w = (cell[0] + PADDING) * scale, (cell[1] + PADDING) * scale
    cols = [_text_image(t, font, plain.mode, False) for t in col_labels or []]
    if cols and max(c.width for c in cols) > cell[1] * scale:
        cols = [_text_image(t, font, plain.mode, True) for t in col_labels]
    rows = [_text_image(t, font, plain.mode, False) for t in row_labels or []]
    head = _text_image(corner, font, plain.mode, False) if corner else None
    left = max([r.width + 2 * gap for r in rows] + [head.width + 2 * gap if head else 0])
    top = max([c.height + 2 * gap for c in cols] + [head.height + 2 * gap if head else 0])
    canvas = Image.new(plain.mode, (plain.width + left, plain.height + top), "white")
    canvas.paste(plain, (left, top))
    for j, label in enumerate(cols):
        centre = left + PADDING * scale + j * pitch_w + cell[1] * scale // 2
        canvas.paste(label, (centre - label.width // 2, top - gap - label.height))
    for i, label in enumerate(rows):
        centre = top + PADDING * scale + i * pitch_h + cell[0] * scale // 2
        canvas.paste(label, (left - gap - label.width, centre - label.height // 2))
    if head is not None:
        canvas.paste(head, (left - gap - head.width, top - gap - head.height))
    return canvas


def save_animation(frames: torch.Tensor, path: Path, *, scale: int = 1, captions: Sequence[str] | None = None,
                   frame_ms: int = FRAME_MS) -> Path:
    """Frames (N, C, H, W) in [0, 1] as an animation that loops forever (.gif or .webp), each frame upscaled
    `scale` times and, with `captions`, headed by its caption in a white band (all frames one size)."""
    image_format(path, animated=True)
    images = [to_pil(upscale(frame, scale)) for frame in frames]
    if captions is not None:
        images = captioned(images, captions, scale)
    # (Pillow's GIF writer merges a frame equal to the one before into it, adding up their durations.)
    return save_pil(images[0], path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def captioned(images: list, captions: Sequence[str], scale: int = 1, gap: int = 4) -> list:
    """PIL images of one size, each with its caption centred in a white band above it; the band is as
    wide as the widest caption needs, the same for all."""
    from PIL import Image

    font = _font(10 * min(scale, 2))
    labels = [_text_image(text, font, images[0].mode, False) for text in captions]
    width = max([images[0].width] + [label.width + 2 * gap for label in labels])
    band = max(label.height for label in labels) + 2 * gap
    out = []
    for image, label in zip(images, labels):
        canvas = Image.new(image.mode, (width, image.height + band), "white")
        canvas.paste(label, ((width - label.width) // 2, gap))
        canvas.paste(image, ((width - image.width) // 2, band))
        out.append(canvas)
    return out


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


def curves_figure(rows: list[dict], curves, title: str = ""):
    """The matplotlib figure of `plot_curves` (so tests can read its axes)."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    panels = curves if isinstance(curves, dict) else {"": curves}
    x = "kimg" if rows and all("kimg" in r for r in rows) else "epoch"
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (name, entries) in zip(axes[0], panels.items()):
        for entry in entries:
            key, label = (entry, entry.replace("_", " ")) if isinstance(entry, str) else entry
            points = [(r[x], r[key]) for r in rows if key in r and x in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, label=label)
        ax.set_xlabel("thousands of images (kimg)" if x == "kimg" else "epoch")
        if x == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("p" if name.startswith("ADA") else "loss")
        ax.set_title(name or title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if len(panels) > 1 and title:
        fig.suptitle(title)
    return fig


def plot_curves(rows: list[dict], curves, path: Path, title: str = "") -> Path:
    """Metric curves, one line per key present in the rows, against kimg when every row has it (StyleGAN)
    and else against the epoch (integer ticks). `curves`: metric keys or (key, label) pairs for one panel,
    or a dict {panel title: those} for panels side by side."""
    return _save_figure(curves_figure(rows, curves, title), path)


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
