"""The chapter's speed tips measured on the loaded model: attention kernels, precision, torch.compile, batch size.

Rules, as for the KV race (`runs.kv_race`): the model is held alone for the whole run (`exclusive`, the
session's `lock.exclusive()`), every setting gets an untimed warm-up and then `n_repeats` timed runs, and the
machine's load and CPU share are recorded (`runs.exclusive.timing_conditions`).

* The attention implementation is switched on the shared model only while the run holds it alone, and put back
  in a `finally` (a trace needs eager attention: under SDPA its attentions would be missing).
* Other dtypes and the compiled model run on a hook-free COPY (`copy.deepcopy`, then `.to(dtype)`): the shared
  model is never changed. A copy that would not fit `budget_bytes` is refused with the numbers.
* Decode tokens/s come from `timed_generate` (the race's lockstep clock): the first new token is the prefill,
  the other N - 1 are decode steps.
"""

from __future__ import annotations

import gc
import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import CompileConfig, PreTrainedModel

from visualizer.analysis.kv_cache import CACHED, TimingConditions
from visualizer.analysis.speed import (
    MIN_NEW_TOKENS,
    QUALITY_PROMPTS,
    Part,
    SpeedResult,
    SpeedRow,
    SpeedUpdate,
    batch_bytes,
    batch_sizes,
    next_token_quality,
    prefill_lengths,
    tokens_per_second,
    validate_parts,
)
from visualizer.config import DEFAULT_MEMORY_BUDGET_BYTES, Limits
from visualizer.device import cuda_capability, is_dispatched, weight_bytes
from visualizer.dims import dims_from_config
from visualizer.runs.exclusive import ExclusiveAccess, load_average, timing_conditions
from visualizer.runs.model_copies import (  # noqa: F401  (re-exported: the speed lab's own vocabulary)
    DTYPE_NAMES,
    attention_implementation,
    copy_bytes,
    hook_free_copy,
    native_dtypes,
)
from visualizer.runs.timing import generate_kwargs, max_positions, prompt_tensor, synchronizer, timed_generate
from visualizer.validation import whole_number

_LIMITS = Limits()
_ONE_BATCH = 1e9  # pause_every_s: hand every token over at the end (no pause inside a timed run)
@dataclass
class _Run:
    """The state of one speed run: the model, its settings, what was measured, the clock totals."""

    model: PreTrainedModel
    prompt: torch.Tensor  # [pos]
    n_new: int
    n_repeats: int
    budget_bytes: int
    limits: Limits
    tokenizer: Any | None
    compile_unavailable: str | None
    rows: list[SpeedRow] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def timed(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        """fn() and its wall seconds, synchronised on a GPU; the wall and CPU time count toward conditions."""
        sync = synchronizer(self.model.device)
        sync()
        cpu, start = time.process_time(), time.perf_counter()
        out = fn()
        sync()
        wall = time.perf_counter() - start
        self.wall_s, self.cpu_s = self.wall_s + wall, self.cpu_s + time.process_time() - cpu
        return out, wall

    def decode(self, model: PreTrainedModel) -> tuple[float, tuple[int, ...]]:
        """One greedy generate() of N tokens: decode tokens/s (tokens 2..N) and the new token ids."""
        steps = [s for batch in timed_generate(model, self.prompt, self.n_new, CACHED, None, _ONE_BATCH)
                 for s in batch]
        decode_s = sum(s.latency_s for s in steps[1:])
        self.wall_s += sum(s.latency_s for s in steps)
        self.cpu_s += sum(s.cpu_s for s in steps)
        return tokens_per_second(len(steps) - 1, decode_s), tuple(s.token_id for s in steps)

    def decode_repeats(self, model: PreTrainedModel) -> tuple[np.ndarray, tuple[int, ...]]:
        self.decode(model)  # untimed warm-up: allocators, kernel choice, lazy initialisation
        runs = [self.decode(model) for _ in range(self.n_repeats)]
        return np.array([r[0] for r in runs]), runs[0][1]

    def baseline(self, part: Part) -> SpeedRow | None:
        return next((r for r in self.rows if r.part == part and r.baseline), None)


def speed_lab(model: PreTrainedModel, prompt_ids: Sequence[int] | torch.Tensor, n_new_tokens: int = 16,
              n_repeats: int = 3, *, parts: Sequence[str] | None = None, exclusive: Any | None = None,
              budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES, limits: Limits = _LIMITS, tokenizer: Any | None = None,
              compile_unavailable: str | None = None) -> Iterator[SpeedUpdate]:
    """Measure the chapter's speed tips on `model`; validates at once, then returns a generator of SpeedUpdate.

    `parts`: any of "attention", "precision", "compile", "batch" (default: all but compile, which takes
    minutes on a CPU). `budget_bytes`: the most one request may add (copies, batches), as the session's budget.
    `tokenizer` encodes the quality prompts (without one, only the user's prompt is used).
    `compile_unavailable`: a reason the platform cannot compile (e.g. ZeroGPU), shown instead of compiling.
    """
    chosen = validate_parts(parts)
    prompt = prompt_tensor(prompt_ids)
    if prompt.numel() == 0:
        raise ValueError("prompt: it has no tokens; type a few words.")
    n_new = whole_number(n_new_tokens, "number of new tokens", MIN_NEW_TOKENS, limits.max_new_tokens)
    repeats = whole_number(n_repeats, "repeats", 1, limits.max_repeats)
    context = max_positions(model)
    if context and prompt.numel() + n_new > context:
        raise ValueError(f"{prompt.numel():,} prompt tokens + {n_new:,} new tokens exceed the model's context of "
                         f"{context:,} tokens: shorten the prompt or ask for fewer tokens.")
    run = _Run(model, prompt, n_new, repeats, int(budget_bytes), limits, tokenizer, compile_unavailable)
    return _speed(run, chosen, ExclusiveAccess(exclusive))


_PARTS: dict[str, Callable[[_Run], Iterator[str]]] = {}  # filled below: part -> generator of status lines


def _speed(run: _Run, parts: tuple[Part, ...], access: ExclusiveAccess) -> Iterator[SpeedUpdate]:
    load_before = load_average()
    if not access.try_acquire():
        yield SpeedUpdate("waiting", access.waiting_message(), 0.0, (), load_before)
        access.acquire()
    try:
        for index, part in enumerate(parts):
            for message in _PARTS[part](run):
                yield SpeedUpdate(part, message, index / len(parts), tuple(run.rows), load_average())
        conditions = timing_conditions(access, run.model, load_before, run.wall_s, run.cpu_s)
    finally:
        access.release()
    result = _result(run, conditions)
    yield SpeedUpdate("done", "Done: every setting measured.", 1.0, result.rows, load_average(), result)


def _result(run: _Run, conditions: TimingConditions) -> SpeedResult:
    return SpeedResult(str(run.model.device), DTYPE_NAMES.get(run.model.dtype, str(run.model.dtype)),
                       run.prompt.numel(), run.n_new, run.n_repeats, tuple(run.rows), conditions)


def _failed(error: Exception) -> str:
    return f"failed here: {type(error).__name__}: {' '.join(str(error).split())[:200]}"


# ---------------------------------------------------------------- 1. attention implementation


def attention_unavailable(model: PreTrainedModel, name: str) -> str | None:
    """Why `name` cannot run on this model and device, or None."""
    if name == "sdpa" and not getattr(model, "_supports_sdpa", False):
        return f"{type(model).__name__} has no SDPA attention in transformers"
    if name == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            return "the flash-attn package is not installed"
        capability = cuda_capability(model.device)
        if capability is None or capability < (8, 0):
            return "flash-attention 2 needs an Ampere or newer CUDA GPU (compute capability 8.0+)"
        if model.dtype not in (torch.float16, torch.bfloat16):
            return "flash-attention 2 runs only in fp16 or bf16; this model is loaded in fp32"
        if not getattr(model, "_supports_flash_attn", False):
            return f"{type(model).__name__} has no flash-attention 2 path in transformers"
    return None


def _prefill(run: _Run, length: int) -> float:
    """Seconds of one forward pass over `length` tokens (the prompt repeated to that length)."""
    ids = run.prompt.repeat(-(-length // run.prompt.numel()))[:length].view(1, -1).to(run.model.device)  # [1, pos]
    with torch.inference_mode():
        return run.timed(lambda: run.model(input_ids=ids, use_cache=True, logits_to_keep=1))[1]


def _attention(run: _Run) -> Iterator[str]:
    loaded = run.model.config._attn_implementation
    room = (max_positions(run.model) or 10**6) - 1
    lengths = prefill_lengths(run.prompt.numel(), min(room, run.limits.max_prompt_tokens))
    order = [loaded, *[n for n in ("eager", "sdpa", "flash_attention_2") if n != loaded]]
    for name in order:
        reason = attention_unavailable(run.model, name)
        if reason:
            run.rows.append(SpeedRow("attention", name, reason=reason))
            continue
        yield f"Attention: timing {name} (prefill at {', '.join(map(str, lengths))} tokens, then decode)…"
        try:
            with attention_implementation(run.model, name):
                for n in lengths:  # untimed warm-up of every shape (the CPU backends pick kernels per shape)
                    _prefill(run, n)
                prefill = {n: np.array([_prefill(run, n) for _ in range(run.n_repeats)]) for n in lengths}
                rates, tokens = run.decode_repeats(run.model)
        except (ValueError, ImportError, RuntimeError) as error:
            run.rows.append(SpeedRow("attention", name, reason=_failed(error)))
            continue
        base = run.baseline("attention")
        run.rows.append(SpeedRow("attention", name, baseline=base is None, decode_tokens_per_s=rates,
                                 prefill_s=prefill, token_ids=tokens,
                                 same_tokens=None if base is None else tokens == base.token_ids))


# ---------------------------------------------------------------- 2. precision


def _quality_prompts(run: _Run) -> list[torch.Tensor]:
    prompts = [run.prompt]
    if run.tokenizer is not None:
        prompts += [torch.tensor(run.tokenizer.encode(p), dtype=torch.long) for p in QUALITY_PROMPTS]
    context = max_positions(run.model) or 10**6
    return [p[:context] for p in prompts if p.numel()]


def _logits(model: PreTrainedModel, prompts: list[torch.Tensor]) -> list[np.ndarray]:
    with torch.inference_mode():
        return [model(input_ids=p.view(1, -1).to(model.device)).logits[0].float().cpu().numpy() for p in prompts]


def _precision(run: _Run) -> Iterator[str]:
    loaded = run.model.dtype
    name = DTYPE_NAMES.get(loaded, str(loaded))
    yield f"Precision: timing the loaded {name} model…"
    rates, tokens = run.decode_repeats(run.model)
    run.rows.append(SpeedRow("precision", name, baseline=True, decode_tokens_per_s=rates, token_ids=tokens,
                             weight_bytes=weight_bytes(run.model)))
    prompts = _quality_prompts(run)
    reference = _logits(run.model, prompts)
    for dtype in [d for d in native_dtypes(run.model.device) if d != loaded]:
        other = DTYPE_NAMES[dtype]
        note = ("float16 on a CPU: many CPUs have no native fp16 arithmetic (it may be converted); measured here"
                if dtype == torch.float16 and run.model.device.type == "cpu" else None)
        reason = _copy_refusal(run, dtype, f"A {other} copy")
        if reason:
            run.rows.append(SpeedRow("precision", other, reason=reason, note=note))
            continue
        yield f"Precision: copying the model to {other} and timing it…"
        try:
            twin = hook_free_copy(run.model, dtype)
            rates, tokens = run.decode_repeats(twin)
            kl, same = zip(*(next_token_quality(r, o) for r, o in zip(reference, _logits(twin, prompts), strict=True)),
                           strict=True)
            row = SpeedRow("precision", other, decode_tokens_per_s=rates, token_ids=tokens,
                           same_tokens=tokens == run.baseline("precision").token_ids, weight_bytes=weight_bytes(twin),
                           kl_nats=float(np.concatenate(kl).mean()), top1_agreement=float(np.concatenate(same).mean()),
                           note=note)
        except (RuntimeError, TypeError, NotImplementedError) as error:
            row = SpeedRow("precision", other, reason=_failed(error), note=note)
        twin = None
        _free(run.model.device)
        run.rows.append(row)


def _copy_refusal(run: _Run, dtype: torch.dtype, what: str) -> str | None:
    if is_dispatched(run.model):
        return "the model is spread over several devices by accelerate: a copy is not made"
    need = copy_bytes(run.model, dtype)
    if need > run.budget_bytes:
        return (f"{what} would need about {need / 2**20:,.0f} MiB, over this server's budget of "
                f"{run.budget_bytes / 2**20:,.0f} MiB")
    return None


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- 3. torch.compile


def compile_unavailable(model: PreTrainedModel) -> str | None:
    """Why torch.compile cannot run here, or None."""
    if model.device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        return "torch.compile's CPU backend needs a C++ compiler, and none is installed"
    if model.device.type == "mps":
        return "torch.compile's inductor backend is not supported on Apple GPUs in this torch"
    return None


def _compile(run: _Run) -> Iterator[str]:
    reason = run.compile_unavailable or compile_unavailable(run.model) or _copy_refusal(run, run.model.dtype,
                                                                                        "A copy to compile")
    if reason:
        run.rows.append(SpeedRow("compile", "compiled", reason=reason))
        return
    yield "torch.compile: timing the uncompiled copy (static cache)…"
    twin = hook_free_copy(run.model)
    config = twin.generation_config
    config.cache_implementation = "static"  # generate compiles the forward only with a static cache
    config.compile_config = CompileConfig()
    config.compile_config._compile_all_devices = True  # also on a CPU (generate's default: GPUs only)
    try:
        config.disable_compile = True
        rates, tokens = run.decode_repeats(twin)
        plain = SpeedRow("compile", "uncompiled (static cache)", baseline=True, decode_tokens_per_s=rates,
                         token_ids=tokens)
        run.rows.append(plain)
        yield "torch.compile: compiling (the first call; this can take a minute or more on a CPU)…"
        config.disable_compile = False
        start = time.perf_counter()
        first_tokens = run.decode(twin)[1]  # compiles, then decodes
        first_s = time.perf_counter() - start
        compiled = np.array([run.decode(twin)[0] for _ in range(run.n_repeats)])
        plain_s = (run.n_new - 1) / float(np.median(rates))
        run.rows.append(SpeedRow("compile", "compiled", decode_tokens_per_s=compiled, token_ids=first_tokens,
                                 same_tokens=first_tokens == plain.token_ids, compile_s=max(0.0, first_s - plain_s)))
    except Exception as error:  # noqa: BLE001 - inductor raises many kinds: the row says which
        run.rows.append(SpeedRow("compile", "compiled", reason=_failed(error)))
    finally:
        twin = None
        _free(run.model.device)


# ---------------------------------------------------------------- 4. batch size


def batch_sequences(prompt: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """`batch` prompts: the prompt, then the prompt without its first 1, 2, 3 tokens (so left padding is real)."""
    drop = min(3, prompt.numel() - 1)
    return [prompt[(i % (drop + 1)):] for i in range(batch)]


def left_padded(sequences: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [batch, width], padding on the left where the mask hides it."""
    width = max(s.numel() for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # [batch, width]
    mask = torch.zeros_like(ids)  # [batch, width]
    for row, seq in enumerate(sequences):
        ids[row, width - seq.numel():], mask[row, width - seq.numel():] = seq, 1
    return ids, mask


def batch_greedy(model: PreTrainedModel, sequences: list[torch.Tensor], n_new: int) -> torch.Tensor:
    """[batch, n_new] greedy new tokens of a left-padded batch (generate derives positions from the mask)."""
    kwargs = generate_kwargs(model, n_new, CACHED)
    ids, mask = left_padded(sequences, kwargs["pad_token_id"] or 0)
    with torch.inference_mode():
        out = model.generate(ids.to(model.device), attention_mask=mask.to(model.device), **kwargs)
    return out.sequences[:, ids.shape[1]:].cpu()


def _peak(model: PreTrainedModel, fn: Callable[[], Any]) -> tuple[Any, int | None]:
    if model.device.type != "cuda":
        return fn(), None
    torch.cuda.reset_peak_memory_stats(model.device)
    out = fn()
    return out, int(torch.cuda.max_memory_allocated(model.device))


def _batch(run: _Run) -> Iterator[str]:
    n_tokens = run.prompt.numel() + run.n_new
    for size in batch_sizes(run.limits.max_batch):
        need = batch_bytes(dims_from_config(run.model.config), n_tokens, size, run.model.dtype.itemsize)
        if need > run.budget_bytes:
            run.rows.append(SpeedRow("batch", f"batch {size}", batch=size, reason=(
                f"needs about {need / 2**20:,.0f} MiB, over this server's budget of {run.budget_bytes / 2**20:,.0f} "
                "MiB")))
            break
        yield f"Batch size: timing {size} sequence(s) at once…"
        sequences = batch_sequences(run.prompt, size)
        batch_greedy(run.model, sequences, run.n_new)  # warm-up
        (tokens, peak) = _peak(run.model, lambda s=sequences: batch_greedy(run.model, s, run.n_new))
        walls = np.array([run.timed(lambda s=sequences: batch_greedy(run.model, s, run.n_new))[1]
                          for _ in range(run.n_repeats)])
        base = run.baseline("batch")
        first = tuple(int(t) for t in tokens[0])
        run.rows.append(SpeedRow(
            "batch", f"batch {size}", baseline=base is None, batch=size, token_ids=first,
            same_tokens=None if base is None else first == base.token_ids, latency_s=walls,
            decode_tokens_per_s=size * run.n_new / walls, peak_measured=peak is not None,
            peak_bytes=peak if peak is not None else weight_bytes(run.model) + need))


_PARTS.update(attention=_attention, precision=_precision, compile=_compile, batch=_batch)
