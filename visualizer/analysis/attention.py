"""Attention patterns: per-head summary metrics and the slices the views show.

A pattern is the softmax output of one layer: `[head, query_pos, key_pos]`, rows summing to one, zero above
the diagonal (causal). Metrics reduce each head to one number so a layer x head grid can show 32 x 32 heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from visualizer.validation import whole_number

if TYPE_CHECKING:  # the trace builder imports head_metrics from here
    from visualizer.trace import Trace

METRICS: dict[str, str] = {
    "entropy": "Entropy (nats), averaged over query positions after the first: low = the head looks at "
               "one token, high = it spreads its attention evenly.",
    "sink": "Mass on the first token, averaged over query positions: many heads park attention on token 0 "
            "when they have nothing better to do (the attention-sink effect), so a bright column at the "
            "first token is normal, not a bug.",
    "previous_token": "Weight on the token just before the query, averaged over positions: 1 = a "
                      "previous-token head, a building block of induction heads.",
    "distance": "Mean attended distance (query_pos - key_pos, weighted by attention): 0 = looks at itself, "
                "large = looks far back.",
}


# The metrics read each layer's pattern in blocks of a few heads x a few query rows, through one reused float32
# buffer (8 MiB at 2,048 tokens, small enough to stay in cache) instead of several [head, query_pos, key_pos]
# temporaries; a block of query rows [a, b) reads keys [0, b) only, since causal weights above the diagonal are 0.
_HEAD_BLOCK = 4
_QUERY_BLOCK = 256


def head_metrics(pattern: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summary metrics of every head of one layer. pattern: [head, query_pos, key_pos] -> name: [head].

    The pattern is causal (zero above the diagonal), as every trace's is. The attended distance is
    q * row_sum - sum_k k * p[q, k]; both sums come from one matmul with a [key_pos, 2] matrix rather than a
    [query_pos, key_pos] grid of offsets. Half-precision patterns are upcast block by block.
    """
    n_heads, n_pos, _ = pattern.shape
    later = slice(1, None) if n_pos > 1 else slice(None)  # query 0 can only look at itself
    keys = torch.arange(n_pos, device=pattern.device, dtype=torch.float32)  # [key_pos]
    weights = torch.stack([torch.ones_like(keys), keys], -1)  # [key_pos, 2]: row sum, sum of k * p
    entropy = torch.empty(n_heads, n_pos, device=pattern.device)  # [head, query_pos]
    sums = torch.empty(n_heads, n_pos, 2, device=pattern.device)  # [head, query_pos, 2]
    buffer = torch.empty(min(_HEAD_BLOCK, n_heads), min(_QUERY_BLOCK, n_pos), n_pos, device=pattern.device)
    for h0 in range(0, n_heads, _HEAD_BLOCK):
        h1 = min(h0 + _HEAD_BLOCK, n_heads)
        for q0 in range(0, n_pos, _QUERY_BLOCK):
            q1 = min(q0 + _QUERY_BLOCK, n_pos)
            block = pattern[h0:h1, q0:q1, :q1]  # [head block, query block, keys up to the block's last query]
            work = buffer[: h1 - h0, : q1 - q0, :q1]
            if block.dtype != torch.float32:
                block = work.copy_(block)
            sums[h0:h1, q0:q1] = torch.matmul(block, weights[:q1])  # [head block, query block, 2]
            # xlogy(p, p) = p * log(p), and 0 at p = 0 as the clamp at 1e-30 gave before (p below 1e-30 is a
            # float32 denormal, contributing under 1e-28); written into the buffer, so no allocation per block.
            entropy[h0:h1, q0:q1] = -torch.special.xlogy(block, block, out=work).sum(-1)
    distance = keys * sums[..., 0] - sums[..., 1]  # [head, query_pos]
    if n_pos > 1:
        previous = torch.diagonal(pattern, offset=-1, dim1=1, dim2=2).float()  # [head, query_pos - 1]
    else:
        previous = torch.zeros(n_heads, 1, device=pattern.device)
    return {
        "entropy": entropy[:, later].mean(-1),
        "sink": pattern[:, later, 0].float().mean(-1),
        "previous_token": previous.mean(-1),
        "distance": distance[:, later].mean(-1),
    }


def kv_head_of(head: int, n_heads: int, n_kv_heads: int) -> int:
    """The key/value head a query head reads under grouped-query attention (consecutive groups)."""
    return head // (n_heads // n_kv_heads)


@dataclass(frozen=True)
class HeadPattern:
    layer: int
    head: int | None  # None: mean over heads
    kv_head: int | None
    weights: np.ndarray  # [query_pos, key_pos] float32
    token_labels: list[str]
    description: str


def _check_layer(trace: Trace, layer) -> int:
    return whole_number(layer, "layer", 0, trace.n_layers - 1)


def _check_head(trace: Trace, head) -> int:
    return whole_number(head, "head", 0, trace.n_heads - 1)


def gqa_note(trace: Trace, head: int) -> str:
    if trace.n_kv_heads == trace.n_heads:
        return f"head {head} has its own key/value head (no grouped-query attention)"
    group = trace.n_heads // trace.n_kv_heads
    kv = kv_head_of(head, trace.n_heads, trace.n_kv_heads)
    return (f"query head {head} shares key/value head {kv} with query heads "
            f"{kv * group}-{kv * group + group - 1} ({trace.n_heads} query heads, {trace.n_kv_heads} KV heads)")


def head_pattern(trace: Trace, layer_patterns: torch.Tensor, layer: int, head: int | None) -> HeadPattern:
    """One head's [query_pos, key_pos] weights, or the mean over heads when head is None.

    layer_patterns: [head, query_pos, key_pos] of `layer`, from the trace or recomputed on demand.
    """
    layer = _check_layer(trace, layer)
    if head is None:
        weights = layer_patterns.float().mean(0)  # [query_pos, key_pos]
        return HeadPattern(layer, None, None, weights.numpy(), trace.token_labels(),
                           f"layer {layer}, mean over {trace.n_heads} heads")
    head = _check_head(trace, head)
    return HeadPattern(layer, head, kv_head_of(head, trace.n_heads, trace.n_kv_heads),
                       layer_patterns[head].float().numpy(), trace.token_labels(),
                       f"layer {layer}, head {head}: {gqa_note(trace, head)}")


def metric_grid(trace: Trace, metric: str) -> np.ndarray:
    """[layer, head] values of one metric."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return trace.attention_metrics[metric]
