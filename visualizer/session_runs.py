"""The session's generation and timing runs: named, typed, each run where the model lives.

Sampled continuations and batches share the model with the other views; the KV race and sweep hold it alone
(the session's exclusive lock). A mixin of `ModelSession` (it uses the session's model, tokenizer, lock, config
and GPU key), kept apart so session.py holds the model and its traces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from visualizer import gpu
from visualizer.analysis.kv_cache import RaceUpdate, SweepUpdate
from visualizer.analysis.sampling import BatchResult, ContinuationsStep, SamplingSettings
from visualizer.device import released_on_oom
from visualizer.runs.kv_race import race_kv_cache
from visualizer.runs.kv_sweep import sweep_kv_cache
from visualizer.runs.sampling import batch_generate, sample_continuations


class RunsMixin:
    def sample_continuations(self, prompt: str | list[int], settings: SamplingSettings, n_samples: int,
                             n_tokens: int) -> Iterator[ContinuationsStep]:
        """Seeded sampled continuations beside the greedy one, streamed token by token."""
        limits = self.config.limits
        ids = [int(i) for i in self.ids_of(prompt)]
        yield from gpu.stream_on_device(
            self.key, "_shared_stream", sample_continuations, (ids, settings, n_samples, n_tokens),
            dict(max_continuations=limits.max_continuations, max_new_tokens_limit=limits.max_new_tokens,
                 max_prompt_tokens=self.max_prompt_tokens),
            gpu_seconds=10 + _as_seconds(n_tokens))

    def batch_generate(self, prompts: list[str], n_tokens: int = 10) -> BatchResult:
        """Greedy continuations of several prompts in one left-padded batch."""
        limits = self.config.limits
        return gpu.call_on_device(
            self.key, "_shared_call", batch_generate, (prompts, n_tokens),
            dict(max_batch=limits.max_batch, max_new_tokens_limit=limits.max_new_tokens,
                 max_prompt_tokens=self.max_prompt_tokens), gpu_seconds=30)

    def kv_race(self, prompt: str | list[int], n_new_tokens: int, n_repeats: int,
                update_interval_s: float = 0.2, fresh: bool = False) -> Iterator[RaceUpdate]:
        """Generation with and without the KV cache, timed while holding the model alone, streamed.

        An identical race (same prompt, N and repeats) finished in the last minute is shown at once, labelled
        as another visitor's run with its age, unless `fresh`: thirty students pressing Start see one race.
        """
        ids = [int(i) for i in self.ids_of(prompt)]
        key = (tuple(ids), _as_seconds(n_new_tokens), _as_seconds(n_repeats))
        recent = None if fresh else self._recent_races.get(key)
        if recent is not None:
            update, age = recent
            yield dataclasses.replace(update, message=(
                f"Another visitor's race from {age:.0f} s ago (same model, prompt, N and repeats), shown at once; "
                f"tick 'time a fresh race' to time it yourself. {update.message}"))
            return
        seconds, note = 30 + _as_seconds(n_new_tokens) * _as_seconds(n_repeats) // 5, None
        if gpu.ZERO_GPU:  # the visitor's daily quota: shrink the race to fit, and say so
            n_new_tokens, n_repeats, note = gpu.fit_race(_as_seconds(n_new_tokens), _as_seconds(n_repeats),
                                                         gpu.available_seconds())
            seconds = gpu.race_seconds(n_new_tokens, n_repeats)
        updates = gpu.stream_on_device(
            self.key, "_exclusive_stream", race_kv_cache, (ids, n_new_tokens, n_repeats),
            dict(tokenizer=self.tokenizer, limits=self.config.limits, update_interval_s=update_interval_s),
            gpu_seconds=seconds)
        for update in _with_note(updates, note):
            if update.result is not None:
                self._recent_races.put(key, update)
            yield update

    def kv_sweep(self, prompt: str | list[int], lengths: list[int], n_repeats: int = 3) -> Iterator[SweepUpdate]:
        """Total generation time against N for both modes, holding the model alone, streamed."""
        ids = [int(i) for i in self.ids_of(prompt)]
        seconds, note = 120, None
        if gpu.ZERO_GPU:
            lengths, n_repeats, note = gpu.fit_sweep(lengths, _as_seconds(n_repeats), gpu.available_seconds())
            seconds = gpu.sweep_seconds(lengths, n_repeats)
        updates = gpu.stream_on_device(self.key, "_exclusive_stream", sweep_kv_cache, (ids, lengths, n_repeats),
                                       dict(limits=self.config.limits), gpu_seconds=seconds)
        yield from _with_note(updates, note)

    def _exclusive_stream(self, fn, args, kwargs):
        with released_on_oom(self.device):
            yield from fn(self.model, *args, exclusive=self.lock.exclusive(), **kwargs)

    def _shared_call(self, fn, args, kwargs):
        with self.lock.shared(), released_on_oom(self.device):
            return fn(self.model, self.tokenizer, *args, **kwargs)

    def _shared_stream(self, fn, args, kwargs):
        with self.lock.shared(), released_on_oom(self.device):
            yield from fn(self.model, self.tokenizer, *args, **kwargs)


def _with_note(updates: Iterator[Any], note: str | None) -> Iterator[Any]:
    """The updates of a timing run, the first one's message prefixed with why the run was shrunk."""
    for index, update in enumerate(updates):
        if note and index == 0 and hasattr(update, "message"):
            update = dataclasses.replace(update, message=f"{note} {update.message}")
        yield update


def _as_seconds(value: Any) -> int:
    """A count from the page, for sizing a GPU request only (validation happens in the run itself)."""
    try:
        return max(0, min(int(value), 10_000))
    except (TypeError, ValueError, OverflowError):
        return 0
