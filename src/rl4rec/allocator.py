"""Keep freed memory in the process heap instead of returning it to the OS (glibc only).

Why: a training step allocates and frees the same tensors of a few to a few dozen MB every
update (activations of 20 trajectories x 100 turns x 256 units per seed). glibc serves blocks
above its mmap threshold with fresh ``mmap`` pages and unmaps them on free, so every step paid
the page faults of first-touching them again. Raising the thresholds lets the heap recycle the
blocks instead (benchmarks/bench_slate_versions.py measures it with the other speed changes).
Set ``RL4REC_KEEP_FREED_MEMORY=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit systems
_TRIM_THRESHOLD = 1 << 30
_TOP_PAD = 64 << 20
_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; False where that is not possible."""
    global _done
    if _done:
        return True
    if os.environ.get("RL4REC_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    ok = all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD)))
    _done = ok
    return ok
