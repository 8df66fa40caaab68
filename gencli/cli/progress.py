"""How the training commands show progress and finish: a whole-run line (epochs, or kimg for StyleGAN)
with elapsed time and ETA above the bar of the epoch on a terminal; one plain line every --log-every
seconds and at every epoch end otherwise (nohup, CI, a log file); at the end the total time, the files
written and the next command to try. The library itself stays silent (gencli.training.loop.TrainingHooks)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from gencli.cli.shared import console

SHORT = {"G_adv": "adv", "G_cycle": "cyc", "G_identity": "idt"}  # loss names on the bar


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def speed(images: float, seconds: float) -> str:
    """Images per second, with one decimal below 10 (a CycleGAN at batch 1 makes about 1 per second)."""
    rate = images / max(seconds, 1e-9)
    return f"{rate:.1f} img/s" if rate < 10 else f"{rate:.0f} img/s"


def losses(logs: dict[str, float]) -> str:
    return "  ".join(f"{SHORT.get(k, k)} {v:.3g}" for k, v in logs.items())


class TrainingProgress:
    """Training hooks (gencli.training.loop.TrainingHooks) for the command line. `kimg`: StyleGAN's
    epochs are ticks, and the run is counted in thousands of images."""

    def __init__(self, *, log_every: float = 30.0, kimg: bool = False, terminal: bool | None = None):
        self.log_every, self.kimg = log_every, kimg
        self.terminal = console.is_terminal if terminal is None else terminal
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))  # images of a step, all processes together
        self.bar = None

    # --- where the run stands ---
    def _run_fraction(self) -> float:
        """Fraction of this session's epochs done."""
        epochs_here = self.epochs - self.first + 1
        within = self.step_no / max(self.steps, 1)
        return min(((self.epoch - self.first) + within) / max(epochs_here, 1), 1.0)

    def _run_line(self) -> str:
        elapsed = time.perf_counter() - self.t_start
        fraction = self._run_fraction()
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        if self.kimg and self.per_step:
            tick_images = self.steps * self.per_step
            done = ((self.epoch - 1) * tick_images + self.step_no * self.per_step) / 1000
            where = f"kimg {done:.1f}/{self.epochs * tick_images / 1000:.1f}"
        else:
            where = f"epoch {self.epoch}/{self.epochs}"
        return f"{where}  elapsed {clock(elapsed)}  run eta {clock(eta) if eta is not None else '?'}"

    # --- the hooks ---
    def note(self, message: str) -> None:
        """A line of the run's header (e.g. the precision picked and why)."""
        console.print(message, markup=False, highlight=False)

    def warning(self, message: str) -> None:
        """Something was repaired or dropped (e.g. a half-written metrics line); the run goes on."""
        console.print(f"Warning: {message}", markup=False, soft_wrap=True)

    def start(self, first_epoch: int, epochs: int) -> None:
        self.first, self.epochs = first_epoch, epochs
        self.epoch, self.steps, self.step_no, self.per_step = first_epoch, 1, 0, 0
        self.t_start = self.t_log = time.perf_counter()
        if self.terminal:  # the run line, then the epoch's bar, redrawn in place
            from rich.console import Group
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            from rich.table import Column
            from rich.text import Text

            run_line = self

            class RunLine:
                def __rich__(self):
                    return Text(run_line._run_line(), no_wrap=True, overflow="ellipsis")

            # At 80 columns the bar, the step count and the ETA keep their room; speed and losses get the
            # rest and end in an ellipsis when they do not fit.
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                TimeRemainingColumn(compact=True),
                                TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis",
                                                                                      ratio=1)),
                                console=console, expand=True)
            self.live = Live(Group(RunLine(), self.bar), console=console, transient=True, refresh_per_second=4)
            self.live.start()
            self.task = None

    def epoch_start(self, epoch: int, steps: int) -> None:
        self.epoch, self.steps, self.step_no = epoch, steps, 0
        self.t0, self.images = time.perf_counter(), 0
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            unit = "tick" if self.kimg else "epoch"
            self.task = self.bar.add_task(f"{unit} {epoch}/{self.epochs}", total=steps, info="")

    def step(self, step: int, logs: dict[str, float], images: int) -> None:
        self.step_no = step
        images *= self.world_size
        self.per_step = self.per_step or images
        self.images += images
        info = f"{speed(self.images, time.perf_counter() - self.t0)}  {losses(logs)}"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif time.perf_counter() - self.t_log >= self.log_every:
            self.t_log = time.perf_counter()
            console.print(f"{self._run_line()}  step {step}/{self.steps}  {info}", markup=False)

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "seconds"))
        self.step_no = self.steps
        line = f"epoch {epoch}/{self.epochs}  {shown}  ({metrics['seconds']:.1f} s)"
        if self.bar is not None:
            self.live.console.print(line, markup=False)
        else:
            self.t_log = time.perf_counter()
            console.print(f"{line}  [{self._run_line()}]", markup=False)

    def stop(self) -> None:
        if self.bar is not None:
            self.live.stop()
        self.seconds = time.perf_counter() - self.t_start if hasattr(self, "t_start") else 0.0


def training_progress(log_every: float, *, kimg: bool = False) -> TrainingProgress:
    return TrainingProgress(log_every=log_every, kimg=kimg)


@contextlib.contextmanager
def distributed_job(batch_size: int):
    """Around a training command: under torchrun, say (once) how the batch is split, and leave the
    process group when done."""
    from gencli.api import distributed  # imports torch

    w = distributed.world()
    if w.distributed and w.is_main:
        console.print(f"torchrun: {w.world_size} processes x batch {batch_size} = global batch "
                      f"{w.world_size * batch_size}", markup=False)
    try:
        yield
    finally:
        distributed.shutdown()


NEXT = {  # the next command to try after training a family
    "vae": "gencli sample vae -c {run}",
    "cvae": "gencli latent-grid cvae -c {run} --label 8",
    "stylegan": "gencli sample stylegan -c {run} --seeds 0-63",
    "cyclegan": "gencli translate {run} IMAGE",
}


def training_result(family: str, model: Path, progress: TrainingProgress) -> tuple[str, dict]:
    """What a training command prints at the end: (text, JSON result) with the total time, the files in
    the run folder, the last metrics and the next command to try."""
    run = Path(model).parent
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.startswith("."))
    samples = [f for f in files if f.startswith("samples")]
    top = [f for f in files if not f.startswith("samples")]
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
    metrics = json.loads(lines[-1]) if lines else {}
    seconds = getattr(progress, "seconds", 0.0)
    nxt = NEXT[family].format(run=run)
    listed = ", ".join(top) + (f", samples/ ({len(samples)} grid{'' if len(samples) == 1 else 's'})" if samples else "")
    text = f"Model written to {model}\nDone in {clock(seconds)}; {run}/ holds {listed}\nNext: {nxt}"
    return text, {"model": str(model), "run_dir": str(run), "seconds": round(seconds, 1), "files": files,
                  "metrics": metrics, "next": nxt}


class StageProgress:
    """`progress(stage, done, total)` of a long computation in stages (`gencli evaluate`: features of the
    reference images, samples, translations): on a terminal a bar per stage with its ETA; otherwise a
    plain line every `log_every` seconds and at the end of each stage. Use as a context manager."""

    def __init__(self, *, log_every: float = 30.0, terminal: bool | None = None):
        self.log_every = log_every
        self.terminal = console.is_terminal if terminal is None else terminal
        self.bar, self.tasks, self.started, self.t_log = None, {}, {}, time.perf_counter()

    def __enter__(self):
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                                transient=True)
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        start, first = self.started.setdefault(stage, (now, done))  # the rate counts from the first report
        if self.bar is not None:
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(stage, total=total, completed=done)
            self.bar.update(self.tasks[stage], completed=done, total=total)
        elif done >= total or now - self.t_log >= self.log_every:
            self.t_log = now
            elapsed = now - start
            eta = clock(elapsed * (total - done) / (done - first)) if done > first else "?"
            console.print(f"{stage} {done}/{total}  elapsed {clock(elapsed)}  eta {eta}", markup=False)
