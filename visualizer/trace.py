"""Trace: everything the views need from ONE forward pass over one prompt, unbatched, on the CPU.

Every view slices a Trace; none runs the model's blocks again. The O(T^2) part (attention) is bounded: patterns
are kept only while they fit a byte budget, otherwise the per-head summary metrics stay and single layers are
recomputed on demand by the session. The logit lens (the residual read through the LM head after every layer)
is not part of the trace: `build_lens_top` computes it from `resid` when the Next-token tab asks, since on a
large vocabulary it costs more than the forward pass. Hidden-state order follows transformers: `resid[0]` is the
embedding output (input of block 0), `resid[l + 1]` the output of block `l`, before the final norm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from visualizer.attention_metrics import METRICS, head_metrics
from visualizer.capture import ActivationCapture
from visualizer.device import input_device, module_device
from visualizer.dims import ModelDims
from visualizer.model_parts import ModelParts
from visualizer.tokens import decoded, visible_token


@dataclass(frozen=True)
class TraceOptions:
    """How much one trace keeps: set by the session from its Limits and its self-check."""

    top_k: int = 50  # candidates kept per position (Limits.max_top_k)
    attention_store_bytes: int = 512 * 2**20  # patterns of all layers are kept only below this
    # The lens grid covers the last this-many positions. At 64 the cell texts of a 1,280-pixel-wide page overlap
    # into an unreadable band, and a 31-layer grid (SmolLM2) passes the 1,200 cells beyond which the figure drops
    # them; 32 columns keep them readable and halve the LM-head work (SmolLM2: ~1 s -> ~0.5 s per new prompt).
    lens_positions: int = 32
    lens_unavailable: str | None = None  # the self-check's message when the lens cannot reproduce the logits
    attention_unavailable: str | None = None  # ... when the hooks cannot read the attention patterns
    # Per-head metrics of kept patterns wait until a view asks (the Attention tab's grid): on a CPU they cost as
    # much as the attention itself, and the Next-token tab never shows them. On an accelerator they are nearly
    # free inside the forward pass, and patterns over the budget are not kept: computed as each layer runs.
    metrics_when_asked: bool = False


@dataclass(frozen=True, eq=False)
class Trace:
    text: str
    token_ids: np.ndarray  # [pos] int64
    token_strs: list[str]  # the tokenizer's own pieces (e.g. 'ĠParis')
    token_texts: list[str]  # each token decoded on its own (e.g. ' Paris')
    special: list[bool]  # BOS/EOS/pad and other special tokens
    dims: ModelDims
    d_vocab: int  # the logits' width (the LM head's rows; may exceed the tokenizer's vocabulary)
    topk_ids: np.ndarray  # [pos, k] next-token candidates after each position, most likely first
    topk_probs: np.ndarray  # [pos, k] float32
    entropy: np.ndarray  # [pos] nats of the next-token distribution
    actual_next_probs: np.ndarray  # [pos - 1] probability given to the token that really came next
    actual_next_ranks: np.ndarray  # [pos - 1] its rank (0 = top-1)
    last_logits: torch.Tensor  # [d_vocab] float32, for the sampling lab
    resid: torch.Tensor  # [n_layers + 1, pos, d_model] residual stream, CPU
    computed_metrics: dict[str, np.ndarray] | None  # name -> [layer, head] float32; None: not computed yet
    # each layer's [head, query_pos, key_pos] as its attention returned it (not stacked: 17 MB copied at 512 tokens
    # on the bundled model for views that read one layer), None if over budget
    kept_patterns: tuple[torch.Tensor, ...] | None
    notes: tuple[str, ...] = field(default=())
    lens_unavailable: str | None = None  # why the logit lens is not shown for this model
    attention_unavailable: str | None = None  # why attention is not shown for this model

    @property
    def n_layers(self) -> int:
        return self.dims.n_layers

    @property
    def n_heads(self) -> int:
        return self.dims.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.dims.n_kv_heads

    @property
    def d_model(self) -> int:
        return self.dims.d_model

    @property
    def d_head(self) -> int:
        return self.dims.d_head

    @property
    def n_pos(self) -> int:
        return len(self.token_ids)

    @property
    def hidden_shape(self) -> tuple[int, int, int]:
        return (1, self.n_pos, self.d_model)  # [batch, tokens, hidden]

    @property
    def logits_shape(self) -> tuple[int, int, int]:
        return (1, self.n_pos, self.d_vocab)  # [batch, tokens, vocab]

    def token_labels(self) -> list[str]:
        return [visible_token(t) for t in self.token_texts]

    @property
    def attention_metrics(self) -> dict[str, np.ndarray]:
        """name -> [layer, head] float32 summary of every head (empty when attention is unavailable)."""
        if self.computed_metrics is None:  # two threads may both compute it: the same values, set once each
            object.__setattr__(self, "computed_metrics", stacked_metrics(list(self.kept_patterns)))
        return self.computed_metrics

    @property
    def attention_patterns(self) -> torch.Tensor | None:
        """[layer, head, query_pos, key_pos] of every layer (a new stacked copy), None if over budget."""
        return None if self.kept_patterns is None else torch.stack(self.kept_patterns)

    def check_lens(self) -> None:
        """Raise the self-check's message when this model's logit lens cannot be trusted."""
        if self.lens_unavailable:
            raise ValueError(self.lens_unavailable)

    def check_attention(self) -> None:
        if self.attention_unavailable:
            raise ValueError(self.attention_unavailable)

    @property
    def nbytes(self) -> int:
        arrays = [self.token_ids, self.topk_ids, self.topk_probs, self.entropy, self.actual_next_probs,
                  self.actual_next_ranks]
        tensors = [self.last_logits, self.resid]
        tensors.extend(self.kept_patterns or ())
        metrics = len(METRICS) * self.n_layers * self.n_heads * 4  # counted before they exist: one size per trace
        return (sum(a.nbytes for a in arrays) + sum(t.numel() * t.element_size() for t in tensors) + metrics
                + 64 * self.n_pos)


@dataclass(frozen=True, eq=False)
class LensTop:
    """The logit lens's top-1 at every layer over a trace's last positions (the Next-token tab's grid)."""

    ids: np.ndarray  # [n_layers + 1, lens_pos] int64, row 0: the embeddings, row n_layers: the model's own output
    probs: np.ndarray  # [n_layers + 1, lens_pos] float32
    first_pos: int  # the columns are positions first_pos .. n_pos - 1

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.probs.nbytes

    def with_output_row(self, ids: np.ndarray, probs: np.ndarray) -> LensTop:
        """These rows and, below them, the model's own top-1 over the same positions (the last layer's lens is the
        model's output: the trace has it already)."""
        return LensTop(ids=np.vstack([self.ids, ids[None].astype(self.ids.dtype)]),
                       probs=np.vstack([self.probs, probs[None].astype(self.probs.dtype)]), first_pos=self.first_pos)


def pattern_bytes(n_layers: int, n_heads: int, n_pos: int, element_size: int) -> int:
    return n_layers * n_heads * n_pos * n_pos * element_size


def storage_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """fp32 models keep fp32 (exact views); half-precision models store fp16 (more mantissa than bf16)."""
    return torch.float32 if model_dtype == torch.float32 else torch.float16


@torch.inference_mode()
def build_trace(model: nn.Module, parts: ModelParts, capture: ActivationCapture, tokenizer,
                text: str, input_ids: torch.Tensor, options: TraceOptions = TraceOptions()) -> Trace:
    """Run the model once on `input_ids` [pos] and collect every view's raw material."""
    dims = parts.dims
    ids = input_ids.to(input_device(model))[None]  # [batch=1, pos]
    n_pos = ids.shape[1]
    keep = storage_dtype(parts.lm_head.weight.dtype)
    all_pattern_bytes = pattern_bytes(dims.n_layers, dims.n_heads, n_pos, keep.itemsize)
    store_patterns = options.attention_unavailable is None and all_pattern_bytes <= options.attention_store_bytes
    metrics_now = not (store_patterns and options.metrics_when_asked)
    metrics: list[dict[str, torch.Tensor]] = []
    patterns: list[torch.Tensor] = []

    def on_attention(layer: int, weights: torch.Tensor) -> None:
        layer_pattern = weights[0]  # [head, query_pos, key_pos]
        if metrics_now:
            metrics.append(head_metrics(layer_pattern))
        if store_patterns:
            patterns.append(layer_pattern.to(keep).cpu())

    sink = None if options.attention_unavailable else on_attention
    with capture.record(want_resid=True, on_attention=sink) as recorder:
        logits = model(input_ids=ids, use_cache=False).logits[0].float()  # [pos, d_vocab]
    resid = torch.stack([r[0].to(logits.device) for r in recorder.resid])  # [n_layers + 1, pos, d_model]

    log_probs = torch.log_softmax(logits, -1)  # [pos, d_vocab]
    k = min(options.top_k, logits.shape[-1])
    top_log_probs, top_ids = top_k_rows(log_probs, k)  # [pos, k]
    entropy = -(torch.softmax(logits, -1) * log_probs).sum(-1)  # [pos]; CPU softmax is vectorised, exp is not
    next_ids = ids[0, 1:].to(logits.device)  # [pos - 1]
    next_log_probs = log_probs[:-1].gather(-1, next_ids[:, None])[:, 0]  # [pos - 1]
    next_ranks = (log_probs[:-1] > next_log_probs[:, None]).sum(-1)  # [pos - 1]

    token_ids = input_ids.cpu().numpy().astype(np.int64)
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    notes = () if store_patterns or options.attention_unavailable else (
        f"Attention patterns of all {dims.n_layers} layers would take {all_pattern_bytes / 2**20:,.0f} MiB: only "
        "the summary grid is kept, and each layer is recomputed when you open it.",)
    return Trace(
        text=text,
        token_ids=token_ids,
        token_strs=list(tokenizer.convert_ids_to_tokens(token_ids.tolist())),
        token_texts=[decoded(tokenizer, i) for i in token_ids.tolist()],
        special=[int(i) in special_ids for i in token_ids],
        dims=dims, d_vocab=logits.shape[-1],
        topk_ids=top_ids.cpu().numpy(),
        topk_probs=top_log_probs.exp().cpu().numpy(),
        entropy=entropy.cpu().numpy(),
        actual_next_probs=next_log_probs.exp().cpu().numpy(),
        actual_next_ranks=next_ranks.cpu().numpy(),
        last_logits=logits[-1].cpu().clone(),
        resid=resid.cpu(),  # model dtype: fp16 could overflow on outlier activations
        computed_metrics=_stack(metrics) if metrics_now else None,
        kept_patterns=tuple(patterns) if store_patterns else None,
        notes=notes,
        lens_unavailable=options.lens_unavailable,
        attention_unavailable=options.attention_unavailable,
    )


def stacked_metrics(layer_patterns: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """name -> [layer, head] float32 of every layer's [head, query_pos, key_pos] pattern."""
    return _stack([head_metrics(pattern) for pattern in layer_patterns])


def _stack(per_layer: list[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    names = per_layer[0] if per_layer else {}
    return {name: torch.stack([m[name].float().cpu() for m in per_layer]).numpy() for name in names}


def top_k_rows(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`values.topk(k, -1)`. torch's CPU kernel partial-sorts a row only when it is at least 64 * k long and
    otherwise runs a slower full selection; padding shorter rows with -inf takes the fast path, same answer
    (1.5x faster for k = 50 over a 3,072-token vocabulary)."""
    n = values.shape[-1]
    short = 64 * k - n
    if values.device.type == "cpu" and 0 < short <= n:
        top = torch.nn.functional.pad(values, (0, short), value=float("-inf")).topk(k, dim=-1)
        if not bool((top.indices >= n).any()):  # a padding column wins only in a row of fewer than k finite values
            return top.values, top.indices
    top = values.topk(k, dim=-1)
    return top.values, top.indices


def output_top1(trace: Trace, first_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's own top-1 id and probability at positions first_pos.. from the trace's top-k, a tie going to the
    lowest id as argmax (and every other lens row) decides it: topk orders tied values arbitrarily."""
    ids, probs = trace.topk_ids[first_pos:], trace.topk_probs[first_pos:]  # [pos, k]
    tied = probs == probs[:, :1]
    return np.where(tied, ids, np.iinfo(ids.dtype).max).min(-1), probs[:, 0]


def lens_first_pos(n_pos: int, positions: int) -> int:
    """The first position the lens grid covers: it shows the last `positions` of the prompt."""
    return max(0, n_pos - positions)


# The lens reads every layer's residual through the LM head. Rows of all layers go through it together, in
# chunks whose [rows, d_vocab] float32 logits and probabilities stay under this size: one pass over the head's
# weights per chunk instead of one per layer (on a 49,152-token vocabulary that read, not the arithmetic, was
# the lens's cost).
LENS_CHUNK_BYTES = 64 * 2**20


@torch.inference_mode()
def build_lens_top(parts: ModelParts, resid: torch.Tensor, first_pos: int = 0) -> LensTop:
    """The lens's top-1 id and probability at every given layer over positions first_pos.. of a trace, from their
    residuals [rows, pos, d_model]."""
    device = module_device(parts.lm_head)
    n_rows, n_pos, d_model = resid.shape
    flat = resid.reshape(n_rows * n_pos, d_model)  # layer-major rows: [layer * pos, d_model]
    chunk = max(1, LENS_CHUNK_BYTES // (8 * parts.dims.d_vocab))
    ids, probs = [], []
    for start in range(0, len(flat), chunk):
        logits = parts.unembed(flat[start:start + chunk].to(device)).float()  # [rows, d_vocab]
        ids.append(row_argmax(logits).cpu())
        probs.append(torch.softmax(logits, -1).amax(-1).cpu())
    return LensTop(ids=torch.cat(ids).reshape(n_rows, n_pos).numpy(),
                   probs=torch.cat(probs).reshape(n_rows, n_pos).numpy(), first_pos=first_pos)


_ARGMAX_BLOCK = 64


def row_argmax(values: torch.Tensor) -> torch.Tensor:
    """`values.argmax(-1)` of a [rows, n] tensor, the first maximum of each row. On the CPU torch's argmax (and
    max with indices) is a scalar loop, 4-8x slower than its vectorised amax: take the best of n / 64 block
    maxima, then the best inside that block; the first block holding the maximum holds its first occurrence."""
    if values.device.type != "cpu" or values.shape[-1] < 4 * _ARGMAX_BLOCK:
        return values.argmax(-1)
    n_rows, n = values.shape
    short = -n % _ARGMAX_BLOCK
    padded = torch.nn.functional.pad(values, (0, short), value=float("-inf")) if short else values
    blocks = padded.reshape(n_rows, -1, _ARGMAX_BLOCK)  # [rows, block, 64]
    best_block = blocks.amax(-1).argmax(-1)  # [rows]
    within = blocks[torch.arange(n_rows), best_block].argmax(-1)  # [rows]
    return best_block * _ARGMAX_BLOCK + within
