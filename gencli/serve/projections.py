"""The projections of `gencli serve`: a photo uploaded to the StyleGAN view, projected by `gencli project`
in a background thread whose progress the page polls."""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gencli.api import projection  # `gencli project` and its w files
from gencli.api.common import item_label  # how a w file heads a grid and names a file
from gencli.inference import stylegan
from gencli.serve.messages import Picture, Refused


@dataclass
class ProjectionJob:
    """One `gencli project` run in a background thread; its fields are written by that thread only."""

    id: str
    model_id: str
    photo: str  # the upload's safe name, as the command names the photo
    steps: int
    state: str = "running"  # running, done or error
    step: int = 0
    distance: float | None = None  # the current one
    distance_name: str | None = None  # known once the feature network is loaded
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    command: str = ""  # the command that writes the same files, once the distance is known
    files: dict[str, Picture] = field(default_factory=dict)  # image, compare, w: the command's files
    w: stylegan.FixedW | None = None

    def progress(self, step: int, steps: int, distance: float) -> None:
        self.step, self.distance = step, distance

    def describe(self) -> dict:
        return {"id": self.id, "model": self.model_id, "photo": self.photo, "state": self.state, "step": self.step,
                "steps": self.steps, "distance": self.distance, "distance_name": self.distance_name,
                "notes": list(self.notes), "error": self.error, "command": self.command,
                "w_file": self.files["w"].filename if "w" in self.files else None}

    def file(self, kind: str) -> Picture:
        if self.state != "done":
            what = "is still running" if self.state == "running" else f"failed: {self.error}"
            raise Refused(f"projection {self.id} {what}", 409)
        return self.files[kind]


def run_projection(job: ProjectionJob, checkpoint: Path, checkpoint_option: str, data: bytes, label: int | None,
                   distance: str | None, device, finished: Callable[[], None]) -> None:
    """The job's thread: `gencli project` of the photo `data` into the model at `checkpoint` (named in
    commands as `checkpoint_option`), writing into a temporary folder that is read back; then
    `finished()`, whatever happened."""
    try:
        # Resolved here first so that the status names the distance from the start and the command
        # names it (the command's own fallback may differ on another machine); the command loads it again.
        name, _, note = projection.feature_network(distance, device=device)
        job.distance_name = name
        if note:
            job.notes.append(note)
        with tempfile.TemporaryDirectory(prefix="gencli-serve-") as tmp:
            photo, out = Path(tmp) / job.photo, Path(tmp) / f"{Path(job.photo).stem}_projected.png"
            photo.write_bytes(data)
            job.command = (f"gencli project{checkpoint_option} {shlex.quote(job.photo)} "
                           f"--steps {job.steps} --distance {name}"
                           + ("" if label is None else f" --label {label}") + f" -o {out.name}")
            result = projection.project(checkpoint=checkpoint, target=photo, steps=job.steps, distance=name,
                                        label=label, out=out, device=str(device), progress=job.progress,
                                        on_note=job.notes.append)
            ws, noise, _ = projection.load_w(result["w_file"])
            job.w = stylegan.FixedW(ws, noise, item_label(Path(result["w_file"])))
            job.files = {kind: Picture(Path(result[key]).read_bytes(), Path(result[key]).name, job.command)
                         for kind, key in (("image", "output"), ("compare", "compare"), ("w", "w_file"))}
        job.distance = result["final_distance"]
        job.state = "done"
    except Exception as e:  # noqa: BLE001 - whatever fails is the job's to report; the server carries on
        job.error = str(e) or type(e).__name__
        job.state = "error"
    finally:
        finished()

