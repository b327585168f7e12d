"""ModelDims: every size and scheme of a causal LM, read from its config by one function.

Every tab, the KV-cache formula, the cache inspector and the trace take their numbers from here, so the rules
that differ between families (multi-query vs grouped-query, Falcon's new decoder architecture, MoE experts,
logit scaling and soft-capping) live in one place and are tested table-driven over configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Positions = str  # "rope" | "alibi" | "learned" | "none"
KvSharing = str  # "multi-head" | "grouped-query" | "multi-query"


@dataclass(frozen=True)
class ModelDims:
    """The shape of one decoder-only transformer (counts are per model; d_* are widths)."""

    model_type: str
    n_layers: int
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads; each serves n_heads / n_kv_heads query heads
    d_head: int
    d_model: int  # the residual stream's width
    d_mlp: int | None  # the MLP's inner width (per expert in a mixture of experts)
    d_vocab: int
    n_ctx: int | None  # the context window the model was trained for
    positions: Positions
    norm: str  # "rmsnorm" | "layernorm"
    parallel_attn_mlp: bool  # attention and MLP read the same input and are added together (GPT-J, Falcon, Cohere)
    tied_embeddings: bool
    final_logit_softcap: float | None = None  # Gemma-2: logits = cap * tanh(logits / cap)
    attn_logit_softcap: float | None = None
    logit_scale: float = 1.0  # logits are multiplied by this (Cohere's logit_scale, 1 / Granite's logits_scaling)
    n_experts: int = 0  # 0: a dense MLP in every layer
    n_experts_per_token: int = 0
    sliding_window: int | None = None
    layer_types: tuple[str, ...] = field(default=())  # "full_attention" | "sliding_attention" | ... per layer
    n_cached_kv_heads: int = 0  # KV heads transformers' cache really stores per layer (0: n_kv_heads)
    kv_lora_rank: int = 0  # multi-head latent attention (DeepSeek-V2/V3): keys and values compressed to this rank

    @property
    def kv_sharing(self) -> KvSharing:
        if self.n_kv_heads == self.n_heads:
            return "multi-head"
        return "multi-query" if self.n_kv_heads == 1 else "grouped-query"

    @property
    def queries_per_kv_head(self) -> int:
        return self.n_heads // self.n_kv_heads

    @property
    def d_kv(self) -> int:
        """Width of the keys (and of the values) of one token in one layer: n_kv_heads x d_head."""
        return self.n_kv_heads * self.d_head

    @property
    def d_cached_kv(self) -> int:
        """Width of one token's keys in transformers' cache: Falcon's new decoder architecture broadcasts its
        KV heads to every query head before caching, so its cache is n_heads / n_kv_heads times the formula."""
        return (self.n_cached_kv_heads or self.n_kv_heads) * self.d_head

    @property
    def d_q(self) -> int:
        return self.n_heads * self.d_head

    @property
    def n_sliding_layers(self) -> int:
        return sum(t in ("sliding_attention", "chunked_attention") for t in self.layer_types)

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def kv_head_of(self, head: int) -> int:
        """The KV head that query head `head` reads (heads are grouped in order, as transformers' repeat_kv)."""
        return head // self.queries_per_kv_head

    def describe_kv_sharing(self) -> str:
        if self.kv_sharing == "multi-head":
            return f"multi-head attention: each of the {self.n_heads} heads has its own keys and values"
        if self.kv_sharing == "multi-query":
            return f"multi-query attention: all {self.n_heads} query heads share one key/value head"
        return (f"grouped-query attention: {self.n_heads} query heads share {self.n_kv_heads} key/value heads, "
                f"{self.queries_per_kv_head} each")


def text_config(config: Any) -> Any:
    """The decoder's config of a multimodal or encoder-decoder config; the config itself otherwise."""
    getter = getattr(config, "get_text_config", None)
    return getter(decoder=True) if callable(getter) else config


def _first(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _count(config: Any, *names: str) -> int | None:
    value = _first(config, *names)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value <= 0:
        raise ValueError(f"{type(config).__name__}.{names[0]} must be a positive whole number, got {value!r}")
    return int(value)


def _n_kv_heads(cfg: Any, n_heads: int) -> int:
    model_type = getattr(cfg, "model_type", "")
    if model_type == "falcon":
        # Falcon's new decoder architecture (40B/180B) groups queries over num_kv_heads and ignores
        # multi_query; the original 7B layout has one shared KV head when multi_query is set.
        if getattr(cfg, "new_decoder_architecture", False):
            return _count(cfg, "num_kv_heads") or n_heads
        return 1 if getattr(cfg, "multi_query", True) else n_heads
    if getattr(cfg, "multi_query", False):  # gpt_bigcode
        return 1
    attn_config = getattr(cfg, "attn_config", None)  # MPT keeps its attention settings in a sub-config
    kv_from_attn = getattr(attn_config, "kv_n_heads", None) if attn_config is not None else None
    return _count(cfg, "num_key_value_heads", "num_kv_heads", "n_kv_heads") or kv_from_attn or n_heads


def _positions(cfg: Any) -> Positions:
    model_type = getattr(cfg, "model_type", "")
    attn_config = getattr(cfg, "attn_config", None)
    if getattr(cfg, "alibi", False) or model_type == "bloom" or getattr(attn_config, "alibi", False):
        return "alibi"
    if model_type in ("gpt2", "gpt_bigcode", "opt", "gpt_neo", "biogpt", "xglm", "ctrl", "imagegpt"):
        return "learned"
    rope_keys = ("rope_theta", "rope_parameters", "rope_scaling", "rotary_dim", "rotary_pct",
                 "partial_rotary_factor", "rotary_emb_base")
    if any(getattr(cfg, key, None) is not None for key in rope_keys):
        return "rope"
    if model_type == "mamba" or model_type.startswith("rwkv"):
        return "none"
    return "rope" if _count(cfg, "max_position_embeddings") else "none"


def _parallel(cfg: Any) -> bool:
    model_type = getattr(cfg, "model_type", "")
    if model_type == "falcon":
        return bool(getattr(cfg, "parallel_attn", True) or getattr(cfg, "new_decoder_architecture", False))
    if model_type == "gpt_neox":
        return bool(getattr(cfg, "use_parallel_residual", True))
    return model_type in ("gptj", "phi", "cohere", "cohere2", "codegen", "stablelm") and not (
        model_type == "stablelm" and not getattr(cfg, "use_parallel_residual", False))


def _logit_scale(cfg: Any) -> float:
    scale = getattr(cfg, "logit_scale", None)  # Cohere multiplies
    if isinstance(scale, int | float) and scale:
        return float(scale)
    scaling = getattr(cfg, "logits_scaling", None)  # Granite divides
    if isinstance(scaling, int | float) and scaling:
        return 1.0 / float(scaling)
    return 1.0


def _layer_types(cfg: Any, n_layers: int) -> tuple[str, ...]:
    layer_types = getattr(cfg, "layer_types", None)
    if layer_types:
        return tuple(str(t) for t in layer_types)
    window = getattr(cfg, "sliding_window", None)  # the same inference as transformers' DynamicCache
    return ("sliding_attention" if window else "full_attention",) * n_layers


def dims_from_config(config: Any) -> ModelDims:
    """The one reader of model sizes: Llama-style names, GPT-2/BLOOM/Falcon/MPT names and explicit head_dim.

    >>> from transformers import LlamaConfig
    >>> d = dims_from_config(LlamaConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
    ...                                  num_hidden_layers=3, intermediate_size=128, vocab_size=100))
    >>> d.kv_sharing, d.d_head, d.d_kv, d.kv_head_of(5)
    ('grouped-query', 8, 16, 1)
    """
    cfg = text_config(config)
    n_layers = _count(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    d_model = _count(cfg, "hidden_size", "n_embd", "d_model", "dim")
    n_heads = _count(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads")
    if n_layers is None or d_model is None or n_heads is None:
        raise ValueError(
            f"This {type(cfg).__name__} does not name its number of layers, heads or hidden size in a way this "
            "app understands (expected num_hidden_layers/num_attention_heads/hidden_size or GPT-2's "
            "n_layer/n_head/n_embd): it may not be a transformer.")
    n_kv_heads = _n_kv_heads(cfg, n_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"{n_heads} attention heads cannot be shared evenly by {n_kv_heads} key/value heads")
    d_head = _count(cfg, "head_dim") or d_model // n_heads  # Gemma: head_dim != d_model / n_heads
    d_mlp = _count(cfg, "moe_intermediate_size", "intermediate_size", "n_inner", "ffn_dim", "d_ff",
                   "ffn_hidden_size")
    if d_mlp is None and getattr(cfg, "model_type", "") in ("gpt2", "gpt_bigcode", "gptj", "codegen", "bloom"):
        d_mlp = 4 * d_model  # n_inner = None means 4 x n_embd in these families
    if d_mlp is None and getattr(cfg, "expansion_ratio", None):  # MPT
        d_mlp = int(cfg.expansion_ratio * d_model)
    vocab = _count(cfg, "vocab_size", "padded_vocab_size") or 0
    softcap = getattr(cfg, "final_logit_softcapping", None)
    attn_softcap = getattr(cfg, "attn_logit_softcapping", None)
    window = getattr(cfg, "sliding_window", None)
    return ModelDims(
        model_type=str(getattr(cfg, "model_type", "") or type(cfg).__name__),
        n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head, d_model=d_model, d_mlp=d_mlp,
        d_vocab=vocab,
        n_ctx=_count(cfg, "max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length"),
        positions=_positions(cfg),
        norm="rmsnorm" if _first(cfg, "rms_norm_eps", "rms_norm_epsilon") is not None else "layernorm",
        parallel_attn_mlp=_parallel(cfg),
        tied_embeddings=bool(getattr(cfg, "tie_word_embeddings", True)),
        final_logit_softcap=float(softcap) if softcap else None,
        attn_logit_softcap=float(attn_softcap) if attn_softcap else None,
        logit_scale=_logit_scale(cfg),
        n_experts=_count(cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts") or 0,
        n_experts_per_token=_count(cfg, "num_experts_per_tok", "moe_top_k", "num_experts_per_token") or 0,
        sliding_window=int(window) if window else None,
        layer_types=_layer_types(cfg, n_layers),
        n_cached_kv_heads=n_heads if _broadcasts_kv_before_caching(cfg) else n_kv_heads,
        kv_lora_rank=_count(cfg, "kv_lora_rank") or 0,
    )


def _broadcasts_kv_before_caching(cfg: Any) -> bool:
    return getattr(cfg, "model_type", "") == "falcon" and bool(getattr(cfg, "new_decoder_architecture", False))
