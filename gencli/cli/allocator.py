"""Process-wide memory settings of the `gencli` command (not applied when gencli is used as a library)."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc's mallopt parameters (malloc.h)
KEEP_FREED_BYTES = (1 << 31) - 1  # the largest value: never trim


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every block from its heap, where freed blocks are reused, never to give
    the freed top of the heap back to the system (the process keeps its peak, which it reaches again with
    the next image), and to use one heap for all threads (per-thread heaps each kept their own freed
    blocks: the peak of a 1024 px `sample` varied from 1.6 to 2.7 GB). PyTorch's CPU allocator caches
    nothing, and glibc maps each block over 32 MB afresh, so every large tensor of a step (one 1024 px
    StyleGAN2 layer's activations: 128 MB) would be new pages that the kernel zero-fills on first touch:
    a fifth of the time of a 1024 px image on a 2-core CPU; giving back what passed 256 MiB still cost
    65,000 page faults per image. Returns whether the setting took (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    return all(mallopt(option, value) for option, value in
               ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP_FREED_BYTES)))
