import platform
import subprocess
import sys

import pytest

PROGRAM = """
import sys, torch
from gencli.cli.allocator import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = resident()
x = torch.ones(2**24)  # 64 MiB, touched
del x
print((resident() - before) // 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_cli_keeps_freed_blocks_for_reuse():
    """On, a freed 64 MiB tensor stays in the heap for the next one (no fresh zero-filled pages);
    off (a library user's process), glibc unmaps it at once."""
    kept = {mode: int(subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                                     check=True).stdout) for mode in ("on", "off")}
    assert kept["on"] >= 60 and kept["off"] <= 4, kept


EXIT_PROGRAM = """
import atexit, sys, threading, time
import torch
from gencli.cli import exit_now
atexit.register(lambda: print("teardown", flush=True))
print("work done")  # buffered: a pipe
if sys.argv[1] == "thread":  # a thread still writing: the exit waits for it
    def write():
        time.sleep(0.3)
        print("thread done")
    threading.Thread(target=write).start()
exit_now(3)
"""


@pytest.mark.parametrize("mode", ["alone", "thread"])
def test_the_cli_exits_without_teardown_only_when_nothing_else_runs(mode):
    """After its work, the command exits at once (no atexit teardown, which costs PyTorch half a second)
    with its status and its output flushed; with another thread still running, it exits normally."""
    result = subprocess.run([sys.executable, "-c", EXIT_PROGRAM, mode], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    if mode == "alone":
        assert result.stdout == "work done\n"
    else:
        assert result.stdout == "work done\nthread done\nteardown\n"


def test_a_command_run_as_a_program_gives_its_output_and_status(tmp_path):
    """`python -m gencli` (exit through exit_now): the PNGs, the last line, status 0 (the model named by the
    id `gencli models` lists, as -c); a bad checkpoint: one line, status 1."""
    ok = subprocess.run([sys.executable, "-m", "gencli", "sample", "stylegan", "-c", "bundled:stylegan", "--seeds",
                         "0-2", "--outdir", str(tmp_path / "out")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png"]
    assert f"written to {tmp_path / 'out'}" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "gencli", "sample", "stylegan", "-c", str(tmp_path / "none.safetensors")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("Error:") and len(bad.stderr.strip().splitlines()) == 1
