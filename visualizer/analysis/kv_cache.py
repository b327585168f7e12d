"""KV cache: a timed greedy "race" with and without the cache, a length sweep, and a cache inspector.

The race generates N new tokens from the same prompt twice, greedily, with `model.generate` itself:

* **cached** (`use_cache=True`): one forward pass over the prompt (the *prefill*) fills a `DynamicCache`;
  every later step feeds only the newest token, whose keys and values are appended to the cache.
* **uncached** (`use_cache=False`): every step runs the whole sequence so far (prompt + tokens generated
  so far), recomputing every key and value. Step k processes P + k tokens, so its latency grows with k
  and the total grows about quadratically with N.

Timing rules (the chapter's claim is only worth showing if it is measured fairly):

* Greedy and a fixed length (`min_new_tokens = max_new_tokens = N`): EOS cannot end a run early, so both
  modes produce exactly N tokens.
* An untimed warm-up of each mode first (allocators, kernel selection, lazy initialisation).
* What is timed is `model.generate()`, the call the chapter times with %%timeit. A streamer reads
  `time.perf_counter()` each time generate() hands over a token, after `torch.cuda.synchronize()` on a
  GPU (kernels are asynchronous: without it the clock would stop before the work is done). Token 1 counts
  from the call (generate's setup + prefill), token k from token k-1.
* generate() runs in a worker thread in lockstep with the consumer: every `update_interval_s` it hands
  over the tokens timed so far and waits until the consumer asks for more, and its clock restarts only
  then, so re-drawing the live chart is never timed and never competes with the model for the CPU.
  `benchmarks/kv_cache.py` checks the totals against plain generate() timed in the same run. A fresh
  thread gets its own glibc malloc arena, which by default hands freed memory back to the OS and
  page-faults it in again (long uncached runs read ~20% slower than on the main thread): the serving
  process fixes the thresholds at startup (`visualizer.allocator.keep_freed_memory`); call it in a
  notebook too.
* Repeats alternate which mode runs first, so a slow drift in machine load hits both about equally
  (`interleave=True` alternates them during the run instead; see `race_kv_cache`).
* An optional `exclusive` lock is held for the whole timing; the result says whether it was acquired
  without waiting, and flags runs made without it. On a CPU the process CPU time is recorded beside the
  wall time: a CPU share well under 1 means other programs took the processor (flagged too).

The generators may be resumed from different threads (Gradio iterates sync generators in a thread
pool): nothing thread-local is held across a `yield` (inference mode is entered in the worker thread),
and a lock passed as `exclusive` must be releasable from another thread (`threading.Lock`, not `RLock`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedModel
from transformers.generation.streamers import BaseStreamer

from visualizer.tokens import visible_token

Mode = Literal["cached", "uncached"]
CACHED: Mode = "cached"
UNCACHED: Mode = "uncached"
MODES: tuple[Mode, Mode] = (CACHED, UNCACHED)


# ----------------------------------------------------------------------------------------------------------
# Limits
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RaceLimits:
    """Server-side bounds on one timing request (never trust slider bounds sent by a client)."""

    max_new_tokens: int = 256  # N per race; the uncached run costs about N^2 / 2 token-forwards
    max_repeats: int = 7  # R per mode (%%timeit's default is 7 runs)
    max_prompt_tokens: int = 256  # P; every uncached step re-reads the prompt
    max_sweep_points: int = 6  # number of distinct N values in a sweep
    max_sweep_new_tokens: int = 256  # largest N in a sweep
    max_sweep_repeats: int = 3  # repeats per N in a sweep

    @classmethod
    def from_app_limits(cls, limits: Any) -> RaceLimits:
        """Take the matching fields of the app's config Limits (any object with these attributes)."""
        names = {"max_new_tokens", "max_repeats", "max_prompt_tokens", "max_sweep_points"}
        values = {n: int(getattr(limits, n)) for n in names if hasattr(limits, n)}
        if "max_new_tokens" in values:
            values["max_sweep_new_tokens"] = values["max_new_tokens"]
        return cls(**values)


def as_count(value: Any, what: str) -> int:
    """A whole number from a UI value (sliders may send 50.0); ValueError for 2.5, "abc" or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number (got {value!r}).") from None
    if not number.is_integer():
        raise ValueError(f"{what} must be a whole number (got {value!r}).")
    return int(number)


def validate_race_request(n_prompt_tokens: int, n_new_tokens: int, n_repeats: int, limits: RaceLimits,
                          max_positions: int | None = None) -> None:
    """Raise ValueError (with a message a learner can act on) if the request breaks a limit."""
    if n_prompt_tokens < 1:
        raise ValueError("The prompt is empty: type at least one word so the model has something to continue.")
    if n_prompt_tokens > limits.max_prompt_tokens:
        raise ValueError(f"The prompt has {n_prompt_tokens} tokens; the timing tab accepts at most "
                         f"{limits.max_prompt_tokens}. Shorten the prompt.")
    if not 1 <= n_new_tokens <= limits.max_new_tokens:
        raise ValueError(f"New tokens must be between 1 and {limits.max_new_tokens} (got {n_new_tokens}).")
    if not 1 <= n_repeats <= limits.max_repeats:
        raise ValueError(f"Repeats must be between 1 and {limits.max_repeats} (got {n_repeats}).")
    if max_positions is not None and n_prompt_tokens + n_new_tokens > max_positions:
        raise ValueError(f"The prompt ({n_prompt_tokens} tokens) plus {n_new_tokens} new tokens is longer than "
                         f"the model's context of {max_positions} tokens. Use fewer new tokens or a shorter prompt.")


def validate_sweep_request(lengths: Sequence[int], n_repeats: int, limits: RaceLimits) -> list[int]:
    """Check a sweep's list of N values; return them sorted and de-duplicated."""
    values = sorted({as_count(n, "Sweep token counts") for n in lengths})
    if len(values) < 3:
        raise ValueError(f"A length sweep needs at least 3 different token counts to fit a curve "
                         f"(got {values}).")
    if len(values) > limits.max_sweep_points:
        raise ValueError(f"A length sweep may have at most {limits.max_sweep_points} token counts "
                         f"(got {len(values)}).")
    if values[0] < 2 or values[-1] > limits.max_sweep_new_tokens:
        raise ValueError(f"Sweep token counts must be between 2 and {limits.max_sweep_new_tokens} "
                         f"(got {values[0]}..{values[-1]}).")
    if not 1 <= n_repeats <= limits.max_sweep_repeats:
        raise ValueError(f"Sweep repeats must be between 1 and {limits.max_sweep_repeats} (got {n_repeats}).")
    return values


# ----------------------------------------------------------------------------------------------------------
# Exclusive access and machine load
# ----------------------------------------------------------------------------------------------------------

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


def _load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


class _ExclusiveAccess:
    """Hold `exclusive` while timing: a lock (`acquire(blocking=False)`/`release()`) or a context manager.

    A context manager whose `__enter__` returns a bool (the session's `lock.exclusive()` yields "was the
    model free at once") reports that bool; otherwise an entry that took under 10 ms counts as free.
    """

    def __init__(self, exclusive: Any | None):
        self._exclusive = exclusive
        self._held = False
        self.waited_s = 0.0
        self.acquired_without_waiting: bool | None = None

    @property
    def exclusive(self) -> bool:
        return self._exclusive is not None

    @property
    def is_lock(self) -> bool:
        return hasattr(self._exclusive, "acquire") and hasattr(self._exclusive, "release")

    def try_acquire(self) -> bool:
        """True when nothing more is needed (no lock, or a lock that was free); else call `acquire()`."""
        if self._exclusive is None:
            return True
        if self.is_lock and self._exclusive.acquire(blocking=False):
            self._held, self.acquired_without_waiting = True, True
            return True
        return False

    def acquire(self) -> None:
        """Blocking acquire; records how long it waited."""
        start = time.perf_counter()
        if self.is_lock:
            self._exclusive.acquire()
            entered = False  # the non-blocking try failed, so this one waited
        else:
            entered = self._exclusive.__enter__()
        self._held = True
        self.waited_s = time.perf_counter() - start
        self.acquired_without_waiting = entered if isinstance(entered, bool) else self.waited_s < 0.01

    def waiting_message(self) -> str:
        if self.is_lock:
            return ("Another timing run is using the model; waiting for it to finish so the two don't slow "
                    "each other down…")
        return "Getting exclusive use of the model (requests already running finish first)…"

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self.is_lock:
            self._exclusive.release()
        else:
            self._exclusive.__exit__(None, None, None)


# ----------------------------------------------------------------------------------------------------------
# Timed generate(): a streamer reads the clock at every token, in lockstep with the consumer
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Step:
    step: int  # 0 = first new token (generate's setup + prefill), then 1..N-1
    latency_s: float  # wall clock
    cpu_s: float  # process CPU time over the same interval (all threads; for spotting a starved CPU)
    token_id: int


@dataclass
class _RunOutput:
    """Filled in when a timed run ends."""

    setup_s: float = 0.0  # generate() bookkeeping before the prompt reached the model (part of step 0)
    cache: Any = None  # the final DynamicCache of a cached run


class _Aborted(Exception):
    """Raised inside generate() when the consumer stops iterating."""


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for queued device work, so the clock reads finished work."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


class _LockstepClock(BaseStreamer):
    """generate() calls put() with the prompt, then with each new token; put() reads the clock there.

    Every `pause_every_s` seconds of timed work it hands the tokens timed so far to the consumer and
    blocks until the consumer asks for more; the clock restarts only then, so the consumer's work (drawing
    the live chart) is never timed and never competes with the model. The last token is handed over
    without blocking. Pause rarely: on a CPU each pause is a thread switch that slows the next steps.
    """

    def __init__(self, sync: Callable[[], None], n_new_tokens: int, pause_every_s: float):
        self.events: queue.SimpleQueue = queue.SimpleQueue()  # worker -> consumer
        self.resume: queue.SimpleQueue = queue.SimpleQueue()  # consumer -> worker: True go on, False abort
        self._sync = sync
        self._n_new_tokens = n_new_tokens
        self._pause_every_s = pause_every_s
        self._started = self._cpu_started = self._unpaused_since = 0.0
        self._saw_prompt = False
        self._batch: list[_Step] = []
        self._steps_sent = 0

    def start(self) -> None:
        self._cpu_started = time.process_time()
        self._started = self._unpaused_since = time.perf_counter()

    def put(self, value: torch.Tensor) -> None:
        self._sync()
        now, cpu_now = time.perf_counter(), time.process_time()
        if not self._saw_prompt:  # the prompt: generate()'s setup is over; keep the clock running
            self._saw_prompt = True
            self.events.put(("setup", now - self._started))
            return
        step = self._steps_sent + len(self._batch)
        self._batch.append(_Step(step, now - self._started, cpu_now - self._cpu_started,
                                 int(value.reshape(-1)[0])))
        is_last = step == self._n_new_tokens - 1
        if not is_last and now - self._unpaused_since < self._pause_every_s:
            self._started, self._cpu_started = now, cpu_now  # the next token's clock starts here
            return
        self._steps_sent = step + 1
        self.events.put(("tokens", self._batch))
        self._batch = []
        if is_last:  # nothing left to time: generate() finishes while the consumer draws
            return
        if not self.resume.get():
            raise _Aborted
        self.start()

    def end(self) -> None:
        if self._batch:  # not expected (the last token is always handed over), but never lose a token
            self.events.put(("tokens", self._batch))
            self._batch = []


def _generate_kwargs(model: PreTrainedModel, n_new_tokens: int, mode: Mode) -> dict[str, Any]:
    """Greedy, exactly N new tokens (min = max: EOS cannot end a run early), with or without the cache."""
    config = model.generation_config
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    if isinstance(pad, list):
        pad = pad[0]
    return dict(max_new_tokens=n_new_tokens, min_new_tokens=n_new_tokens, do_sample=False,
                use_cache=mode == CACHED, pad_token_id=pad, return_dict_in_generate=True)


def _timed_generate(model: PreTrainedModel, prompt_ids: torch.Tensor, n_new_tokens: int, mode: Mode,
                    output: _RunOutput | None = None, pause_every_s: float = 0.0) -> Iterator[list[_Step]]:
    """Run `model.generate` in a worker thread; yield the new tokens' latencies in batches as they come.

    Step 0 counts from the call to generate() to the first new token (setup + prefill); later steps count
    from the previous token to this one. A batch is handed over every `pause_every_s` seconds (0: every
    token) and at the last token; the clock is stopped while this generator is suspended.
    Closing the generator early aborts generate() and joins the worker.
    """
    clock = _LockstepClock(_synchronizer(model.device), n_new_tokens, pause_every_s)
    ids = prompt_ids.view(1, -1).to(model.device)  # [batch, pos]
    kwargs = _generate_kwargs(model, n_new_tokens, mode)

    def work() -> None:
        try:
            with torch.inference_mode():  # thread-local: entered in the worker itself
                clock.start()
                out = model.generate(ids, attention_mask=torch.ones_like(ids), streamer=clock, **kwargs)
            clock.events.put(("done", out.cache if mode == CACHED else None))
        except _Aborted:
            clock.events.put(("aborted", None))
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer's thread
            clock.events.put(("error", error))

    worker = threading.Thread(target=work, name="kv-cache-timing", daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            kind, payload = clock.events.get()
            if kind == "setup" and output is not None:
                output.setup_s = payload
            elif kind == "tokens":
                yield payload
                if payload[-1].step < n_new_tokens - 1:
                    clock.resume.put(True)
            elif kind == "done":
                finished = True
                if output is not None:
                    output.cache = payload
                return
            elif kind == "error":
                finished = True
                raise payload
    finally:
        if not finished:
            clock.resume.put(False)  # a put() waiting for the consumer raises _Aborted
        worker.join()


def _time_whole_run(model: PreTrainedModel, prompt_ids: torch.Tensor, n_new_tokens: int,
                    mode: Mode) -> tuple[float, float]:
    """(wall, process CPU) seconds of one plain generate() call (no streamer), synchronised on a GPU."""
    sync = _synchronizer(model.device)
    ids = prompt_ids.view(1, -1).to(model.device)  # [batch, pos]
    with torch.inference_mode():
        sync()
        cpu_start, start = time.process_time(), time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), **_generate_kwargs(model, n_new_tokens, mode))
        sync()
        return time.perf_counter() - start, time.process_time() - cpu_start


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimingStats:
    """Spread of total times over repeats (the %%timeit summary, plus the median)."""

    median_s: float
    mean_s: float
    std_s: float  # population std. dev. (0 for one run)
    min_s: float
    max_s: float
    n_runs: int

    @classmethod
    def of(cls, values_s: np.ndarray) -> TimingStats:
        v = np.asarray(values_s, dtype=np.float64)
        return cls(float(np.median(v)), float(v.mean()), float(v.std()), float(v.min()), float(v.max()), v.size)

    def timeit_text(self) -> str:
        """E.g. '6.66 s ± 2.22 s per run (mean ± std. dev. of 7 runs); median 6.10 s'."""
        runs = "run" if self.n_runs == 1 else "runs"
        return (f"{format_seconds(self.mean_s)} ± {format_seconds(self.std_s)} per run (mean ± std. dev. of "
                f"{self.n_runs} {runs}); median {format_seconds(self.median_s)}")


def format_seconds(seconds: float) -> str:
    """Human units like %%timeit: '812 µs', '6.66 ms', '21.9 s'."""
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


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


def theil_sen_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope): slope = median of pairwise slopes, intercept = median of y - slope·x."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return (float(y[0]) if y.size else 0.0), 0.0
    i, j = np.triu_indices(x.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return float(np.median(y - slope * x)), slope


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
    strs = ((lambda ids: [visible_token(tokenizer.decode([i])) for i in ids]) if tokenizer is not None
            else (lambda ids: None))
    return OutputComparison(a, b, strs(a), strs(b),
                            identical=first is None and cached.repeats_agree and uncached.repeats_agree,
                            first_mismatch=first)


@dataclass(frozen=True)
class CacheLayerInfo:
    """One layer's cached keys and values, measured from the tensors."""

    layer: int
    key_shape: tuple[int, ...]  # [batch, n_kv_heads, pos, d_head]
    value_shape: tuple[int, ...]  # [batch, n_kv_heads, pos, d_head]
    dtype: str
    n_cached_tokens: int
    n_bytes: int  # keys + values: numel x element size
    n_allocated_bytes: int  # bytes of the storages behind them (a sliding window keeps a view of more)
    sliding_window: int | None  # the layer keeps only the last tokens when set


@dataclass(frozen=True)
class CacheReport:
    """What the cache holds after the cached run, and what it costs."""

    layers: list[CacheLayerInfo]
    n_layers: int
    batch: int
    n_tokens: int  # tokens the model has seen: prompt + new tokens fed back (the last one never is)
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    bytes_per_element: int
    dtype: str
    measured_bytes: int  # sum over layers, from the tensors
    formula_bytes: int  # 2 x layers x batch x tokens x kv_heads x head_dim x bytes (per-layer tokens)
    hidden_dim_formula_bytes: int  # the chapter's 2 x layers x batch x tokens x d_model x bytes
    bytes_per_token: int  # 2 x layers x kv_heads x head_dim x bytes, one sequence
    formula_text: str
    note: str

    @property
    def measured_equals_formula(self) -> bool:
        return self.measured_bytes == self.formula_bytes


def _text_config(config: Any) -> Any:
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def attention_dims(config: Any) -> tuple[int, int, int, int, int]:
    """(n_layers, n_heads, n_kv_heads, d_head, d_model) from a transformers config."""
    cfg = _text_config(config)
    n_layers = int(cfg.num_hidden_layers)
    n_heads = int(cfg.num_attention_heads)
    n_kv_heads = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    d_model = int(cfg.hidden_size)
    d_head = int(getattr(cfg, "head_dim", None) or d_model // n_heads)
    return n_layers, n_heads, n_kv_heads, d_head, d_model


def kv_cache_bytes(config: Any, n_tokens: int, batch: int = 1, bytes_per_element: int = 2) -> int:
    """2 x layers x batch x tokens x kv_heads x head_dim x bytes (full attention in every layer).

    bf16/fp16 use 2 bytes per element, fp32 4. Phi-3-mini in bf16: 393,216 bytes (384 KiB) per token.
    """
    n_layers, _, n_kv_heads, d_head, _ = attention_dims(config)
    return 2 * n_layers * batch * n_tokens * n_kv_heads * d_head * bytes_per_element


def _sliding_window(layer: Any) -> int | None:
    window = getattr(layer, "sliding_window", None)
    return int(window) if window else None


def _storage_bytes(tensors: Sequence[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def inspect_cache(cache: Any, config: Any, n_tokens: int | None = None) -> CacheReport:
    """Measure a DynamicCache (`.layers[i].keys/.values`) and set it beside the formulas.

    `n_tokens` is the sequence length the model has processed; by default the longest layer's length.
    """
    n_layers, n_heads, n_kv_heads, d_head, d_model = attention_dims(config)
    infos: list[CacheLayerInfo] = []
    for index, layer in enumerate(cache.layers):
        keys, values = layer.keys, layer.values  # [batch, n_kv_heads, pos, d_head]
        if keys is None or values is None or keys.dim() != 4:
            raise ValueError(f"Cache layer {index} holds no key/value tensors: run the cached mode first.")
        infos.append(CacheLayerInfo(
            layer=index, key_shape=tuple(keys.shape), value_shape=tuple(values.shape),
            dtype=str(keys.dtype).removeprefix("torch."), n_cached_tokens=int(keys.shape[2]),
            n_bytes=keys.numel() * keys.element_size() + values.numel() * values.element_size(),
            n_allocated_bytes=_storage_bytes([keys, values]), sliding_window=_sliding_window(layer)))
    if not infos:
        raise ValueError("The cache is empty: run the cached mode first.")
    batch = infos[0].key_shape[0]
    bytes_per_element = cache.layers[0].keys.element_size()
    seen = n_tokens if n_tokens is not None else max(i.n_cached_tokens for i in infos)
    per_layer_token = 2 * batch * n_kv_heads * d_head * bytes_per_element  # keys + values for one token
    formula = sum(per_layer_token * i.n_cached_tokens for i in infos)
    hidden_formula = 2 * n_layers * batch * seen * d_model * bytes_per_element
    return CacheReport(
        layers=infos, n_layers=n_layers, batch=batch, n_tokens=seen, n_heads=n_heads, n_kv_heads=n_kv_heads,
        d_head=d_head, d_model=d_model, bytes_per_element=bytes_per_element, dtype=infos[0].dtype,
        measured_bytes=sum(i.n_bytes for i in infos), formula_bytes=formula,
        hidden_dim_formula_bytes=hidden_formula,
        bytes_per_token=2 * n_layers * n_kv_heads * d_head * bytes_per_element,
        formula_text=_formula_text(infos, n_layers, batch, n_kv_heads, d_head, bytes_per_element, formula),
        note=_cache_note(infos, seen, n_heads, n_kv_heads, d_head, d_model, formula, hidden_formula))


def _formula_text(infos: list[CacheLayerInfo], n_layers: int, batch: int, n_kv_heads: int, d_head: int,
                  bytes_per_element: int, formula: int) -> str:
    token_counts = sorted({i.n_cached_tokens for i in infos})
    if len(token_counts) == 1:
        return (f"2 × {n_layers} layers × {batch} batch × {token_counts[0]} tokens × {n_kv_heads} kv_heads × "
                f"{d_head} head_dim × {bytes_per_element} bytes = {formula:,} bytes")
    terms = " + ".join(f"{sum(1 for i in infos if i.n_cached_tokens == t)} layers × {t} tokens"
                       for t in token_counts)
    return (f"2 × {batch} batch × {n_kv_heads} kv_heads × {d_head} head_dim × {bytes_per_element} bytes × "
            f"({terms}) = {formula:,} bytes")


def _cache_note(infos: list[CacheLayerInfo], n_tokens: int, n_heads: int, n_kv_heads: int, d_head: int,
                d_model: int, formula: int, hidden_formula: int) -> str:
    parts = []
    if n_kv_heads < n_heads:
        parts.append(
            f"This model uses grouped-query attention: its {n_heads} query heads share {n_kv_heads} key/value "
            f"heads ({n_heads // n_kv_heads} query heads per KV head), so it caches {n_kv_heads} × {d_head} = "
            f"{n_kv_heads * d_head} numbers per token per layer for keys (and as many for values), not "
            f"d_model = {d_model}.")
    if n_kv_heads * d_head != d_model or n_kv_heads < n_heads:
        ratio = hidden_formula / formula if formula else float("nan")
        verb = "over-counts" if hidden_formula > formula else "under-counts"
        parts.append(f"The chapter's simpler formula 2 × layers × tokens × hidden_dim × bytes {verb} this "
                     f"cache by {ratio:.2f}× ({hidden_formula:,} vs {formula:,} bytes).")
    else:
        parts.append("Every head has its own keys and values (n_kv_heads × head_dim = hidden_dim), so the "
                     "chapter's formula 2 × layers × tokens × hidden_dim × bytes is exact here.")
    sliding = [i for i in infos if i.sliding_window and i.n_cached_tokens < n_tokens]
    if sliding:
        names = ", ".join(str(i.layer) for i in sliding)
        subject = f"Layers {names} use a sliding window: they keep" if len(sliding) > 1 else \
            f"Layer {names} uses a sliding window: it keeps"
        parts.append(f"{subject} only the last {sliding[0].n_cached_tokens} of the {n_tokens} tokens.")
    return " ".join(parts)


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


@dataclass(frozen=True)
class RaceUpdate:
    """One streamed progress report; the last one of a race carries `result`."""

    phase: Literal["waiting", "warmup", "timing", "done"]
    message: str  # status line for the UI
    fraction_done: float  # 0..1 for a progress bar
    n_new_tokens: int
    latencies_s: dict[Mode, tuple[tuple[float, ...], ...]]  # mode -> repeats so far -> per-step latencies
    mode: Mode | None = None  # the mode of the latest step
    repeat: int | None = None
    step: int | None = None
    result: RaceResult | None = None


# ----------------------------------------------------------------------------------------------------------
# Race
# ----------------------------------------------------------------------------------------------------------

def _prompt_tensor(prompt_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).detach().cpu()
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(f"prompt_ids must be one sequence of token ids (got shape {tuple(ids.shape)}).")
    return ids


def _max_positions(model: PreTrainedModel) -> int | None:
    value = getattr(_text_config(model.config), "max_position_embeddings", None)
    return int(value) if value else None


def mode_order(repeat: int) -> tuple[Mode, Mode]:
    """Cached first in even repeats, uncached first in odd ones (balances drift in machine load)."""
    return (CACHED, UNCACHED) if repeat % 2 == 0 else (UNCACHED, CACHED)


def _conditions(access: _ExclusiveAccess, model: PreTrainedModel, load_before: float | None,
                wall_s: float, cpu_s: float) -> TimingConditions:
    cpu_share = cpu_s / wall_s if model.device.type == "cpu" and wall_s > 0 else None
    return TimingConditions(
        exclusive=access.exclusive, acquired_without_waiting=access.acquired_without_waiting,
        waited_s=access.waited_s, device=str(model.device), cpu_count=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(), load_before=load_before, load_after=_load_average(),
        cpu_share=cpu_share)


def _warm_up(model: PreTrainedModel, prompt: torch.Tensor, n_tokens: int) -> None:
    if n_tokens > 0:
        for mode in MODES:
            _time_whole_run(model, prompt, n_tokens, mode)  # result discarded


def race_kv_cache(model: PreTrainedModel, prompt_ids: Sequence[int] | torch.Tensor, n_new_tokens: int,
                  n_repeats: int = 3, *, tokenizer: Any | None = None, exclusive: Any | None = None,
                  limits: RaceLimits = RaceLimits(), warmup_tokens: int = 8, interleave: bool = False,
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
    `tokenizer` (optional) decodes the new tokens for the output comparison.
    """
    prompt = _prompt_tensor(prompt_ids)
    n_new_tokens, n_repeats = as_count(n_new_tokens, "New tokens"), as_count(n_repeats, "Repeats")
    validate_race_request(prompt.numel(), n_new_tokens, n_repeats, limits, _max_positions(model))
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

    def add(self, mode: Mode, step: _Step) -> None:
        self.latencies[mode][-1].append(step.latency_s)
        self.cpu[mode][-1].append(step.cpu_s)
        self.tokens[mode][-1].append(step.token_id)

    def snapshot(self) -> dict[Mode, tuple[tuple[float, ...], ...]]:
        return {m: tuple(tuple(run) for run in runs) for m, runs in self.latencies.items()}

    def wall_and_cpu(self) -> tuple[float, float]:
        return tuple(sum(sum(run) for runs in log.values() for run in runs) for log in (self.latencies, self.cpu))


def _schedule(streams: dict[Mode, Iterator[list[_Step]]], order: tuple[Mode, Mode],
              interleave: bool) -> Iterator[tuple[Mode, list[_Step]]]:
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
    total_steps = 2 * n_repeats * n_new_tokens
    access = _ExclusiveAccess(exclusive)
    load_before = _load_average()
    if not access.try_acquire():
        yield RaceUpdate("waiting", access.waiting_message(), 0.0, n_new_tokens, log.snapshot())
        access.acquire()
    try:
        yield RaceUpdate("warmup", f"Warming up both modes ({warmup_tokens} untimed tokens each)…", 0.0,
                         n_new_tokens, log.snapshot())
        _warm_up(model, prompt, warmup_tokens)
        done_steps = 0
        for repeat, modes in enumerate(order):
            log.start_repeat()
            runs = {m: _RunOutput() for m in MODES}
            streams = {m: _timed_generate(model, prompt, n_new_tokens, m, runs[m], update_interval_s)
                       for m in modes}
            with contextlib.closing(_schedule(streams, modes, interleave)) as batches:
                for mode, batch in batches:
                    for step in batch:
                        log.add(mode, step)
                    done_steps += len(batch)
                    last = batch[-1].step
                    yield RaceUpdate("timing", f"Repeat {repeat + 1}/{n_repeats}: token {last + 1}/"
                                     f"{n_new_tokens} ({mode})", done_steps / total_steps, n_new_tokens,
                                     log.snapshot(), mode, repeat, last)
            for mode in MODES:
                log.setups[mode].append(runs[mode].setup_s)
            log.cache = runs[CACHED].cache
        conditions = _conditions(access, model, load_before, *log.wall_and_cpu())
    finally:
        access.release()
    result = _race_result(model, prompt, n_new_tokens, log, tokenizer, conditions, order, warmup_tokens,
                          interleave)
    yield RaceUpdate("done", _done_message(result), 1.0, n_new_tokens, log.snapshot(), result=result)


def _mode_timing(mode: Mode, log: _RaceLog) -> ModeTiming:
    tokens = log.tokens[mode]
    return ModeTiming(mode, np.asarray(log.latencies[mode], dtype=np.float64), list(tokens[0]),
                      repeats_agree=all(t == tokens[0] for t in tokens),
                      setup_s=np.asarray(log.setups[mode], dtype=np.float64),
                      cpu_s=np.asarray(log.cpu[mode], dtype=np.float64))


def _race_result(model: PreTrainedModel, prompt: torch.Tensor, n_new_tokens: int, log: _RaceLog,
                 tokenizer: Any | None, conditions: TimingConditions, order: list[tuple[Mode, Mode]],
                 warmup_tokens: int, interleave: bool) -> RaceResult:
    cached, uncached = _mode_timing(CACHED, log), _mode_timing(UNCACHED, log)
    # The last new token is never fed back, so the cache holds prompt + N - 1 tokens.
    report = inspect_cache(log.cache, model.config, n_tokens=prompt.numel() + n_new_tokens - 1)
    return RaceResult(prompt.numel(), n_new_tokens, len(order), cached, uncached,
                      compare_outputs(cached, uncached, tokenizer), report, conditions, order, warmup_tokens,
                      interleave)


def _done_message(result: RaceResult) -> str:
    text = (f"Done: {result.n_new_tokens} tokens in {format_seconds(result.cached.total.median_s)} with the "
            f"cache and {format_seconds(result.uncached.total.median_s)} without (median of "
            f"{result.n_repeats}): {result.speedup:.2f}× faster with the cache.")
    warning = result.conditions.warning
    return f"{text} {warning}" if warning else text


# ----------------------------------------------------------------------------------------------------------
# Length sweep
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PolyFit:
    """total_s ≈ c0 + c1·N (+ c2·N²), least squares."""

    degree: int
    coefficients: tuple[float, ...]  # (c0, c1[, c2]), lowest power first
    r_squared: float

    def __call__(self, n: np.ndarray | float) -> np.ndarray:
        return np.polynomial.polynomial.polyval(np.asarray(n, dtype=np.float64), self.coefficients)

    @property
    def equation(self) -> str:
        """E.g. 't ≈ 0.012 s + 4.1 ms·N + 0.052 ms·N²' (N = new tokens)."""
        c = self.coefficients
        terms = [f"{c[0]:.3g} s", f"{c[1] * 1e3:.3g} ms·N"] + ([f"{c[2] * 1e3:.3g} ms·N²"] if len(c) > 2 else [])
        return ("t ≈ " + " + ".join(terms)).replace("+ -", "- ")


def fit_polynomial(n_values: np.ndarray, totals_s: np.ndarray, degree: int) -> PolyFit:
    """Least-squares polynomial fit of total time against N (degree 1: linear, 2: quadratic)."""
    x = np.asarray(n_values, dtype=np.float64)
    y = np.asarray(totals_s, dtype=np.float64)
    if np.unique(x).size <= degree:
        raise ValueError(f"A degree-{degree} fit needs at least {degree + 1} different N values.")
    coefficients = np.polynomial.polynomial.polyfit(x, y, degree)
    residual = y - np.polynomial.polynomial.polyval(x, coefficients)
    spread = float(((y - y.mean()) ** 2).sum())
    r_squared = 1.0 - float((residual**2).sum()) / spread if spread > 0 else 1.0
    return PolyFit(degree, tuple(float(c) for c in coefficients), r_squared)


FIT_DEGREE: dict[Mode, int] = {CACHED: 1, UNCACHED: 2}  # linear with the cache, quadratic without


def default_sweep_lengths(max_new_tokens: int, n_points: int = 5) -> list[int]:
    """Evenly spaced N values up to `max_new_tokens` (5 points: a quadratic through 3 always fits)."""
    if max_new_tokens < 2 * n_points:
        raise ValueError(f"A sweep of {n_points} points needs a limit of at least {2 * n_points} new tokens.")
    return sorted({round(max_new_tokens * (i + 1) / n_points) for i in range(n_points)})


@dataclass(frozen=True)
class SweepResult:
    n_prompt_tokens: int
    lengths: np.ndarray  # [point] N values, ascending
    totals_s: dict[Mode, np.ndarray]  # mode -> [point, repeat]
    fits: dict[Mode, PolyFit]  # FIT_DEGREE per mode, fitted to every repeat's total
    conditions: TimingConditions

    def medians_s(self, mode: Mode) -> np.ndarray:  # [point]
        return np.median(self.totals_s[mode], axis=1)

    @property
    def speedups(self) -> np.ndarray:  # [point]
        return self.medians_s(UNCACHED) / self.medians_s(CACHED)


@dataclass(frozen=True)
class SweepUpdate:
    phase: Literal["waiting", "warmup", "timing", "done"]
    message: str
    fraction_done: float
    lengths: tuple[int, ...]  # all N values of the sweep
    totals_s: dict[Mode, tuple[tuple[float, ...], ...]] = field(default_factory=dict)  # mode -> [point][repeat]
    result: SweepResult | None = None


def sweep_kv_cache(model: PreTrainedModel, prompt_ids: Sequence[int] | torch.Tensor, lengths: Sequence[int],
                   n_repeats: int = 1, *, exclusive: Any | None = None, limits: RaceLimits = RaceLimits(),
                   warmup_tokens: int = 8) -> Iterator[SweepUpdate]:
    """Total time against N for both modes: a separate plain generate() call per N, mode and repeat.

    Validates at once (ValueError), then returns a generator of SweepUpdate objects: "waiting"/"warmup",
    one "timing" update after every run, and a final "done" update whose `result` is the SweepResult
    (a linear fit for the cached mode, a quadratic one for the uncached mode). Progress counts
    token-forwards, so the long uncached runs move the bar as much as they take. `exclusive` as in
    `race_kv_cache`.
    """
    prompt = _prompt_tensor(prompt_ids)
    n_repeats = as_count(n_repeats, "Sweep repeats")
    values = validate_sweep_request(lengths, n_repeats, limits)
    validate_race_request(prompt.numel(), values[-1], 1, limits, _max_positions(model))
    return _sweep(model, prompt, values, n_repeats, exclusive, max(0, min(warmup_tokens, values[-1])))


def _sweep(model: PreTrainedModel, prompt: torch.Tensor, values: list[int], n_repeats: int,
           exclusive: Any | None, warmup_tokens: int) -> Iterator[SweepUpdate]:
    totals: dict[Mode, list[list[float]]] = {CACHED: [], UNCACHED: []}
    n_prompt = prompt.numel()
    # Work units: token-forwards. Cached: P + N - 1; uncached: sum of (P + k) over k < N.
    cost = {CACHED: lambda n: n_prompt + n - 1, UNCACHED: lambda n: n * n_prompt + n * (n - 1) / 2}
    total_work = n_repeats * sum(cost[m](n) for n in values for m in MODES)

    def update(phase: str, message: str, work_done: float, result: SweepResult | None = None) -> SweepUpdate:
        return SweepUpdate(phase, message, min(1.0, work_done / total_work), tuple(values),
                           {m: tuple(tuple(p) for p in pts) for m, pts in totals.items()}, result)

    access = _ExclusiveAccess(exclusive)
    load_before = _load_average()
    if not access.try_acquire():
        yield update("waiting", access.waiting_message(), 0)
        access.acquire()
    try:
        yield update("warmup", f"Warming up both modes ({warmup_tokens} untimed tokens each)…", 0)
        _warm_up(model, prompt, warmup_tokens)
        work_done, wall_s, cpu_s = 0.0, 0.0, 0.0
        for index, n in enumerate(values):
            for mode in MODES:
                totals[mode].append([])
            for repeat in range(n_repeats):
                for mode in mode_order(index * n_repeats + repeat):
                    wall, cpu = _time_whole_run(model, prompt, n, mode)
                    totals[mode][-1].append(wall)
                    wall_s, cpu_s, work_done = wall_s + wall, cpu_s + cpu, work_done + cost[mode](n)
                    yield update("timing", f"N = {n} ({index + 1}/{len(values)}), repeat {repeat + 1}/"
                                 f"{n_repeats}, {mode}: {format_seconds(totals[mode][-1][-1])}", work_done)
        conditions = _conditions(access, model, load_before, wall_s, cpu_s)
    finally:
        access.release()
    lengths_arr = np.asarray(values, dtype=np.int64)
    totals_arr = {m: np.asarray(totals[m], dtype=np.float64) for m in MODES}  # [point, repeat]
    fits = {m: fit_polynomial(np.repeat(lengths_arr, n_repeats), totals_arr[m].ravel(), FIT_DEGREE[m])
            for m in MODES}
    result = SweepResult(n_prompt, lengths_arr, totals_arr, fits, conditions)
    yield update("done", f"Sweep done: at N = {values[-1]} the cache is {result.speedups[-1]:.2f}× faster.",
                 total_work, result)


def run_to_end(updates: Iterator[RaceUpdate] | Iterator[SweepUpdate]) -> Any:
    """Consume a race or sweep generator and return its final result (for scripts, tests, notebooks)."""
    last = None
    for update in updates:
        last = update
    if last is None or last.result is None:
        raise RuntimeError("The generator ended without a result.")
    return last.result


__all__ = [
    "CACHED", "UNCACHED", "MODES", "Mode", "RaceLimits", "TimingConditions", "TimingStats", "ModeTiming",
    "OutputComparison", "CacheLayerInfo", "CacheReport", "RaceResult", "RaceUpdate", "PolyFit", "SweepResult",
    "SweepUpdate", "race_kv_cache", "sweep_kv_cache", "run_to_end", "inspect_cache", "kv_cache_bytes",
    "attention_dims", "compare_outputs", "fit_polynomial", "theil_sen_fit", "format_seconds", "mode_order",
    "validate_race_request", "validate_sweep_request", "as_count", "FIT_DEGREE", "default_sweep_lengths",
]
