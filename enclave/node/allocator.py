"""The process's memory allocator, tuned once for a node's bulk traffic.

A file transfer makes and frees 256 KiB buffers (sealed and opened pieces) at hundreds
of megabytes a second. With glibc's defaults a buffer that size comes from ``mmap`` or
from the top of a heap that is given back to the kernel as soon as it is free, so
every new piece faults its pages in and the kernel zeroes them again. Measured
(``tests/test_allocator.py`` counts the faults): opening 2 GiB of pieces while holding
a window of 32 costs ~125,000 page faults and 0.6 s of CPU by default, ~2,300 faults
and 0.4 s tuned.

Rules:
- Only glibc (Linux) is tuned; elsewhere ``tune`` does nothing and says so (False).
- Buffers under MMAP_THRESHOLD come from the heap; up to TRIM_THRESHOLD of freed heap
  stays with the process (per arena) instead of going back at once; the heap grows by
  TOP_PAD more than asked. Small values: a node's resident memory grows by at most a
  few tens of MiB for it, and only once that much was in use.
- Tuned once per process (the settings are process-wide), before the first session.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt options
MMAP_THRESHOLD = 2 << 20
TRIM_THRESHOLD = 16 << 20
TOP_PAD = 4 << 20

_tuned: bool | None = None


def tune() -> bool:
    """Tune glibc's malloc for bulk buffers; True if it is (now or before)."""
    global _tuned
    if _tuned is None:
        _tuned = _apply()
    return _tuned


def _apply() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    options = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(option, value) == 1 for option, value in options)
