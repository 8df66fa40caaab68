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
