"""The Architecture tab's report: one call gives the tree, the breakdown, the fused splits, the weight memory,
the model's dimensions (which size the KV cache) and a config summary, for a loaded model or any config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import PretrainedConfig

from visualizer.analysis.architecture.configs import config_from_json, load_known_config
from visualizer.analysis.architecture.fused import FUSED_ROLES, FusedSplit, fused_split
from visualizer.analysis.architecture.meta import LruCache, build_meta_model, config_key
from visualizer.analysis.architecture.parameters import Breakdown, breakdown_from_tree, tied_embeddings, weight_memory
from visualizer.analysis.architecture.roles import NORM_ROLES
from visualizer.analysis.architecture.tree import ModuleNode, module_tree, safe_dims
from visualizer.dims import ModelDims, text_config

_REPORTS = LruCache(maxsize=12)
_POSITION_NAMES = {"rope": "RoPE", "learned": "learned absolute", "alibi": "ALiBi", "none": "none (NoPE)"}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class ConfigSummary:
    name: str                   # hub id when known ("microsoft/Phi-3-mini-4k-instruct"), else the class
    model_type: str
    architecture: str           # "Phi3ForCausalLM"
    n_params: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int | None           # per expert in a mixture of experts
    d_vocab: int | None
    context_length: int | None
    position_encoding: str      # "RoPE", "learned absolute", "ALiBi", "none (NoPE)"
    rope_theta: float | None
    rope_type: str | None       # "default", "llama3", "longrope", ...
    activation: str | None      # "silu", "gelu_new", ...
    norm_type: str              # "RMSNorm" / "LayerNorm"
    tied_embeddings: bool
    sliding_window: int | None
    dtype: str | None           # the checkpoint's dtype per config ("bfloat16")
    kv_sharing: str = "multi-head"  # "multi-head" | "grouped-query" | "multi-query"
    n_experts: int = 0
    n_experts_per_token: int = 0
    active_params: int = 0      # == n_params for a dense model

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a table."""
        rows = [
            ("Model", self.name), ("Class", self.architecture), ("Parameters", _fmt(self.n_params)),
            ("Layers (n_layers)", _fmt(self.n_layers)), ("d_model", _fmt(self.d_model)),
            ("Query heads (n_heads)", _fmt(self.n_heads)), ("KV heads (n_kv_heads)", _fmt(self.n_kv_heads)),
            ("Attention", self.kv_sharing), ("d_head", _fmt(self.d_head)), ("d_mlp", _fmt(self.d_mlp)),
            ("Vocabulary (d_vocab)", _fmt(self.d_vocab)), ("Context length", _fmt(self.context_length)),
            ("Positions", self.position_encoding), ("RoPE theta", _fmt(self.rope_theta)),
            ("RoPE type", _fmt(self.rope_type)), ("Activation", _fmt(self.activation)),
            ("Norm", self.norm_type), ("Tied embeddings", _fmt(self.tied_embeddings)),
            ("Sliding window", _fmt(self.sliding_window)), ("Checkpoint dtype", _fmt(self.dtype)),
        ]
        if self.n_experts:
            rows[10:10] = [("Experts", f"{self.n_experts} ({self.n_experts_per_token} active per token)"),
                           ("Active parameters per token", _fmt(self.active_params))]
        return rows


def _positions_text(dims: ModelDims | None, roles: set[str]) -> str:
    if dims is not None:
        return _POSITION_NAMES.get(dims.positions, dims.positions)
    if "rotary" in roles:
        return "RoPE"
    return "learned absolute" if "position_embedding" in roles else "none found (e.g. ALiBi or NoPE)"


def _config_summary(model: nn.Module, tree: ModuleNode, breakdown: Breakdown, dims: ModelDims | None) -> ConfigSummary:
    config = getattr(model, "config", None)
    cfg = text_config(config) if config is not None else None
    roles = {node.role for node in tree.walk()}
    norm_classes = [node.class_name for node in tree.walk() if node.role in NORM_ROLES]
    # Summary-only fields that ModelDims does not carry: rope settings, activation, checkpoint dtype.
    rope = dict(getattr(cfg, "rope_parameters", None) or {})
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", None) or getattr(cfg, "rotary_emb_base", None))
    position = _positions_text(dims, roles)
    activation = next((getattr(cfg, k) for k in ("hidden_activation", "hidden_act", "activation_function")
                       if getattr(cfg, k, None) is not None), None)
    dtype = getattr(cfg, "dtype", None)
    return ConfigSummary(
        name=getattr(config, "name_or_path", "") or type(model).__name__,
        model_type=getattr(cfg, "model_type", ""), architecture=type(model).__name__, n_params=breakdown.total,
        n_layers=dims.n_layers if dims else 0, n_heads=dims.n_heads if dims else 0,
        n_kv_heads=dims.n_kv_heads if dims else 0, d_model=dims.d_model if dims else 0,
        d_head=dims.d_head if dims else 0, d_mlp=dims.d_mlp if dims else None,
        d_vocab=dims.d_vocab if dims else None, context_length=dims.n_ctx if dims else None,
        position_encoding=position,
        rope_theta=float(theta) if theta is not None and position == "RoPE" else None,
        rope_type=rope.get("rope_type") if position == "RoPE" else None, activation=activation,
        norm_type="RMSNorm" if any("RMS" in c for c in norm_classes) else ("LayerNorm" if norm_classes else "-"),
        tied_embeddings=breakdown.tied_embeddings, sliding_window=dims.sliding_window if dims else None,
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else None,
        kv_sharing=dims.kv_sharing if dims else "-", n_experts=breakdown.n_experts,
        n_experts_per_token=breakdown.n_experts_per_token, active_params=breakdown.active_params,
    )


@dataclass(frozen=True)
class ArchitectureReport:
    summary: ConfigSummary
    tree: ModuleNode
    breakdown: Breakdown
    fused: tuple[FusedSplit, ...]
    weight_memory: dict[str, int]     # {"fp32": bytes, "bf16": .., "int8": .., "int4": ..}
    dims: ModelDims | None            # None if the config's attention sizes could not be read
    n_params: int
    on_meta: bool                     # a weightless skeleton built from a config

    @property
    def kv_spec(self) -> ModelDims | None:
        """The dimensions that size the KV cache (the name the Architecture tab used before ModelDims)."""
        return self.dims


def describe_architecture(model: nn.Module) -> ArchitectureReport:
    """Everything the Architecture tab shows, for a loaded model or a meta skeleton."""
    tree = module_tree(model)
    dims = safe_dims(getattr(model, "config", None))
    breakdown = breakdown_from_tree(tree, tied_embeddings(model), dims)
    fused = tuple(fused_split(node, dims) for node in tree.walk() if node.role in FUSED_ROLES)
    on_meta = any(p.is_meta for p in model.parameters())
    return ArchitectureReport(_config_summary(model, tree, breakdown, dims), tree, breakdown, fused,
                              weight_memory(breakdown.total), dims, breakdown.total, on_meta)


def describe_config(config: PretrainedConfig) -> ArchitectureReport:
    """describe_architecture of the config's meta skeleton (cached: cheap to call again)."""
    model = build_meta_model(config)
    return _REPORTS.get_or_make(config_key(config), lambda: describe_architecture(model))


def describe_known_model(name: str) -> ArchitectureReport:
    return describe_config(load_known_config(name))


def describe_config_json(text: str) -> ArchitectureReport:
    """Pasted config.json text -> report; raises ValueError with a readable message on bad input."""
    return describe_config(config_from_json(text))


def fused_projections(model_or_config: nn.Module | PretrainedConfig) -> list[FusedSplit]:
    """Every distinct fused projection (qkv / gate_up) of a model, or of a config built on meta."""
    if isinstance(model_or_config, PretrainedConfig):
        model = build_meta_model(model_or_config)
    elif isinstance(model_or_config, nn.Module):
        model = model_or_config
    else:
        raise ValueError(f"Expected a model or a transformers config, got {type(model_or_config).__name__}.")
    dims = safe_dims(getattr(model, "config", None))
    return [fused_split(node, dims) for node in module_tree(model).walk() if node.role in FUSED_ROLES]
