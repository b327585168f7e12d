"""The KV-cache memory formula, one for the calculator (Architecture) and the inspector (KV cache).

Per layer and per token the cache keeps one key and one value vector for every KV head:
2 x layers x batch x tokens x n_kv_heads x d_head x bytes per value.
"""

from __future__ import annotations

from visualizer.dims import ModelDims

DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def bytes_per_value(dtype: str | float) -> float:
    """Bytes of one cached number: a dtype name of DTYPE_BYTES or a positive number.

    >>> bytes_per_value("bf16"), bytes_per_value(4)
    (2.0, 4.0)
    """
    if isinstance(dtype, str):
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}.")
        return DTYPE_BYTES[dtype]
    if isinstance(dtype, bool) or not dtype > 0:
        raise ValueError(f"Bytes per value must be positive, got {dtype}.")
    return float(dtype)


def kv_cache_bytes(dims: ModelDims, n_tokens: int, batch: int = 1, dtype: str | float = 2,
                   sliding: bool = False, as_cached: bool = False) -> int:
    """2 (K and V) x layers x batch x tokens x n_kv_heads x d_head x bytes.

    With sliding=True, sliding-window layers hold at most sliding_window - 1 tokens, as transformers'
    DynamicSlidingWindowLayer stores them (the current token makes up the window). With as_cached=True, the
    width transformers' cache really stores (see ModelDims.d_cached_kv), for comparing with a measured cache.
    """
    if n_tokens < 0 or batch < 1:
        raise ValueError(f"Need tokens >= 0 and batch >= 1, got tokens={n_tokens}, batch={batch}.")
    n_bytes = bytes_per_value(dtype)
    n_sliding = dims.n_sliding_layers if sliding and dims.sliding_window else 0
    token_layers = (dims.n_layers - n_sliding) * n_tokens
    if n_sliding:
        token_layers += n_sliding * min(n_tokens, max(dims.sliding_window - 1, 0))
    width = dims.d_cached_kv if as_cached else dims.d_kv
    return round(2 * token_layers * batch * width * n_bytes)


def naive_kv_cache_bytes(dims: ModelDims, n_tokens: int, batch: int = 1, dtype: str | float = 2) -> int:
    """The formula often quoted, 2 x layers x batch x tokens x d_model x bytes: it ignores shared KV heads."""
    return round(2 * dims.n_layers * batch * n_tokens * dims.d_model * bytes_per_value(dtype))


def formula_text(dims: ModelDims, dtype: str | float = 2) -> str:
    """The formula with this model's numbers, e.g. for Phi-3-mini in bf16: 2 x 32 x 32 x 96 x 2 bytes per token."""
    per_token = kv_cache_bytes(dims, 1, 1, dtype)
    return (f"2 (K and V) x {dims.n_layers} layers x {dims.n_kv_heads} KV heads x {dims.d_head} (head size) x "
            f"{bytes_per_value(dtype):g} bytes = {per_token:,} bytes per token")


def sharing_notes(dims: ModelDims) -> tuple[str, ...]:
    """What makes this model's cache differ from the plain formula (sliding windows, latent KV)."""
    notes = []
    n_sliding, window = dims.n_sliding_layers, dims.sliding_window
    if window and n_sliding == dims.n_layers:
        notes.append(f"Sliding-window attention (window {window}): each layer only attends to the last "
                     f"{window} tokens, so a sliding cache stops growing there.")
    elif window and n_sliding:
        notes.append(f"Hybrid attention: {n_sliding} of {dims.n_layers} layers use a sliding window of "
                     f"{window} tokens (their cache stops growing there); the others keep every token.")
    other = sorted(set(dims.layer_types) - {"full_attention", "sliding_attention", "chunked_attention"})
    if other:
        notes.append(f"Some layers are of type {', '.join(other)}, which may keep no per-token KV cache; they "
                     "are counted like full attention here.")
    if dims.kv_lora_rank:
        notes.append(f"This model compresses keys and values to a rank-{dims.kv_lora_rank} latent (multi-head "
                     "latent attention): the per-head formula over-estimates its cache.")
    return tuple(notes)
