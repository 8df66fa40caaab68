"""The library functions behind every command. They return tensors, numbers and paths and never print,
so they are usable from Python as they are from the CLI."""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import torch

from gencli import distributed
from gencli.checkpoint import MODEL_FILE, load_model
from gencli.errors import GencliError
from gencli.images import check_writable, save_grid
from gencli.registry import get_family, require_command
from gencli.training import Progress, fit, resolve_device, seed_everything

RUNS_DIR = Path("runs")


# --- finding checkpoints -------------------------------------------------------------------------

def bundled_checkpoint(name: str) -> Path | None:
    """The checkpoint shipped with gencli under `name`, if any."""
    path = Path(str(resources.files("gencli.assets").joinpath(f"{name}.safetensors")))
    return path if path.is_file() else None


def find_checkpoint(name: str, checkpoint: str | Path | None = None) -> Path:
    """An explicit path, else runs/<name>/model.safetensors, else the bundled checkpoint of that name."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.is_file():
            raise GencliError(f"checkpoint not found: {checkpoint}")
        return path
    local = RUNS_DIR / name / MODEL_FILE
    if local.is_file():
        return local
    bundled = bundled_checkpoint(name)
    if bundled is not None:
        return bundled
    raise GencliError(f"no {name} model found: train one with `gencli train {name}` or pass --checkpoint")


def open_model(command: str, family: str | None, checkpoint: str | Path | None, device: str = "cpu",
               default_family: str = "vae"):
    """Load the model a command works on: (model, metadata). Checks that the family supports `command`."""
    if family is not None:
        get_family(family)
    path = find_checkpoint(family or default_family, checkpoint)
    model, meta = load_model(path, family, resolve_device(device))
    require_command(meta["family"], command)
    meta["path"] = path
    return model, meta


def parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise GencliError(f"bad seed list {text!r}; write e.g. 0-63 or 1,5,9") from None
    if any(s < 0 for s in seeds):
        raise GencliError(f"bad seed list {text!r}: seeds are non-negative")
    return seeds


def check_positive(**values: int | float) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise GencliError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _check_label(model, label: int | None) -> None:
    if label is None:
        return
    classes = model.config.num_classes
    if classes == 0:
        raise GencliError("--label needs a conditional model (cvae); this vae ignores labels")
    if not 0 <= label < classes:
        raise GencliError(f"--label must be between 0 and {classes - 1}, got {label}")


# --- training --------------------------------------------------------------------------------------

def prepare_run_dir(name: str, out: str | Path | None, resume: bool, overwrite: bool) -> Path:
    """The run directory; refuses to clobber an earlier run unless asked to resume or overwrite."""
    run_dir = Path(out) if out else RUNS_DIR / name
    if resume and overwrite:
        raise GencliError("--resume and --overwrite exclude each other")
    if not resume and not overwrite and (run_dir / MODEL_FILE).exists():
        raise GencliError(f"{run_dir} already holds a trained model; pass --resume to continue it "
                          "or --overwrite to start again")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GencliError(f"cannot create run directory {run_dir}: {e.strerror}") from None
    return run_dir


def write_options(run_dir: Path, options: dict) -> None:
    """options.json of a run: its training options plus the torchrun processes and the global batch they
    make (options["batch_size"] is per process); written by rank 0 alone."""
    w = distributed.world()
    options.update(processes=w.world_size, global_batch_size=options["batch_size"] * w.world_size)
    if w.is_main:
        (Path(run_dir) / "options.json").write_text(json.dumps(options, indent=2) + "\n")


def train_vae(family: str = "vae", *, dataset: str = "mnist", data_dir: str | Path | None = None,
              out: str | Path | None = None, epochs: int = 50, batch_size: int = 64, lr: float = 1e-3,
              latent_dim: int = 2, hidden: tuple[int, ...] = (512, 256), seed: int = 0,
              lr_schedule: str = "constant", ema_decay: float = 0.9999, dropout: float = 0.0, device: str = "auto", resume: bool = False, overwrite: bool = False,
              progress: Progress | None = None) -> Path:
    """Train a vae or cvae; returns the path of model.safetensors in the run directory.

    lr_schedule: "constant", or "cosine" (from lr down to lr/100 over the epochs).
    ema_decay: per-step decay of the weight average that is evaluated and saved (0: the raw weights).
    """
    from gencli.checkpoint import read_metadata
    from gencli.data import load_idx_dataset
    from gencli.models.vae import VAETask

    spec = require_command(family, "train")
    check_positive(epochs=epochs, batch_size=batch_size, lr=lr, latent_dim=latent_dim)
    if not hidden or any(h <= 0 for h in hidden):
        raise GencliError(f"--hidden must be positive widths such as 512,256, got {hidden}")
    if not 0 <= ema_decay < 1:
        raise GencliError(f"--ema-decay must be in [0, 1), got {ema_decay}")
    if not 0 <= dropout < 1:
        raise GencliError(f"--dropout must be in [0, 1), got {dropout}")
    if lr_schedule not in ("cosine", "constant"):
        raise GencliError(f"--lr-schedule must be cosine or constant, got {lr_schedule!r}")
    run_dir = prepare_run_dir(family, out, resume, overwrite)
    config = spec.default_config(latent_dim=latent_dim, hidden=tuple(hidden), dropout=dropout)
    if resume:  # the architecture comes from the run being resumed, not from the flags
        meta = read_metadata(run_dir / MODEL_FILE)
        if meta["family"] != family:
            raise GencliError(f"{run_dir} holds a {meta['family']} run, not {family}")
        config = spec.config_from_dict(meta["config"])
        seed = meta["seed"]
    dev = distributed.init(resolve_device(device))
    seed_everything(seed)
    train_set, test_set = load_idx_dataset(dataset, data_dir)
    task = VAETask(family, config, train_set, test_set, dataset=dataset, lr=lr, batch_size=batch_size,
                   seed=seed, device=dev, epochs=epochs, lr_schedule=lr_schedule, ema_decay=ema_decay)
    write_options(run_dir, {"family": family, "dataset": dataset, "epochs": epochs, "batch_size": batch_size,
                            "lr": lr, "lr_schedule": lr_schedule, "ema_decay": ema_decay, "seed": seed,
                            "device": str(dev), "config": asdict(config)})
    return fit(task, run_dir, epochs=epochs, resume=resume, progress=progress)


# --- using a trained VAE -------------------------------------------------------------------------------

def sample(family: str | None = None, *, checkpoint: str | Path | None = None, seeds: list[int] | None = None,
           label: int | None = None, nrow: int = 8, out: str | Path, device: str = "cpu",
           truncation: float | None = None) -> Path:
    """Prior samples, one image per seed, as one PNG grid. A cvae without `label` draws one digit per
    row (0-9 in turn; by default ten rows). A stylegan uses the truncation trick (default 0.7; 1 turns
    it off) and draws each image's z and noise from its own seed."""
    from gencli.models.vae import prior_samples

    out = check_writable(Path(out))
    check_positive(nrow=nrow)
    if truncation is not None and not 0 <= truncation <= 1:
        raise GencliError(f"--truncation must be between 0 and 1 (1 disables it), got {truncation}")
    model, meta = open_model("sample", family, checkpoint, device)
    if meta["family"] == "stylegan":
        from gencli.models.stylegan import generate

        if label is not None:
            raise GencliError("--label needs a conditional model (cvae); stylegan models ignore labels")
        seeds = list(range(64)) if seeds is None else seeds
        if not seeds:
            raise GencliError("no seeds to sample")
        return save_grid(generate(model, seeds, 0.7 if truncation is None else truncation), out, nrow=nrow)
    if truncation is not None:
        raise GencliError(f"--truncation applies to stylegan models only, not {meta['family']}")
    _check_label(model, label)
    classes = model.config.num_classes
    if seeds is None:
        seeds = list(range(nrow * classes if classes and label is None else 64))
    if not seeds:
        raise GencliError("no seeds to sample")
    labels = None
    if classes:
        labels = torch.full((len(seeds),), label) if label is not None else torch.arange(len(seeds)) // nrow % classes
    return save_grid(prior_samples(model, seeds, labels), out, nrow=nrow)


def parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None or text == "auto":
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise GencliError(f"bad --range {text!r}; write auto or LO,HI such as -3,3") from None
    if not lo < hi:
        raise GencliError(f"bad --range {text!r}: LO must be below HI")
    return lo, hi


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
    model, meta = open_model("latent-grid", family, checkpoint, device)
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
        ranges = [(lo_all[d], hi_all[d]) for d in dims]
    else:
        ranges = [value_range, value_range]
    xs = torch.linspace(*ranges[0], steps)
    ys = torch.linspace(*ranges[1], steps).flip(0)
    z = torch.zeros(steps * steps, latent)
    z[:, dims[0]] = xs.repeat(steps)
    z[:, dims[1]] = ys.repeat_interleave(steps)
    labels = torch.full((len(z),), label) if label is not None else None
    dev = next(model.parameters()).device
    with torch.no_grad():
        images = torch.sigmoid(model.decode(z.to(dev), None if labels is None else labels.to(dev))).cpu()
    return save_grid(images, out, nrow=steps)


def _test_set(meta: dict, data_dir):
    from gencli.data import load_idx_dataset

    return load_idx_dataset(meta["extra"].get("dataset", "mnist"), data_dir)[1]


def reconstruct(family: str | None = None, *, checkpoint: str | Path | None = None, n: int = 50, nrow: int = 10,
                seed: int = 0, data_dir: str | Path | None = None, out: str | Path, device: str = "cpu"
                ) -> tuple[Path, float]:
    """Random test images, each row of inputs followed by a row of their reconstructions (decoded from
    the latent mean; a cvae is given the true label). Returns the PNG path and the images' mean loss."""
    from gencli.models.vae import evaluate as evaluate_set

    out = check_writable(Path(out))
    model, meta = open_model("reconstruct", family, checkpoint, device)
    check_positive(n=n, nrow=nrow)
    test = _test_set(meta, data_dir)
    if n > len(test):
        raise GencliError(f"-n {n} exceeds the {len(test)} test images")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = test.images[pick], test.labels[pick]
    dev = next(model.parameters()).device
    x = images.float().to(dev) / 255
    with torch.no_grad():
        mu, _ = model.encode(x, labels.to(dev))
        recon = torch.sigmoid(model.decode(mu, labels.to(dev))).cpu()
    metrics, _ = evaluate_set(model, images, labels, seed=seed)
    rows = []
    for start in range(0, n, nrow):
        rows += [x[start : start + nrow].cpu(), recon[start : start + nrow]]
        if len(rows[-1]) < nrow:  # pad a short last row so inputs and outputs stay aligned
            pad = torch.zeros(nrow - len(rows[-1]), *x.shape[1:])
            rows[-2], rows[-1] = torch.cat([rows[-2], pad]), torch.cat([rows[-1], pad])
    return save_grid(torch.cat(rows), out, nrow=nrow), metrics["loss"]


def evaluate(family: str | None = None, *, checkpoint: str | Path | None = None,
             data_dir: str | Path | None = None, device: str = "cpu") -> dict[str, float]:
    """Test-set negative ELBO in nats per image: {'loss', 'bce', 'kl'}."""
    from gencli.models.vae import evaluate as evaluate_set

    model, meta = open_model("evaluate", family, checkpoint, device)
    test = _test_set(meta, data_dir)
    return evaluate_set(model, test.images, test.labels, seed=meta["seed"])[0]
