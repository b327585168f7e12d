"""Checks for numbers that arrive from the page or the API: any value can be sent, whatever a slider allows."""

from __future__ import annotations

import math
from numbers import Integral, Real


def whole_number(value, name: str, low: int, high: int) -> int:
    """An int in [low, high]; floats that are whole (3.0, as JSON sliders send) are accepted."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}")
    if not isinstance(value, Integral):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low:,} to {high:,}, got {value:,}")
    return value


def real_number(value, name: str, low: float, high: float) -> float:
    """A finite float in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number from {low:g} to {high:g}, got {value!r}")
    if not low <= float(value) <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g}, got {value!r}")
    return float(value)
