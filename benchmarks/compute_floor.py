"""The floor that arithmetic sets on a training step: its FLOPs at the machine's float32 matmul peak.

Shared by the speed benchmarks. A step whose measured time is close to this floor is bound by the
arithmetic itself, so only fewer FLOPs or faster arithmetic (hardware with fast reduced precision) can
speed it up.
"""

from __future__ import annotations

import time
from typing import Callable

import torch


def matmul_gflops(n: int = 1024, repeats: int = 5, tries: int = 5) -> float:
    """Float32 matmul throughput (GFLOP/s) of a large square product on the CPU: the best of a few
    tries, since other load on the machine only ever slows a try down."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(tries):
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 * repeats / best / 1e9


def step_flops(step: Callable[[], object]) -> int:
    """FLOPs of the matrix products and convolutions of one call, forward and backward, as counted by
    torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()
