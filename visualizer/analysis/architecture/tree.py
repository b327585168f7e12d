"""The module tree: every module with its role, torch's own signature, shapes, counts and share; identical
consecutive blocks folded the way ``print(model)`` folds them.

Every count de-duplicates tied weights exactly like ``sum(p.numel() for p in model.parameters())``: a shared
tensor is counted once, at the first module that ``model.named_parameters()`` reaches it through.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn

from visualizer.analysis.architecture.fused import fused_split
from visualizer.analysis.architecture.roles import (
    classify,
    expert_counts_text,
    explain_role,
    is_linear_like,
    linear_dims,
)
from visualizer.dims import ModelDims, dims_from_config


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
    signature: str               # what print(model) shows: "Embedding(32064, 3072, padding_idx=32000)"
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

    def walk(self) -> Iterator[ModuleNode]:
        """This node and all descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


def signature(module: nn.Module) -> str:
    """torch's own first line for the module, as print(model) shows it.

    A leaf prints whole (``Linear(in_features=3072, out_features=9216, bias=False)``, GPT-2's
    ``Conv1D(nf=2304, nx=768)``); a container prints its name and its extra_repr, if any.
    """
    if next(module.children(), None) is None:
        return " ".join(repr(module).split())  # one line even if an extra_repr spans several
    extra = module.extra_repr()
    return f"{module._get_name()}({extra})" if extra else module._get_name()


def safe_dims(config: object) -> ModelDims | None:
    """The model's dimensions, or None when its config does not name them (not a transformer)."""
    if config is None:
        return None
    try:
        return dims_from_config(config)
    except (ValueError, TypeError, ZeroDivisionError):
        return None


def _structure_key(module: nn.Module) -> tuple:
    """Equal for blocks that print() would fold: same classes and the same parameter shapes."""
    modules = tuple((name, type(sub).__name__) for name, sub in module.named_modules())
    params = tuple((name, tuple(p.shape)) for name, p in module.named_parameters(remove_duplicate=False))
    return modules, params


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


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
        self.dims = safe_dims(self.config)

    def build(self) -> ModuleNode:
        return self._node("", "", self.model, parent_role=None, parent=None, multiplier=1)

    def _node(self, name: str, path: str, module: nn.Module, parent_role: str | None,
              parent: nn.Module | None, multiplier: int, repeat: int = 1,
              display_name: str | None = None) -> ModuleNode:
        role = classify(name, module, parent_role, parent, module is self.output_embeddings)
        weight_shapes, tied_to, params_own = [], {}, 0
        for pname, param in module.named_parameters(recurse=False, remove_duplicate=False):
            full = _join(path, pname)
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
        if is_linear_like(module):
            d_in, d_out = linear_dims(module)
        elif isinstance(module, nn.Embedding):
            d_in, d_out = module.num_embeddings, module.embedding_dim
        node = ModuleNode(
            name=display_name if display_name is not None else name, path=path,
            class_name=type(module).__name__, signature=signature(module), role=role,
            explanation=explain_role(role, type(module).__name__, self.dims), params_own=params_own,
            params_total=params_total,
            share=params_total * repeat * multiplier / self.total if self.total else 0.0,
            weight_shapes=weight_shapes, tied_to=tied_to, repeat=repeat, multiplier=multiplier,
            d_in=d_in, d_out=d_out, children=children,
        )
        node.notes.extend(self._notes(node))
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

    def _notes(self, node: ModuleNode) -> list[str]:
        notes = []
        if node.is_folded:
            notes.append(f"{node.repeat} blocks with identical shapes (each has its own weights); "
                         f"showing the first, {node.path}.")
        for pname, owner in node.tied_to.items():
            notes.append(f"{pname} is tied to {owner}: the same tensor, counted once there.")
        if node.role in ("qkv_fused", "gate_up_fused"):
            split = fused_split(node, self.dims)
            notes.append(f"Fused: {split.parts_text} ({split.layout})")
        if node.role == "experts" and self.dims is not None and self.dims.is_moe:
            notes.append(f"{expert_counts_text(self.dims)}: each token runs through "
                         f"{self.dims.n_experts_per_token or '?'} of these {self.dims.n_experts} MLPs.")
        if node.role == "embedding" and "Scaled" in node.class_name:
            notes.append("Scaled embedding: the looked-up row is multiplied by sqrt(d_model).")
        if node.role == "rotary" and self.config is not None:
            partial = (getattr(self.config, "rope_parameters", None) or {}).get("partial_rotary_factor")
            if partial is not None and partial < 1:
                notes.append(f"Partial RoPE: only {partial:.0%} of each head's dimensions are rotated.")
        return notes


def module_tree(model: nn.Module) -> ModuleNode:
    """The model's module tree with roles, shapes, counts and shares; identical blocks folded."""
    return _TreeBuilder(model).build()
