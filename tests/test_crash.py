"""Faults during training: SIGKILL at random moments (also inside checkpoint writes), two trainings into one
run folder, and a full disk (a file-size limit). Each ends with the run resumable and nothing lost.

The kills go to processes forked from one "zygote" that has imported torch and gencli once, so each of the
many runs starts in milliseconds rather than seconds; the zygote itself never trains. It reaps a run only when
told to (`Zygote.wait`), so a kill sent before then reaches that run, or its zombie if it has already ended,
and never a process that reused its pid.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import one_line_error, run, tiny_train, write_mnist

ROOT = Path(__file__).resolve().parents[1]

ZYGOTE = r'''
import json, os, sys, time
import torch
torch.set_num_threads(1)
from gencli import api
from gencli.errors import GencliError, NothingToDo
import torch._dynamo  # what Adam imports on first use (seconds)
from gencli.images import _pyplot
_pyplot()  # and matplotlib: imported once, here
print("ready", flush=True)

pause = float(os.environ.get("RENAME_PAUSE", "0"))
replace = os.replace

def slow_replace(src, dst):  # widens the moments between a checkpoint's temporary files and their renames
    time.sleep(pause)
    replace(src, dst)

for line in iter(sys.stdin.readline, ""):
    options = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.replace = slow_replace
        try:
            api.train_vae(**options)
            code = 0
        except NothingToDo:
            code = 0
        except GencliError as e:
            print(f"Error: {e}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    print(pid, flush=True)
    sys.stdin.readline()  # the test is done with this pid (it may have killed it): reap it now
    print(os.waitpid(pid, 0)[1], flush=True)
'''
READY = "ready"


class Zygote:
    def __init__(self, tmp_path: Path, pause: float = 0.0):
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": "1", "RENAME_PAUSE": str(pause)}
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        assert self.proc.stdout.readline().strip() == READY, self.close()

    def start(self, **options) -> int:
        self.proc.stdin.write(json.dumps(options) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait(self) -> int:
        """The wait status of the last run (0: finished; SIGKILL: killed), once it has ended; until this is
        called, its pid stays its own."""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> str:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        return self.proc.stderr.read()


@pytest.fixture
def zygote(tmp_path):
    z = Zygote(tmp_path, pause=0.02)
    yield z
    z.close()


def options(data: Path, out: Path, epochs: int, **kw) -> dict:
    return dict(data_dir=str(data), run_dir=str(out), epochs=epochs, batch_size=50, hidden=[16], seed=0,
                device="cpu", **kw)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def checkpoint_write_started(run_dir: Path, timeout: float) -> bool:
    """Wait until a temporary checkpoint file appears in `run_dir` (a pair being written)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if any(run_dir.glob(".resume.pt.*.tmp")) or any(run_dir.glob(".model.safetensors.*.tmp")):
            return True
        time.sleep(0.002)
    return False


def sleep_in_run(run_dir: Path, seconds: float, epochs: int) -> None:
    """Sleep `seconds`, or less: until the run in `run_dir` nears its end (the last epoch's samples are
    written, its checkpoint pair is next), so that a moment drawn for a run faster than measured still falls
    within it."""
    deadline, last = time.perf_counter() + seconds, run_dir / "samples" / f"epoch_{epochs:03d}.png"
    while time.perf_counter() < deadline and not last.exists():
        time.sleep(0.002)


def test_killed_at_random_moments_resumes_to_the_same_weights(tmp_path, zygote):
    data = write_mnist(tmp_path / "data" / "mnist", n_train=200, n_test=50).parent
    epochs = 16
    zygote.start(**options(data, tmp_path / "reference", epochs))
    t0 = time.perf_counter()
    while not (tmp_path / "reference" / "resume.pt").exists():
        time.sleep(0.002)
    first = time.perf_counter() - t0  # start-up and the first epoch
    assert zygote.wait() == 0
    epoch = (time.perf_counter() - t0 - first) / (epochs - 1)

    # A run may end before its kills are spent (one meant for its last pair came after it): it is checked as
    # any other, and another run takes the rest of the kills.
    reference, rng, kills, resumed, inside, runs = weights(tmp_path / "reference"), random.Random(0), 0, 0, 0, 0
    while kills < 10:
        runs += 1
        assert runs <= 3, f"only {kills} kills landed in {runs - 1} runs"
        out = tmp_path / f"killed{runs}"
        while True:
            resume = (out / "resume.pt").exists()
            resumed += resume
            pid = zygote.start(**options(data, out, epochs, resume=resume, overwrite=not resume))
            if kills < 12:
                if kills % 2:  # while writing the temporary files of a pair, or between its renames
                    sleep_in_run(out, rng.uniform(0.5, 1.0) * first + rng.uniform(0, 1.5) * epoch, epochs)
                    checkpoint_write_started(out, 5 * epoch + 2)
                    time.sleep(rng.uniform(0, 0.05))
                else:  # anywhere
                    sleep_in_run(out, rng.uniform(0.3, 1.0) * first + rng.uniform(0, 2) * epoch, epochs)
                os.kill(pid, signal.SIGKILL)  # not reaped before zygote.wait(): the pid is still this run's
            status = zygote.wait()
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                kills += 1
                inside += any(out.glob(".resume.pt.*.tmp")) or any(out.glob(".model.safetensors.*.tmp"))  # mid-pair
                continue
            assert status == 0, zygote.close()
            break  # ended on its own: after the last kill, or before a kill came
        result = weights(out)
        assert reference.keys() == result.keys()
        assert all(torch.equal(reference[k], result[k]) for k in reference)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
        assert not list(out.glob(".*.tmp")) and not list(out.glob("samples/.*.tmp"))
    assert inside >= 1 and resumed >= 5


def test_a_pair_split_by_a_kill_between_its_renames_resumes(data_dir, tmp_path):
    """resume.pt renamed, the model not yet: --resume follows resume.pt and brings the model level; in the
    first epoch there is no model at all yet."""
    from gencli.checkpoint import read_metadata

    reference = tiny_train("vae", data_dir, tmp_path / "reference", epochs=3).parent
    split = tiny_train("vae", data_dir, tmp_path / "split", epochs=1).parent
    first_model = (split / "model.safetensors").read_bytes()
    tiny_train("vae", data_dir, split, epochs=2, resume=True)
    (split / "model.safetensors").write_bytes(first_model)  # the state of a kill between the renames
    tiny_train("vae", data_dir, split, epochs=3, resume=True)
    assert read_metadata(split / "model.safetensors")["epoch"] == 3
    assert all(torch.equal(a, b) for a, b in zip(weights(reference).values(), weights(split).values()))

    fresh = tiny_train("vae", data_dir, tmp_path / "fresh", epochs=1).parent
    (fresh / "model.safetensors").unlink()  # killed between the renames of the very first pair
    tiny_train("vae", data_dir, fresh, epochs=3, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(weights(reference).values(), weights(fresh).values()))


class Killed(BaseException):
    """Ends a training at a chosen moment as SIGKILL would: gencli catches it nowhere (its clean-ups re-raise)."""


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_kill_between_the_renames_of_the_last_pair_is_completed_by_resume(data_dir, tmp_path, monkeypatch, epochs):
    """The last epoch's resume.pt renamed, its model not (after the first epoch: no model at all): no epoch is
    left to train, yet --resume writes that epoch's model (the averaged weights resume.pt holds) instead of
    finding nothing to do."""
    from gencli.checkpoint import load_resume, read_metadata

    out, replace, renamed = tmp_path / "run", os.replace, []

    def replace_then_die(src, dst):
        replace(src, dst)
        renamed.append(Path(dst).name)
        if renamed.count("resume.pt") == epochs:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace_then_die)
        with pytest.raises(Killed):
            tiny_train("vae", data_dir, out, epochs=epochs)
    state = load_resume(out / "resume.pt")
    assert state["epoch"] == epochs and renamed.count("model.safetensors") == epochs - 1

    resume = ("train", "vae", "--data-dir", data_dir, "--out", out, "--epochs", epochs, "--device", "cpu", "--resume")
    result = run(*resume)
    assert result.exit_code == 0 and "Nothing to do" not in result.output, result.output
    assert read_metadata(out / "model.safetensors")["epoch"] == epochs
    model, ema = weights(out), state["networks"]["ema"]
    assert model.keys() == ema.keys() and all(torch.equal(model[k], ema[k]) for k in ema)
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == \
        list(range(1, epochs + 1))
    assert "Nothing to do" in run(*resume).output  # now the run is complete


def test_a_second_training_into_a_busy_folder_is_refused_at_once(tmp_path, zygote):
    data = write_mnist(tmp_path / "data" / "mnist", n_train=200, n_test=50).parent
    out = tmp_path / "run"
    zygote.start(**options(data, out, 30))
    deadline = time.time() + 60
    while not (out / "options.json").exists():  # the first holds the folder once it writes its options
        assert time.time() < deadline
        time.sleep(0.01)
    for extra in ([], ["--overwrite"], ["--resume"]):
        t0 = time.perf_counter()
        result = run("train", "vae", "--data-dir", data, "--out", out, "--epochs", 30, "--device", "cpu", *extra)
        one_line_error(result, "in use by another training")
        assert time.perf_counter() - t0 < 10
    assert zygote.wait() == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 31))


def test_a_full_disk_keeps_the_last_checkpoint_pair(data_dir, tmp_path):
    out = tmp_path / "run"
    tiny_train("vae", data_dir, out, epochs=1, hidden=(64,))
    pair = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in ("model.safetensors", "resume.pt")}
    limit = (out / "model.safetensors").stat().st_size // 2  # smaller than either checkpoint file

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "gencli", "train", "vae", "--data-dir", str(data_dir), "--out", str(out),
               "--batch-size", "50", "--hidden", "64", "--device", "cpu", "--epochs", "2", "--resume"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=small_disk)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("precision ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("Error: cannot write") and "File too large" in lines[0], lines[0]
    assert "the checkpoint of epoch 1 is kept" in lines[0]
    assert pair == {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in pair}
    assert not list(out.glob(".*.tmp"))
    tiny_train("vae", data_dir, out, epochs=2, hidden=(64,), resume=True)  # with room again, it goes on
