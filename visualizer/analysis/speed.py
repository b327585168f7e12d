"""The chapter's speed tips, the pure half: what a speed run measured, its statistics, quality costs and verdicts.

The run (`visualizer.runs.speed`) times four tips on the loaded model and hands its numbers here:

* **attention**: eager against SDPA (and flash-attention 2 where it can run): prefill time at a few prompt
  lengths and decode tokens/s, the greedy tokens compared;
* **precision**: the loaded dtype against the other dtypes the device runs: weight memory, decode tokens/s,
  and the quality cost (KL between next-token distributions, top-1 agreement over a small prompt set);
* **compile**: `torch.compile` through generate's static cache: compile time, then tokens/s against the
  same model uncompiled;
* **batch**: 1, 2, 4, ... sequences at once: total tokens/s against each sequence's latency, and peak memory.

Nothing here runs a model; no tensors (results are pickled across processes): numpy arrays, floats, strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from visualizer.analysis.kv_cache import BUSY_SPREAD, TimingConditions, TimingStats, format_seconds, speed_phrase
from visualizer.analysis.kv_memory import kv_cache_bytes
from visualizer.dims import ModelDims

Part = Literal["attention", "precision", "compile", "batch"]
PARTS: tuple[Part, ...] = ("attention", "precision", "compile", "batch")
DEFAULT_PARTS: tuple[Part, ...] = ("attention", "precision", "batch")  # compile is opt-in: minutes on a CPU
PART_TITLES = {"attention": "Attention implementation", "precision": "Precision", "compile": "torch.compile",
               "batch": "Batch size"}
MIN_NEW_TOKENS = 2  # decode speed needs at least one token after the first (prefill) one
# The quality prompts (with the user's own): KL and top-1 agreement are taken at every position of each.
QUALITY_PROMPTS = (
    "The capital of France is",
    "Write an email apologizing to Sarah for the tragic gardening mishap.",
    "def fibonacci(n):\n    return",
    "Large language models predict the next token from",
)
MIN_TOP1_BF16 = 0.9  # the tolerance the tests state for half precision: top-1 agreement >= 90% of positions


@dataclass(frozen=True)
class SpeedRow:
    """One setting of one part: measured (arrays over repeats), or skipped with the reason."""

    part: Part
    setting: str  # "eager", "sdpa", "float32", "compiled", "batch 4", ...
    reason: str | None = None  # why it was not measured (None: measured)
    baseline: bool = False  # the setting the part's other rows are compared with
    decode_tokens_per_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [repeat] (per sequence x batch)
    prefill_s: dict[int, np.ndarray] = field(default_factory=dict)  # prompt length -> [repeat] seconds
    token_ids: tuple[int, ...] = ()  # greedy new tokens (first sequence)
    same_tokens: bool | None = None  # equal to the baseline's greedy tokens (None: not compared)
    weight_bytes: int | None = None  # precision: the weights in this dtype
    kl_nats: float | None = None  # precision: mean KL(loaded || this) over the prompt set's positions
    top1_agreement: float | None = None  # precision: share of positions with the same top-1 token
    compile_s: float | None = None  # compile: first compiled call minus a plain one
    batch: int | None = None  # batch: sequences at once
    latency_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # batch: [repeat] time to a full batch
    peak_bytes: int | None = None  # batch: peak memory of the run
    peak_measured: bool = False  # True: the device's own counter (CUDA); False: an estimate (CPU)
    note: str | None = None  # a plain remark (e.g. "fp16 on a CPU is emulated")

    @property
    def measured(self) -> bool:
        return self.reason is None

    @property
    def decode(self) -> TimingStats | None:
        return TimingStats.of(self.decode_tokens_per_s) if self.decode_tokens_per_s.size else None

    @property
    def latency(self) -> TimingStats | None:
        return TimingStats.of(self.latency_s) if self.latency_s.size else None

    @property
    def noisy(self) -> bool:
        """Repeats differing by more than BUSY_SPREAD of their median: not to be trusted on its own."""
        stats = self.decode
        return stats is not None and stats.n_runs > 1 and stats.relative_spread > BUSY_SPREAD


@dataclass(frozen=True)
class SpeedResult:
    """Every row of a finished speed run, what it ran under, and a verdict per part."""

    device: str
    loaded_dtype: str
    n_prompt_tokens: int
    n_new_tokens: int
    n_repeats: int
    rows: tuple[SpeedRow, ...]
    conditions: TimingConditions

    def part(self, part: Part) -> tuple[SpeedRow, ...]:
        return tuple(r for r in self.rows if r.part == part)

    @property
    def verdicts(self) -> dict[Part, str]:
        return {p: verdict(p, self.part(p), self.device) for p in PARTS if self.part(p)}

    @property
    def warning(self) -> str | None:
        noisy = [f"{r.part}/{r.setting}" for r in self.rows if r.noisy]
        problems = [self.conditions.warning] if self.conditions.warning else []
        if noisy:
            problems.append(f"Repeats disagreed by more than {BUSY_SPREAD:.0%} for {', '.join(noisy)}: the "
                            "machine was too busy to trust those numbers on their own; run again.")
        return " ".join(problems) or None


@dataclass(frozen=True)
class SpeedUpdate:
    """One streamed progress report; the last one carries `result`."""

    phase: str  # "waiting", "attention", "precision", "compile", "batch", "done"
    message: str
    fraction_done: float
    rows: tuple[SpeedRow, ...]  # finished rows so far
    load: float | None  # the machine's 1-minute load average now
    result: SpeedResult | None = None


# ---------------------------------------------------------------- requests


def validate_parts(parts: Sequence[str] | str | None) -> tuple[Part, ...]:
    """The parts asked for, in the page's order.

    >>> validate_parts(["batch", "attention"])
    ('attention', 'batch')
    """
    if parts is None:
        return DEFAULT_PARTS
    if isinstance(parts, str):
        parts = [parts]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"parts: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(PARTS)}.")
    if not parts:
        raise ValueError(f"parts: choose at least one of {', '.join(PARTS)}.")
    return tuple(p for p in PARTS if p in parts)


def batch_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to max_batch (included when it is not a power of two).

    >>> batch_sizes(8), batch_sizes(6), batch_sizes(1)
    ([1, 2, 4, 8], [1, 2, 4, 6], [1])
    """
    sizes = [1]
    while sizes[-1] * 2 <= max_batch:
        sizes.append(sizes[-1] * 2)
    return sizes if sizes[-1] == max_batch else [*sizes, max_batch]


def prefill_lengths(n_prompt: int, room: int, longest: int = 256) -> list[int]:
    """A few prompt lengths for prefill timing: the prompt's own, then x4 steps up to `longest` or `room`.

    >>> prefill_lengths(6, 1000), prefill_lengths(6, 50), prefill_lengths(300, 1000)
    ([6, 24, 96], [6, 24], [256])
    """
    top = max(1, min(longest, room))
    lengths = [max(1, min(n_prompt, top))]
    while lengths[-1] * 4 <= top and len(lengths) < 3:
        lengths.append(lengths[-1] * 4)
    return lengths


def batch_bytes(dims: ModelDims, n_tokens: int, batch: int, bytes_per_value: int) -> int:
    """Working set of a batch beyond the weights: the KV cache, a few activations, the last position's logits."""
    activations = 8 * batch * n_tokens * dims.d_model * max(bytes_per_value, 4)
    return kv_cache_bytes(dims, n_tokens, batch, bytes_per_value) + activations + 3 * batch * dims.d_vocab * 4


# ---------------------------------------------------------------- quality


def next_token_quality(reference_logits: np.ndarray, other_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per position: KL(reference || other) in nats and whether the top-1 tokens agree.

    Both `[pos, d_vocab]` in float (the run casts to float32 before handing them over).

    >>> kl, same = next_token_quality(np.array([[2.0, 0.0, -1.0]]), np.array([[2.0, 0.0, -1.0]]))
    >>> float(kl[0]), bool(same[0])
    (0.0, True)
    """
    ref = np.asarray(reference_logits, dtype=np.float64)
    other = np.asarray(other_logits, dtype=np.float64)
    if ref.shape != other.shape or ref.ndim != 2:
        raise ValueError(f"logits must both be [pos, d_vocab]; got {ref.shape} and {other.shape}.")
    log_p = ref - np.logaddexp.reduce(ref, axis=-1, keepdims=True)  # [pos, d_vocab]
    log_q = other - np.logaddexp.reduce(other, axis=-1, keepdims=True)  # [pos, d_vocab]
    kl = (np.exp(log_p) * (log_p - log_q)).sum(-1).clip(min=0.0)  # [pos]; rounding can dip below 0
    return kl, ref.argmax(-1) == other.argmax(-1)


def tokens_per_second(n_tokens: int, seconds: float) -> float:
    """Tokens over seconds (NaN for no time at all).

    >>> tokens_per_second(10, 0.5)
    20.0
    """
    return n_tokens / seconds if seconds > 0 else float("nan")


# ---------------------------------------------------------------- verdicts


def _ratio(row: SpeedRow, base: SpeedRow) -> float:
    a, b = row.decode, base.decode
    return a.median_s / b.median_s if a and b and b.median_s > 0 else float("nan")


def _tokens(row: SpeedRow) -> str:
    if row.same_tokens is None:
        return ""
    return "; same greedy tokens" if row.same_tokens else "; different greedy tokens"


def verdict(part: Part, rows: Sequence[SpeedRow], device: str) -> str:
    """One or two sentences a class can read off the table: which tip held here, and at what cost."""
    base = next((r for r in rows if r.baseline and r.measured), None)
    if base is None:
        reasons = "; ".join(f"{r.setting}: {r.reason}" for r in rows if r.reason)
        return f"{PART_TITLES[part]}: nothing measured ({reasons or 'no baseline'})."
    if part == "batch":
        return _batch_verdict(rows, base)
    sentences = []
    for row in rows:
        if row is base:
            continue
        if not row.measured:
            sentences.append(f"{row.setting}: not measured ({row.reason}).")
            continue
        text = f"{row.setting} decodes {speed_phrase(_ratio(row, base))} than {base.setting}"
        if part == "compile" and row.compile_s is not None:
            text = f"compiling took {format_seconds(row.compile_s)}; then the compiled model decodes " \
                   f"{speed_phrase(_ratio(row, base))} than uncompiled"
        if part == "precision":
            text += _precision_cost(row, base, device)
        sentences.append(text + _tokens(row) + ".")
    return f"{PART_TITLES[part]} on {device}: " + " ".join(sentences)


def _precision_cost(row: SpeedRow, base: SpeedRow, device: str) -> str:
    text = ""
    if row.weight_bytes and base.weight_bytes:
        text += f", with {row.weight_bytes / base.weight_bytes:.2g}× the weight memory"
    if row.kl_nats is not None and row.top1_agreement is not None:
        text += f"; quality cost: KL {row.kl_nats:.2g} nats, top-1 agreement {row.top1_agreement:.0%}"
    if device.startswith("cpu") and _ratio(row, base) < 1 and row.setting in ("bfloat16", "float16"):
        text += " (half precision is slower on this CPU: many CPUs have no native half-precision arithmetic)"
    return text


def _batch_verdict(rows: Sequence[SpeedRow], base: SpeedRow) -> str:
    measured = [r for r in rows if r.measured and r.decode and r.latency]
    best = max(measured, key=lambda r: r.decode.median_s)
    slower = best.latency.median_s / base.latency.median_s
    cost = ("more throughput, more latency" if slower >= 1.1 else
            "no real latency cost yet: one sequence left this machine mostly idle")
    text = (f"Batch size: batch {best.batch} gives {best.decode.median_s / base.decode.median_s:.2f}× the total "
            f"tokens/s of batch 1, and each sequence takes {slower:.2f}× as long to finish: {cost}")
    skipped = [r for r in rows if not r.measured]
    if skipped:
        text += f"; {skipped[0].setting} skipped: {skipped[0].reason}"
    return text + "."


def summary(result: SpeedResult) -> str:
    """Every part's verdict, one paragraph each."""
    return "\n\n".join(result.verdicts.values())
