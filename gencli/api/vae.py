"""The VAE and CVAE commands: train, sample, latent-grid, reconstruct, evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gencli.api.common import (check_numbers, check_positive, check_scale, check_truncation, item_label, train_or_plan,
                               training_options)
from gencli.api.projection import fixed_ws
from gencli.data import load_idx_dataset
from gencli.errors import GencliError, OptionError
from gencli.images import check_folder, check_image_path, save_animation, save_cells, save_grid
from gencli.inference import stylegan as stylegan_inference
from gencli.inference import vae as inference
from gencli.registry import require_command
from gencli.runs import open_model
from gencli.training import vae as training
from gencli.training.loop import TrainingHooks, TrainingPlan
from gencli.training.options import VAETraining

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


def train_vae(options: VAETraining | None = None, /, *, run_dir: str | Path | None = None, resume: bool = False,
              overwrite: bool = False, dry_run: bool = False, progress: TrainingHooks | None = None,
              **overrides) -> Path | TrainingPlan:
    """Train a vae or cvae (`family="cvae"`) with `options` (default VAETraining()) and the keyword
    `overrides` of its fields, e.g. train_vae(epochs=3) or train_vae(VAETraining(lr=1e-2), epochs=3); returns
    the path of model.safetensors in the run folder (default runs/FAMILY). With `resume`, the run's own
    options hold: this call may change the length (epochs), device, precision and data_dir, and any other
    option it sets must equal the run's. `dry_run`: return the TrainingPlan, writing nothing."""
    options = training_options(VAETraining, options, overrides)
    require_command(options.family, "train")
    return train_or_plan(training, options, dry_run=dry_run, progress=progress, run_dir=run_dir, resume=resume,
                         overwrite=overwrite)


def seed_span(seeds: list[int]) -> str:
    """'0-7' for consecutive seeds, else '1,5,9': the header of a row of samples."""
    if len(seeds) > 1 and all(isinstance(s, int) for s in seeds) and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(item_label, seeds))


def grid_row_length(n: int, nrow: int | None, classes: int, label: int | None) -> int:
    """Images per row of a sample grid: `nrow` when given, else 8; but a conditional model drawing a
    class per row (no `label`) gets shorter rows when 8 a row would leave classes out: n // classes."""
    if nrow is not None:
        return nrow
    if classes and label is None and -(-n // 8) < classes:
        return max(1, n // classes)
    return 8


def cell_names(seeds: list) -> list[str]:
    """The file of each seed in --outdir: seed0042.png, or a w file's stem."""
    return [f"{s.stem}.png" if isinstance(s, Path) else f"seed{s:04d}.png" for s in seeds]


def write_while_drawing(chunks, names: list[str], folder: Path, scale: int) -> Path:
    """Save the images of `chunks` (an iterator of image batches) as folder/NAME (save_cells checks the
    folder), one chunk being written on a second thread while the next is drawn (PNG encoding of a 1024 px
    image takes a fifth of the time to draw it, and releases the GIL); at most one chunk waits in memory."""
    from concurrent.futures import ThreadPoolExecutor

    done, pending = 0, None
    with ThreadPoolExecutor(1) as writer:
        for images in chunks:
            if pending is not None:
                pending.result()  # a failed write stops the drawing
            pending = writer.submit(save_cells, images, names[done : done + len(images)], folder, scale)
            done += len(images)
        if pending is not None:
            pending.result()
    return folder


def sample(family: str | None = None, *, checkpoint: str | Path | None = None, seeds: list[int] | None = None,
           label: int | None = None, nrow: int | None = None, out: str | Path | None, device: str = "cpu",
           truncation: float | None = None, outdir: str | Path | None = None, scale: int = 1,
           annotate: bool = False, noise_mode: str | None = None, truncation_cutoff: int | None = None) -> Path:
    """Prior samples, one image per seed, as one grid (in the format the extension of `out` names). A cvae,
    or a conditional stylegan, without `label` draws one class per row (row r: class r % classes; by
    default ten rows of 8, and with fewer seeds than that, rows short enough that every class gets one;
    see `grid_row_length`). A stylegan uses the
    truncation trick (default 0.7; 1 turns it off) and draws each image's z and noise from its own seed; an
    imported StyleGAN2 draws z as NVIDIA's tools do, with their defaults (truncation 1, their constant noise:
    `noise_mode` const, random or none), `truncation_cutoff` truncating only the first layers.
    `nrow`: images per row (default 8).

    `outdir`: also one PNG per seed there (seed0042.png); with `out` None, only those (as NVIDIA's
    gen_images.py --outdir), and the folder is returned. `scale`: upsample the images (nearest).
    `annotate`: head each row with its label (cvae) or its seeds."""
    check_numbers(locals())
    if out is None and outdir is None:
        raise OptionError("give -o FILE (a grid), --outdir DIR (a file per seed) or both")
    out = check_image_path(Path(out)) if out is not None else None
    if outdir is not None:
        check_folder(outdir)
    if nrow is not None:
        check_positive(nrow=nrow)
    check_truncation(truncation)
    check_scale(scale)
    model, meta = _open("sample", family, checkpoint, device)
    if meta["family"] in ("stylegan", "stylegan2"):  # stylegan2: NVIDIA's networks, imported
        classes = model.config.num_classes
        if label is not None and not classes:
            raise OptionError("--label needs a conditional model (a cvae, or a stylegan trained with --cond)")
        if seeds is None:  # 64, or 8 of a network of 256 px and more
            many = 64 if model.synthesis.layer_resolutions[-1] < 256 else 8
            seeds = list(range((nrow or 8) * classes if classes and label is None else many))
        if not seeds:
            raise OptionError("no seeds to sample")
        nrow = grid_row_length(len(seeds), nrow, classes, label)
        labels = (stylegan_inference.class_rows(len(seeds), nrow, classes) if label is None
                  else torch.full((len(seeds),), label))
        if truncation is None:
            truncation = 1.0 if meta["family"] == "stylegan2" else 0.7
        chunks = stylegan_inference.generate_chunks(model, fixed_ws(model, seeds), truncation, labels=labels,
                                                    cutoff=truncation_cutoff, noise_mode=noise_mode)
        if out is None:  # files only: each written while the next is drawn, none kept
            return write_while_drawing(chunks, cell_names(seeds), Path(outdir), scale)
        images = torch.cat(list(chunks))
    else:
        if seeds and any(isinstance(s, Path) for s in seeds):
            raise OptionError(f"w files (of `gencli project`) stand for seeds of stylegan models, not {meta['family']}")
        for name, value in (("--truncation", truncation), ("--noise-mode", noise_mode),
                            ("--truncation-cutoff", truncation_cutoff)):
            if value is not None:
                raise OptionError(f"{name} applies to stylegan models only, not {meta['family']}")
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
        save_cells(images, cell_names(seeds), Path(outdir), scale)
        if out is None:
            return Path(outdir)
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
    if meta["family"] in ("stylegan", "stylegan2", "cyclegan"):
        from gencli.api.evaluation import evaluate_gan

        return evaluate_gan(model, meta, data_dir=data_dir, **gan_options)
    test = _test_set(meta, data_dir)
    return inference.evaluate(model, test.images, test.labels, seed=meta["seed"])[0]
