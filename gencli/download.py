"""Downloads of the official CycleGAN data sets and pretrained generators (Zhu et al. 2017), from the
URLs used by junyanz/pytorch-CycleGAN-and-pix2pix (datasets/download_cyclegan_dataset.sh and
scripts/download_cyclegan_model.sh).

No rich and no printing here: progress goes to a callback `progress(done_bytes, total_bytes or None)`.
Archives are checked (CRC of every member, expected trainA/trainB layout) and extracted so that no
member can land outside the target folder: absolute paths, `..` components and links are refused, and so
are archives that would expand beyond `MAX_EXTRACT_BYTES` in all or any member that expands more than
`MAX_RATIO` times (a zip bomb). A data set is unpacked into a staging folder and swapped in only once
complete, so `--force` keeps the old copy until the new one is ready.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from gencli.errors import GencliError
from gencli.files import check_name

DATASETS_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/"
WEIGHTS_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/"

# The official data set zips; each unpacks to NAME/{trainA,trainB,testA,testB}.
DATASETS = ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
            "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
            "ae_photos", "grumpifycat")

# Official pretrained generators (one direction each): file name -> (gencli model name, direction).
# Generators that translate into the second domain of a data set are stored as its b2a direction, so
# `monet2photo` (Monet -> photo) and `style_monet` (photo -> Monet) together make one two-way model.
WEIGHTS = {
    "apple2orange": ("apple2orange", "a2b"), "orange2apple": ("apple2orange", "b2a"),
    "summer2winter_yosemite": ("summer2winter_yosemite", "a2b"),
    "winter2summer_yosemite": ("summer2winter_yosemite", "b2a"),
    "horse2zebra": ("horse2zebra", "a2b"), "zebra2horse": ("horse2zebra", "b2a"),
    "monet2photo": ("monet2photo", "a2b"), "style_monet": ("monet2photo", "b2a"),
    "style_cezanne": ("cezanne2photo", "b2a"), "style_ukiyoe": ("ukiyoe2photo", "b2a"),
    "style_vangogh": ("vangogh2photo", "b2a"),
    "sat2map": ("maps", "a2b"), "map2sat": ("maps", "b2a"),
    "cityscapes_photo2label": ("cityscapes_photo2label", "a2b"),
    "cityscapes_label2photo": ("cityscapes_label2photo", "a2b"),
    "facades_photo2label": ("facades_photo2label", "a2b"),
    "facades_label2photo": ("facades_label2photo", "a2b"),
    "iphone2dslr_flower": ("iphone2dslr_flower", "a2b"),
}

# Zip-bomb limits. The largest official data set (cityscapes) unpacks to about 1 GB of JPEGs, which barely
# compress; $GENCLI_MAX_EXTRACT_BYTES raises the total for a mirror with bigger archives.
MAX_EXTRACT_BYTES = 16 * 1024**3
MAX_RATIO = 100  # uncompressed / compressed size of one member, checked for members above 1 MiB
RATIO_FLOOR = 1 << 20

ByteProgress = Callable[[int, "int | None"], None]  # (bytes done, total bytes or None)
CHUNK = 1 << 20


def fetch(url: str, dest: Path, *, progress: ByteProgress | None = None, timeout: float = 60) -> Path:
    """Stream `url` (http, https or file) into `dest` via a temporary `.part` file; the byte count must
    match the announced Content-Length. Returns `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress:
                progress(0, total)
            while chunk := response.read(CHUNK):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise GencliError(f"download of {url} stopped at {done} of {total} bytes; try again")
        part.replace(dest)
    except urllib.error.HTTPError as e:
        raise GencliError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise GencliError(f"cannot download {url}: {reason}") from None
    finally:
        part.unlink(missing_ok=True)
    return dest


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def max_extract_bytes() -> int:
    """The cap on an archive's total uncompressed size: $GENCLI_MAX_EXTRACT_BYTES, else MAX_EXTRACT_BYTES."""
    text = os.environ.get("GENCLI_MAX_EXTRACT_BYTES", "")
    try:
        return int(text) if text else MAX_EXTRACT_BYTES
    except ValueError:
        raise GencliError(f"GENCLI_MAX_EXTRACT_BYTES must be a number of bytes, got {text!r}") from None


def check_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Every member, after refusing any that could escape the extraction folder, and archives that would
    expand beyond the size limits."""
    infos = archive.infolist()
    total, cap = sum(i.file_size for i in infos), max_extract_bytes()
    if total > cap:
        raise GencliError(f"unsafe archive: it would expand to {total:,} bytes, above the limit of {cap:,} "
                          "(raise it with GENCLI_MAX_EXTRACT_BYTES)")
    for info in infos:
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise GencliError(f"unsafe archive: member {info.filename!r} expands {info.file_size:,} bytes from "
                              f"{info.compress_size:,} (more than {MAX_RATIO}:1, a zip bomb?)")
    for info in infos:
        name = info.filename
        path = PurePosixPath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or path.is_absolute():
            raise GencliError(f"unsafe archive: member {name!r} has an absolute path")
        if ".." in path.parts:
            raise GencliError(f"unsafe archive: member {name!r} points outside the target folder")
        if _is_link(info):
            raise GencliError(f"unsafe archive: member {name!r} is a symbolic link")
    return infos


def verify_zip(path: Path) -> zipfile.ZipFile:
    """Open `path` as a zip whose members all pass their CRC check and are safe to extract."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise GencliError(f"{path} is not a zip archive (incomplete download?)") from None
    try:
        check_members(archive)
        bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        archive.close()
        raise GencliError(f"{path} is corrupt: {e}") from None
    except GencliError:
        archive.close()
        raise
    if bad is not None:
        archive.close()
        raise GencliError(f"{path} is corrupt: member {bad!r} fails its CRC check")
    return archive


def safe_extract(archive: zipfile.ZipFile, target: Path) -> list[Path]:
    """Extract every member below `target`, refusing the whole archive if any member would escape it."""
    target = Path(target).resolve()
    infos = check_members(archive)
    for info in infos:  # belt and braces: the resolved path must stay below target
        dest = (target / info.filename).resolve()
        if dest != target and target not in dest.parents:
            raise GencliError(f"unsafe archive: member {info.filename!r} points outside the target folder")
    written, budget = [], max_extract_bytes()
    for info in infos:
        dest = target / info.filename
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, open(dest, "wb") as out:
            # Counted as written too, in case a member's header understates its size.
            while chunk := src.read(min(CHUNK, info.file_size + 1)):
                budget -= len(chunk)
                if budget < 0:
                    raise GencliError(f"unsafe archive: it expands beyond {max_extract_bytes():,} bytes")
                out.write(chunk)
        written.append(dest)
    return written


def _dataset_folder(staging: Path, name: str) -> Path:
    """The extracted NAME/ folder (or the staging folder itself when the zip has no top folder)."""
    for candidate in (staging / name, staging):
        if (candidate / "trainA").is_dir() and (candidate / "trainB").is_dir():
            return candidate
    raise GencliError(f"the {name} archive does not hold the expected {name}/trainA and {name}/trainB folders")


def download_dataset(name: str, root: Path, *, base_url: str | None = None, md5: str | None = None,
                     force: bool = False, progress: ByteProgress | None = None) -> Path:
    """Download, verify and unpack the official data set NAME into root/NAME; returns that folder.

    Only the official names are accepted unless `base_url` points elsewhere (a mirror or a test server).
    Everything happens beside root/NAME (a hidden zip and staging folder); with `force`, an existing
    root/NAME is swapped for the new one only after the new one is complete, so a failed download keeps it.
    """
    if base_url is None and name not in DATASETS:
        raise GencliError(f"unknown CycleGAN data set {name!r}; official ones: {', '.join(DATASETS)}")
    check_name(name, "data set name")
    root = Path(root)
    final = root / name
    staging, old = root / f".{name}.extracting", root / f".{name}.old"
    if old.is_dir() and not final.exists():  # a swap that a killed process left half done
        old.rename(final)
    if final.exists() and not force:
        raise GencliError(f"{final} already exists; pass --force to download it again")
    url = (base_url or DATASETS_URL).rstrip("/") + f"/{name}.zip"
    zip_path = fetch(url, root / f".{name}.zip", progress=progress)
    try:
        if md5 and md5sum(zip_path).lower() != md5.lower():
            raise GencliError(f"{url} does not match the expected md5 {md5}")
        shutil.rmtree(staging, ignore_errors=True)
        with verify_zip(zip_path) as archive:
            safe_extract(archive, staging)
        unpacked = _dataset_folder(staging, name)
        # The swap: the old copy moves aside, the new one takes its place, then the old one goes.
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        try:
            unpacked.rename(final)
        except OSError:
            if old.exists() and not final.exists():
                old.rename(final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise GencliError(f"cannot unpack {name} into {root}: {e.strerror or e}") from None
    finally:
        zip_path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return final


def download_weights(name: str, folder: Path, *, base_url: str | None = None,
                     progress: ByteProgress | None = None) -> Path:
    """Download the official generator NAME.pth into `folder`; returns the file."""
    if base_url is None and name not in WEIGHTS:
        raise GencliError(f"unknown pretrained CycleGAN {name!r}; official ones: {', '.join(WEIGHTS)}")
    check_name(name, "model name")
    url = (base_url or WEIGHTS_URL).rstrip("/") + f"/{name}.pth"
    return fetch(url, Path(folder) / f"{name}.pth", progress=progress)


# --- NVIDIA's StyleGAN2 networks --------------------------------------------------------------------------

NVIDIA_ADA_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"


@dataclass(frozen=True)
class Network:
    """One of NVIDIA's published StyleGAN2 pickles: where it is and what it must hold (the check that the
    file downloaded is the network asked for)."""
    file: str  # its path under NVIDIA_ADA_URL (or a --base-url mirror)
    resolution: int
    classes: tuple[str, ...] = ()  # a conditional network's class names

    def url(self, base_url: str | None = None) -> str:
        return (base_url.rstrip("/") + "/" + self.file.rsplit("/", 1)[-1]) if base_url else NVIDIA_ADA_URL + self.file


CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# stylegan2-ada-pytorch's pretrained networks (README, "Data repository") and the transfer-learning sources
# of its train.py --resume (ffhq256, ffhq512, ffhq1024); NVIDIA publishes them under the NVIDIA Source Code
# License (non-commercial), and gencli does not redistribute them.
NETWORKS = {
    "ffhq": Network("ffhq.pkl", 1024),
    "metfaces": Network("metfaces.pkl", 1024),
    "afhqcat": Network("afhqcat.pkl", 512),
    "afhqdog": Network("afhqdog.pkl", 512),
    "afhqwild": Network("afhqwild.pkl", 512),
    "brecahad": Network("brecahad.pkl", 512),
    "cifar10": Network("cifar10.pkl", 32, CIFAR10),
    "ffhq-res256": Network("transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl", 256),
    "ffhq-res512": Network("transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl", 512),
    "ffhq-res1024": Network("transfer-learning-source-nets/ffhq-res1024-mirror-stylegan2-noaug.pkl", 1024),
}


def download_network(name: str, folder: Path, *, base_url: str | None = None,
                     progress: ByteProgress | None = None) -> Path:
    """Download NVIDIA's network pickle NAME into `folder`; returns the file (not yet checked: see
    gencli.api.stylegan.download_network)."""
    network = NETWORKS[name]
    return fetch(network.url(base_url), Path(folder) / network.file.rsplit("/", 1)[-1], progress=progress)
