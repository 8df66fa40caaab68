"""Data sets held in memory as uint8 tensors: MNIST and Fashion-MNIST (found on disk or downloaded),
folders of images, and the unpaired trainA/trainB folders of CycleGAN data sets.

The data directory is `--data-dir`, else `$GENCLI_DATA_DIR`, else a per-user cache folder. A data set
named NAME is looked for in `<dir>/NAME/` and `<dir>/` (a flat folder of the four IDX files, .gz or
not) and in torchvision's `<dir>/<Class>/raw/` layout.

Image files are read one at a time. An image above `MAX_PIXELS` (width x height; $GENCLI_MAX_PIXELS raises
it) is refused from its header, before it is decoded: on its own it is an error, inside a folder it is
skipped with a warning. 16-bit greyscale (PIL mode I;16) is scaled from 0..65535 to 8 bits, 32-bit integer
images likewise when they hold values above 255; float images (mode F, e.g. TIFF) are read as 0..1 when all
their values lie in [0, 1], else as 0..255, clipped.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gencli.errors import GencliError
from gencli.files import cache_dir

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
    """`--data-dir`, else $GENCLI_DATA_DIR, else <cache>/gencli/data."""
    if data_dir:
        return Path(data_dir).expanduser()
    return cache_dir("data", "GENCLI_DATA_DIR")


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
    created = [p for p in (root, target) if not p.exists()]  # removed again if nothing could be downloaded
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
            for folder in reversed(created):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
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


# --- image folders ---------------------------------------------------------------------------------

# PIL's own default limit (about 9459 x 9459 pixels): a decoded RGB image of this size takes 270 MB.
MAX_PIXELS = 89_478_485

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


def max_pixels() -> int:
    """The largest image (width x height) gencli reads: $GENCLI_MAX_PIXELS, else MAX_PIXELS."""
    text = os.environ.get("GENCLI_MAX_PIXELS", "")
    try:
        value = int(text) if text else MAX_PIXELS
    except ValueError:
        value = 0
    if value <= 0:
        raise GencliError(f"GENCLI_MAX_PIXELS must be a positive number of pixels, got {text!r}")
    return value


def to_8bit(im):
    """Greyscale images of more than 8 bits (I;16, I, F) as mode L, scaled as the module docstring says."""
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.float32) / 257
    elif im.mode == "I":
        a = np.asarray(im).astype(np.float64)
        if a.size and a.max() > 255:
            a = a / 257
    elif im.mode == "F":
        a = np.nan_to_num(np.asarray(im).astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.min() >= 0 and a.max() <= 1:
            a = a * 255
    else:
        return im
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def open_rgb(path: Path):
    """A PIL image in RGB with its EXIF rotation applied (grey, RGBA and palette images converted)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    limit = max_pixels()
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # checked here instead, with gencli's limit and message
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > limit:
                raise GencliError(f"image {path} is {w}x{h} pixels, above the limit of {limit:,} "
                                  "(raise it with GENCLI_MAX_PIXELS)")
            im = to_8bit(ImageOps.exif_transpose(im))
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                # Composite transparency onto white rather than letting it turn black.
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise GencliError(f"cannot read image {path}: {e.__class__.__name__}") from None
    except MemoryError:
        raise GencliError(f"cannot read image {path}: not enough memory to decode it") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def load_image_tensor(paths: list[Path], size: int, *, on_skip=None, report: dict | None = None) -> torch.Tensor:
    """Images resized (short side to `size`, centre crop) into one uint8 tensor (N, 3, size, size).

    Unreadable files are skipped and reported through `on_skip(path, message)`; none readable is an error.
    `report`, when given, counts what was done: "resized" (short side not `size`) and "cropped" (not square).
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
        if report is not None:
            report["resized"] = report.get("resized", 0) + (min(w, h) != size)
            report["cropped"] = report.get("cropped", 0) + (w != h)
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((left, top, left + size, top + size))
        out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    if not out:
        raise GencliError(f"none of the {len(paths)} files could be read as images")
    return torch.stack(out)


def load_training_images(data: str, data_dir=None, resolution: int = 32, on_skip=None,
                         report: dict | None = None) -> torch.Tensor:
    """Unlabelled training images as uint8 (N, C, res, res): mnist / fashion-mnist padded 28 -> 32 px
    (then resized when res != 32), or every image of a folder (short side resized, centre crop; counted in
    `report` as load_image_tensor does)."""
    if data in IDX_DATASETS:
        return _pad_digits(load_idx_dataset(data, data_dir)[0].images, resolution)
    return load_image_tensor(list_images(resolve_data_path(data, data_dir)), resolution, on_skip=on_skip,
                             report=report)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) with `channels` channels: grey repeated to RGB, or RGB to grey (ITU-R 601
    luma); as they are when they match."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if images.shape[1] == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
        return (images.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise GencliError(f"cannot turn {images.shape[1]}-channel images into the network's {channels} channels")


def describe_loading(images: int, data: str, resolution: int, report: dict, converted: str = "") -> str:
    """One line on how the training images were made to fit the network (what `report` counted)."""
    done = []
    if report.get("resized"):
        done.append(f"resized {report['resized']} of {images} images to {resolution} px (short side)")
    if report.get("cropped"):
        done.append(f"cropped {report['cropped']} to square (centre)")
    if converted:
        done.append(converted)
    what = ", ".join(done) if done else f"all {images} images already {resolution} x {resolution}"
    return f"data {data}: {what}"


def _pad_digits(images: torch.Tensor, resolution: int) -> torch.Tensor:
    x = F.pad(images, (2, 2, 2, 2))  # (N, 1, 32, 32)
    if resolution != 32:
        x = F.interpolate(x.float(), size=resolution, mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


# Class names of the labelled IDX data sets (a conditional model stores them; `sample` names its rows).
IDX_CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


def class_names(data: str, data_dir=None) -> list[str]:
    """The classes of a labelled data set: mnist / fashion-mnist's ten, or a folder's subfolders, sorted."""
    if data in IDX_CLASS_NAMES:
        return IDX_CLASS_NAMES[data]
    folder = resolve_data_path(data, data_dir)
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise GencliError(f"--cond needs one subfolder of images per class in {folder}; found {len(names)}")
    return names


def load_labelled_images(data: str, data_dir=None, resolution: int = 32, on_skip=None
                         ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """For class-conditional training: (images as load_training_images gives them, labels (N,) int64, class
    names). mnist and fashion-mnist take the labels of their IDX files; a folder needs one subfolder of
    images per class, classes numbered in the sorted order of the subfolder names."""
    names = class_names(data, data_dir)
    if data in IDX_DATASETS:
        train = load_idx_dataset(data, data_dir)[0]
        return _pad_digits(train.images, resolution), train.labels, names
    folder = resolve_data_path(data, data_dir)
    parts = [load_image_tensor(list_images(folder / name), resolution, on_skip=on_skip) for name in names]
    labels = torch.cat([torch.full((len(x),), k, dtype=torch.long) for k, x in enumerate(parts)])
    return torch.cat(parts), labels, names


# --- unpaired domains (CycleGAN) ---------------------------------------------------------------------

@dataclass
class UnpairedData:
    """Two unpaired image folders held in memory as uint8 tensors.

    train_a/train_b: (N, 3, L, L) at L = int(1.12 x image_size) (or `--load-size`) for random crops;
    test_a/test_b: a few fixed (K, 3, S, S) images (centre crops) for the sample grids.
    """

    name: str
    train_a: torch.Tensor
    train_b: torch.Tensor
    test_a: torch.Tensor
    test_b: torch.Tensor


def load_size(image_size: int) -> int:
    """Resize-then-crop size: 1.12 x the crop, e.g. 286 for 256 as in the reference code."""
    return int(image_size * 1.12)


def load_unpaired(root: Path, image_size: int, *, max_images: int | None = None, seed: int = 0,
                  n_samples: int = 4, on_skip=None, loaded_size: int | None = None) -> UnpairedData:
    """Read root/{trainA,trainB} (and testA/testB for the sample grids, else the first train images).

    `max_images` keeps a random subset (drawn from `seed`) of each training folder. Training images are
    resized to `loaded_size` (default 1.12 x image_size) and cropped to image_size at random later; a
    loaded size well above the crop trains on patches at the scale of full images.
    """
    root = Path(root)
    parts = {}
    for domain in ("A", "B"):
        folder = root / f"train{domain}"
        if not folder.is_dir():
            raise GencliError(f"{root} has no train{domain} folder; an unpaired data set needs "
                              "trainA and trainB (testA and testB optional)")
        files = list_images(folder)
        if max_images is not None and max_images < len(files):
            keep = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:max_images]
            files = [files[i] for i in sorted(keep.tolist())]
        parts[f"train_{domain.lower()}"] = load_image_tensor(files, loaded_size or load_size(image_size),
                                                             on_skip=on_skip)
        test_folder = root / f"test{domain}"
        test_files = list_images(test_folder)[:n_samples] if test_folder.is_dir() and any(test_folder.iterdir()) \
            else files[:n_samples]
        # Sample grids show whole test images at the scale the crops were taken from.
        parts[f"test_{domain.lower()}"] = load_image_tensor(test_files, (loaded_size or image_size) // 4 * 4,
                                                            on_skip=on_skip)
    return UnpairedData(root.name, **parts)
