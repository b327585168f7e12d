"""The two ways of generating that the KV-cache tab compares, and the order they take turns in."""

from __future__ import annotations

from typing import Literal

Mode = Literal["cached", "uncached"]
CACHED: Mode = "cached"  # use_cache=True: a prefill, then one new token per step
UNCACHED: Mode = "uncached"  # use_cache=False: every step re-runs the whole sequence so far
MODES: tuple[Mode, Mode] = (CACHED, UNCACHED)

FIT_DEGREE: dict[Mode, int] = {CACHED: 1, UNCACHED: 2}  # total time: linear in N with the cache, quadratic without


def mode_order(repeat: int) -> tuple[Mode, Mode]:
    """Cached first in even repeats, uncached first in odd ones (balances drift in machine load).

    >>> mode_order(0), mode_order(1)
    (('cached', 'uncached'), ('uncached', 'cached'))
    """
    return (CACHED, UNCACHED) if repeat % 2 == 0 else (UNCACHED, CACHED)
