"""CPU training: keep freed activation memory in the process instead of handing it back to the OS.

A training step allocates and frees the same activation-sized buffers every step (a few MB each).
glibc serves blocks above its mmap threshold (dynamic, at most 32 MiB) with a fresh mmap, and trims
free heap above its trim threshold: either way the next step touches new pages, and every 4 KiB
page is a page fault. On small VMs that can be thousands of faults a step, and it comes and goes
with the allocation history, so the same run is fast one time and slow the next.
`python bench/throughput.py --models "S1 CustomNet"` measures the effect (its "system malloc" row;
the README's speed section has the figures). Raising both thresholds makes the heap reuse the same
pages.

fit() calls `tune_cpu_allocator()` once per process when it trains on the CPU. The cost: up to
TRIM_THRESHOLD of freed memory stays mapped in the process. `ARCHSEARCH_MALLOC=system` leaves
glibc's defaults alone. Other C libraries (musl, macOS, Windows) are left untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV = "ARCHSEARCH_MALLOC"
MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap, so their pages are reused
TRIM_THRESHOLD = 512 << 20  # free heap above this much is returned to the OS
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)

_state: dict[str, bool] = {}


def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds (once per process). True when they are in effect."""
    if "tuned" in _state:
        return _state["tuned"]
    _state["tuned"] = False
    if os.environ.get(ENV, "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    # glibc before 2.35 refuses an mmap threshold above 32 MiB: fall back to that.
    mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
    trim_ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state["tuned"] = mmap_ok and trim_ok
    return _state["tuned"]
