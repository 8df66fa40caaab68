"""Data sets: MNIST and Fashion-MNIST as in-memory tensors, found on disk or downloaded.

The data directory is `--data-dir`, else `$GENCLI_DATA_DIR`, else a per-user cache folder. A data set
named NAME is looked for in `<dir>/NAME/` and `<dir>/` (a flat folder of the four IDX files, .gz or
not) and in torchvision's `<dir>/<Class>/raw/` layout.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gencli.errors import GencliError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # name -> torchvision class
# Where Debian's dataset-fashion-mnist package puts the files.
SYSTEM_DIRS = {"fashion-mnist": [Path("/usr/share/fashion-mnist")]}


def data_root(data_dir: str | Path | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("GENCLI_DATA_DIR"):
        return Path(os.environ["GENCLI_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "gencli" / "data"


@dataclass
class ImageSet:
    """A labelled image set held in memory: uint8 images (N, 1, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (gzip or plain) of unsigned bytes into a uint8 tensor."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise GencliError(f"cannot read {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise GencliError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = 1
    for d in dims:
        count *= d
    if len(data) - offset != count:
        raise GencliError(f"{path} is truncated: expected {count} values, found {len(data) - offset}")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


def _candidate_dirs(name: str, root: Path) -> list[Path]:
    dirs = [root / name, root, root / IDX_DATASETS[name] / "raw"]
    return dirs + SYSTEM_DIRS.get(name, [])


def find_idx_files(name: str, root: Path) -> dict[str, Path] | None:
    """The four IDX files of data set `name` under `root`, or None when any is missing."""
    for folder in _candidate_dirs(name, root):
        found = {}
        for key, stem in IDX_FILES.items():
            for candidate in (folder / f"{stem}.gz", folder / stem):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(IDX_FILES):
            return found
    return None


def download_idx(name: str, root: Path) -> None:
    """Download the four .gz files into `root/name` with torchvision (md5 verified), trying each mirror."""
    import torchvision.datasets
    from torchvision.datasets.utils import download_url

    cls = getattr(torchvision.datasets, IDX_DATASETS[name])
    target = root / name
    for filename, md5 in cls.resources:
        if (target / filename).is_file():
            continue
        for mirror in cls.mirrors:
            try:
                download_url(mirror + filename, root=str(target), filename=filename, md5=md5)
                break
            except Exception:
                (target / filename).unlink(missing_ok=True)
        else:
            raise GencliError(
                f"{name} is not in {root} and could not be downloaded; put "
                f"{', '.join(f[0] for f in cls.resources)} into {target}"
            )


def load_idx_dataset(name: str, data_dir: str | Path | None = None, download: bool = True
                     ) -> tuple[ImageSet, ImageSet]:
    """(train, test) of MNIST or Fashion-MNIST, loaded whole into memory."""
    if name not in IDX_DATASETS:
        raise GencliError(f"unknown data set {name!r}; choose from {', '.join(IDX_DATASETS)}")
    root = data_root(data_dir)
    files = find_idx_files(name, root)
    if files is None and download:
        download_idx(name, root)
        files = find_idx_files(name, root)
    if files is None:
        raise GencliError(f"{name} not found in {root}; put the four IDX .gz files into {root / name}")
    parts = {key: read_idx(path) for key, path in files.items()}
    sets = []
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise GencliError(f"{name} {split} images and labels do not match in {files[f'{split}_images'].parent}")
        sets.append(ImageSet(images.unsqueeze(1).contiguous(), labels.long()))
    return sets[0], sets[1]


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int, *, rank: int = 0, world_size: int = 1,
                     drop_last: bool = False) -> list[torch.Tensor]:
    """Index batches for one epoch: a permutation drawn from (seed, epoch), so a resumed run sees the
    same order. With world_size > 1 each rank takes every world_size-th index of it, after trimming it
    to a multiple of world_size so that every rank gets the same number of batches (no rank waits for
    another that has finished); rank r's k-th batch and the others' together are then the k-th batch of
    batch_size * world_size that one process would see."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)
    order = order[: n - n % world_size][rank::world_size]
    batches = list(order.split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


# --- image folders ---------------------------------------------------------------------------------

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def resolve_data_path(name_or_dir: str | Path, data_dir: str | Path | None = None) -> Path:
    """`--data NAME|DIR`: an existing folder as given, else NAME inside the data directory."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    candidate = data_root(data_dir) / str(name_or_dir)
    if candidate.is_dir():
        return candidate
    raise GencliError(f"no data folder {name_or_dir!r}: not a folder, and not found in {data_root(data_dir)}")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; an error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GencliError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise GencliError(f"no image files in {folder}")
    return files


def open_rgb(path: Path):
    """A PIL image in RGB with its EXIF rotation applied (grey, RGBA and palette images converted)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                # Composite transparency onto white rather than letting it turn black.
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise GencliError(f"cannot read image {path}: {e.__class__.__name__}") from None


def load_image_tensor(paths: list[Path], size: int, *, on_skip=None) -> torch.Tensor:
    """Images resized (short side to `size`, centre crop) into one uint8 tensor (N, 3, size, size).

    Unreadable files are skipped and reported through `on_skip(path, message)`; none readable is an error.
    """
    import numpy as np
    from PIL import Image

    out = []
    for path in paths:
        try:
            im = open_rgb(path)
        except GencliError as e:
            if on_skip:
                on_skip(path, str(e))
            continue
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((left, top, left + size, top + size))
        out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    if not out:
        raise GencliError(f"none of the {len(paths)} files could be read as images")
    return torch.stack(out)
