"""Holding the model alone while timing, and a record of how undisturbed the timing was.

A lock passed as `exclusive` must be releasable from another thread (`threading.Lock`, not `RLock`): Gradio
resumes sync generators on any thread of its pool.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from transformers import PreTrainedModel

from visualizer.analysis.kv_cache import TimingConditions


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


class ExclusiveAccess:
    """Hold `exclusive` while timing: a lock (`acquire(blocking=False)`/`release()`) or a context manager.

    A context manager whose `__enter__` returns a bool (the session's `lock.exclusive()` yields "was the
    model free at once") reports that bool; otherwise an entry that took under 10 ms counts as free.
    """

    def __init__(self, exclusive: Any | None):
        self._exclusive = exclusive
        self._held = False
        self.waited_s = 0.0
        self.acquired_without_waiting: bool | None = None

    @property
    def exclusive(self) -> bool:
        return self._exclusive is not None

    @property
    def is_lock(self) -> bool:
        return hasattr(self._exclusive, "acquire") and hasattr(self._exclusive, "release")

    def try_acquire(self) -> bool:
        """True when nothing more is needed (no lock, or a lock that was free); else call `acquire()`."""
        if self._exclusive is None:
            return True
        if self.is_lock and self._exclusive.acquire(blocking=False):
            self._held, self.acquired_without_waiting = True, True
            return True
        return False

    def acquire(self) -> None:
        """Blocking acquire; records how long it waited."""
        start = time.perf_counter()
        if self.is_lock:
            self._exclusive.acquire()
            entered = False  # the non-blocking try failed, so this one waited
        else:
            entered = self._exclusive.__enter__()
        self._held = True
        self.waited_s = time.perf_counter() - start
        self.acquired_without_waiting = entered if isinstance(entered, bool) else self.waited_s < 0.01

    def waiting_message(self) -> str:
        if self.is_lock:
            return ("Another timing run is using the model; waiting for it to finish so the two don't slow "
                    "each other down…")
        return "Getting exclusive use of the model (requests already running finish first)…"

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self.is_lock:
            self._exclusive.release()
        else:
            self._exclusive.__exit__(None, None, None)


def timing_conditions(access: ExclusiveAccess, model: PreTrainedModel, load_before: float | None,
                      wall_s: float, cpu_s: float) -> TimingConditions:
    """What the timing ran under; on a CPU the share of a core the timed work got (CPU time / wall time)."""
    cpu_share = cpu_s / wall_s if model.device.type == "cpu" and wall_s > 0 else None
    return TimingConditions(
        exclusive=access.exclusive, acquired_without_waiting=access.acquired_without_waiting,
        waited_s=access.waited_s, device=str(model.device), cpu_count=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(), load_before=load_before, load_after=load_average(),
        cpu_share=cpu_share)
