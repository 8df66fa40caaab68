"""The VAE and CVAE commands: train, sample, latent-grid, reconstruct, evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gencli.api.common import check_numbers, check_positive, check_scale, check_train_precision, check_truncation
from gencli.data import load_idx_dataset
from gencli.errors import GencliError, OptionError
from gencli.images import check_folder, check_image_path, save_animation, save_cells, save_grid
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
        raise OptionError("--label needs a conditional model (cvae); this vae ignores labels")
    if not 0 <= label < classes:
        raise OptionError(f"--label must be between 0 and {classes - 1}, got {label}")


def train_vae(family: str = "vae", *, dataset: str = "mnist", data_dir: str | Path | None = None,
              out: str | Path | None = None, epochs: int = 50, batch_size: int = 64, lr: float = 1e-3,
              latent_dim: int = 2, hidden: tuple[int, ...] = (512, 256), seed: int = 0,
              lr_schedule: str = "constant", ema_decay: float = 0.9999, dropout: float = 0.0, device: str = "auto",
              precision: str = "auto", resume: bool = False, overwrite: bool = False,
              progress: TrainingHooks | None = None) -> Path:
    """Train a vae or cvae; returns the path of model.safetensors in the run directory.

    lr_schedule: "constant", or "cosine" (from lr down to lr/100 over the epochs).
    ema_decay: per-step decay of the weight average that is evaluated and saved (0: the raw weights).
    precision: auto (bf16 autocast on CUDA or a CPU with native bf16, else fp32), fp32 or bf16.
    """
    check_numbers(locals())
    require_command(family, "train")
    check_positive(epochs=epochs, batch_size=batch_size, lr=lr, latent_dim=latent_dim)
    if not hidden or any(h <= 0 for h in hidden):
        raise OptionError(f"--hidden must be positive widths such as 512,256, got {hidden}")
    if lr_schedule not in ("cosine", "constant"):
        raise OptionError(f"--lr-schedule must be cosine or constant, got {lr_schedule!r}")
    check_train_precision(precision)
    return training.train(family, dataset=dataset, data_dir=data_dir, out=out, epochs=epochs, batch_size=batch_size,
                          lr=lr, latent_dim=latent_dim, hidden=hidden, seed=seed, lr_schedule=lr_schedule,
                          ema_decay=ema_decay, dropout=dropout, device=device, precision=precision, resume=resume,
                          overwrite=overwrite, progress=progress)


def seed_span(seeds: list[int]) -> str:
    """'0-7' for consecutive seeds, else '1,5,9': the header of a row of samples."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def grid_row_length(n: int, nrow: int | None, classes: int, label: int | None) -> int:
    """Images per row of a sample grid: `nrow` when given, else 8; but a conditional model drawing a
    class per row (no `label`) gets shorter rows when 8 a row would leave classes out: n // classes."""
    if nrow is not None:
        return nrow
    if classes and label is None and -(-n // 8) < classes:
        return max(1, n // classes)
    return 8


def sample(family: str | None = None, *, checkpoint: str | Path | None = None, seeds: list[int] | None = None,
           label: int | None = None, nrow: int | None = None, out: str | Path, device: str = "cpu",
           truncation: float | None = None, outdir: str | Path | None = None, scale: int = 1,
           annotate: bool = False) -> Path:
    """Prior samples, one image per seed, as one grid (in the format the extension of `out` names). A cvae,
    or a conditional stylegan, without `label` draws one class per row (row r: class r % classes; by
    default ten rows of 8, and with fewer seeds than that, rows short enough that every class gets one;
    see `grid_row_length`). A stylegan uses the
    truncation trick (default 0.7; 1 turns it off) and draws each image's z and noise from its own seed.
    `nrow`: images per row (default 8).

    `outdir`: also one PNG per seed there (seed0042.png). `scale`: upsample the images (nearest).
    `annotate`: head each row with its label (cvae) or its seeds."""
    check_numbers(locals())
    out = check_image_path(Path(out))
    if outdir is not None:
        check_folder(outdir)
    if nrow is not None:
        check_positive(nrow=nrow)
    check_truncation(truncation)
    check_scale(scale)
    model, meta = _open("sample", family, checkpoint, device)
    if meta["family"] == "stylegan":
        classes = model.config.num_classes
        if label is not None and not classes:
            raise OptionError("--label needs a conditional model (a cvae, or a stylegan trained with --cond)")
        if seeds is None:
            seeds = list(range((nrow or 8) * classes if classes and label is None else 64))
        if not seeds:
            raise OptionError("no seeds to sample")
        nrow = grid_row_length(len(seeds), nrow, classes, label)
        labels = (stylegan_inference.class_rows(len(seeds), nrow, classes) if label is None
                  else torch.full((len(seeds),), label))
        images = stylegan_inference.generate(model, seeds, 0.7 if truncation is None else truncation, labels=labels)
    else:
        if truncation is not None:
            raise OptionError(f"--truncation applies to stylegan models only, not {meta['family']}")
        _check_label(model, label)
        classes = model.config.num_classes
        if seeds is None:
            seeds = list(range((nrow or 8) * classes if classes and label is None else 64))
        if not seeds:
            raise OptionError("no seeds to sample")
        nrow = grid_row_length(len(seeds), nrow, classes, label)
        labels = inference.sample_labels(model, len(seeds), label, nrow)
        images = inference.prior_samples(model, seeds, labels)
    if outdir is not None:
        save_cells(images, [f"seed{s:04d}.png" for s in seeds], Path(outdir), scale)
    rows = None
    if annotate:
        starts = range(0, len(seeds), nrow)
        rows = ([f"label {labels[i].item()}" for i in starts] if labels is not None
                else [f"seeds {seed_span(seeds[i : i + nrow])}" for i in starts])
    return save_grid(images, out, nrow=nrow, scale=scale, row_labels=rows)


GRID_RANGES = ("prior", "minmax")


def _grid_range(value_range) -> str | tuple[float, float]:
    """'prior' (also None), 'minmax' ('auto' is its old name) or (LO, HI) from a string or a pair."""
    if value_range is None or value_range == "prior":
        return "prior"
    if value_range in ("minmax", "auto"):
        return "minmax"
    try:
        lo, hi = (float(v) for v in (value_range.split(",") if isinstance(value_range, str) else value_range))
    except (TypeError, ValueError):
        raise OptionError(f"bad --range {value_range!r}; write prior, minmax or LO,HI such as -3,3") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise OptionError(f"bad --range {value_range!r}: LO and HI must be finite numbers")
    if not lo < hi:
        raise OptionError(f"bad --range {value_range!r}: LO must be below HI")
    return lo, hi


def latent_grid(family: str | None = None, *, checkpoint: str | Path | None = None, steps: int = 8,
                value_range: str | tuple[float, float] | None = None, label: int | None = None,
                dims: tuple[int, int] | None = None, out: str | Path, device: str = "cpu", scale: int = 1,
                annotate: bool = False, animate: bool = False) -> Path:
    """Decode a steps x steps grid over two latent dimensions (others held at 0). Columns go left to
    right along dims[0]; rows top to bottom from high to low dims[1], as on a plot.

    value_range: "prior" (default; Kingma & Welling's Fig. 4: evenly spaced quantiles of the standard
    normal prior), "minmax" (the range of the test set's latent means, stored in the checkpoint) or (LO, HI).
    annotate: the z values along the axes (and a cvae's label in the corner). animate: an animation (.gif or .webp) that walks the grid's
    cells row by row, alternating direction, each frame captioned with its z when `annotate`.
    """
    check_numbers(locals())
    out = check_image_path(Path(out), animated=animate)
    spec = _grid_range(value_range)
    check_scale(scale)
    if label is not None and family is None:
        family = "cvae"
    model, meta = _open("latent-grid", family, checkpoint, device)
    check_positive(steps=steps)
    _check_label(model, label)
    if model.config.num_classes and label is None:
        raise OptionError("a cvae grid needs --label (the digit to draw)")
    latent = model.config.latent_dim
    if dims is None:
        if latent != 2:
            raise OptionError(f"the latent is {latent}-D: choose the two dimensions to span with --dims I,J")
        dims = (0, 1)
    if len(set(dims)) != 2 or not all(0 <= d < latent for d in dims):
        raise OptionError(f"--dims must be two different dimensions between 0 and {latent - 1}")
    if spec == "prior":
        xs = ys = inference.prior_coordinates(steps)
    elif spec == "minmax":
        lo_all, hi_all = meta["extra"].get("latent_min"), meta["extra"].get("latent_max")
        if lo_all is None:
            raise GencliError("this checkpoint stores no latent range; pass --range prior or LO,HI")
        if not all(isinstance(v, list) and len(v) == latent and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
                for v in (lo_all, hi_all)):
            raise GencliError("this checkpoint's latent range is malformed; pass --range prior or LO,HI")
        xs, ys = (inference.linear_coordinates(lo_all[d], hi_all[d], steps) for d in dims)
    else:
        xs = ys = inference.linear_coordinates(*spec, steps)
    images = inference.latent_grid(model, xs, ys, dims, label)
    if animate:
        order = inference.serpentine(steps, steps)
        captions = None
        if annotate:
            z = inference.grid_codes(xs, ys, dims, latent)
            head = "" if label is None else f"label {label}: "
            captions = [f"{head}z{dims[0]} {z[i, dims[0]]:.2f}, z{dims[1]} {z[i, dims[1]]:.2f}" for i in order]
        return save_animation(images[order], out, scale=scale, captions=captions)
    cols = rows = None
    if annotate:
        cols = [f"{x:.2f}" for x in xs.tolist()]
        rows = [f"{y:.2f}" for y in ys.flip(0).tolist()]
    return save_grid(images, out, nrow=steps, scale=scale, col_labels=cols, row_labels=rows,
                     corner=(("" if label is None else f"label {label}: ") + f"z{dims[1]} \\ z{dims[0]}") if annotate else "")


def _test_set(meta: dict, data_dir):
    return load_idx_dataset(meta["extra"].get("dataset", "mnist"), data_dir)[1]


def reconstruct(family: str | None = None, *, checkpoint: str | Path | None = None, n: int = 50, nrow: int = 10,
                seed: int = 0, data_dir: str | Path | None = None, out: str | Path, device: str = "cpu",
                annotate: bool = False) -> tuple[Path, float]:
    """Random test images, each row of inputs followed by a row of their reconstructions (decoded from
    the latent mean; a cvae is given the true label); `annotate` labels the rows "input" and
    "reconstruction". Returns the PNG path and the images' mean loss."""
    check_numbers(locals())
    out = check_image_path(Path(out))
    model, meta = _open("reconstruct", family, checkpoint, device)
    check_positive(n=n, nrow=nrow)
    test = _test_set(meta, data_dir)
    if n > len(test):
        raise OptionError(f"-n {n} exceeds the {len(test)} test images")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = test.images[pick], test.labels[pick]
    grid = inference.reconstruction_rows(model, images, labels, nrow)
    metrics, _ = inference.evaluate(model, images, labels, seed=seed)
    rows = ["input", "reconstruction"] * -(-n // nrow) if annotate else None
    return save_grid(grid, out, nrow=nrow, row_labels=rows), metrics["loss"]


def evaluate(family: str | None = None, *, checkpoint: str | Path | None = None,
             data_dir: str | Path | None = None, device: str = "cpu", **gan_options) -> dict:
    """A model's scores: for a vae/cvae the test-set negative ELBO in nats per image ({'loss', 'bce',
    'kl'}); for a stylegan or cyclegan FID and KID (see gencli.api.evaluation; `gan_options` go there)."""
    model, meta = _open("evaluate", family, checkpoint, device)
    if meta["family"] in ("stylegan", "cyclegan"):
        from gencli.api.evaluation import evaluate_gan

        return evaluate_gan(model, meta, data_dir=data_dir, **gan_options)
    test = _test_set(meta, data_dir)
    return inference.evaluate(model, test.images, test.labels, seed=meta["seed"])[0]
