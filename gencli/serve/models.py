"""What the server does with models: list them by id, load and cache them, and turn requests into PNGs.

This is the only module of `gencli.serve` that reaches into the rest of gencli. Its touch points are
the names imported in the block below (finding checkpoints, loading them, the families' inference
functions, image helpers); when those move, only that block changes.

Every image that a CLI command can make is made here with the command's own library functions and
saved by the same image helper, so the PNG served is byte for byte the file the command writes; each
`Picture` carries that command. A decoded latent point has no command of its own, so its `command` is
the equivalent Python one-liner.
"""

from __future__ import annotations

import shlex
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

# --- touch points with the rest of gencli ---------------------------------------------------------
from gencli import api  # find_checkpoint (the CLI's default model), latent_grid
from gencli.api.common import item_label  # how a w file heads a grid and names a file
from gencli.checkpoint import load_model, read_metadata
from gencli.data import load_idx_dataset
from gencli.errors import GencliError
from gencli.images import png_bytes, save_grid, to_unit
from gencli.inference import cyclegan, stylegan
from gencli.models.cyclegan import DIRECTIONS
from gencli.catalog import model_files  # the models and their ids, as `gencli models` lists them
from gencli.runs import find_checkpoint
from gencli.distributed import resolve_device
from gencli.serve.messages import (MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MAX_UPLOAD_BYTES, Picture, Refused,  # noqa: F401
                                   UploadError, read_upload, safe_filename)
from gencli.serve.projections import ProjectionJob, run_projection



def find_named_model(name: str) -> Path:
    """How `gencli translate NAME` resolves NAME."""
    return find_checkpoint(name)
# ---------------------------------------------------------------------------------------------------

TRANSLATE_TILE = 512  # `gencli translate --tile` default

VAE_FAMILIES = ("vae", "cvae")
SOURCES = ("run", "imported", "bundled")  # listing order: the user's own models first


PROJECTION_JOBS = 8  # projections kept in memory (their files and w), the newest ones


class NotFound(GencliError):
    """An id the server did not list, or a model of another family than the view needs."""


@dataclass(frozen=True)
class ModelEntry:
    id: str  # "SOURCE:NAME", the only way a client names a model
    name: str
    source: str  # run (a folder under the runs directory), imported or bundled
    family: str
    path: Path
    meta: dict = field(compare=False, repr=False)

    def describe(self, default: bool) -> dict:
        config = self.meta["config"]
        info: dict = {}
        if self.family in VAE_FAMILIES:
            extra = self.meta["extra"]
            info = {"latent_dim": config["latent_dim"], "num_classes": config["num_classes"],
                    "latent_min": extra.get("latent_min"), "latent_max": extra.get("latent_max"),
                    "dataset": extra.get("dataset", "mnist")}
        elif self.family == "stylegan":
            classes = config.get("num_classes", 0)  # checkpoints from before conditioning: unconditional
            info = {"resolution": config["resolution"], "num_ws": 2 * len(config["widths"]),
                    "conditional": bool(classes), "num_classes": classes,
                    "class_names": self.meta["extra"].get("class_names") or [str(k) for k in range(classes)]}
        elif self.family == "stylegan2":
            classes, res = config["c_dim"], config["img_resolution"]
            info = {"resolution": res, "num_ws": 2 * res.bit_length() - 4, "conditional": bool(classes),
                    "num_classes": classes, "preview": min(res, PREVIEW), "network": "stylegan2",
                    "class_names": self.meta["extra"].get("class_names") or [str(k) for k in range(classes)]}
        elif self.family == "cyclegan":
            a, _, b = self.name.partition("2")
            info = {"directions": list(config.get("directions", DIRECTIONS)),
                    "domains": [a, b] if b else ["A", "B"]}
        shown = f"{self.path.name}, bundled with gencli" if self.source == "bundled" else display_path(self.path)
        return {"id": self.id, "name": self.name, "source": self.source, "family": self.family,
                "checkpoint": shown, "epoch": self.meta["epoch"], "default": default, "info": info}


def display_path(path: Path) -> str:
    """A path as a user would type it from the server's working directory."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


PREVIEW = 256  # StyleGAN images above this many pixels a side are shown downscaled (the command gives full size)
STYLEGANS = ("stylegan", "stylegan2")


def grid_png(images: torch.Tensor, nrow: int) -> bytes:
    """The grid the CLI's `save_grid` writes, read back from a temporary file; StyleGAN images larger than
    PREVIEW pixels a side downscaled to it (area averaging), so that a 1024 px network's grids stay light."""
    if images.shape[-1] > PREVIEW:
        images = torch.nn.functional.interpolate(images, size=(PREVIEW, PREVIEW), mode="area")
    with tempfile.TemporaryDirectory(prefix="gencli-serve-") as tmp:
        return save_grid(images, Path(tmp) / "grid.png", nrow=nrow).read_bytes()


class ModelStore:
    """The models the server offers, by id, loaded on first use and kept (reloaded when the file changes).

    Thread-safe: requests run on a thread pool. Inference itself needs no lock (eval-mode forward passes
    share nothing); translations are serialised by the app, since tiled translation sets state on the
    generator's norm layers.
    """

    def __init__(self, runs_dir: str | Path = "runs", *, device: str = "cpu", data_dir: str | Path | None = None,
                 imported_dir: str | Path | None = None):
        self.runs_dir = Path(runs_dir)
        self.device = resolve_device(device)
        self.data_dir = data_dir
        self.imported_dir = Path(imported_dir) if imported_dir is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, ModelEntry] = {}
        self._loaded: dict[str, tuple[float, torch.nn.Module, dict]] = {}  # id -> (mtime, model, meta)
        self._scatter: dict[str, tuple[float, dict]] = {}
        self._jobs: OrderedDict[str, ProjectionJob] = OrderedDict()
        self._projecting = threading.BoundedSemaphore(1)  # projections running at once; more get 429
        self.scan()

    # --- listing --------------------------------------------------------------------------------------

    def _candidates(self):
        """What the command line reaches by id (run:NAME, imported:NAME, bundled:NAME), the same listing."""
        return model_files(self.runs_dir, self.imported_dir)

    def scan(self) -> list[ModelEntry]:
        """Look for models again; files that are not gencli checkpoints are left out."""
        entries = {}
        for source, name, path in self._candidates():
            try:
                meta = read_metadata(path)
            except GencliError:
                continue
            entry = ModelEntry(f"{source}:{name}", name, source, meta["family"], path, meta)
            entries[entry.id] = entry
        with self._lock:
            self._entries = entries
        return list(entries.values())

    def defaults(self) -> dict[str, Path]:
        """family -> the checkpoint the CLI uses when no --checkpoint is given."""
        found = {}
        for family in ("vae", "cvae", "stylegan"):
            try:
                found[family] = api.find_checkpoint(family).resolve()
            except GencliError:
                pass
        return found

    def describe(self) -> list[dict]:
        defaults = self.defaults()
        return [e.describe(defaults.get(e.family) == e.path.resolve()) for e in self.scan()]

    def entry(self, model_id: str, families: tuple[str, ...]) -> ModelEntry:
        entry = self._entries.get(model_id)
        if entry is None:
            self.scan()  # a run that appeared since the last listing
            entry = self._entries.get(model_id)
        if entry is None:
            raise NotFound(f"no model with id {model_id!r}; GET /api/models lists the ids")
        if entry.family not in families:
            raise NotFound(f"model {model_id!r} is a {entry.family} model; this view needs {' or '.join(families)}")
        return entry

    def load(self, model_id: str, families: tuple[str, ...]):
        """(entry, model in eval mode, metadata), loading the checkpoint once per change of the file."""
        entry = self.entry(model_id, families)
        mtime = entry.path.stat().st_mtime
        with self._lock:
            cached = self._loaded.get(model_id)
            if cached is None or cached[0] != mtime:
                model, meta = load_model(entry.path, entry.family, self.device)
                cached = self._loaded[model_id] = (mtime, model, meta)
        return entry, cached[1], cached[2]

    def checkpoint_option(self, entry: ModelEntry) -> str:
        """' -c PATH' unless the CLI would pick this checkpoint by itself."""
        if self.defaults().get(entry.family) == entry.path.resolve():
            return ""
        return f" -c {shlex.quote(display_path(entry.path))}"

    # --- VAE and CVAE ------------------------------------------------------------------------------------

    def _label(self, model, label: int | None) -> int | None:
        classes = model.config.num_classes
        if not classes:
            if label is not None:
                raise GencliError("this vae is not conditional; leave out the label")
            return None
        if label is None or not 0 <= label < classes:
            raise GencliError(f"a cvae needs a label between 0 and {classes - 1}")
        return label

    def vae_point(self, model_id: str, x: float, y: float, label: int | None = None) -> Picture:
        """The decoded image of the latent point (x, y) (dimensions 0 and 1; any others held at 0)."""
        entry, model, _ = self.load(model_id, VAE_FAMILIES)
        label = self._label(model, label)
        z = torch.zeros(1, model.config.latent_dim)
        z[0, :2] = torch.tensor([x, y])
        labels = None if label is None else torch.tensor([label])
        with torch.inference_mode():
            image = torch.sigmoid(model.decode(z.to(self.device), None if labels is None else labels.to(self.device)))
        filename = f"{entry.family}_point.png"
        latent = f"[[{x!r}, {y!r}{', 0.0' * (model.config.latent_dim - 2)}]]"
        if entry.source == "bundled":
            imports, where = "from gencli.api import bundled_checkpoint; ", f"bundled_checkpoint('{entry.name}')"
        else:
            imports, where = "", repr(display_path(entry.path))
        command = ("python -c \"import torch; from gencli.checkpoint import load_model; "
                   f"from gencli.images import save_image; {imports}"
                   f"m, _ = load_model({where}); "
                   f"save_image(torch.sigmoid(m.decode(torch.tensor({latent}), "
                   f"{'None' if label is None else f'torch.tensor([{label}])'})).detach()[0], '{filename}')\"")
        return Picture(png_bytes(image[0].cpu()), filename, command)

    def vae_grid(self, model_id: str, steps: int = 8, label: int | None = None) -> Picture:
        """`gencli latent-grid`: a steps x steps grid over dimensions 0 and 1."""
        entry, model, _ = self.load(model_id, VAE_FAMILIES)
        label = self._label(model, label)
        dims = None if model.config.latent_dim == 2 else (0, 1)
        filename = f"{entry.family}_latent_grid" + (f"_label{label}" if label is not None else "") + ".png"
        with tempfile.TemporaryDirectory(prefix="gencli-serve-") as tmp:
            path = api.latent_grid(entry.family, checkpoint=entry.path, steps=steps, label=label, dims=dims,
                                   out=Path(tmp) / filename, device=str(self.device))
            png = path.read_bytes()
        command = (f"gencli latent-grid -m {entry.family} --steps {steps}"
                   + (f" --label {label}" if label is not None else "") + (" --dims 0,1" if dims else "")
                   + self.checkpoint_option(entry) + f" -o {filename}")
        return Picture(png, filename, command)

    def vae_scatter(self, model_id: str) -> dict:
        """The test set's latent means (dimensions 0 and 1) and labels; computed once per checkpoint file."""
        entry, model, meta = self.load(model_id, VAE_FAMILIES)
        mtime = entry.path.stat().st_mtime
        cached = self._scatter.get(model_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        dataset = meta["extra"].get("dataset", "mnist")
        _, test = load_idx_dataset(dataset, self.data_dir, download=False)  # never download from a server
        means = []
        with torch.inference_mode():
            for start in range(0, len(test), 2000):
                x = test.images[start : start + 2000].to(self.device).float() / 255
                y = test.labels[start : start + 2000].to(self.device)
                means.append(model.encode(x, y)[0][:, :2].cpu())
        mu = torch.cat(means)
        result = {"dataset": dataset, "x": [round(v, 3) for v in mu[:, 0].tolist()],
                  "y": [round(v, 3) for v in mu[:, 1].tolist()], "labels": test.labels.tolist()}
        self._scatter[model_id] = (mtime, result)
        return result

    # --- StyleGAN ----------------------------------------------------------------------------------------

    @staticmethod
    def _class(G, label: int | None) -> tuple[int | None, str, str]:
        """(label, option, file-name part) for a stylegan request: a conditional model draws class `label`
        (default 0; the command shown names it), an unconditional one refuses a label."""
        classes = G.config.num_classes
        if not classes:
            if label is not None:
                raise GencliError("this stylegan is not conditional; leave out the label")
            return None, "", ""
        label = 0 if label is None else label
        if not 0 <= label < classes:
            raise GencliError(f"a conditional stylegan needs a label between 0 and {classes - 1}")
        return label, f" --label {label}", f"_label{label}"

    def stylegan_image(self, model_id: str, seed: int, truncation: float = 0.7, label: int | None = None,
                       w: str | None = None) -> Picture:
        """`gencli sample stylegan --seeds SEED --nrow 1 [--label K]`: one image, z and noise from the seed;
        `w`: a finished projection's id, whose w stands in place of the seed."""
        entry, G, _ = self.load(model_id, STYLEGANS)
        api.check_truncation(truncation)
        label, option, part = self._class(G, label)
        item, name, arg = self._seed_or_w(model_id, G, seed, w)
        stem = f"seed{seed}" if w is None else name  # a projection: named after its w file
        filename = f"stylegan_{stem}{part}.png"
        png = grid_png(stylegan.generate(G, [item], truncation, labels=label), nrow=1)
        command = (f"gencli sample stylegan --seeds {arg} --nrow 1 --truncation {truncation!r}{option}"
                   + self.checkpoint_option(entry) + f" -o {filename}")
        return Picture(png, filename, command)

    def _seed_or_w(self, model_id: str, G, seed: int, job_id: str | None) -> tuple[int | stylegan.FixedW, str, str]:
        """(item, file-name part, the command's argument): the seed, or the w of finished projection `job_id`
        (named in the command by its w file)."""
        if job_id is None:
            return seed, str(seed), str(seed)
        job = self.projection(model_id, job_id)
        w_file = job.file("w").filename
        if tuple(job.w.ws.shape) != (G.num_ws, G.w_avg.shape[-1]):  # the checkpoint file was replaced since
            raise GencliError(f"projection {job_id} does not fit this model any more; project the photo again")
        return job.w, item_label(Path(w_file)), shlex.quote(w_file)

    def stylegan_mix(self, model_id: str, row: int, col: int, cutoff: int, truncation: float = 0.7,
                     label: int | None = None, row_w: str | None = None, col_w: str | None = None) -> Picture:
        """`gencli style-mix` of one row seed (coarse styles) and one column seed (fine styles): a 2 x 2
        grid of blank corner, column image, row image and their mix. `row_w`/`col_w`: a finished
        projection's id, whose w stands in place of that seed (as its w file does in the command)."""
        entry, G, _ = self.load(model_id, STYLEGANS)
        api.check_truncation(truncation)
        label, option, part = self._class(G, label)
        (row, row_part, row_arg), (col, col_part, col_arg) = (self._seed_or_w(model_id, G, row, row_w),
                                                              self._seed_or_w(model_id, G, col, col_w))
        parts = stylegan.style_mix(G, [row], [col], cutoff, truncation, noise_seed=0, label=label)
        filename = f"stylegan_style_mix_{row_part}_{col_part}_cutoff{cutoff}{part}.png"
        png = grid_png(stylegan.style_mix_grid(*parts), nrow=2)
        command = (f"gencli style-mix --rows {row_arg} --cols {col_arg} --cutoff {cutoff} --truncation {truncation!r}"
                   f"{option}" + self.checkpoint_option(entry) + f" -o {filename}")
        return Picture(png, filename, command)

    def stylegan_interpolation(self, model_id: str, start: int, end: int, steps: int = 8,
                               truncation: float = 0.7, label: int | None = None, start_w: str | None = None,
                               end_w: str | None = None) -> Picture:
        """`gencli interpolate --seeds START,END`: a strip of `steps` images, linear in w. `start_w`/`end_w`:
        a finished projection's id, whose w stands in place of that seed."""
        entry, G, _ = self.load(model_id, STYLEGANS)
        api.check_truncation(truncation)
        label, option, part = self._class(G, label)
        (start, start_part, start_arg), (end, end_part, end_arg) = (self._seed_or_w(model_id, G, start, start_w),
                                                                    self._seed_or_w(model_id, G, end, end_w))
        filename = f"stylegan_interpolation_{start_part}_{end_part}{part}.png"
        png = grid_png(stylegan.interpolate(G, [start, end], steps, truncation, noise_seed=0, label=label), nrow=steps)
        command = (f"gencli interpolate --seeds {start_arg},{end_arg} --steps {steps} --truncation {truncation!r}"
                   f"{option}" + self.checkpoint_option(entry) + f" -o {filename}")
        return Picture(png, filename, command)

    # --- projection ------------------------------------------------------------------------------------

    def start_projection(self, model_id: str, data: bytes, steps: int = 200, label: int | None = None,
                         distance: str | None = None, filename: str = "upload.png") -> dict:
        """Start `gencli project` of the uploaded photo in a background thread and return the job's status.
        One runs at a time: another meanwhile is refused with 429. The newest PROJECTION_JOBS jobs are kept."""
        entry, G, _ = self.load(model_id, STYLEGANS)
        label, _, _ = self._class(G, label)
        read_upload(data)  # a bad upload is answered now, not by the job
        if not self._projecting.acquire(blocking=False):
            raise Refused("a projection is already running; try again when it has finished", 429, retry_after=5)
        try:
            job = ProjectionJob(uuid.uuid4().hex[:12], model_id, safe_filename(filename), steps)
            with self._lock:
                self._jobs[job.id] = job
                while len(self._jobs) > PROJECTION_JOBS:  # the oldest is never the running one
                    self._jobs.popitem(last=False)
            threading.Thread(target=run_projection, args=(job, entry.path, self.checkpoint_option(entry), data, label,
                                                          distance, self.device, self._projecting.release), daemon=True,
                             name=f"gencli-project-{job.id}").start()
        except BaseException:
            self._projecting.release()
            raise
        return job.describe()

    def projection(self, model_id: str, job_id: str) -> ProjectionJob:
        job = self._jobs.get(job_id)
        if job is None or job.model_id != model_id:
            raise NotFound(f"no projection {job_id!r} of model {model_id!r}; the server keeps the last "
                           f"{PROJECTION_JOBS}")
        return job

    # --- CycleGAN ----------------------------------------------------------------------------------------

    def cyclegan_translate(self, model_id: str, data: bytes, direction: str = "a2b",
                           filename: str = "upload.png", precision: str = "fp32") -> Picture:
        """`gencli translate NAME FILE --direction D`: the uploaded image at its own size, tiled above
        1024 x 1024 pixels. `filename` is the upload's name, used in the command text only."""
        entry, model, _ = self.load(model_id, ("cyclegan",))
        if direction not in DIRECTIONS:
            raise GencliError(f"unknown direction {direction!r}; use a2b or b2a")
        if precision not in cyclegan.PRECISIONS or (precision == "fp16" and self.device.type == "cpu"):
            raise GencliError(f"precision {precision!r} is not available on {self.device.type}; use fp32 or bf16")
        image = read_upload(data)
        generator = model.generator(direction)
        y = cyclegan.translate_tensor(generator, cyclegan.image_to_tensor(image), tile=TRANSLATE_TILE,
                                      precision=precision)
        stem = Path(safe_filename(filename)).stem or "upload"
        out = f"{stem}_{direction}.png"
        try:
            same = find_named_model(entry.name).resolve() == entry.path.resolve()
        except GencliError:
            same = False
        model_arg = entry.name if same else shlex.quote(display_path(entry.path))
        command = f"gencli translate {model_arg} {shlex.quote(safe_filename(filename))} --direction {direction}"
        command += f" --precision {precision} -o {out}"  # always named: the command's default is auto
        return Picture(png_bytes(to_unit(y[0])), out, command)
