"""The session's speed lab: the chapter's four speed tips timed on the loaded model (a ModelSession mixin).

It runs where the model lives (`gpu.stream_on_device`), through the session's `_exclusive_stream`, which
hands the run `exclusive=self.lock.exclusive()`: ordinary requests wait while the attention implementation is
switched, so a trace never runs under SDPA and always gets its attentions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from visualizer import gpu
from visualizer.analysis.speed import SpeedUpdate, validate_parts
from visualizer.runs.speed import speed_lab

ZERO_GPU_NO_COMPILE = "ZeroGPU does not support torch.compile (its GPU worker cannot keep compiled code)"
SPEED_STEP_S = 0.5  # GPU seconds asked per (setting x repeat) on ZeroGPU: generous, the run is bounded


class SpeedMixin:
    """Speed measurements on the loaded model; mixed into ModelSession (uses ids_of, key, config, budget)."""

    def speed_lab(self, prompt: str | list[int], parts: Sequence[str] | None = None, n_repeats: int = 3,
                  n_new_tokens: int = 16) -> Iterator[SpeedUpdate]:
        """Attention kernels, precision, torch.compile and batch size, timed holding the model alone, streamed."""
        ids = [int(i) for i in self.ids_of(prompt)]
        chosen = validate_parts(parts)
        limits = self.config.limits
        seconds = 60 + SPEED_STEP_S * len(chosen) * 8 * _count(n_repeats) * _count(n_new_tokens)
        yield from gpu.stream_on_device(
            self.key, "_exclusive_stream", speed_lab, (ids, n_new_tokens, n_repeats),
            dict(parts=chosen, budget_bytes=self.budget.bytes, limits=limits, tokenizer=self.tokenizer,
                 compile_unavailable=ZERO_GPU_NO_COMPILE if gpu.ZERO_GPU else None),
            gpu_seconds=min(seconds, gpu.MAX_REQUEST_S))


def _count(value) -> int:
    """A count from the page, for sizing a GPU request only (the run validates it)."""
    try:
        return max(1, min(int(value), 1000))
    except (TypeError, ValueError, OverflowError):
        return 1
