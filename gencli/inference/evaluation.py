"""Evaluating the GANs with FID and KID (see gencli.metrics): CycleGAN translations against the other
domain, StyleGAN samples against the training images (plus digit statistics for digit models).

Protocol for a CycleGAN on root/{trainA,trainB,testA,testB}: each test image of A, translated by G_AB
(paper G) at its own size, is compared with the training images of B, and each test image of B,
translated by G_BA (paper F), with the training images of A. The same test images untranslated give the
baseline a model must beat. Translations are quantised to uint8 as `gencli translate` writes them.
KID values are raw MMD^2 estimates (x 1000 is the customary figure).

Features of reference images can be cached in `cache_dir` (keyed by the feature network, the folder's
resolved path and its files' names, sizes and modification times), since they do not change between runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gencli.errors import GencliError
from gencli.metrics import digit_stats, extract_features, fid_from_features, kid

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def feature_cache_dir() -> Path:
    from gencli.metrics import cache_root

    return cache_root() / "features"


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 (the rounding `gencli translate` and `sample` use when saving)."""
    return (((x + 1) / 2).clamp(0, 1) * 255).round().to(torch.uint8)


def read_uint8(path: Path) -> torch.Tensor:
    """One image file as uint8 (3, H, W) at its own size."""
    import numpy as np

    from gencli.data import open_rgb

    return torch.from_numpy(np.asarray(open_rgb(path), dtype=np.uint8).copy()).permute(2, 0, 1)


def _cached(cache_dir: Path | None, feature_net: nn.Module, key: str, compute: Callable[[], torch.Tensor]):
    net_key = getattr(feature_net, "cache_key", "")
    if cache_dir is None or not net_key:
        return compute()
    file = Path(cache_dir) / f"{hashlib.sha256(f'{net_key}|{key}'.encode()).hexdigest()[:32]}.pt"
    if file.is_file():
        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception:
            file.unlink(missing_ok=True)  # a damaged cache entry is recomputed
    feats = compute()
    from gencli.files import atomic_write

    atomic_write(file, lambda tmp: torch.save(feats, tmp))
    return feats


def image_subset(files: list[Path], n: int | None, seed: int = 0) -> list[Path]:
    """A fixed subset of at most `n` of `files` (in their order; drawn from `seed`); all when n is None."""
    if n is None or n >= len(files):
        return list(files)
    keep = set(torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n].tolist())
    return [f for i, f in enumerate(files) if i in keep]


def folder_features(folder: Path, feature_net: nn.Module, *, batch_size: int = 50, cache_dir: Path | None = None,
                    progress: Progress | None = None, max_images: int | None = None) -> torch.Tensor:
    """Features (N, D) of every image in `folder` (or of a fixed subset of `max_images`), each read at its
    own size."""
    from gencli.data import list_images

    files = image_subset(list_images(Path(folder)), max_images)
    listing = "\n".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    key = f"folder|{Path(folder).resolve()}|{hashlib.sha256(listing.encode()).hexdigest()}"
    stage = f"features of {Path(folder).name}"
    report = (lambda n: progress(stage, n, len(files))) if progress else None
    return _cached(cache_dir, feature_net, key, lambda: extract_features(
        (read_uint8(p) for p in files), feature_net, batch_size=batch_size, progress=report))


def tensor_features(images: torch.Tensor, feature_net: nn.Module, *, batch_size: int = 50,
                    cache_dir: Path | None = None, progress: Progress | None = None,
                    stage: str = "reference features") -> torch.Tensor:
    """Features of uint8 images (N, C, H, W), cached by a hash of their bytes."""
    images = images.contiguous()
    key = f"tensor|{tuple(images.shape)}|{hashlib.sha256(images.numpy().tobytes()).hexdigest()}"
    report = (lambda n: progress(stage, n, len(images))) if progress else None
    return _cached(cache_dir, feature_net, key, lambda: extract_features(
        images, feature_net, batch_size=batch_size, progress=report))


def _scores(feats: torch.Tensor, ref: torch.Tensor, kid_subsets: int, kid_subset_size: int) -> tuple[float, float]:
    return fid_from_features(feats, ref), kid(feats, ref, kid_subsets, kid_subset_size)


def evaluate_translation(model: nn.Module, root: str | Path, feature_net: nn.Module, *,
                         directions: tuple[str, ...] | None = None, precision: str = "fp32",
                         batch_size: int = 50, kid_subsets: int = 100, kid_subset_size: int = 1000,
                         cache_dir: Path | None = None, progress: Progress | None = None,
                         max_images: int | None = None) -> dict:
    """FID and KID of a CycleGAN's translations, per direction, with the untranslated baseline; with
    `max_images`, of a fixed subset of at most that many images of each folder (test and training).

    a2b: testA translated by G_AB vs trainB (baseline: testA as it is vs trainB);
    b2a: testB translated by G_BA vs trainA (baseline: testB vs trainA).
    Returns fid_a2b, kid_a2b, baseline_fid_a2b, baseline_kid_a2b (and the same for b2a), and the image
    counts n_test_a, n_train_b, ... for the directions evaluated (default: every one the model holds).
    """
    from gencli.data import list_images
    from gencli.inference.cyclegan import translate_tensor

    root = Path(root)
    directions = tuple(directions or model.config.directions)
    model.eval()
    device = next(model.parameters()).device
    out: dict = {}
    for direction in directions:
        source, target = ("A", "B") if direction == "a2b" else ("B", "A")
        for sub in (f"test{source}", f"train{target}"):
            if not (root / sub).is_dir():
                raise GencliError(f"{root} has no {sub} folder; evaluating {direction} needs test{source} and "
                                  f"train{target}")
        generator = model.generator(direction)
        ref = folder_features(root / f"train{target}", feature_net, batch_size=batch_size, cache_dir=cache_dir,
                              progress=progress, max_images=max_images)
        inputs = folder_features(root / f"test{source}", feature_net, batch_size=batch_size,
                                 cache_dir=cache_dir, progress=progress, max_images=max_images)
        files = image_subset(list_images(root / f"test{source}"), max_images)
        stage = f"translating test{source} ({direction})"

        def translated():
            for i, path in enumerate(files):
                x = read_uint8(path)[None].float().div(127.5).sub(1).to(device)  # (1, 3, H, W) in [-1, 1]
                yield to_uint8(translate_tensor(generator, x, precision=precision))
                if progress:
                    progress(stage, i + 1, len(files))

        feats = extract_features(translated(), feature_net, batch_size=batch_size)
        out[f"fid_{direction}"], out[f"kid_{direction}"] = _scores(feats, ref, kid_subsets, kid_subset_size)
        out[f"baseline_fid_{direction}"], out[f"baseline_kid_{direction}"] = _scores(
            inputs, ref, kid_subsets, kid_subset_size)
        out[f"n_test_{source.lower()}"], out[f"n_train_{target.lower()}"] = len(feats), len(ref)
    return out


def reference_subset(images: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed subset of `n` images (a permutation drawn from `seed`), or all of them when n is None or
    at least their number."""
    if n is None or n >= len(images):
        return images
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]


def evaluate_generator(G: nn.Module, reference_images: torch.Tensor, feature_net: nn.Module, *,
                       n_samples: int = 10000, truncation: float = 1.0, first_seed: int = 0,
                       classifier: nn.Module | None = None, batch_size: int = 50, kid_subsets: int = 100,
                       kid_subset_size: int = 1000, cache_dir: Path | None = None,
                       progress: Progress | None = None) -> dict:
    """FID and KID of `n_samples` StyleGAN samples (seeds first_seed, first_seed + 1, ...) against uint8
    `reference_images` (N, C, H, W), e.g. a fixed subset of the training images (`reference_subset`).
    With a digit `classifier`, the samples' digit statistics are added under "digits" (see digit_stats).
    A conditional G draws the classes in turn (seed i: class i % classes), and the digit statistics
    then include the accuracy against those requested classes.
    Returns fid, kid, n_samples, n_reference[, digits]."""
    from gencli.inference.stylegan import generate

    if n_samples < 2:
        raise GencliError(f"--samples must be at least 2, got {n_samples}")
    ref = tensor_features(reference_images, feature_net, batch_size=batch_size, cache_dir=cache_dir,
                          progress=progress)
    seeds = list(range(first_seed, first_seed + n_samples))
    samples = []
    classes = getattr(G.config, "num_classes", 0)
    labels = torch.arange(n_samples) % classes if classes else None

    def batches():
        for i in range(0, n_samples, batch_size):
            chunk = None if labels is None else labels[i : i + batch_size]
            images = (generate(G, seeds[i : i + batch_size], truncation, labels=chunk) * 255).round().to(torch.uint8)
            if classifier is not None:  # kept for the digit statistics only (1024 px samples would not fit)
                samples.append(images)
            yield images

    report = (lambda n: progress("samples", n, n_samples)) if progress else None
    feats = extract_features(batches(), feature_net, batch_size=batch_size, progress=report)
    out = {"fid": fid_from_features(feats, ref), "kid": kid(feats, ref, kid_subsets, kid_subset_size),
           "n_samples": n_samples, "n_reference": len(reference_images)}
    if classifier is not None:
        out["digits"] = digit_stats(torch.cat(samples), classifier, labels)
    return out
