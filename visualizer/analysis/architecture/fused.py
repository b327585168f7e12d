"""Fused projections: how one Q/K/V (or gate/up) matrix's outputs are cut into their parts.

The sizes come from the model's dimensions, never from "equal thirds": with shared key/value heads a fused QKV
has n_heads x d_head query outputs but only n_kv_heads x d_head for keys and for values (Falcon-40B:
128 x 64 + 2 x 8 x 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from visualizer.dims import ModelDims

if TYPE_CHECKING:  # the tree imports this module; only the type goes the other way
    from visualizer.analysis.architecture.tree import ModuleNode

FUSED_ROLES = ("qkv_fused", "gate_up_fused")


@dataclass(frozen=True)
class FusedSplit:
    """How the output of one fused projection is cut into its parts."""

    path: str                         # first instance, "model.layers.0.self_attn.qkv_proj"
    class_name: str                   # "Linear" or "Conv1D"
    kind: str                         # "qkv" or "gate_up"
    d_in: int
    d_out: int
    parts: tuple[tuple[str, int], ...]  # (("Q", 3072), ("K", 3072), ("V", 3072))
    n_copies: int                     # one per layer
    formula: str                      # where the part sizes come from
    layout: str                       # which output columns belong to which part

    @property
    def parts_text(self) -> str:
        return f"{self.d_in} -> {self.d_out} = " + " + ".join(f"{label} {size}" for label, size in self.parts)


def fused_split(node: ModuleNode, dims: ModelDims | None) -> FusedSplit:
    """The split of a node whose role is qkv_fused or gate_up_fused."""
    d_in, d_out = node.d_in or 0, node.d_out or 0
    copies = node.repeat * node.multiplier
    if node.role == "gate_up_fused":
        half = d_out // 2
        return FusedSplit(node.path, node.class_name, "gate_up", d_in, d_out, (("gate", half), ("up", half)),
                          copies, f"gate = up = d_mlp = {d_out} / 2 = {half}",
                          "first half of the outputs is the gate, second half the up projection "
                          "(chunk(2)); output = down(act(gate) * up)")
    if dims is not None and dims.d_q + 2 * dims.d_kv == d_out:
        return FusedSplit(node.path, node.class_name, "qkv", d_in, d_out,
                          (("Q", dims.d_q), ("K", dims.d_kv), ("V", dims.d_kv)), copies, _qkv_formula(dims),
                          _qkv_layout(node, dims))
    third = d_out // 3
    return FusedSplit(node.path, node.class_name, "qkv", d_in, d_out, (("Q", third), ("K", third), ("V", third)),
                      copies, f"the config's head counts do not add up to {d_out}; assuming equal thirds",
                      "assumed: three equal consecutive blocks")


def _qkv_formula(dims: ModelDims) -> str:
    formula = (f"Q = n_heads x d_head = {dims.n_heads} x {dims.d_head} = {dims.d_q}; "
               f"K = V = n_kv_heads x d_head = {dims.n_kv_heads} x {dims.d_head} = {dims.d_kv}")
    if dims.kv_sharing == "grouped-query":
        formula += (f" (grouped-query attention: {dims.queries_per_kv_head} query heads share each key/value "
                    "head)")
    elif dims.kv_sharing == "multi-query":
        formula += " (multi-query attention: every query head shares the one key/value head)"
    return formula


def _qkv_layout(node: ModuleNode, dims: ModelDims) -> str:
    model_type = dims.model_type
    per_head = (f"interleaved per head: the output is viewed as [{dims.n_heads} heads, 3 x {dims.d_head}] "
                "and each head's slice holds its own q | k | v")
    if model_type.startswith("gpt_neox") or model_type == "bloom":
        return per_head
    if model_type == "falcon":
        # One formula covers all three Falcon layouts: per KV head, its group of queries, then its k and v.
        group = dims.queries_per_kv_head
        return (f"grouped per key/value head: the output is viewed as [{dims.n_kv_heads} groups, {group} + 2 "
                f"heads, {dims.d_head}]; each group holds its {group} query head(s), then its key, then its "
                "value")
    if model_type == "gpt_bigcode" and dims.kv_sharing == "multi-head":
        return per_head
    if node.name == "query_key_value":
        return "the order of the outputs (per head or in blocks) is specific to this model's code"
    if node.class_name == "Conv1D":
        return (f"Conv1D stores the weight as [d_in, d_out] = [{node.d_in}, {node.d_out}] (transposed "
                "compared with nn.Linear); the outputs are three consecutive blocks Q | K | V, each then "
                f"reshaped to {dims.n_heads} heads x {dims.d_head}")
    return ("three consecutive blocks of outputs: the first n_heads x d_head are Q, the next "
            "n_kv_heads x d_head are K, the rest V")
