"""Where the parameters are: per part of the model, per layer, the weight memory, and for a mixture of experts
how many of them one token actually uses.

Active parameters follow the usual definition (Mixtral's "12.9 B active of 46.7 B"): everything except the
share of the routed experts that a token does not visit, total - expert_params x (n_experts - k) / n_experts.
Shared experts and the router always run, so they count as active.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from torch import nn

from visualizer.analysis.architecture.roles import NORM_ROLES
from visualizer.analysis.architecture.tree import ModuleNode, module_tree, safe_dims
from visualizer.analysis.kv_memory import DTYPE_BYTES
from visualizer.dims import ModelDims

WEIGHT_MEMORY_DTYPES = ("fp32", "bf16", "int8", "int4")

_CATEGORY_BY_ROLE = {
    "embedding": "embedding", "position_embedding": "position_embedding", "embedding_norm": "embedding_norm",
    "attention": "attention", "mlp": "mlp", "gated_mlp": "mlp", "lm_head": "lm_head", "final_norm": "final_norm",
    # Projections count where they belong even when no attention/MLP module wraps them (OPT).
    **{role: "attention" for role in ("qkv_fused", "q_proj", "k_proj", "v_proj", "attn_out")},
    **{role: "mlp" for role in ("gate_up_fused", "gate_proj", "up_proj", "down_proj", "mlp_in", "mlp_out",
                                "moe", "router", "experts", "expert", "shared_expert", "shared_expert_gate")},
    **{role: "norms" for role in NORM_ROLES - {"final_norm", "embedding_norm"}},
}
_CATEGORY_LABELS = {
    "embedding": "Token embedding", "position_embedding": "Position embedding", "embedding_norm": "Embedding norm",
    "attention": "Attention", "mlp": "MLP", "norms": "Norms", "other": "Other", "final_norm": "Final norm",
    "lm_head": "LM head",
}
_ORDER = ("embedding", "position_embedding", "embedding_norm", "attention", "mlp", "norms", "other", "final_norm",
          "lm_head")
_LAYER_CATEGORIES = ("attention", "mlp", "norms")


@dataclass(frozen=True)
class BreakdownItem:
    key: str          # "embedding", "attention", "mlp", "norms", "final_norm", "lm_head", "other", ...
    label: str        # "Attention (32 layers)"
    n_params: int
    share: float
    note: str = ""


@dataclass(frozen=True)
class Breakdown:
    items: tuple[BreakdownItem, ...]  # model order; "lm_head" always present (0 when tied)
    total: int                        # == sum(p.numel() for p in model.parameters())
    n_layers: int                     # decoder layers found in the tree
    per_layer: dict[str, int]         # the first decoder layer (= every layer unless the stack mixes
                                      # layer kinds): {"attention": .., "mlp": .., "norms": .., "other": ..}
    tied_embeddings: bool
    n_experts: int = 0                # routed experts per MoE layer; 0 for a dense model
    n_experts_per_token: int = 0
    expert_params: int = 0            # all routed experts of all layers
    active_params: int = 0            # what one token uses; == total for a dense model

    def as_dict(self) -> dict[str, int]:
        return {item.key: item.n_params for item in self.items}


def tied_embeddings(model: nn.Module) -> bool:
    try:
        inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return False
    return inp is not None and out is not None and getattr(inp, "weight", 1) is getattr(out, "weight", 2)


def _categorise(node: ModuleNode, inherited: str, in_layer: bool, totals: dict[str, int],
                layer_totals: dict[str, int]) -> None:
    category = _CATEGORY_BY_ROLE.get(node.role, inherited)
    if node.role == "decoder_layer":
        in_layer, category = True, "other"
    if node.params_own:
        totals[category] = totals.get(category, 0) + node.params_own * node.repeat * node.multiplier
        if in_layer:
            layer_totals[category] = layer_totals.get(category, 0) + node.params_own * node.repeat
    for child in node.children:
        _categorise(child, category, in_layer, totals, layer_totals)


def _per_layer(first_layer: ModuleNode | None) -> dict[str, int]:
    per_layer: dict[str, int] = {}
    if first_layer is not None:  # one instance: categorise only the first block
        single = copy.copy(first_layer)
        single.repeat, single.multiplier = 1, 1
        _categorise(single, "other", True, {}, per_layer)
    return {k: per_layer.get(k, 0) for k in (*_LAYER_CATEGORIES, "other")}


def expert_params(tree: ModuleNode) -> int:
    """Parameters of every routed expert in every layer (shared experts and routers excluded)."""
    return sum(node.params_all_copies for node in tree.walk() if node.role == "experts")


def active_params(total: int, experts: int, dims: ModelDims | None) -> int:
    """Parameters one token uses: the total minus the routed experts it does not visit."""
    if dims is None or not dims.is_moe or not experts:
        return total
    k = min(dims.n_experts_per_token or dims.n_experts, dims.n_experts)
    return total - experts * (dims.n_experts - k) // dims.n_experts


def breakdown_from_tree(tree: ModuleNode, tied: bool, dims: ModelDims | None = None) -> Breakdown:
    totals: dict[str, int] = {}
    layer_nodes = [n for n in tree.walk() if n.role == "decoder_layer"]
    n_layers = sum(n.repeat * n.multiplier for n in layer_nodes)
    _categorise(tree, "other", False, totals, {})
    total = tree.params_total
    experts = expert_params(tree)
    active = active_params(total, experts, dims)
    items = []
    for key in _ORDER:
        n = totals.get(key, 0)
        if n == 0 and key != "lm_head":
            continue
        label = _CATEGORY_LABELS[key]
        if key in _LAYER_CATEGORIES and n_layers:
            label = f"{label} ({n_layers} layers)"
        items.append(BreakdownItem(key, label, n, n / total if total else 0.0, _note(key, tied, dims, experts)))
    is_moe = dims is not None and dims.is_moe and experts > 0
    return Breakdown(tuple(items), total, n_layers, _per_layer(layer_nodes[0] if layer_nodes else None), tied,
                     n_experts=dims.n_experts if is_moe else 0,
                     n_experts_per_token=dims.n_experts_per_token if is_moe else 0,
                     expert_params=experts, active_params=active)


def _note(key: str, tied: bool, dims: ModelDims | None, experts: int) -> str:
    if key == "lm_head" and tied:
        return "tied to the token embedding: shares its matrix, no extra parameters"
    if key == "mlp" and dims is not None and dims.is_moe and experts:
        k = dims.n_experts_per_token or dims.n_experts
        return (f"{dims.n_experts} experts, {k} active per token: the experts hold {experts:,} parameters, "
                f"{experts * k // dims.n_experts:,} of them used per token")
    return ""


def parameter_breakdown(model: nn.Module) -> Breakdown:
    """Parameters per part: embedding, attention/MLP/norms over all layers, final norm, LM head; MoE counts."""
    return breakdown_from_tree(module_tree(model), tied_embeddings(model), safe_dims(getattr(model, "config", None)))


def weight_memory(n_params: int) -> dict[str, int]:
    """Bytes needed to hold n_params weights in fp32 / bf16 / int8 / int4 (no quantisation scales)."""
    if n_params < 0:
        raise ValueError(f"n_params must be >= 0, got {n_params}.")
    return {dtype: math.ceil(n_params * DTYPE_BYTES[dtype]) for dtype in WEIGHT_MEMORY_DTYPES}
