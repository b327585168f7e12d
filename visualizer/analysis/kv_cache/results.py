"""What a KV-cache race or length sweep measured: plain dataclasses of numpy arrays, floats and strings.

They cross process boundaries (ZeroGPU pickles every streamed update), so they hold no tensors and no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from visualizer.analysis.kv_cache.inspection import CacheReport
from visualizer.analysis.kv_cache.modes import CACHED, UNCACHED, Mode
from visualizer.analysis.kv_cache.statistics import (
    BUSY_SPREAD,
    PolyFit,
    TimingStats,
    format_seconds,
    speed_phrase,
    theil_sen_fit,
)
from visualizer.tokens import token_label

Phase = Literal["waiting", "warmup", "timing", "done"]


@dataclass(frozen=True)
class TimingConditions:
    """How undisturbed the timing was: the UI shows `warning` when it is not None."""

    exclusive: bool  # an exclusive lock was held for the whole timing
    acquired_without_waiting: bool | None  # None when no lock was given
    waited_s: float  # time spent waiting for the lock before the timing started
    device: str  # "cpu", "cuda:0", ...
    cpu_count: int
    torch_threads: int
    load_before: float | None  # 1-minute load average (None where the OS has none)
    load_after: float | None
    cpu_share: float | None = None  # CPU device: process CPU time / wall time while timed (< 1: starved)

    @property
    def starved(self) -> bool:
        """On a CPU device, the timed work got less than 70% of one core: other programs took the rest."""
        return self.cpu_share is not None and self.cpu_share < 0.7

    @property
    def warning(self) -> str | None:
        problems = []
        if not self.exclusive:
            problems.append("Timed without exclusive use of the model: other requests may have run at the "
                            "same time and slowed either mode.")
        if self.starved:
            problems.append(f"Other programs were using the CPU: the timed work got {self.cpu_share:.0%} of a "
                            f"core on average, so every time is inflated and noisier than usual.")
        return " ".join(problems) or None


@dataclass(frozen=True)
class ModeTiming:
    """All repeats of one mode."""

    mode: Mode
    latencies_s: np.ndarray  # [repeat, step] seconds; step 0 produces the first new token (prefill)
    token_ids: list[int]  # greedy new tokens (first repeat)
    repeats_agree: bool  # every repeat produced the same tokens
    setup_s: np.ndarray  # [repeat] generate()'s bookkeeping before the prefill (included in step 0)
    cpu_s: np.ndarray  # [repeat, step] process CPU time over each step (wall >> CPU: the CPU was shared)

    @property
    def n_new_tokens(self) -> int:
        return int(self.latencies_s.shape[1])

    @property
    def totals_s(self) -> np.ndarray:  # [repeat]
        return self.latencies_s.sum(axis=1)

    @property
    def prefill_s(self) -> np.ndarray:  # [repeat] time to the first new token (incl. setup_s)
        return self.latencies_s[:, 0]

    @property
    def decode_s(self) -> np.ndarray:  # [repeat] time for tokens 2..N
        return self.latencies_s[:, 1:].sum(axis=1)

    @property
    def total(self) -> TimingStats:
        return TimingStats.of(self.totals_s)

    @property
    def tokens_per_s(self) -> float:
        return self.n_new_tokens / self.total.median_s

    @property
    def median_latencies_s(self) -> np.ndarray:  # [step] median over repeats
        return np.median(self.latencies_s, axis=0)

    @property
    def latency_trend(self) -> tuple[float, float]:
        """(intercept_s, slope_s_per_step) of the median latency against the step, decode steps only.

        A Theil-Sen fit (robust to spikes from other programs): latency(step) ≈ intercept + slope·step.
        """
        return theil_sen_fit(np.arange(1, self.n_new_tokens), self.median_latencies_s[1:])

    @property
    def latency_slope_s_per_step(self) -> float:
        return self.latency_trend[1]


@dataclass(frozen=True)
class OutputComparison:
    """Did both modes produce the same greedy tokens?"""

    cached_token_ids: list[int]
    uncached_token_ids: list[int]
    cached_token_strs: list[str] | None  # decoded one token at a time, whitespace visible (None: no tokenizer)
    uncached_token_strs: list[str] | None
    identical: bool  # same tokens, and every repeat of each mode agreed
    first_mismatch: int | None  # index of the first differing new token

    @property
    def message(self) -> str:
        if self.identical:
            return f"Both modes produced the same {len(self.cached_token_ids)} tokens."
        if self.first_mismatch is None:
            return "Both modes agree, but repeats of one mode produced different tokens (non-deterministic kernels)."
        return (f"The outputs differ from new token {self.first_mismatch + 1}: a near-tie between two tokens, "
                f"broken differently by rounding in the cached and uncached computations.")


def compare_outputs(cached: ModeTiming, uncached: ModeTiming, tokenizer: Any | None = None) -> OutputComparison:
    a, b = cached.token_ids, uncached.token_ids
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)

    def labels(ids: list[int]) -> list[str] | None:
        return [token_label(tokenizer, i) for i in ids] if tokenizer is not None else None

    return OutputComparison(a, b, labels(a), labels(b),
                            identical=first is None and cached.repeats_agree and uncached.repeats_agree,
                            first_mismatch=first)


@dataclass(frozen=True)
class RaceResult:
    """Everything the KV-cache tab shows after a race."""

    n_prompt_tokens: int
    n_new_tokens: int
    n_repeats: int
    cached: ModeTiming
    uncached: ModeTiming
    outputs: OutputComparison
    cache: CacheReport  # from the last cached repeat
    conditions: TimingConditions
    order: list[tuple[Mode, Mode]]  # which mode went first in each repeat
    warmup_tokens: int
    interleaved: bool  # the two runs of a repeat advanced in turn (at every update pause)

    def mode(self, mode: Mode) -> ModeTiming:
        return self.cached if mode == CACHED else self.uncached

    @property
    def speedup(self) -> float:
        """Median uncached total / median cached total (> 1: the cache is faster)."""
        return self.uncached.total.median_s / self.cached.total.median_s

    @property
    def speedup_per_repeat(self) -> np.ndarray:  # [repeat] paired ratios (same repeat, same conditions)
        return self.uncached.totals_s / self.cached.totals_s

    @property
    def step_ratio(self) -> np.ndarray:  # [step] uncached / cached median latency of each new token
        return self.uncached.median_latencies_s / self.cached.median_latencies_s

    @property
    def slope_ratio(self) -> float:
        """How much faster the uncached per-token latency climbs than the cached one (per step)."""
        cached = max(self.cached.latency_slope_s_per_step, 1e-12)
        return self.uncached.latency_slope_s_per_step / cached

    @property
    def summary(self) -> str:
        """The one-line result, e.g. 'Done: 100 tokens in 1.2 s with the cache and 3.4 s without ...'."""
        text = (f"Done: {self.n_new_tokens} tokens in {format_seconds(self.cached.total.median_s)} with the "
                f"cache and {format_seconds(self.uncached.total.median_s)} without (median of "
                f"{self.n_repeats}): {speed_phrase(self.speedup)} with the cache.")
        warning = self.conditions.warning
        return f"{text} {warning}" if warning else text


@dataclass(frozen=True)
class RaceUpdate:
    """One streamed progress report; the last one of a race carries `result`."""

    phase: Phase
    message: str  # status line for the UI
    fraction_done: float  # 0..1 for a progress bar
    n_new_tokens: int
    latencies_s: dict[Mode, tuple[tuple[float, ...], ...]]  # mode -> repeats so far -> per-step latencies
    mode: Mode | None = None  # the mode of the latest step
    repeat: int | None = None
    step: int | None = None
    result: RaceResult | None = None


@dataclass(frozen=True)
class SweepResult:
    """Total time against N for both modes, every length timed `n_repeats` (≥ 3) times per mode."""

    n_prompt_tokens: int
    lengths: np.ndarray  # [point] N values, ascending
    totals_s: dict[Mode, np.ndarray]  # mode -> [point, repeat]
    fits: dict[Mode, PolyFit]  # FIT_DEGREE per mode, non-negative, fitted to every repeat's total
    conditions: TimingConditions

    @property
    def n_repeats(self) -> int:
        return int(self.totals_s[CACHED].shape[1])

    def medians_s(self, mode: Mode) -> np.ndarray:  # [point]
        return np.median(self.totals_s[mode], axis=1)

    def stats(self, mode: Mode) -> list[TimingStats]:  # [point]
        return [TimingStats.of(runs) for runs in self.totals_s[mode]]

    def spreads(self, mode: Mode) -> np.ndarray:  # [point] (slowest - fastest) / median
        return np.array([s.relative_spread for s in self.stats(mode)])

    @property
    def speedups(self) -> np.ndarray:  # [point]
        return self.medians_s(UNCACHED) / self.medians_s(CACHED)

    @property
    def busy_warning(self) -> str | None:
        """Set when repeats of one length disagree by more than BUSY_SPREAD of their median."""
        worst = max(((float(self.spreads(m)[i]), m, int(n)) for m in self.totals_s
                     for i, n in enumerate(self.lengths)), default=(0.0, CACHED, 0))
        spread, mode, n = worst
        if spread <= BUSY_SPREAD:
            return None
        return (f"The machine was too busy to trust these times: at N = {n} the {mode} repeats differ by "
                f"{spread:.0%} of their median (more than {BUSY_SPREAD:.0%}). Run the sweep again when it is quieter.")

    @property
    def warning(self) -> str | None:
        problems = [w for w in (self.busy_warning, self.conditions.warning) if w]
        return " ".join(problems) or None

    @property
    def summary(self) -> str:
        """E.g. 'Sweep done (median of 3 repeats): at N = 200 the cache is 4.10× faster.' plus any warning."""
        text = (f"Sweep done (median of {self.n_repeats} repeats per length): at N = {int(self.lengths[-1])} the "
                f"cache is {speed_phrase(float(self.speedups[-1]))}.")
        return f"{text} {self.warning}" if self.warning else text


@dataclass(frozen=True)
class SweepUpdate:
    phase: Phase
    message: str
    fraction_done: float
    lengths: tuple[int, ...]  # all N values of the sweep
    totals_s: dict[Mode, tuple[tuple[float, ...], ...]] = field(default_factory=dict)  # mode -> [point][repeat]
    result: SweepResult | None = None
