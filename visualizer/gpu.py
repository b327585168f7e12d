"""ZeroGPU support that costs nothing elsewhere.

On a ZeroGPU Space (`SPACES_ZERO_GPU` set) the `spaces` package must be imported before anything touches
CUDA, and GPU work must run inside functions decorated with `@spaces.GPU`, which execute in a forked worker:
arguments and results are pickled, so they must be small CPU data, and the model must not travel. Hence
the work is named by (session key, method name) and looked up in the worker's copy of `_SESSIONS`.
Everywhere else the decorator is the identity and `spaces` is never imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")

if ZERO_GPU:  # pragma: no cover - only on a ZeroGPU Space
    import spaces  # noqa: F401  (must precede torch's CUDA initialisation)

_SESSIONS: dict[int, Any] = {}


def register(session: Any) -> int:
    key = id(session)
    _SESSIONS[key] = session
    return key


def _duration(key: int, method: str, *args: Any, gpu_seconds: float = 30, **kwargs: Any) -> int:
    return int(max(5, min(gpu_seconds, 300)))


def _gpu(fn: Callable) -> Callable:
    if not ZERO_GPU:
        return fn
    import spaces  # pragma: no cover

    return spaces.GPU(duration=_duration)(fn)  # pragma: no cover


@_gpu
def call_on_device(key: int, method: str, *args: Any, gpu_seconds: float = 30, **kwargs: Any) -> Any:
    """Run `session.<method>(*args, **kwargs)` where the GPU is; returns CPU data."""
    return getattr(_SESSIONS[key], method)(*args, **kwargs)


@_gpu
def stream_on_device(key: int, method: str, *args: Any, gpu_seconds: float = 30, **kwargs: Any) -> Iterator[Any]:
    """The generator version of `call_on_device`, for streamed views (step-through, sampling, KV race)."""
    yield from getattr(_SESSIONS[key], method)(*args, **kwargs)
