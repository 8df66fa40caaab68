"""The training loop shared by every family.

A family contributes a *task* object (see `Task`): its networks and optimizers, the batches of an
epoch, one `train_step`, and `end_epoch` (evaluation and figures). The loop here owns everything
else: resume, metrics.jsonl, loss.png, checkpoints after every epoch, and the safety checks: a loss
that is not finite stops the run (naming the epoch and step) before anything is saved, weights are checked
to be finite before they are written, the checkpoint pair is written so that it always matches (see
gencli.checkpoint), and a write that fails says what failed while the last good checkpoint stays.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from gencli import distributed
from gencli.checkpoint import MODEL_FILE, RESUME_FILE, load_resume, pair_split, save_checkpoint, save_model
from gencli.errors import GencliError
from gencli.files import atomic_write, remove_stale_temporaries, write_failure
from gencli.images import plot_curves

METRICS_FILE = "metrics.jsonl"


class Task(Protocol):
    family: str
    config: Any
    seed: int
    curves: tuple | dict  # metric keys (or (key, label) pairs) drawn in loss.png; a dict: one panel per entry
    metadata: dict  # stored with the model (model.safetensors' "extra") and restored on resume

    def epoch_batches(self, epoch: int) -> list: ...  # index tensors, or tuples of them
    def train_step(self, batch) -> dict[str, float]: ...
    def end_epoch(self, epoch: int, run_dir: Path, final: bool) -> dict[str, float]: ...
    def networks(self) -> dict[str, nn.Module]: ...
    def optimizers(self) -> dict[str, Any]: ...
    def exported_model(self) -> tuple[nn.Module, dict]: ...  # what model.safetensors holds, and its metadata
    # Optional: task_state() -> dict and load_task_state(dict), small JSON state that resume needs
    # besides the networks and optimizers (StyleGAN's last R1 value); exported_discriminator() -> nn.Module,
    # a discriminator model.safetensors keeps beside the model (StyleGAN2, so that it can be fine-tuned).


@dataclass
class TrainingPlan:
    """What a training would do, resolved without touching anything (what `--dry-run` prints): the options
    as the run would use them, where it writes, how far it goes, on which device in which precision, and the
    network config."""

    family: str
    options: Any  # the family's options (gencli.training.options), architecture fields filled in
    run_dir: Path
    resume: bool
    epochs: int  # loop epochs in all (StyleGAN: ticks)
    done: int  # epochs finished already (a resumed run)
    device: str
    precision: str
    precision_reason: str
    config: Any  # the network config (a dataclass of gencli.models)

    def as_dict(self) -> dict:
        return {"family": self.family, "run_dir": str(self.run_dir), "resume": self.resume, "epochs": self.epochs,
                "done": self.done, "device": self.device, "precision": self.precision,
                "precision_reason": self.precision_reason, "options": self.options.to_dict(),
                "config": dataclasses.asdict(self.config)}


class TrainingHooks:
    """Hooks the loop calls; the CLI renders them with rich, the library default is silent."""

    def start(self, first_epoch: int, epochs: int) -> None: ...
    def epoch_start(self, epoch: int, steps: int) -> None: ...
    def step(self, step: int, logs: dict[str, float], images: int) -> None: ...
    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def stop(self) -> None: ...
    def note(self, message: str) -> None: ...  # a line of the run's header, e.g. the precision picked
    def warning(self, message: str) -> None: ...  # something was repaired or dropped; the run goes on


def batch_images(batch) -> int:
    """Images in a batch: an index tensor, or a tuple of them (one per domain) counted by the first."""
    return len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)


def read_metrics(run_dir: Path, dropped: list[str] | None = None) -> list[dict]:
    """The rows of metrics.jsonl. A line that is not a JSON object with an integer epoch (the half-written
    last line of a killed or failed write) is left out, and counted in `dropped` when given."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
        elif dropped is not None:
            dropped.append(line)
    return rows


def _write_metrics(run_dir: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(Path(run_dir) / METRICS_FILE, lambda tmp: Path(tmp).write_text(text))


def training_state(task: Task, epoch: int) -> dict:
    """resume.pt: networks, optimizers, the RNG, the model metadata (key "extra") and the task's own state."""
    state = {
        "epoch": epoch,
        "networks": {k: m.state_dict() for k, m in task.networks().items()},
        "optimizers": {k: o.state_dict() for k, o in task.optimizers().items()},
        "rng": torch.get_rng_state(),
        "extra": json.dumps(task.metadata),
    }
    if hasattr(task, "task_state"):
        state["task_state"] = json.dumps(task.task_state())
    return state


def restore_state(task: Task, state: dict) -> int:
    for k, m in task.networks().items():
        m.load_state_dict(state["networks"][k])
    for k, o in task.optimizers().items():
        o.load_state_dict(state["optimizers"][k])
    torch.set_rng_state(state["rng"])
    task.metadata = json.loads(state["extra"])
    if hasattr(task, "load_task_state"):
        task.load_task_state(json.loads(state.get("task_state", "{}")))
    return int(state["epoch"])


def finite_weights(task: Task) -> bool:
    return all(torch.isfinite(t).all() for m in task.networks().values() for t in m.state_dict().values()
               if t.is_floating_point())


def fit(task: Task, run_dir: Path, *, epochs: int, resume: bool = False, plot_every: int = 10,
        progress: TrainingHooks | None = None, header: tuple[str, ...] = ()) -> Path:
    """Train `task` up to `epochs` (counting epochs already done when resuming); returns the checkpoint path.
    `header`: lines shown (by rank 0) before training starts, such as the precision picked and why.

    After every epoch: one line in metrics.jsonl, then model.safetensors and resume.pt as a pair, so an
    interrupted run loses at most the epoch in progress.
    """
    main = distributed.world().is_main  # under torchrun only rank 0 writes and reports
    hooks = progress if progress is not None and main else TrainingHooks()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    if main:
        for folder in (run_dir, run_dir / "samples"):  # left by a killed run
            remove_stale_temporaries(folder)
    if resume:
        done = restore_state(task, load_resume(run_dir / RESUME_FILE))
        if main:
            # Drop metrics of an epoch that was interrupted after its line was written, and a half line.
            dropped: list[str] = []
            rows = read_metrics(run_dir, dropped)
            if dropped:
                hooks.warning(f"{run_dir / METRICS_FILE}: dropped {len(dropped)} unreadable line(s) "
                              "(an interrupted write)")
            _write_metrics(run_dir, [r for r in rows if r["epoch"] <= done])
            if pair_split(run_dir, done):
                # Killed between the pair's two renames: resume.pt is an epoch ahead; bring the model level.
                model, metadata = task.exported_model()
                save_model(run_dir / MODEL_FILE, task.family, model, task.config, epoch=done, seed=task.seed,
                           extra=metadata, discriminator=_discriminator(task))
    elif main and (run_dir / METRICS_FILE).exists():
        (run_dir / METRICS_FILE).unlink()
    distributed.barrier()

    for line in header:
        hooks.note(line)
    hooks.start(done + 1, epochs)
    try:
        for epoch in range(done + 1, epochs + 1):
            # --- one pass over the training data ---
            batches = task.epoch_batches(epoch)
            hooks.epoch_start(epoch, len(batches))
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            for step, batch in enumerate(batches, 1):
                logs = task.train_step(batch)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                if not math.isfinite(sum(logs.values())):  # the values are Python floats already: no sync
                    bad = next(k for k, v in logs.items() if not math.isfinite(v))
                    raise GencliError(f"training diverged at epoch {epoch}, step {step}: {bad} is {logs[bad]}; "
                                      f"nothing of this epoch was saved ({_kept(done)}); try a lower --lr")
                hooks.step(step, logs, batch_images(batch))
            seconds = time.perf_counter() - t0
            metrics = {"epoch": epoch, **{f"train_{k}": v / max(len(batches), 1) for k, v in sums.items()}}
            if not finite_weights(task):
                raise GencliError(f"training diverged: the weights are not finite after epoch {epoch}; nothing "
                                  f"of this epoch was saved ({_kept(done)}); try a lower --lr")

            # --- evaluation, figures and checkpoints (rank 0) ---
            if main:
                final = epoch == epochs
                try:
                    metrics.update(task.end_epoch(epoch, run_dir, final))
                    metrics["seconds"] = round(seconds, 3)
                    with open(run_dir / METRICS_FILE, "a") as f:
                        f.write(json.dumps(metrics) + "\n")
                    if final or epoch % plot_every == 0:
                        plot_curves(read_metrics(run_dir), task.curves, run_dir / "loss.png", title=task.family)
                    model, metadata = task.exported_model()
                    save_checkpoint(run_dir, task.family, model, task.config, epoch=epoch, seed=task.seed,
                                    extra=metadata, state=training_state(task, epoch), discriminator=_discriminator(task))
                except GencliError as e:
                    raise GencliError(f"{e} (epoch {epoch}); {_kept(done)}") from None
                except OSError as e:
                    raise GencliError(f"cannot write the outputs of epoch {epoch} to {run_dir}: "
                                      f"{write_failure(e)}; {_kept(done)}") from None
                done = epoch
                hooks.epoch_end(epoch, metrics)
            else:
                done = epoch
            distributed.barrier()
    finally:
        hooks.stop()
    return run_dir / MODEL_FILE


def _discriminator(task: Task) -> nn.Module | None:
    return task.exported_discriminator() if hasattr(task, "exported_discriminator") else None


def _kept(done: int) -> str:
    return f"the checkpoint of epoch {done} is kept" if done else "no checkpoint had been written yet"
