"""Process-wide memory settings of the `gencli` command (not applied when gencli is used as a library)."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
KEEP_FREED_BYTES = 1 << 28


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every block from its heap, where freed blocks are reused, and to give
    back to the system only what passes 256 MiB free at the heap's top (more kept raised the peak of a
    1024 px `sample` towards 2 GB for no measurable gain). PyTorch's CPU allocator caches nothing, and glibc maps each block over 32 MB afresh, so every
    large tensor of a step (one 1024 px StyleGAN2 layer's activations: 128 MB) would be new pages that
    the kernel zero-fills on first touch: a fifth of the time of a 1024 px image on a 2-core CPU. Returns
    whether the setting took (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
