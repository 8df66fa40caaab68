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
    same order; with world_size > 1 each rank takes every world_size-th index of it."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)[rank::world_size]
    batches = list(order.split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches
