"""What a DynamicCache holds after a cached run, measured from its tensors and set beside the one KV formula.

The formula is `visualizer.analysis.kv_memory` (the Architecture tab's calculator uses the same one), with the
model's sizes from `visualizer.dims`: the inspector checks the formula against real tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from visualizer.analysis.kv_memory import formula_text, kv_cache_bytes, naive_kv_cache_bytes
from visualizer.dims import ModelDims, dims_from_config


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
    formula_bytes: int  # kv_memory.kv_cache_bytes: 2 x layers x batch x tokens x kv_heads x head_dim x bytes
    hidden_dim_formula_bytes: int  # the chapter's 2 x layers x batch x tokens x d_model x bytes
    bytes_per_token: int  # 2 x layers x kv_heads x head_dim x bytes, one sequence
    formula_text: str
    note: str

    @property
    def measured_equals_formula(self) -> bool:
        return self.measured_bytes == self.formula_bytes


def _sliding_window(layer: Any) -> int | None:
    window = getattr(layer, "sliding_window", None)
    return int(window) if window else None


def _storage_bytes(tensors: Sequence[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _layer_info(index: int, layer: Any) -> CacheLayerInfo:
    keys, values = layer.keys, layer.values  # [batch, n_kv_heads, pos, d_head]
    if keys is None or values is None or keys.dim() != 4:
        raise ValueError(f"Cache layer {index} holds no key/value tensors: run the cached mode first.")
    return CacheLayerInfo(
        layer=index, key_shape=tuple(keys.shape), value_shape=tuple(values.shape),
        dtype=str(keys.dtype).removeprefix("torch."), n_cached_tokens=int(keys.shape[2]),
        n_bytes=keys.numel() * keys.element_size() + values.numel() * values.element_size(),
        n_allocated_bytes=_storage_bytes([keys, values]), sliding_window=_sliding_window(layer))


def inspect_cache(cache: Any, config: Any, n_tokens: int | None = None) -> CacheReport:
    """Measure a DynamicCache (`.layers[i].keys/.values`) and set it beside the formulas.

    `n_tokens` is the sequence length the model has processed; by default the longest layer's length.
    """
    dims = dims_from_config(config)
    infos = [_layer_info(index, layer) for index, layer in enumerate(cache.layers)]
    if not infos:
        raise ValueError("The cache is empty: run the cached mode first.")
    batch = infos[0].key_shape[0]
    bytes_per_element = cache.layers[0].keys.element_size()
    seen = n_tokens if n_tokens is not None else max(i.n_cached_tokens for i in infos)
    formula = kv_cache_bytes(dims, seen, batch, bytes_per_element, sliding=True)
    hidden_formula = naive_kv_cache_bytes(dims, seen, batch, bytes_per_element)
    return CacheReport(
        layers=infos, n_layers=dims.n_layers, batch=batch, n_tokens=seen, n_heads=dims.n_heads,
        n_kv_heads=dims.n_kv_heads, d_head=dims.d_head, d_model=dims.d_model, bytes_per_element=bytes_per_element,
        dtype=infos[0].dtype, measured_bytes=sum(i.n_bytes for i in infos), formula_bytes=formula,
        hidden_dim_formula_bytes=hidden_formula, bytes_per_token=kv_cache_bytes(dims, 1, 1, bytes_per_element),
        formula_text=_formula_text(dims, seen, batch, bytes_per_element, formula),
        note=_cache_note(infos, seen, dims, formula, hidden_formula))


def _formula_text(dims: ModelDims, n_tokens: int, batch: int, bytes_per_element: int, formula: int) -> str:
    """E.g. '(2 (K and V) x 2 layers x ... = 256 bytes per token) x 14 tokens x batch 1 = 3,584 bytes'."""
    text = f"({formula_text(dims, bytes_per_element)}) × {n_tokens} tokens × batch {batch}"
    window = dims.sliding_window
    if dims.n_sliding_layers and window and n_tokens > window - 1:
        text += (f", counting only the last {window - 1} tokens in the {dims.n_sliding_layers} "
                 "sliding-window layers")
    return f"{text} = {formula:,} bytes"


def _cache_note(infos: list[CacheLayerInfo], n_tokens: int, dims: ModelDims, formula: int,
                hidden_formula: int) -> str:
    n_heads, n_kv_heads, d_head, d_model = dims.n_heads, dims.n_kv_heads, dims.d_head, dims.d_model
    parts = []
    if n_kv_heads < n_heads:
        parts.append(
            f"This model uses grouped-query attention: its {n_heads} query heads share {n_kv_heads} key/value "
            f"heads ({dims.queries_per_kv_head} query heads per KV head), so it caches {n_kv_heads} × {d_head} = "
            f"{dims.d_kv} numbers per token per layer for keys (and as many for values), not d_model = {d_model}.")
    if dims.d_kv != d_model or n_kv_heads < n_heads:
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
