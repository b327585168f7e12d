"""The KV length sweep: total time of plain `generate()` against N for both modes, ≥ 3 repeats per length.

Each (length, repeat) runs both modes, the first one alternating, so a drift in machine load hits both. The
result keeps every repeat: its medians and spreads are shown, the fits are non-negative (never below 0 s),
and `SweepResult.warning` says when the repeats disagree too much to trust (a busy machine).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from visualizer.analysis.kv_cache import (
    CACHED,
    FIT_DEGREE,
    MAX_SWEEP_REPEATS,
    MIN_SWEEP_REPEATS,
    MODES,
    UNCACHED,
    Mode,
    SweepResult,
    SweepUpdate,
    fit_polynomial,
    format_seconds,
    mode_order,
    validate_race_request,
    validate_sweep_request,
)
from visualizer.config import Limits
from visualizer.runs.exclusive import ExclusiveAccess, load_average, timing_conditions
from visualizer.runs.timing import max_positions, prompt_tensor, time_whole_run, warm_up

_LIMITS = Limits()  # the app's default bounds; the session passes its configured ones


def sweep_kv_cache(model: PreTrainedModel, prompt_ids: Sequence[int] | torch.Tensor, lengths: Sequence[int],
                   n_repeats: int = MIN_SWEEP_REPEATS, *, exclusive: Any | None = None, limits: Limits = _LIMITS,
                   warmup_tokens: int = 8, max_sweep_repeats: int = MAX_SWEEP_REPEATS) -> Iterator[SweepUpdate]:
    """Total time against N for both modes: a separate plain generate() call per N, mode and repeat.

    Validates at once (ValueError: 3 to `limits.max_sweep_points` lengths from 2 to `limits.max_new_tokens`,
    3 to `max_sweep_repeats` repeats), then returns a generator of SweepUpdate objects: "waiting"/"warmup",
    one "timing" update after every run, and a final "done" update whose `result` is the SweepResult (a
    linear fit for the cached mode, a quadratic one for the uncached mode). Progress counts token-forwards,
    so the long uncached runs move the bar as much as they take. `exclusive` as in `race_kv_cache`.
    """
    prompt = prompt_tensor(prompt_ids)
    values, n_repeats = validate_sweep_request(lengths, n_repeats, limits, max_sweep_repeats)
    validate_race_request(prompt.numel(), values[-1], 1, limits, max_positions(model))
    return _sweep(model, prompt, values, n_repeats, exclusive, max(0, min(warmup_tokens, values[-1])))


def _work(mode: Mode, n_prompt: int, n: int) -> float:
    """Token-forwards of one run: cached P + N - 1; uncached the sum of (P + k) over k < N."""
    return n_prompt + n - 1 if mode == CACHED else n * n_prompt + n * (n - 1) / 2


def _sweep(model: PreTrainedModel, prompt: torch.Tensor, values: list[int], n_repeats: int,
           exclusive: Any | None, warmup_tokens: int) -> Iterator[SweepUpdate]:
    totals: dict[Mode, list[list[float]]] = {CACHED: [], UNCACHED: []}  # mode -> [point][repeat]
    n_prompt = prompt.numel()
    total_work = n_repeats * sum(_work(m, n_prompt, n) for n in values for m in MODES)

    def update(phase: str, message: str, work_done: float, result: SweepResult | None = None) -> SweepUpdate:
        return SweepUpdate(phase, message, min(1.0, work_done / total_work), tuple(values),
                           {m: tuple(tuple(p) for p in pts) for m, pts in totals.items()}, result)

    access = ExclusiveAccess(exclusive)
    load_before = load_average()
    if not access.try_acquire():
        yield update("waiting", access.waiting_message(), 0)
        access.acquire()
    try:
        yield update("warmup", f"Warming up both modes ({warmup_tokens} untimed tokens each)…", 0)
        warm_up(model, prompt, warmup_tokens)
        work_done, wall_s, cpu_s = 0.0, 0.0, 0.0
        for index, n in enumerate(values):
            for mode in MODES:
                totals[mode].append([])
            for repeat in range(n_repeats):
                for mode in mode_order(index * n_repeats + repeat):
                    wall, cpu = time_whole_run(model, prompt, n, mode)
                    totals[mode][-1].append(wall)
                    wall_s, cpu_s, work_done = wall_s + wall, cpu_s + cpu, work_done + _work(mode, n_prompt, n)
                    yield update("timing", f"N = {n} ({index + 1}/{len(values)}), repeat {repeat + 1}/"
                                 f"{n_repeats}, {mode}: {format_seconds(wall)}", work_done)
        conditions = timing_conditions(access, model, load_before, wall_s, cpu_s)
    finally:
        access.release()
    lengths = np.asarray(values, dtype=np.int64)
    totals_arr = {m: np.asarray(totals[m], dtype=np.float64) for m in MODES}  # [point, repeat]
    fits = {m: fit_polynomial(np.repeat(lengths, n_repeats), totals_arr[m].ravel(), FIT_DEGREE[m]) for m in MODES}
    result = SweepResult(n_prompt, lengths, totals_arr, fits, conditions)
    yield update("done", result.summary, total_work, result)
