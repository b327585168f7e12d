"""Architecture of a causal LM: module tree, parameter counts, fused projections, memory, KV-cache size.

Works on a loaded model or on a weightless skeleton built on the ``meta`` device from a config (a known
model shipped in ``visualizer/known_configs/`` or a pasted ``config.json``). Every count de-duplicates
tied weights exactly like ``sum(p.numel() for p in model.parameters())``: a shared tensor is counted
once, at the first module that ``model.named_parameters()`` reaches it through.

Main entry points::

    describe_architecture(model) -> ArchitectureReport      # a loaded model
    describe_config(config) -> ArchitectureReport           # any config, built on meta (cached)
    describe_known_model("Phi-3-mini-4k-instruct") -> ArchitectureReport
    kv_cache_estimate(report.kv_spec, tokens=1000, batch=1, dtype="fp16") -> KvCacheEstimate
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.pytorch_utils import Conv1D

KNOWN_CONFIGS_DIR = Path(__file__).resolve().parent.parent / "known_configs"

# Bytes per stored value. int4 packs two values per byte (group-wise scales, ~0.5 bit/param more in
# real quantisation formats, are not counted).
DTYPE_BYTES: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
WEIGHT_MEMORY_DTYPES = ("fp32", "bf16", "int8", "int4")

# Pasted configs beyond these sizes are refused: building them would take long or make no sense.
MAX_CONFIG_JSON_CHARS = 200_000
MAX_LAYERS = 1_024
MAX_D_MODEL = 131_072
MAX_VOCAB = 4_194_304
MAX_HEADS = 4_096
MAX_ESTIMATED_PARAMS = 10**13  # 10 T: ten times the largest open models
# Keys whose only use is loading custom code or quantised weights; a weightless skeleton needs neither.
# Attention kernels (flash-attention) need not be installed for a skeleton: eager is always used.
_IGNORED_KEYS = ("auto_map", "trust_remote_code", "quantization_config", "custom_pipelines",
                 "attn_implementation", "_attn_implementation")

# ---------------------------------------------------------------------------------------------------
# Roles: what a module does, independent of how an architecture names it.
# ---------------------------------------------------------------------------------------------------

_NORM_EXPLANATIONS = {
    "rmsnorm": "RMSNorm: divides the vector by its root-mean-square and multiplies by a learned gain per "
               "dimension (no mean subtraction, no bias). Cheaper than LayerNorm and works as well.",
    "layernorm": "LayerNorm: subtracts the mean, divides by the standard deviation, then applies a learned "
                 "gain and bias per dimension.",
}

ROLE_EXPLANATIONS: dict[str, str] = {
    "causal_lm": "The whole causal language model: a transformer body that turns token ids into one vector "
                 "per position, plus an LM head that turns the last vector into next-token logits.",
    "backbone": "The transformer body: token embedding, a stack of decoder layers that each read the residual "
                "stream and add their output back to it, and a final norm.",
    "embedding": "Token embedding: a learned table with one d_model-sized row per vocabulary entry; token id "
                 "i picks row i. This vector is where the residual stream starts.",
    "position_embedding": "Learned absolute position embedding (GPT-2 style): one learned vector per position, "
                          "added to the token embedding. Its number of rows caps the context length.",
    "layers": "The stack of decoder layers. Each layer has the same shapes but its own weights; the residual "
              "stream flows through them in order.",
    "decoder_layer": "One transformer block: normalise, attend, add the result to the residual stream; then "
                     "normalise, apply the MLP, add again. Attention moves information between positions, the "
                     "MLP transforms each position on its own.",
    "attention": "Self-attention: each position forms a query, compares it with the keys of itself and all "
                 "earlier positions (causal mask), and takes a softmax-weighted mix of their values. Several "
                 "heads do this in parallel, each in its own d_head-sized subspace.",
    "qkv_fused": "Fused Q/K/V projection: one matrix multiply produces queries, keys and values together; the "
                 "output is cut into its parts afterwards (see the split). Same maths as three separate "
                 "projections, fewer kernel launches.",
    "q_proj": "Query projection: what each position is looking for (n_heads x d_head outputs).",
    "k_proj": "Key projection: what each position offers to be found by. With grouped-query attention there "
              "are fewer key heads than query heads, and each key head serves a group of query heads.",
    "v_proj": "Value projection: the information a position hands over when another position attends to it.",
    "attn_out": "Attention output projection: mixes the concatenated heads back into d_model and writes the "
                "result into the residual stream.",
    "rotary": "Rotary position embedding (RoPE): no weights. It rotates each pair of query/key dimensions by an "
              "angle proportional to the position, so a query-key dot product depends on their relative "
              "distance. rope_theta sets the base of the rotation frequencies (bigger = slower rotation, "
              "longer reach).",
    "mlp": "MLP (feed-forward network): applied to every position independently. Expands d_model to d_mlp, "
           "applies a non-linearity, projects back to d_model. Most of the parameters live here.",
    "gated_mlp": "Gated MLP (SwiGLU / GeGLU): down(act(gate(x)) * up(x)). The activated gate decides, per "
                 "hidden unit, how much of the up projection passes through. Three matrices instead of two, "
                 "so d_mlp is usually smaller than 4 x d_model.",
    "gate_up_fused": "Fused gate + up projection: one multiply produces both halves of a gated MLP, cut in two "
                     "afterwards (see the split); the output is down(act(gate) * up).",
    "gate_proj": "Gate projection of a gated MLP: passed through the activation, then multiplies the up "
                 "projection element-wise.",
    "up_proj": "Up projection: expands d_model to d_mlp; multiplied element-wise by the activated gate.",
    "down_proj": "Down projection: maps d_mlp back to d_model and writes the MLP output into the residual "
                 "stream.",
    "mlp_in": "MLP input projection: expands d_model to d_mlp (typically 4 x d_model) before the non-linearity.",
    "mlp_out": "MLP output projection: maps d_mlp back to d_model and writes the result into the residual "
               "stream.",
    "activation": "Non-linearity (SiLU, GELU, ...): without it the MLP's two linear maps would collapse into one.",
    "attn_norm": "Pre-attention norm: normalises the residual stream before it enters attention, which keeps "
                 "the scale of the inputs stable from layer to layer.",
    "mlp_norm": "Pre-MLP norm: normalises the residual stream before the MLP. (In Llama-style models this one "
                "is called post_attention_layernorm because it sits after the attention block.)",
    "attn_post_norm": "Post-attention norm (Gemma-2 'sandwich'): normalises the attention output before it is "
                      "added to the residual stream.",
    "mlp_post_norm": "Post-MLP norm: normalises the MLP output before it is added to the residual stream.",
    "qk_norm": "Query/key norm: normalises queries and keys per head before the dot product, which keeps "
               "attention logits from growing too large.",
    "final_norm": "Final norm: normalises the residual stream after the last layer, right before the LM head.",
    "norm": "Normalisation layer.",
    "lm_head": "LM head (unembedding): maps the final d_model vector to one logit per vocabulary entry; a "
               "softmax over the logits gives the next-token probabilities. Tied models reuse the token "
               "embedding matrix here.",
    "dropout": "Dropout: only active during training; it does nothing at inference.",
    "other": "",
}

_NORM_ROLES = {"attn_norm", "mlp_norm", "attn_post_norm", "mlp_post_norm", "qk_norm", "final_norm", "norm"}
_POSITION_EMBEDDING_NAMES = {"wpe", "embed_positions", "position_embeddings"}
_ATTENTION_NAMES = {"self_attn", "attn", "attention", "self_attention"}
_MLP_NAMES = {"mlp", "feed_forward", "ffn", "block_sparse_moe"}
_LINEAR_ROLES_IN_ATTENTION = {
    "qkv_proj": "qkv_fused", "c_attn": "qkv_fused", "query_key_value": "qkv_fused", "Wqkv": "qkv_fused",
    "W_pack": "qkv_fused",
    "q_proj": "q_proj", "query": "q_proj", "k_proj": "k_proj", "key": "k_proj", "v_proj": "v_proj",
    "value": "v_proj",
    "o_proj": "attn_out", "c_proj": "attn_out", "dense": "attn_out", "out_proj": "attn_out",
}
_LINEAR_ROLES_IN_MLP = {
    "gate_up_proj": "gate_up_fused", "gate_proj": "gate_proj", "w1": "gate_proj", "up_proj": "up_proj",
    "w3": "up_proj", "down_proj": "down_proj", "w2": "down_proj",
    "c_fc": "mlp_in", "dense_h_to_4h": "mlp_in", "fc1": "mlp_in", "fc_in": "mlp_in",
    "c_proj": "mlp_out", "dense_4h_to_h": "mlp_out", "fc2": "mlp_out", "fc_out": "mlp_out",
}
# Names that mean the same thing wherever they sit (c_proj does not: attention or MLP output).
_LINEAR_ROLES_IN_LAYER = {name: role for name, role in _LINEAR_ROLES_IN_MLP.items() if name != "c_proj"}
_NORM_ROLES_IN_LAYER = {
    "input_layernorm": "attn_norm", "ln_1": "attn_norm", "attention_norm": "attn_norm",
    "ln_2": "mlp_norm", "ffn_norm": "mlp_norm", "pre_feedforward_layernorm": "mlp_norm",
    "post_feedforward_layernorm": "mlp_post_norm",
}


def _is_norm(module: nn.Module) -> bool:
    cls = type(module).__name__
    return isinstance(module, nn.LayerNorm) or "RMSNorm" in cls or "LayerNorm" in cls


def _is_linear_like(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, Conv1D))


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__.startswith(("torch.nn.modules.activation", "transformers.activations"))


def _linear_dims(module: nn.Module) -> tuple[int, int]:
    """(d_in, d_out). Conv1D stores its weight transposed: [d_in, d_out]."""
    if isinstance(module, Conv1D):
        return module.nx, module.nf
    return module.in_features, module.out_features


def explain_role(role: str, module_class: str = "") -> str:
    """The teaching text for a role; norms get a sentence on RMSNorm vs LayerNorm."""
    text = ROLE_EXPLANATIONS.get(role, "")
    if role in _NORM_ROLES and module_class:
        kind = "rmsnorm" if "RMS" in module_class else "layernorm"
        text = f"{text} {_NORM_EXPLANATIONS[kind]}".strip()
    return text


# ---------------------------------------------------------------------------------------------------
# Config numbers (works for Llama-style names, GPT-2 names and explicit head_dim).
# ---------------------------------------------------------------------------------------------------

def _text_config(config: PretrainedConfig) -> PretrainedConfig:
    getter = getattr(config, "get_text_config", None)
    return getter(decoder=True) if callable(getter) else config


def _first_attr(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


@dataclass(frozen=True)
class _AttentionDims:
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int


def _attention_dims(config: PretrainedConfig) -> _AttentionDims:
    cfg = _text_config(config)
    n_layers = _first_attr(cfg, "num_hidden_layers", "n_layer", "num_layers")
    n_heads = _first_attr(cfg, "num_attention_heads", "n_head", "num_heads")
    d_model = _first_attr(cfg, "hidden_size", "n_embd", "d_model")
    if n_layers is None or n_heads is None or d_model is None:
        raise ValueError(
            f"This {type(cfg).__name__} does not name its number of layers, heads or hidden size in a way "
            "this app understands (expected num_hidden_layers/num_attention_heads/hidden_size or GPT-2's "
            "n_layer/n_head/n_embd)."
        )
    if getattr(cfg, "multi_query", False):  # gpt_bigcode, falcon: one shared key/value head
        n_kv_heads = 1
    else:
        n_kv_heads = _first_attr(cfg, "num_key_value_heads", "num_kv_heads", default=n_heads)
    d_head = _first_attr(cfg, "head_dim", default=d_model // n_heads)  # Gemma: head_dim != d_model/n_heads
    return _AttentionDims(int(n_layers), int(n_heads), int(n_kv_heads), int(d_model), int(d_head))


# ---------------------------------------------------------------------------------------------------
# Module tree
# ---------------------------------------------------------------------------------------------------

@dataclass
class ModuleNode:
    """One module of the tree. Counts are for ONE instance of the module.

    ``repeat`` > 1 marks a folded group of identical consecutive blocks (``32 x Phi3DecoderLayer``); the
    node then shows its first block (``path``) and ``name`` is the index range ("0-31"). ``multiplier`` is
    how many copies of this node exist because an ancestor was folded (32 for every module inside a
    folded decoder layer). ``share`` covers all copies: ``params_total * repeat * multiplier / total``.
    """

    name: str                    # local name ("qkv_proj"; "0-31" for a folded group; "" for the root)
    path: str                    # qualified name of the (first) instance, "model.layers.0.self_attn"
    class_name: str              # "Phi3DecoderLayer"
    signature: str               # "Linear(3072 -> 9216)", "Embedding(32064, 3072)", or the class name
    role: str                    # key of ROLE_EXPLANATIONS
    explanation: str
    params_own: int              # parameters registered directly on this module (tied ones excluded)
    params_total: int            # this module and its children, one instance, each tensor counted once
    share: float                 # of the model's total, all copies included
    weight_shapes: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # own tensors
    tied_to: dict[str, str] = field(default_factory=dict)  # own tensor name -> where it is counted
    repeat: int = 1
    multiplier: int = 1
    d_in: int | None = None      # Linear/Conv1D in-features, Embedding rows
    d_out: int | None = None     # Linear/Conv1D out-features, Embedding width
    notes: list[str] = field(default_factory=list)
    children: list[ModuleNode] = field(default_factory=list)

    @property
    def params_all_copies(self) -> int:
        return self.params_total * self.repeat * self.multiplier

    @property
    def is_folded(self) -> bool:
        return self.repeat > 1

    def walk(self):
        """This node and all descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


def _signature(module: nn.Module) -> str:
    cls = type(module).__name__
    if isinstance(module, nn.Embedding):
        return f"{cls}({module.num_embeddings}, {module.embedding_dim})"
    if _is_linear_like(module):
        d_in, d_out = _linear_dims(module)
        bias = getattr(module, "bias", None) is not None
        return f"{cls}({d_in} -> {d_out}{', bias' if bias else ''})"
    if _is_norm(module):
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 1:
            return f"{cls}({weight.shape[0]})"
    return cls


def _structure_key(module: nn.Module) -> tuple:
    """Equal for blocks that print() would fold: same classes and the same parameter shapes."""
    modules = tuple((name, type(sub).__name__) for name, sub in module.named_modules())
    params = tuple((name, tuple(p.shape)) for name, p in module.named_parameters(remove_duplicate=False))
    return modules, params


class _TreeBuilder:
    def __init__(self, model: nn.Module):
        self.model = model
        # First name of every tensor in named_parameters() order: that module "owns" a tied tensor.
        self.owner: dict[int, str] = {}
        for name, param in model.named_parameters():
            self.owner.setdefault(id(param), name)
        self.total = sum(p.numel() for p in model.parameters())
        self.subtree_params: dict[str, int] = {}
        for name, param in model.named_parameters():
            parts = name.split(".")
            for depth in range(len(parts)):  # "" (root), "model", "model.layers", ...
                prefix = ".".join(parts[:depth])
                self.subtree_params[prefix] = self.subtree_params.get(prefix, 0) + param.numel()
        getter = getattr(model, "get_output_embeddings", None)
        self.output_embeddings = getter() if callable(getter) else None
        self.config = getattr(model, "config", None)
        self.dims = _safe_attention_dims(self.config)

    def build(self) -> ModuleNode:
        return self._node("", "", self.model, parent_role=None, parent=None, multiplier=1)

    def _node(self, name: str, path: str, module: nn.Module, parent_role: str | None,
              parent: nn.Module | None, multiplier: int, repeat: int = 1,
              display_name: str | None = None) -> ModuleNode:
        role = self._role(name, module, parent_role, parent)
        weight_shapes, tied_to, params_own = [], {}, 0
        for pname, param in module.named_parameters(recurse=False, remove_duplicate=False):
            full = f"{path}.{pname}" if path else pname
            weight_shapes.append((pname, tuple(param.shape)))
            if self.owner.get(id(param)) == full:
                params_own += param.numel()
            else:
                tied_to[pname] = self.owner.get(id(param), "?")
        params_total = self.subtree_params.get(path, 0)
        children = self._children(path, module, role, multiplier * repeat)
        if role == "mlp" and any(c.role in ("gate_up_fused", "gate_proj") for c in children):
            role = "gated_mlp"
        d_in = d_out = None
        if _is_linear_like(module):
            d_in, d_out = _linear_dims(module)
        elif isinstance(module, nn.Embedding):
            d_in, d_out = module.num_embeddings, module.embedding_dim
        node = ModuleNode(
            name=display_name if display_name is not None else name, path=path,
            class_name=type(module).__name__, signature=_signature(module), role=role,
            explanation=explain_role(role, type(module).__name__), params_own=params_own,
            params_total=params_total,
            share=params_total * repeat * multiplier / self.total if self.total else 0.0,
            weight_shapes=weight_shapes, tied_to=tied_to, repeat=repeat, multiplier=multiplier,
            d_in=d_in, d_out=d_out, children=children,
        )
        node.notes.extend(self._notes(node, module))
        return node

    def _children(self, path: str, module: nn.Module, role: str, multiplier: int) -> list[ModuleNode]:
        items = list(module.named_children())
        if not isinstance(module, (nn.ModuleList, nn.Sequential)):
            return [self._node(n, _join(path, n), m, role, module, multiplier) for n, m in items]
        # Fold runs of identical blocks, like print(model) does: "(0-31): 32 x Phi3DecoderLayer".
        nodes, start = [], 0
        while start < len(items):
            end = start + 1
            key = _structure_key(items[start][1])
            while end < len(items) and _structure_key(items[end][1]) == key:
                end += 1
            run = items[start:end]
            first_name, first = run[0]
            per_copy = self.subtree_params.get(_join(path, first_name), 0)
            run_total = sum(self.subtree_params.get(_join(path, n), 0) for n, _ in run)
            if len(run) > 1 and run_total == per_copy * len(run):  # no weights shared across blocks
                label = f"{first_name}-{run[-1][0]}"
                nodes.append(self._node(first_name, _join(path, first_name), first, role, module,
                                        multiplier, repeat=len(run), display_name=label))
            else:
                nodes.extend(self._node(n, _join(path, n), m, role, module, multiplier) for n, m in run)
            start = end
        return nodes

    def _role(self, name: str, module: nn.Module, parent_role: str | None, parent: nn.Module | None) -> str:
        cls = type(module).__name__
        if parent_role is None:
            return "causal_lm"
        if isinstance(module, PreTrainedModel):
            return "backbone"
        if isinstance(module, nn.ModuleList):
            # Only the backbone's list is the layer stack; lists deeper down (MoE experts) are not.
            return "layers" if parent_role in ("backbone", "causal_lm") else "other"
        if parent_role == "layers":
            return "decoder_layer"
        if isinstance(module, nn.Embedding):
            return "position_embedding" if name in _POSITION_EMBEDDING_NAMES else "embedding"
        if "Rotary" in cls:
            return "rotary"
        if isinstance(module, nn.Dropout):
            return "dropout"
        if _is_norm(module):
            return self._norm_role(name, parent_role, parent)
        if _is_linear_like(module):
            if module is self.output_embeddings or name in ("lm_head", "embed_out"):
                return "lm_head"
            if parent_role == "attention":
                return _LINEAR_ROLES_IN_ATTENTION.get(name, "other")
            if parent_role in ("mlp", "gated_mlp"):
                return _LINEAR_ROLES_IN_MLP.get(name, "other")
            if parent_role == "decoder_layer":  # OPT-style layers hold fc1/fc2 directly
                return _LINEAR_ROLES_IN_LAYER.get(name, "other")
            return "other"
        if _is_activation(module):
            return "activation"
        lowered = cls.lower()
        if name in _ATTENTION_NAMES or lowered.endswith("attention"):
            return "attention"
        if name in _MLP_NAMES or lowered.endswith(("mlp", "feedforward", "moeblock")):
            return "mlp"
        return "other"

    @staticmethod
    def _norm_role(name: str, parent_role: str, parent: nn.Module | None) -> str:
        if parent_role == "backbone":
            return "final_norm"
        if parent_role == "attention":
            return "qk_norm"
        if parent_role != "decoder_layer":
            return "norm"
        if name == "post_attention_layernorm":
            # Gemma-2 style layers have a separate pre-MLP norm, so this one really is post-attention.
            sandwich = parent is not None and hasattr(parent, "pre_feedforward_layernorm")
            return "attn_post_norm" if sandwich else "mlp_norm"
        return _NORM_ROLES_IN_LAYER.get(name, "norm")

    def _notes(self, node: ModuleNode, module: nn.Module) -> list[str]:
        notes = []
        if node.is_folded:
            notes.append(f"{node.repeat} blocks with identical shapes (each has its own weights); "
                         f"showing the first, {node.path}.")
        for pname, owner in node.tied_to.items():
            notes.append(f"{pname} is tied to {owner}: the same tensor, counted once there.")
        if node.role in ("qkv_fused", "gate_up_fused"):
            split = _fused_split(node, self.dims, self.config)
            notes.append(f"Fused: {split.parts_text} ({split.layout})")
        if node.role == "embedding" and "Scaled" in node.class_name:
            notes.append("Scaled embedding: the looked-up row is multiplied by sqrt(d_model).")
        if node.role == "rotary" and self.config is not None:
            partial = (getattr(self.config, "rope_parameters", None) or {}).get("partial_rotary_factor")
            if partial is not None and partial < 1:
                notes.append(f"Partial RoPE: only {partial:.0%} of each head's dimensions are rotated.")
        return notes


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _safe_attention_dims(config: PretrainedConfig | None) -> _AttentionDims | None:
    if config is None:
        return None
    try:
        return _attention_dims(config)
    except (ValueError, TypeError, ZeroDivisionError):
        return None


def module_tree(model: nn.Module) -> ModuleNode:
    """The model's module tree with roles, shapes, counts and shares; identical blocks folded."""
    return _TreeBuilder(model).build()


# ---------------------------------------------------------------------------------------------------
# Fused projections
# ---------------------------------------------------------------------------------------------------

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


def _fused_split(node: ModuleNode, dims: _AttentionDims | None, config: PretrainedConfig | None) -> FusedSplit:
    d_in, d_out = node.d_in or 0, node.d_out or 0
    copies = node.repeat * node.multiplier
    if node.role == "gate_up_fused":
        half = d_out // 2
        return FusedSplit(node.path, node.class_name, "gate_up", d_in, d_out, (("gate", half), ("up", half)),
                          copies, f"gate = up = d_mlp = {d_out} / 2 = {half}",
                          "first half of the outputs is the gate, second half the up projection "
                          "(chunk(2)); output = down(act(gate) * up)")
    model_type = getattr(config, "model_type", "") if config is not None else ""
    if dims is not None:
        q, kv = dims.n_heads * dims.d_head, dims.n_kv_heads * dims.d_head
        if q + 2 * kv == d_out:
            kv_text = ("K = V = n_kv_heads x d_head = "
                       f"{dims.n_kv_heads} x {dims.d_head} = {kv}")
            formula = f"Q = n_heads x d_head = {dims.n_heads} x {dims.d_head} = {q}; {kv_text}"
            if dims.n_kv_heads != dims.n_heads:
                formula += (f" (grouped-query attention: {dims.n_heads // max(dims.n_kv_heads, 1)} query "
                            "heads share each key/value head)")
            return FusedSplit(node.path, node.class_name, "qkv", d_in, d_out, (("Q", q), ("K", kv), ("V", kv)),
                              copies, formula, _qkv_layout(node, model_type, dims))
    third = d_out // 3
    return FusedSplit(node.path, node.class_name, "qkv", d_in, d_out, (("Q", third), ("K", third), ("V", third)),
                      copies, f"the config's head counts do not add up to {d_out}; assuming equal thirds",
                      "assumed: three equal consecutive blocks")


def _qkv_layout(node: ModuleNode, model_type: str, dims: _AttentionDims) -> str:
    if model_type.startswith("gpt_neox"):
        return (f"interleaved per head: the output is viewed as [{dims.n_heads} heads, 3 x {dims.d_head}] "
                "and each head's slice holds its own q | k | v")
    if node.name == "query_key_value":
        return "the order of the outputs (per head or in blocks) is specific to this model's code"
    if node.class_name == "Conv1D":
        return (f"Conv1D stores the weight as [d_in, d_out] = [{node.d_in}, {node.d_out}] (transposed "
                "compared with nn.Linear); the outputs are three consecutive blocks Q | K | V, each then "
                f"reshaped to {dims.n_heads} heads x {dims.d_head}")
    return ("three consecutive blocks of outputs: the first n_heads x d_head are Q, the next "
            "n_kv_heads x d_head are K, the rest V")


def fused_projections(model_or_config: nn.Module | PretrainedConfig) -> list[FusedSplit]:
    """Every distinct fused projection (qkv / gate_up) of a model, or of a config built on meta."""
    model = _as_model(model_or_config)
    dims = _safe_attention_dims(getattr(model, "config", None))
    config = getattr(model, "config", None)
    return [_fused_split(node, dims, config) for node in module_tree(model).walk()
            if node.role in ("qkv_fused", "gate_up_fused")]


def _as_model(model_or_config: nn.Module | PretrainedConfig) -> nn.Module:
    if isinstance(model_or_config, PretrainedConfig):
        return build_meta_model(model_or_config)
    if isinstance(model_or_config, nn.Module):
        return model_or_config
    raise ValueError(f"Expected a model or a transformers config, got {type(model_or_config).__name__}.")


# ---------------------------------------------------------------------------------------------------
# Parameter breakdown and weight memory
# ---------------------------------------------------------------------------------------------------

_CATEGORY_BY_ROLE = {
    "embedding": "embedding", "position_embedding": "position_embedding", "attention": "attention",
    "mlp": "mlp", "gated_mlp": "mlp", "lm_head": "lm_head", "final_norm": "final_norm",
    # Projections count where they belong even when no attention/MLP module wraps them (OPT).
    **{role: "attention" for role in ("qkv_fused", "q_proj", "k_proj", "v_proj", "attn_out")},
    **{role: "mlp" for role in ("gate_up_fused", "gate_proj", "up_proj", "down_proj", "mlp_in", "mlp_out")},
    **{role: "norms" for role in _NORM_ROLES - {"final_norm"}},
}
_CATEGORY_LABELS = {
    "embedding": "Token embedding", "position_embedding": "Position embedding", "attention": "Attention",
    "mlp": "MLP", "norms": "Norms", "other": "Other", "final_norm": "Final norm", "lm_head": "LM head",
}
_LAYER_CATEGORIES = ("attention", "mlp", "norms")


@dataclass(frozen=True)
class BreakdownItem:
    key: str          # "embedding", "position_embedding", "attention", "mlp", "norms", "final_norm", "lm_head", "other"
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

    def as_dict(self) -> dict[str, int]:
        return {item.key: item.n_params for item in self.items}


def _tied_embeddings(model: nn.Module) -> bool:
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


def _breakdown_from_tree(tree: ModuleNode, tied: bool) -> Breakdown:
    totals: dict[str, int] = {}
    layer_nodes = [n for n in tree.walk() if n.role == "decoder_layer"]
    n_layers = sum(n.repeat * n.multiplier for n in layer_nodes)
    first_layer = layer_nodes[0] if layer_nodes else None
    per_layer: dict[str, int] = {}
    if first_layer is not None:  # one instance: categorise only the first block
        single = copy.copy(first_layer)
        single.repeat, single.multiplier = 1, 1
        _categorise(single, "other", True, {}, per_layer)
    _categorise(tree, "other", False, totals, {})
    total = tree.params_total
    items = []
    for key in ("embedding", "position_embedding", "attention", "mlp", "norms", "other", "final_norm", "lm_head"):
        n = totals.get(key, 0)
        if n == 0 and key != "lm_head":
            continue
        label = _CATEGORY_LABELS[key]
        if key in _LAYER_CATEGORIES and n_layers:
            label = f"{label} ({n_layers} layers)"
        note = "tied to the token embedding: shares its matrix, no extra parameters" if (
            key == "lm_head" and tied) else ""
        items.append(BreakdownItem(key, label, n, n / total if total else 0.0, note))
    return Breakdown(tuple(items), total, n_layers,
                     {k: per_layer.get(k, 0) for k in (*_LAYER_CATEGORIES, "other")}, tied)


def parameter_breakdown(model: nn.Module) -> Breakdown:
    """Parameters per part: embedding, attention/MLP/norms over all layers, final norm, LM head."""
    return _breakdown_from_tree(module_tree(model), _tied_embeddings(model))


def weight_memory(n_params: int) -> dict[str, int]:
    """Bytes needed to hold n_params weights in fp32 / bf16 / int8 / int4 (no quantisation scales)."""
    if n_params < 0:
        raise ValueError(f"n_params must be >= 0, got {n_params}.")
    return {dtype: math.ceil(n_params * DTYPE_BYTES[dtype]) for dtype in WEIGHT_MEMORY_DTYPES}


# ---------------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KvCacheSpec:
    """The numbers that size a KV cache: per layer, per token, one key and one value vector per KV head."""

    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    sliding_window: int | None = None
    n_sliding_layers: int = 0          # layers whose cache stops growing at sliding_window tokens
    notes: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> KvCacheSpec:
        dims = _attention_dims(config)
        cfg = _text_config(config)
        window = getattr(cfg, "sliding_window", None)
        layer_types = getattr(cfg, "layer_types", None)
        if layer_types is None:  # same inference as transformers' DynamicCache
            layer_types = ["sliding_attention" if window is not None else "full_attention"] * dims.n_layers
        n_sliding = sum(t in ("sliding_attention", "chunked_attention") for t in layer_types)
        notes = []
        if window is not None and n_sliding:
            if n_sliding == dims.n_layers:
                notes.append(f"Sliding-window attention (window {window}): each layer only attends to the last "
                             f"{window} tokens, so a sliding cache stops growing there.")
            else:
                notes.append(f"Hybrid attention: {n_sliding} of {dims.n_layers} layers use a sliding window of "
                             f"{window} tokens (their cache stops growing there); the others keep every token.")
        other_types = sorted(set(layer_types) - {"full_attention", "sliding_attention", "chunked_attention"})
        if other_types:
            notes.append(f"Some layers are of type {', '.join(other_types)}, which may keep no per-token KV "
                         "cache; they are counted like full attention here.")
        if getattr(cfg, "kv_lora_rank", None):
            notes.append("This model compresses keys/values (multi-head latent attention); the per-head formula "
                         "over-estimates its cache.")
        return cls(getattr(cfg, "model_type", ""), dims.n_layers, dims.n_heads, dims.n_kv_heads, dims.d_head,
                   dims.d_model, window if n_sliding else None, n_sliding, tuple(notes))

    @property
    def kv_dim(self) -> int:
        """Width of the keys (and of the values) of one token in one layer: n_kv_heads x d_head."""
        return self.n_kv_heads * self.d_head

    @property
    def grouped_query(self) -> bool:
        return self.n_kv_heads < self.n_heads

    @property
    def naive_overcount(self) -> float:
        """How much `2 x layers x tokens x d_model x bytes` over-states the cache (n_heads/n_kv_heads when
        d_head = d_model / n_heads)."""
        return self.d_model / self.kv_dim


def _bytes_per_value(dtype: str | float) -> float:
    if isinstance(dtype, str):
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}.")
        return DTYPE_BYTES[dtype]
    if not dtype > 0:
        raise ValueError(f"Bytes per value must be positive, got {dtype}.")
    return float(dtype)


def kv_cache_bytes(spec: KvCacheSpec, tokens: int, batch: int = 1, bytes_per_value: str | float = 2,
                   sliding: bool = False) -> int:
    """2 (K and V) x layers x batch x tokens x n_kv_heads x d_head x bytes.

    With sliding=True, sliding-window layers hold at most sliding_window - 1 tokens, as transformers'
    DynamicSlidingWindowLayer stores them (the current token makes up the window).
    """
    if tokens < 0 or batch < 1:
        raise ValueError(f"Need tokens >= 0 and batch >= 1, got tokens={tokens}, batch={batch}.")
    nbytes = _bytes_per_value(bytes_per_value)
    full_layers = spec.n_layers - (spec.n_sliding_layers if sliding else 0)
    token_layers = full_layers * tokens
    if sliding and spec.sliding_window is not None:
        token_layers += spec.n_sliding_layers * min(tokens, max(spec.sliding_window - 1, 0))
    return round(2 * token_layers * batch * spec.kv_dim * nbytes)


@dataclass(frozen=True)
class KvCacheEstimate:
    spec: KvCacheSpec
    tokens: int
    batch: int
    bytes_per_value: float
    dtype: str                 # "fp16", or "" when bytes were given as a number
    bytes: int                 # full cache, every layer keeps every token
    bytes_per_token: int       # one more token of one sequence
    naive_bytes: int           # 2 x layers x batch x tokens x d_model x bytes (ignores GQA / head_dim)
    sliding_bytes: int | None  # with sliding-window layers capped; None when no layer slides


def kv_cache_estimate(spec: KvCacheSpec, tokens: int, batch: int = 1,
                      dtype: str | float = "fp16") -> KvCacheEstimate:
    """The KV-cache calculator: full size, per-token size, the naive formula, and the sliding-window size."""
    nbytes = _bytes_per_value(dtype)
    full = kv_cache_bytes(spec, tokens, batch, nbytes)
    naive = round(2 * spec.n_layers * batch * tokens * spec.d_model * nbytes)
    sliding = kv_cache_bytes(spec, tokens, batch, nbytes, sliding=True) if spec.n_sliding_layers else None
    return KvCacheEstimate(spec, tokens, batch, nbytes, dtype if isinstance(dtype, str) else "", full,
                           kv_cache_bytes(spec, 1, 1, nbytes), naive, sliding)


# ---------------------------------------------------------------------------------------------------
# Configs: known models, pasted JSON, meta-device skeletons
# ---------------------------------------------------------------------------------------------------

def known_model_names() -> list[str]:
    """Names of the shipped configs (file stems of visualizer/known_configs/*.json)."""
    return sorted((p.stem for p in KNOWN_CONFIGS_DIR.glob("*.json")), key=str.casefold)


def load_known_config(name: str) -> PretrainedConfig:
    """The config of a known model, e.g. "Phi-3-mini-4k-instruct"."""
    names = known_model_names()
    if name not in names:  # also keeps the name from reaching the file system unchecked
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(names)}.")
    return config_from_json((KNOWN_CONFIGS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _check_positive_int(data: dict, key: str, limit: int) -> None:
    value = data.get(key)
    # Some configs give one size per layer (a list); check each.
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"{key} must be a whole number, got {item!r}.")
        if not 0 < item <= limit:
            raise ValueError(f"{key}={item:,} is out of range (1 to {limit:,}).")


def _size(data: dict, *keys: str, default: int = 0) -> int:
    """The first size given under one of keys (the largest entry of a per-layer list)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, (list, tuple)):
            value = max(value, default=None)
        if value:
            return value
    return default


def _check_sizes(data: dict) -> None:
    """Refuse configs that are malformed or absurdly large before transformers sees them."""
    for keys, limit in (
        (("num_hidden_layers", "n_layer", "num_layers"), MAX_LAYERS),
        (("hidden_size", "n_embd", "d_model", "intermediate_size", "n_inner", "head_dim"), MAX_D_MODEL * 8),
        (("num_attention_heads", "n_head", "num_key_value_heads", "num_heads"), MAX_HEADS),
        (("vocab_size",), MAX_VOCAB),
        (("max_position_embeddings", "n_positions"), 1 << 24),
        (("num_local_experts", "num_experts", "n_routed_experts"), 4_096),
    ):
        for key in keys:
            _check_positive_int(data, key, limit)
    d_model = _size(data, "hidden_size", "n_embd", "d_model")
    if d_model > MAX_D_MODEL:
        raise ValueError(f"hidden size {d_model:,} is out of range (at most {MAX_D_MODEL:,}).")
    n_layers = _size(data, "num_hidden_layers", "n_layer", "num_layers")
    d_mlp = _size(data, "intermediate_size", "n_inner", default=4 * d_model)
    experts = _size(data, "num_local_experts", "num_experts", "n_routed_experts", default=1)
    vocab = _size(data, "vocab_size")
    estimate = n_layers * (4 * d_model * d_model + 3 * d_model * d_mlp * experts) + 2 * vocab * d_model
    if estimate > MAX_ESTIMATED_PARAMS:
        raise ValueError(f"This config describes roughly {estimate:.2e} parameters; the limit is "
                         f"{MAX_ESTIMATED_PARAMS:.0e}. Check the sizes.")


def config_from_json(text: str) -> PretrainedConfig:
    """Validate a pasted config.json and turn it into a transformers config (never runs remote code)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The config is empty: paste the contents of a config.json file.")
    if len(text) > MAX_CONFIG_JSON_CHARS:
        raise ValueError(f"The config is {len(text):,} characters long; a config.json is much smaller "
                         f"(limit {MAX_CONFIG_JSON_CHARS:,}).")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"The config is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}.")\
            from None
    if not isinstance(data, dict):
        raise ValueError(f"A config.json must be a JSON object {{...}}, got a {type(data).__name__}.")
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ValueError('The config has no "model_type" (for example "llama", "phi3", "gpt2").')
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or model_type not in CONFIG_MAPPING:
        examples = ", ".join(sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)[:12])
        raise ValueError(f"model_type {model_type!r} is not a causal language model transformers knows "
                         f"(custom code is never run). Known types include: {examples}, ...")
    for key in _IGNORED_KEYS:
        data.pop(key, None)
    _check_sizes(data)
    try:
        return CONFIG_MAPPING[model_type].from_dict(data)
    except Exception as err:  # transformers raises TypeError/ValueError/KeyError for bad fields
        raise ValueError(f"transformers rejected this {model_type} config: {err}") from None


class _LruCache:
    """A small thread-safe LRU: Gradio calls handlers from several threads."""

    def __init__(self, maxsize: int):
        self.maxsize, self._items, self._lock = maxsize, OrderedDict(), threading.Lock()

    def get_or_make(self, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:  # held while building, so two threads never build the same skeleton twice
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = make()
            self._items[key] = value
            if len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value


_META_MODELS = _LruCache(maxsize=12)
_REPORTS = _LruCache(maxsize=12)


def _config_key(config: PretrainedConfig) -> str:
    return f"{type(config).__name__}:{config.to_json_string(use_diff=False)}"


def build_meta_model(config: PretrainedConfig) -> PreTrainedModel:
    """The model's exact module tree on the meta device (no memory, no weights). Cached; treat as read-only."""
    if not isinstance(config, PretrainedConfig):
        raise ValueError(f"Expected a transformers config, got {type(config).__name__}.")
    _check_sizes(config.to_dict())

    def make() -> PreTrainedModel:
        try:
            with torch.device("meta"):
                return AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation="eager")
        except Exception as err:  # e.g. hidden size not divisible by heads, unknown activation
            raise ValueError(f"Could not build a {config.model_type} model from this config: {err}") from None

    return _META_MODELS.get_or_make(_config_key(config), make)


# ---------------------------------------------------------------------------------------------------
# Config summary and the bundled report
# ---------------------------------------------------------------------------------------------------

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
    d_mlp: int | None
    d_vocab: int | None
    context_length: int | None
    position_encoding: str      # "RoPE", "learned absolute", "none found"
    rope_theta: float | None
    rope_type: str | None       # "default", "llama3", "longrope", ...
    activation: str | None      # "silu", "gelu_new", ...
    norm_type: str              # "RMSNorm" / "LayerNorm"
    tied_embeddings: bool
    sliding_window: int | None
    dtype: str | None           # the checkpoint's dtype per config ("bfloat16")

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a table."""
        def fmt(value: Any) -> str:
            if value is None:
                return "-"
            if isinstance(value, bool):
                return "yes" if value else "no"
            if isinstance(value, int):
                return f"{value:,}"
            if isinstance(value, float):
                return f"{value:,.0f}" if value.is_integer() else f"{value:g}"
            return str(value)

        attention = "grouped-query" if self.n_kv_heads < self.n_heads else "multi-head"
        if self.n_kv_heads == 1 and self.n_heads > 1:
            attention = "multi-query"
        return [
            ("Model", self.name), ("Class", self.architecture), ("Parameters", fmt(self.n_params)),
            ("Layers (n_layers)", fmt(self.n_layers)), ("d_model", fmt(self.d_model)),
            ("Query heads (n_heads)", fmt(self.n_heads)), ("KV heads (n_kv_heads)", fmt(self.n_kv_heads)),
            ("Attention", attention), ("d_head", fmt(self.d_head)), ("d_mlp", fmt(self.d_mlp)),
            ("Vocabulary (d_vocab)", fmt(self.d_vocab)), ("Context length", fmt(self.context_length)),
            ("Positions", self.position_encoding), ("RoPE theta", fmt(self.rope_theta)),
            ("RoPE type", fmt(self.rope_type)), ("Activation", fmt(self.activation)),
            ("Norm", self.norm_type), ("Tied embeddings", fmt(self.tied_embeddings)),
            ("Sliding window", fmt(self.sliding_window)), ("Checkpoint dtype", fmt(self.dtype)),
        ]


def _config_summary(model: nn.Module, tree: ModuleNode, n_params: int, tied: bool) -> ConfigSummary:
    config = getattr(model, "config", None)
    cfg = _text_config(config) if config is not None else None
    dims = _safe_attention_dims(config)
    roles = {node.role for node in tree.walk()}
    norm_classes = [node.class_name for node in tree.walk() if node.role in _NORM_ROLES]
    rope = dict(getattr(cfg, "rope_parameters", None) or {})
    theta = rope.get("rope_theta", _first_attr(cfg, "rope_theta", "rotary_emb_base"))
    if "rotary" in roles:
        position = "RoPE"
    elif "position_embedding" in roles:
        position = "learned absolute"
    else:
        position = "none found (e.g. ALiBi or NoPE)"
    d_model = dims.d_model if dims else 0
    d_mlp = _first_attr(cfg, "intermediate_size", "n_inner", "ffn_dim")
    if d_mlp is None and getattr(cfg, "model_type", "") == "gpt2":
        d_mlp = 4 * d_model  # GPT-2: n_inner=None means 4 x n_embd
    dtype = getattr(cfg, "dtype", None)
    name = getattr(config, "name_or_path", "") or type(model).__name__
    return ConfigSummary(
        name=name, model_type=getattr(cfg, "model_type", ""), architecture=type(model).__name__,
        n_params=n_params, n_layers=dims.n_layers if dims else 0, n_heads=dims.n_heads if dims else 0,
        n_kv_heads=dims.n_kv_heads if dims else 0, d_model=d_model, d_head=dims.d_head if dims else 0,
        d_mlp=d_mlp, d_vocab=_first_attr(cfg, "vocab_size"),
        context_length=_first_attr(cfg, "max_position_embeddings", "n_positions", "n_ctx"),
        position_encoding=position, rope_theta=float(theta) if theta is not None and position == "RoPE" else None,
        rope_type=rope.get("rope_type") if position == "RoPE" else None,
        activation=_first_attr(cfg, "hidden_activation", "hidden_act", "activation_function"),
        norm_type="RMSNorm" if any("RMS" in c for c in norm_classes) else ("LayerNorm" if norm_classes else "-"),
        tied_embeddings=tied, sliding_window=getattr(cfg, "sliding_window", None),
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else None,
    )


@dataclass(frozen=True)
class ArchitectureReport:
    summary: ConfigSummary
    tree: ModuleNode
    breakdown: Breakdown
    fused: tuple[FusedSplit, ...]
    weight_memory: dict[str, int]     # {"fp32": bytes, "bf16": .., "int8": .., "int4": ..}
    kv_spec: KvCacheSpec | None       # None if the config's attention sizes could not be read
    n_params: int
    on_meta: bool                     # a weightless skeleton built from a config


def describe_architecture(model: nn.Module) -> ArchitectureReport:
    """Everything the Architecture tab shows, for a loaded model or a meta skeleton."""
    tree = module_tree(model)
    tied = _tied_embeddings(model)
    breakdown = _breakdown_from_tree(tree, tied)
    config = getattr(model, "config", None)
    dims = _safe_attention_dims(config)
    fused = tuple(_fused_split(node, dims, config) for node in tree.walk()
                  if node.role in ("qkv_fused", "gate_up_fused"))
    try:
        kv_spec = KvCacheSpec.from_config(config) if config is not None else None
    except (ValueError, TypeError, ZeroDivisionError):
        kv_spec = None
    on_meta = any(p.is_meta for p in model.parameters())
    return ArchitectureReport(_config_summary(model, tree, breakdown.total, tied), tree, breakdown, fused,
                              weight_memory(breakdown.total), kv_spec, breakdown.total, on_meta)


def describe_config(config: PretrainedConfig) -> ArchitectureReport:
    """describe_architecture of the config's meta skeleton (cached: cheap to call again)."""
    model = build_meta_model(config)
    return _REPORTS.get_or_make(_config_key(config), lambda: describe_architecture(model))


def describe_known_model(name: str) -> ArchitectureReport:
    return describe_config(load_known_config(name))


def describe_config_json(text: str) -> ArchitectureReport:
    """Pasted config.json text -> report; raises ValueError with a readable message on bad input."""
    return describe_config(config_from_json(text))
