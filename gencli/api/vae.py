"""The VAE and CVAE commands: train, sample, latent-grid, reconstruct, evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gencli.api.common import check_positive, check_truncation
from gencli.data import load_idx_dataset
from gencli.errors import GencliError
from gencli.files import check_writable
from gencli.images import save_grid
from gencli.inference import stylegan as stylegan_inference
from gencli.inference import vae as inference
from gencli.registry import require_command
from gencli.runs import open_model
from gencli.training import vae as training
from gencli.training.loop import TrainingHooks

HINT = "train one with `gencli train {name}` or pass --checkpoint"


def _open(command: str, family: str | None, checkpoint, device: str, default: str = "vae"):
    name = family or default
    return open_model(command, family, checkpoint, device, name=name, hint=HINT.format(name=name))


def _check_label(model, label: int | None) -> None:
    if label is None:
        return
    classes = model.config.num_classes
    if classes == 0:
        raise GencliError("--label needs a conditional model (cvae); this vae ignores labels")
    if not 0 <= label < classes:
        raise GencliError(f"--label must be between 0 and {classes - 1}, got {label}")


def train_vae(family: str = "vae", *, dataset: str = "mnist", data_dir: str | Path | None = None,
              out: str | Path | None = None, epochs: int = 50, batch_size: int = 64, lr: float = 1e-3,
              latent_dim: int = 2, hidden: tuple[int, ...] = (512, 256), seed: int = 0,
              lr_schedule: str = "constant", ema_decay: float = 0.9999, dropout: float = 0.0, device: str = "auto",
              resume: bool = False, overwrite: bool = False, progress: TrainingHooks | None = None) -> Path:
    """Train a vae or cvae; returns the path of model.safetensors in the run directory.

    lr_schedule: "constant", or "cosine" (from lr down to lr/100 over the epochs).
    ema_decay: per-step decay of the weight average that is evaluated and saved (0: the raw weights).
    """
    require_command(family, "train")
    check_positive(epochs=epochs, batch_size=batch_size, lr=lr, latent_dim=latent_dim)
    if not hidden or any(h <= 0 for h in hidden):
        raise GencliError(f"--hidden must be positive widths such as 512,256, got {hidden}")
    if not 0 <= ema_decay < 1:
        raise GencliError(f"--ema-decay must be in [0, 1), got {ema_decay}")
    if not 0 <= dropout < 1:
        raise GencliError(f"--dropout must be in [0, 1), got {dropout}")
    if lr_schedule not in ("cosine", "constant"):
        raise GencliError(f"--lr-schedule must be cosine or constant, got {lr_schedule!r}")
    return training.train(family, dataset=dataset, data_dir=data_dir, out=out, epochs=epochs, batch_size=batch_size,
                          lr=lr, latent_dim=latent_dim, hidden=hidden, seed=seed, lr_schedule=lr_schedule,
                          ema_decay=ema_decay, dropout=dropout, device=device, resume=resume, overwrite=overwrite,
                          progress=progress)


def sample(family: str | None = None, *, checkpoint: str | Path | None = None, seeds: list[int] | None = None,
           label: int | None = None, nrow: int = 8, out: str | Path, device: str = "cpu",
           truncation: float | None = None) -> Path:
    """Prior samples, one image per seed, as one PNG grid. A cvae without `label` draws one digit per
    row (0-9 in turn; by default ten rows). A stylegan uses the truncation trick (default 0.7; 1 turns
    it off) and draws each image's z and noise from its own seed."""
    out = check_writable(Path(out))
    check_positive(nrow=nrow)
    check_truncation(truncation)
    model, meta = _open("sample", family, checkpoint, device)
    if meta["family"] == "stylegan":
        if label is not None:
            raise GencliError("--label needs a conditional model (cvae); stylegan models ignore labels")
        seeds = list(range(64)) if seeds is None else seeds
        if not seeds:
            raise GencliError("no seeds to sample")
        images = stylegan_inference.generate(model, seeds, 0.7 if truncation is None else truncation)
        return save_grid(images, out, nrow=nrow)
    if truncation is not None:
        raise GencliError(f"--truncation applies to stylegan models only, not {meta['family']}")
    _check_label(model, label)
    classes = model.config.num_classes
    if seeds is None:
        seeds = list(range(nrow * classes if classes and label is None else 64))
    if not seeds:
        raise GencliError("no seeds to sample")
    labels = inference.sample_labels(model, len(seeds), label, nrow)
    return save_grid(inference.prior_samples(model, seeds, labels), out, nrow=nrow)


def latent_grid(family: str | None = None, *, checkpoint: str | Path | None = None, steps: int = 8,
                value_range: tuple[float, float] | None = None, label: int | None = None,
                dims: tuple[int, int] | None = None, out: str | Path, device: str = "cpu") -> Path:
    """Decode a steps x steps grid over two latent dimensions (others held at 0).

    The range defaults to the test set's observed latent means stored in the checkpoint. Columns go
    left to right along dims[0]; rows top to bottom from high to low dims[1], as on a plot.
    """
    out = check_writable(Path(out))
    if label is not None and family is None:
        family = "cvae"
    model, meta = _open("latent-grid", family, checkpoint, device)
    check_positive(steps=steps)
    _check_label(model, label)
    if model.config.num_classes and label is None:
        raise GencliError("a cvae grid needs --label (the digit to draw)")
    latent = model.config.latent_dim
    if dims is None:
        if latent != 2:
            raise GencliError(f"the latent is {latent}-D: choose the two dimensions to span with --dims I,J")
        dims = (0, 1)
    if len(set(dims)) != 2 or not all(0 <= d < latent for d in dims):
        raise GencliError(f"--dims must be two different dimensions between 0 and {latent - 1}")
    if value_range is None:
        lo_all, hi_all = meta["extra"].get("latent_min"), meta["extra"].get("latent_max")
        if lo_all is None:
            raise GencliError("this checkpoint stores no latent range; pass --range LO,HI")
        if not all(isinstance(v, list) and len(v) == latent and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
                for v in (lo_all, hi_all)):
            raise GencliError("this checkpoint's latent range is malformed; pass --range LO,HI")
        ranges = [(lo_all[d], hi_all[d]) for d in dims]
    else:
        ranges = [value_range, value_range]
    return save_grid(inference.latent_grid(model, steps, ranges, dims, label), out, nrow=steps)


def _test_set(meta: dict, data_dir):
    return load_idx_dataset(meta["extra"].get("dataset", "mnist"), data_dir)[1]


def reconstruct(family: str | None = None, *, checkpoint: str | Path | None = None, n: int = 50, nrow: int = 10,
                seed: int = 0, data_dir: str | Path | None = None, out: str | Path, device: str = "cpu"
                ) -> tuple[Path, float]:
    """Random test images, each row of inputs followed by a row of their reconstructions (decoded from
    the latent mean; a cvae is given the true label). Returns the PNG path and the images' mean loss."""
    out = check_writable(Path(out))
    model, meta = _open("reconstruct", family, checkpoint, device)
    check_positive(n=n, nrow=nrow)
    test = _test_set(meta, data_dir)
    if n > len(test):
        raise GencliError(f"-n {n} exceeds the {len(test)} test images")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = test.images[pick], test.labels[pick]
    grid = inference.reconstruction_rows(model, images, labels, nrow)
    metrics, _ = inference.evaluate(model, images, labels, seed=seed)
    return save_grid(grid, out, nrow=nrow), metrics["loss"]


def evaluate(family: str | None = None, *, checkpoint: str | Path | None = None,
             data_dir: str | Path | None = None, device: str = "cpu") -> dict[str, float]:
    """Test-set negative ELBO in nats per image: {'loss', 'bce', 'kl'}."""
    model, meta = _open("evaluate", family, checkpoint, device)
    test = _test_set(meta, data_dir)
    return inference.evaluate(model, test.images, test.labels, seed=meta["seed"])[0]
