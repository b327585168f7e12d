"""Attention patterns: per-head summary metrics and the slices the views show.

A pattern is the softmax output of one layer: `[head, query_pos, key_pos]`, rows summing to one, zero above
the diagonal (causal). Metrics reduce each head to one number so a layer x head grid can show 32 x 32 heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from visualizer.attention_metrics import METRICS, head_metrics
from visualizer.validation import whole_number

if TYPE_CHECKING:
    from visualizer.trace import Trace

__all__ = ["METRICS", "head_metrics", "kv_head_of", "head_pattern", "metric_grid", "gqa_note", "HeadPattern"]

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
