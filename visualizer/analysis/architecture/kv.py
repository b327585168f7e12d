"""The KV-cache calculator of the Architecture tab: the one formula of ``analysis.kv_memory`` applied to a
model's dimensions, with the naive d_model shortcut next to it and the notes that explain the difference."""

from __future__ import annotations

from dataclasses import dataclass

from visualizer.analysis.kv_memory import bytes_per_value, kv_cache_bytes, naive_kv_cache_bytes, sharing_notes
from visualizer.dims import ModelDims


@dataclass(frozen=True)
class KvCacheEstimate:
    dims: ModelDims
    tokens: int
    batch: int
    bytes_per_value: float
    dtype: str                 # "fp16", or "" when bytes were given as a number
    bytes: int                 # full cache, every layer keeps every token
    bytes_per_token: int       # one more token of one sequence
    naive_bytes: int           # 2 x layers x batch x tokens x d_model x bytes (ignores GQA / head_dim)
    sliding_bytes: int | None  # with sliding-window layers capped; None when no layer slides
    notes: tuple[str, ...] = ()


def kv_notes(dims: ModelDims) -> tuple[str, ...]:
    """What makes this model's cache differ from the plain formula."""
    notes = list(sharing_notes(dims))
    if dims.d_cached_kv != dims.d_kv:
        # Measured on transformers 5.24: FalconAttention broadcasts K/V to every query head before caching.
        notes.append(f"The model needs only {dims.n_kv_heads} key/value heads per layer, but transformers' "
                     f"{dims.model_type} code expands them to {dims.d_cached_kv // dims.d_head} heads before "
                     f"storing them, so its DynamicCache holds {dims.d_cached_kv / dims.d_kv:g}x this figure.")
    return tuple(notes)


def kv_cache_estimate(dims: ModelDims, tokens: int, batch: int = 1,
                      dtype: str | float = "fp16") -> KvCacheEstimate:
    """The KV-cache calculator: full size, per-token size, the naive formula, and the sliding-window size."""
    n_bytes = bytes_per_value(dtype)
    full = kv_cache_bytes(dims, tokens, batch, n_bytes)
    sliding = kv_cache_bytes(dims, tokens, batch, n_bytes, sliding=True) if dims.n_sliding_layers else None
    return KvCacheEstimate(dims, tokens, batch, n_bytes, dtype if isinstance(dtype, str) else "", full,
                           kv_cache_bytes(dims, 1, 1, n_bytes), naive_kv_cache_bytes(dims, tokens, batch, n_bytes),
                           sliding, kv_notes(dims))
