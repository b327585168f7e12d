"""A `model.generate()` call timed token by token, in lockstep with the code that draws the results.

Timing rules (the chapter's claim is only worth showing if it is measured fairly):

* Greedy and a fixed length (`min_new_tokens = max_new_tokens = N`): EOS cannot end a run early, so both
  modes produce exactly N tokens.
* What is timed is `model.generate()`, the call the chapter times with %%timeit. A streamer reads
  `time.perf_counter()` each time generate() hands over a token, after `torch.cuda.synchronize()` on a
  GPU (kernels are asynchronous: without it the clock would stop before the work is done). Token 1 counts
  from the call (generate's setup + prefill), token k from token k-1.
* generate() runs in a worker thread in lockstep with the consumer: every `pause_every_s` it hands over the
  tokens timed so far and waits until the consumer asks for more, and its clock restarts only then, so
  re-drawing the live chart is never timed and never competes with the model for the CPU. A fresh thread
  gets its own glibc malloc arena, which by default hands freed memory back to the OS and page-faults it in
  again (long uncached runs read ~20% slower than on the main thread): the serving process fixes the
  thresholds at startup (`visualizer.allocator.keep_freed_memory`); call it in a notebook too.

Nothing thread-local is held across a `yield` (inference mode is entered in the worker thread), so the
generators may be resumed from different threads, as Gradio does.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.generation.streamers import BaseStreamer

from visualizer.analysis.kv_cache import CACHED, MODES, Mode
from visualizer.dims import dims_from_config


@dataclass(frozen=True)
class Step:
    """One new token's timing."""

    step: int  # 0 = first new token (generate's setup + prefill), then 1..N-1
    latency_s: float  # wall clock
    cpu_s: float  # process CPU time over the same interval (all threads; for spotting a starved CPU)
    token_id: int


@dataclass
class RunOutput:
    """Filled in when a timed run ends."""

    setup_s: float = 0.0  # generate() bookkeeping before the prompt reached the model (part of step 0)
    cache: Any = None  # the final DynamicCache of a cached run


class _Aborted(Exception):
    """Raised inside generate() when the consumer stops iterating."""


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for queued device work, so the clock reads finished work."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


class LockstepClock(BaseStreamer):
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
        self._batch: list[Step] = []
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
        self._batch.append(Step(step, now - self._started, cpu_now - self._cpu_started, int(value.reshape(-1)[0])))
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


def generate_kwargs(model: PreTrainedModel, n_new_tokens: int, mode: Mode) -> dict[str, Any]:
    """Greedy, exactly N new tokens (min = max: EOS cannot end a run early), with or without the cache."""
    config = model.generation_config
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    if isinstance(pad, list):
        pad = pad[0]
    return dict(max_new_tokens=n_new_tokens, min_new_tokens=n_new_tokens, do_sample=False,
                use_cache=mode == CACHED, pad_token_id=pad, return_dict_in_generate=True)


def timed_generate(model: PreTrainedModel, prompt_ids: torch.Tensor, n_new_tokens: int, mode: Mode,
                   output: RunOutput | None = None, pause_every_s: float = 0.0) -> Iterator[list[Step]]:
    """Run `model.generate` in a worker thread; yield the new tokens' latencies in batches as they come.

    Step 0 counts from the call to generate() to the first new token (setup + prefill); later steps count
    from the previous token to this one. A batch is handed over every `pause_every_s` seconds (0: every
    token) and at the last token; the clock is stopped while this generator is suspended.
    Closing the generator early aborts generate() and joins the worker.
    """
    clock = LockstepClock(synchronizer(model.device), n_new_tokens, pause_every_s)
    ids = prompt_ids.view(1, -1).to(model.device)  # [batch, pos]
    kwargs = generate_kwargs(model, n_new_tokens, mode)

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


def time_whole_run(model: PreTrainedModel, prompt_ids: torch.Tensor, n_new_tokens: int,
                   mode: Mode) -> tuple[float, float]:
    """(wall, process CPU) seconds of one plain generate() call (no streamer), synchronised on a GPU."""
    sync = synchronizer(model.device)
    ids = prompt_ids.view(1, -1).to(model.device)  # [batch, pos]
    with torch.inference_mode():
        sync()
        cpu_start, start = time.process_time(), time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), **generate_kwargs(model, n_new_tokens, mode))
        sync()
        return time.perf_counter() - start, time.process_time() - cpu_start


def warm_up(model: PreTrainedModel, prompt: torch.Tensor, n_tokens: int) -> None:
    """Untimed runs of both modes first (allocators, kernel selection, lazy initialisation)."""
    if n_tokens > 0:
        for mode in MODES:
            time_whole_run(model, prompt, n_tokens, mode)  # result discarded


def prompt_tensor(prompt_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """One sequence of token ids as a 1-D CPU tensor `[pos]` (a `[1, pos]` batch is unwrapped)."""
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).detach().cpu()
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(f"prompt_ids must be one sequence of token ids (got shape {tuple(ids.shape)}).")
    return ids


def max_positions(model: PreTrainedModel) -> int | None:
    """The model's context window (None when its config names none)."""
    return dims_from_config(model.config).n_ctx


def run_to_end(updates: Iterator[Any]) -> Any:
    """Consume a race or sweep generator and return its final result (for scripts, tests, notebooks)."""
    last = None
    for update in updates:
        last = update
    if last is None or last.result is None:
        raise RuntimeError("The generator ended without a result.")
    return last.result
