"""Keep freed memory in the process instead of handing it back to the OS after every large free.

Every request runs in a worker thread: Gradio's thread pool, and the KV-cache race's generate() thread.
glibc gives each thread its own malloc arena and, with its default dynamic thresholds, returns freed
memory of those arenas to the OS; the next forward pass page-faults it back in and the kernel zeroes every
page again. Measured on this project's Phi-3-shaped random model (32 layers x 32 heads, d 256, 1 torch
thread), one uncached 140-token generate(): about 30 minor page faults on the main thread against
415,000-770,000 in a fresh thread, which cost the thread ~5% of its time and made the KV race read slower
than plain generate() timed in a notebook. With the thresholds fixed below, the same run took about
12,000 faults in the first fresh thread and 11 in the next. `benchmarks/kv_cache.py` times the app's race
against plain generate() with this on (as the app runs) or off (`--no-malloc-tuning`).

Fixed thresholds: blocks under 32 MiB (glibc's own upper bound for its dynamic mmap threshold) come from
the arenas, whose free memory is kept up to 256 MiB per arena. Larger blocks (eager attention weights of
long prompts on big models) are still mapped and unmapped on their own.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20
_OVERRIDES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

_lock = threading.Lock()
_applied: bool | None = None


def user_chose_malloc_settings(environ: Mapping[str, str] = os.environ) -> bool:
    """The user set glibc's thresholds themselves (environment variables or GLIBC_TUNABLES): leave them."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    return any(name in environ for name in _OVERRIDES) or any(
        key in tunables for key in ("glibc.malloc.trim_threshold", "glibc.malloc.mmap_threshold"))


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); True when they are set.

    A no-op (False) off glibc (macOS, Windows, musl) and when the user chose the settings themselves.
    """
    global _applied
    with _lock:
        if _applied is None:
            _applied = _apply()
        return _applied


def _apply() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or user_chose_malloc_settings():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD,
                                                                             TRIM_THRESHOLD_BYTES) == 1
    if ok:
        log.info("glibc malloc: mmap threshold %d MiB, trim threshold %d MiB (worker threads keep freed memory)",
                 MMAP_THRESHOLD_BYTES >> 20, TRIM_THRESHOLD_BYTES >> 20)
    return ok
