"""The KV-cache race: greedy `generate()` with and without the cache, timed token by token, streamed.

* An untimed warm-up of each mode first; then `n_repeats` repeats of both modes, alternating which runs
  first so a slow drift in machine load hits both about equally (`interleave=True` alternates them during
  the run instead).
* An optional `exclusive` lock is held for the whole timing; the result says whether it was acquired
  without waiting, and flags runs made without it. On a CPU the process CPU time is recorded beside the
  wall time: a CPU share well under 1 means other programs took the processor (flagged too).
* `benchmarks/kv_cache.py` checks the totals against plain generate() timed in the same run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from visualizer.analysis.kv_cache import (
    CACHED,
    MODES,
    UNCACHED,
    Mode,
    ModeTiming,
    RaceResult,
    RaceUpdate,
    TimingConditions,
    compare_outputs,
    inspect_cache,
    mode_order,
    validate_race_request,
)
from visualizer.config import Limits
from visualizer.runs.exclusive import ExclusiveAccess, load_average, timing_conditions
from visualizer.runs.timing import RunOutput, Step, max_positions, prompt_tensor, timed_generate, warm_up

_LIMITS = Limits()  # the app's default bounds; the session passes its configured ones


def race_kv_cache(model: PreTrainedModel, prompt_ids: Sequence[int] | torch.Tensor, n_new_tokens: int,
                  n_repeats: int = 3, *, tokenizer: Any | None = None, exclusive: Any | None = None,
                  limits: Limits = _LIMITS, warmup_tokens: int = 8, interleave: bool = False,
                  update_interval_s: float = 0.25) -> Iterator[RaceUpdate]:
    """Time greedy generation of `n_new_tokens` with and without the KV cache, `n_repeats` times per mode.

    Validates at once (ValueError for requests that break `limits` or the model's context length), then
    returns a generator of RaceUpdate objects: "waiting" (before entering `exclusive`, when that may
    block), "warmup", "timing" updates while generate() runs, and a final "done" update whose `result` is
    the RaceResult. generate() pauses for a "timing" update every `update_interval_s` seconds of timed
    work and after its last token (0: after every token); its clock is stopped during the pause. Each
    pause costs a thread switch, which on a CPU slows the following steps a little, so keep it ≥ 0.2 s.

    `interleave=False` (default) runs one mode's generate() to the end, then the other's, as %%timeit
    would; the first mode alternates between repeats so slow drifts in load hit both. `interleave=True`
    alternates the two generate() calls at every pause (every token with `update_interval_s=0`): both
    curves grow together and a change in machine load hits both modes at the same token (robust per-token
    ratios on a shared CPU), but on a CPU the alternation itself slowed the uncached mode by ~10% in our
    measurements, so its totals drift from plain generate().
    `exclusive`: a lock with `acquire(blocking=...)`/`release()` (e.g. `threading.Lock`, not `RLock`), or a
    fresh context manager (e.g. the session's `lock.exclusive()`), held from the warm-up to the end of the
    timing and released if the consumer stops iterating early. None: timed without it (flagged).
    `limits`: the app's `visualizer.config.Limits` (max_prompt_tokens, max_new_tokens, max_repeats).
    `tokenizer` (optional) decodes the new tokens for the output comparison.
    """
    prompt = prompt_tensor(prompt_ids)
    n_new_tokens, n_repeats = validate_race_request(prompt.numel(), n_new_tokens, n_repeats, limits,
                                                    max_positions(model))
    return _race(model, prompt, n_new_tokens, n_repeats, tokenizer, exclusive,
                 max(0, min(warmup_tokens, n_new_tokens)), interleave, update_interval_s)


@dataclass
class _RaceLog:
    """What the race has measured so far, per mode: lists of runs (repeats), each a list of steps."""

    latencies: dict[Mode, list[list[float]]] = field(default_factory=lambda: {CACHED: [], UNCACHED: []})
    cpu: dict[Mode, list[list[float]]] = field(default_factory=lambda: {CACHED: [], UNCACHED: []})
    tokens: dict[Mode, list[list[int]]] = field(default_factory=lambda: {CACHED: [], UNCACHED: []})
    setups: dict[Mode, list[float]] = field(default_factory=lambda: {CACHED: [], UNCACHED: []})
    cache: Any = None  # the last cached run's DynamicCache

    def start_repeat(self) -> None:
        for log in (self.latencies, self.cpu, self.tokens):
            for mode in MODES:
                log[mode].append([])

    def add(self, mode: Mode, step: Step) -> None:
        self.latencies[mode][-1].append(step.latency_s)
        self.cpu[mode][-1].append(step.cpu_s)
        self.tokens[mode][-1].append(step.token_id)

    def snapshot(self) -> dict[Mode, tuple[tuple[float, ...], ...]]:
        return {m: tuple(tuple(run) for run in runs) for m, runs in self.latencies.items()}

    def wall_and_cpu(self) -> tuple[float, float]:
        return tuple(sum(sum(run) for runs in log.values() for run in runs) for log in (self.latencies, self.cpu))

    def mode_timing(self, mode: Mode) -> ModeTiming:
        tokens = self.tokens[mode]
        return ModeTiming(mode, np.asarray(self.latencies[mode], dtype=np.float64), list(tokens[0]),
                          repeats_agree=all(t == tokens[0] for t in tokens),
                          setup_s=np.asarray(self.setups[mode], dtype=np.float64),
                          cpu_s=np.asarray(self.cpu[mode], dtype=np.float64))


def _schedule(streams: dict[Mode, Iterator[list[Step]]], order: tuple[Mode, Mode],
              interleave: bool) -> Iterator[tuple[Mode, list[Step]]]:
    """Batches of both runs: one batch of each in turn (interleave) or one run after the other."""
    try:
        if interleave:
            active = list(order)
            while active:
                for mode in list(active):
                    batch = next(streams[mode], None)
                    if batch is None:
                        active.remove(mode)
                    else:
                        yield mode, batch
        else:
            for mode in order:
                for batch in streams[mode]:
                    yield mode, batch
    finally:
        for stream in streams.values():
            stream.close()  # aborts a generate() still waiting in its worker thread


def _race(model: PreTrainedModel, prompt: torch.Tensor, n_new_tokens: int, n_repeats: int, tokenizer: Any | None,
          exclusive: Any | None, warmup_tokens: int, interleave: bool,
          update_interval_s: float) -> Iterator[RaceUpdate]:
    log = _RaceLog()
    order = [mode_order(r) for r in range(n_repeats)]
    access = ExclusiveAccess(exclusive)
    load_before = load_average()
    if not access.try_acquire():
        yield RaceUpdate("waiting", access.waiting_message(), 0.0, n_new_tokens, log.snapshot())
        access.acquire()
    try:
        yield RaceUpdate("warmup", f"Warming up both modes ({warmup_tokens} untimed tokens each)…", 0.0,
                         n_new_tokens, log.snapshot())
        warm_up(model, prompt, warmup_tokens)
        yield from _timed_repeats(model, prompt, n_new_tokens, order, log, interleave, update_interval_s)
        conditions = timing_conditions(access, model, load_before, *log.wall_and_cpu())
    finally:
        access.release()
    result = _race_result(model, prompt, n_new_tokens, log, tokenizer, conditions, order, warmup_tokens,
                          interleave)
    yield RaceUpdate("done", result.summary, 1.0, n_new_tokens, log.snapshot(), result=result)


def _timed_repeats(model: PreTrainedModel, prompt: torch.Tensor, n_new_tokens: int, order: list[tuple[Mode, Mode]],
                   log: _RaceLog, interleave: bool, update_interval_s: float) -> Iterator[RaceUpdate]:
    """Every repeat of both modes, one "timing" update per handed-over batch of tokens."""
    n_repeats, done_steps = len(order), 0
    total_steps = 2 * n_repeats * n_new_tokens
    for repeat, modes in enumerate(order):
        log.start_repeat()
        runs = {m: RunOutput() for m in MODES}
        streams = {m: timed_generate(model, prompt, n_new_tokens, m, runs[m], update_interval_s) for m in modes}
        with contextlib.closing(_schedule(streams, modes, interleave)) as batches:
            for mode, batch in batches:
                for step in batch:
                    log.add(mode, step)
                done_steps += len(batch)
                last = batch[-1].step
                yield RaceUpdate("timing", f"Repeat {repeat + 1}/{n_repeats}: token {last + 1}/{n_new_tokens} "
                                 f"({mode})", done_steps / total_steps, n_new_tokens, log.snapshot(), mode, repeat,
                                 last)
        for mode in MODES:
            log.setups[mode].append(runs[mode].setup_s)
        log.cache = runs[CACHED].cache


def _race_result(model: PreTrainedModel, prompt: torch.Tensor, n_new_tokens: int, log: _RaceLog,
                 tokenizer: Any | None, conditions: TimingConditions, order: list[tuple[Mode, Mode]],
                 warmup_tokens: int, interleave: bool) -> RaceResult:
    cached, uncached = log.mode_timing(CACHED), log.mode_timing(UNCACHED)
    # The last new token is never fed back, so the cache holds prompt + N - 1 tokens.
    report = inspect_cache(log.cache, model.config, n_tokens=prompt.numel() + n_new_tokens - 1)
    return RaceResult(prompt.numel(), n_new_tokens, len(order), cached, uncached,
                      compare_outputs(cached, uncached, tokenizer), report, conditions, order, warmup_tokens,
                      interleave)
