"""Numbers for people: byte sizes, counts, durations and shares, one way across every tab.

Three significant digits (four for 1,000-1,023 of a binary unit), never exponent notation, trailing zeros
dropped, thousands separated; a value that rounds up to the next unit is written in that unit ("1 M", not
"1,000 K"; "1 s", not "1e+03 ms").
"""

from __future__ import annotations

import math

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_COUNT_UNITS = ((1e15, " P"), (1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K"))


def significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits in fixed notation.

    >>> significant(1.5), significant(375.0), significant(0.00123), significant(12345.6), significant(0)
    ('1.5', '375', '0.00123', '12,346', '0')
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _rounded(value: float, digits: int = 3) -> float:
    """The value `significant` shows: 999.9 -> 1000.0, so it is written as 1 of the next unit."""
    return float(f"{value:.{digits}g}")


def format_bytes(n_bytes: float) -> str:
    """Binary units, as memory is sized.

    >>> format_bytes(512), format_bytes(393_216), format_bytes(393_216_000), format_bytes(1.5 * 2**30)
    ('512 B', '384 KiB', '375 MiB', '1.5 GiB')
    >>> format_bytes(1_048_000), format_bytes(17 * 2**30), format_bytes(-2048)
    ('1,023 KiB', '17 GiB', '-2 KiB')
    """
    value = float(n_bytes)
    for unit in _BYTE_UNITS:
        if unit == "B" and abs(value) < 1024:
            return f"{value:,.0f} B"
        if abs(_rounded(value)) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{significant(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_count(n: float) -> str:
    """Decimal units, as parameters are counted (B = billion).

    >>> format_count(3_821_079_552), format_count(124_439_808), format_count(39_808), format_count(512)
    ('3.82 B', '124 M', '39.8 K', '512')
    >>> format_count(999_999), format_count(0.5)
    ('1 M', '0.5')
    """
    for scale, suffix in _COUNT_UNITS:
        if abs(_rounded(n)) >= scale:
            return f"{significant(n / scale)}{suffix}"
    return f"{n:g}"


def format_seconds(seconds: float) -> str:
    """Units as %timeit prints them.

    >>> format_seconds(21.9), format_seconds(0.00666), format_seconds(2e-5), format_seconds(123.4)
    ('21.9 s', '6.66 ms', '20 µs', '123 s')
    >>> format_seconds(0.9999), format_seconds(0)
    ('1 s', '0 µs')
    """
    for scale, unit in ((1.0, "s"), (1e-3, "ms")):
        if abs(_rounded(seconds)) >= scale:
            return f"{significant(seconds / scale)} {unit}"
    return f"{significant(seconds * 1e6)} µs"


def format_share(share: float) -> str:
    """A fraction as a percentage; tiny but nonzero shares read '<0.1%' rather than a misleading '0.0%'.

    >>> format_share(0.316), format_share(0.0004), format_share(0)
    ('31.6%', '<0.1%', '0.0%')
    """
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share:.1%}"
