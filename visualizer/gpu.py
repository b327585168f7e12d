"""ZeroGPU support that costs nothing elsewhere.

On a ZeroGPU Space (`SPACES_ZERO_GPU` set) the `spaces` package must be imported before anything touches
CUDA, and GPU work must run inside functions decorated with `@spaces.GPU`, which execute in a forked worker:
arguments and results are pickled, so they must be small CPU data, and the model must not travel. Hence
the work is named by (session key, method name) and looked up in the worker's copy of `_SESSIONS`.
Everywhere else the decorator is the identity and `spaces` is never imported.

Quota. Each call asks for a duration; the scheduler refuses one longer than the visitor has left. The
`spaces` package (0.51.3, spaces/zero/client.py) has no call that reads the quota: the only place it tells
the seconds left is the refusal itself, "You have exceeded your ... quota (120s requested vs. 55s left)"
(the maintainers' advice is to catch it). So durations are capped at 300 s (the most one call may ask),
at an anonymous visitor's whole daily quota (120 s) while nothing more is known, and at what a refusal
said this visitor has left, less what they used since; the race and the sweep shrink to fit (`fit_race`,
`fit_sweep`) and say so.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")

if ZERO_GPU:  # pragma: no cover - only on a ZeroGPU Space
    import spaces  # noqa: F401  (must precede torch's CUDA initialisation)

MAX_REQUEST_S = 300  # the longest duration one ZeroGPU call may ask ("5 minutes is the maximum")
ASSUMED_LEFT_S = 120  # an anonymous visitor's daily quota (hub docs): assumed while no refusal says more
MIN_REQUEST_S = 5
KNOWN_LEFT_TTL_S = 30 * 60  # quotas recharge (half-life ~2 h): an old reading only under-estimates
DECODE_STEP_S = 0.05  # Phi-3-mini, eager attention, one token on a ZeroGPU slice (conservative; see gpu_check)
RACE_OVERHEAD_S = 15  # worker start, weight transfer, warm-up tokens

_QUOTA_LEFT = re.compile(r"\((\d+)s requested vs\. (\d+)s left\)")

_SESSIONS: dict[int, Any] = {}


def register(session: Any) -> int:
    key = id(session)
    _SESSIONS[key] = session
    return key


# ---------------------------------------------------------------- what the visitor has left


class _QuotaMemo:
    """Seconds left per visitor, as the last refusal said, less the GPU time used since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left: dict[str, tuple[float, float]] = {}  # visitor -> (seconds left, monotonic time read)

    def learn(self, visitor: str, seconds_left: float) -> None:
        with self._lock:
            self._left[visitor] = (float(seconds_left), time.monotonic())

    def spend(self, visitor: str, seconds: float) -> None:
        with self._lock:
            if visitor in self._left:
                left, when = self._left[visitor]
                self._left[visitor] = (max(0.0, left - seconds), when)

    def left(self, visitor: str | None) -> float | None:
        with self._lock:
            reading = self._left.get(visitor) if visitor else None
            if reading is None or time.monotonic() - reading[1] > KNOWN_LEFT_TTL_S:
                return None
            return reading[0]


QUOTA = _QuotaMemo()


def quota_left_in(error: BaseException) -> int | None:
    """The seconds left that a ZeroGPU quota refusal states, or None for any other error."""
    match = _QUOTA_LEFT.search(str(error))
    return int(match.group(2)) if match else None


def current_visitor() -> str | None:
    """Who the running Gradio event is for: the visitor's ZeroGPU token (the quota's key), else the session."""
    try:
        from gradio.context import LocalContext
    except ImportError:  # pragma: no cover - gradio is a dependency
        return None
    request = LocalContext.request.get(None)
    if request is None:
        return None
    headers = getattr(request, "headers", None)
    token = headers.get("x-ip-token") if hasattr(headers, "get") else None
    return token or getattr(request, "session_hash", None)


def fit_to_quota(requested_s: float, visitor: str | None = None, *,
                 zero_gpu: bool | None = None) -> tuple[int, str | None]:
    """(seconds to ask for, a note when that is less than requested). Off ZeroGPU: only the 5..300 s bounds."""
    zero_gpu = ZERO_GPU if zero_gpu is None else zero_gpu
    requested = max(MIN_REQUEST_S, math.ceil(requested_s))
    cap, reason = MAX_REQUEST_S, f"the most one GPU call may ask is {MAX_REQUEST_S} s"
    if zero_gpu:
        left = QUOTA.left(visitor or current_visitor())
        if left is not None:
            cap, reason = int(left), f"you have {int(left)} s of ZeroGPU time left today"
        elif ASSUMED_LEFT_S < cap:
            cap, reason = ASSUMED_LEFT_S, f"a visitor who is not logged in has {ASSUMED_LEFT_S} s of ZeroGPU a day"
    if requested <= cap:
        return requested, None
    seconds = max(MIN_REQUEST_S, cap)
    return seconds, f"GPU time capped at {seconds} s (asked for {requested} s): {reason}."


def available_seconds(visitor: str | None = None, *, zero_gpu: bool | None = None) -> int:
    """The longest call this visitor can be granted now."""
    return fit_to_quota(10**9, visitor, zero_gpu=zero_gpu)[0]


def race_seconds(n_new: int, n_repeats: int, step_s: float = DECODE_STEP_S) -> float:
    """GPU time of a race: per repeat, N cached + N uncached steps (short prompts: each step costs ~ the same)."""
    return RACE_OVERHEAD_S + n_repeats * (2 * n_new + 8) * step_s


def fit_race(n_new: int, n_repeats: int, seconds: float, step_s: float = DECODE_STEP_S) -> tuple[int, int, str | None]:
    """(N, repeats, note): fewer repeats first, then a smaller N, until the race fits `seconds`."""
    n, r = n_new, n_repeats
    while r > 1 and race_seconds(n, r, step_s) > seconds:
        r -= 1
    while n > 1 and race_seconds(n, r, step_s) > seconds:
        n = max(1, int(n * 0.8))
    if (n, r) == (n_new, n_repeats):
        return n, r, None
    return n, r, (f"To fit {seconds:.0f} s of GPU time the race runs N = {n} with {r} repeat(s) "
                  f"(asked for N = {n_new}, {n_repeats} repeats).")


def sweep_seconds(lengths: Sequence[int], n_repeats: int, step_s: float = DECODE_STEP_S) -> float:
    return RACE_OVERHEAD_S + n_repeats * sum(2 * n + 8 for n in lengths) * step_s


def fit_sweep(lengths: Sequence[int], n_repeats: int, seconds: float, step_s: float = DECODE_STEP_S,
              min_repeats: int = 3, min_lengths: int = 3) -> tuple[list[int], int, str | None]:
    """(lengths, repeats, note): fewer repeats, then fewer lengths, then every length scaled down, to fit
    `seconds`; a sweep keeps at least `min_repeats` repeats (median and spread) and `min_lengths` lengths
    (a fitted shape)."""
    kept, r = sorted(lengths), n_repeats
    while r > min_repeats and sweep_seconds(kept, r, step_s) > seconds:
        r -= 1
    while len(kept) > min_lengths and sweep_seconds(kept, r, step_s) > seconds:
        kept.pop()
    while kept and kept[-1] > len(kept) and sweep_seconds(kept, r, step_s) > seconds:
        kept = sorted({max(1 + i, int(n * 0.8)) for i, n in enumerate(kept)})
    if kept == sorted(lengths) and r == n_repeats:
        return list(lengths), r, None
    return kept, r, (f"To fit {seconds:.0f} s of GPU time the sweep runs N = {', '.join(map(str, kept))} with "
                     f"{r} repeat(s) (asked for {len(lengths)} lengths, {n_repeats} repeats).")


# ---------------------------------------------------------------- the decorated entry points


def _duration(key: int, method: str, *args: Any, gpu_seconds: float = 30, **kwargs: Any) -> int:
    return fit_to_quota(gpu_seconds)[0]


def _remembering(fn: Callable, streaming: bool) -> Callable:
    """Record what a quota refusal says is left, and the time used, so the next request fits."""

    def note_refusal(error: BaseException) -> None:
        left = quota_left_in(error)
        visitor = current_visitor()
        if left is not None and visitor:
            QUOTA.learn(visitor, left)

    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            note_refusal(error)
            raise
        finally:
            _spend(start)

    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start = time.monotonic()
        try:
            yield from fn(*args, **kwargs)
        except Exception as error:
            note_refusal(error)
            raise
        finally:
            _spend(start)

    return stream if streaming else call


def _spend(start: float) -> None:
    visitor = current_visitor()
    if visitor:
        QUOTA.spend(visitor, time.monotonic() - start)


def _gpu(fn: Callable, streaming: bool = False) -> Callable:
    if not ZERO_GPU:
        return fn
    import spaces  # pragma: no cover

    return _remembering(spaces.GPU(duration=_duration)(fn), streaming)  # pragma: no cover


def _call_on_device(key: int, method: str, *args: Any, gpu_seconds: float = 30, **kwargs: Any) -> Any:
    return getattr(_SESSIONS[key], method)(*args, **kwargs)


def _stream_on_device(key: int, method: str, *args: Any, gpu_seconds: float = 30, **kwargs: Any) -> Iterator[Any]:
    yield from getattr(_SESSIONS[key], method)(*args, **kwargs)


call_on_device = _gpu(_call_on_device)
call_on_device.__doc__ = "Run `session.<method>(*args, **kwargs)` where the GPU is; returns CPU data."
stream_on_device = _gpu(_stream_on_device, streaming=True)
stream_on_device.__doc__ = "The generator version of `call_on_device`, for streamed views (step-through, race)."
