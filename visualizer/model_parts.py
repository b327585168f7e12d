"""Find the parts the views need (decoder blocks, attention modules, the readout and LM head) in any causal LM.

Discovered from the module tree, not from per-model tables, so a new architecture works if it looks like a
transformer: one ModuleList of blocks, an attention submodule per block, and an output embedding. What the
model applies between its last block and the LM head (the readout: final norm, sometimes a projection) is not
guessed once: `readout_candidates` lists the plausible ones in order, and the session's self-check keeps the
first that reproduces the model's own logits (see visualizer/self_check.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from visualizer.dims import ModelDims, dims_from_config

_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
_PROJECTION_NAMES = ("project_out",)  # OPT: a linear map from the residual width to the embedding width


@dataclass(frozen=True)
class ModelParts:
    layers: nn.ModuleList  # the decoder blocks, in order
    attentions: tuple[nn.Module, ...]  # one attention module per block
    lm_head: nn.Module
    dims: ModelDims
    readout: tuple[nn.Module, ...] = ()  # applied to the last block's output before the LM head, in order
    readout_names: tuple[str, ...] = ()  # their paths in the model, e.g. ('model.norm',)

    @property
    def final_norm(self) -> nn.Module | None:
        return next((m for m in self.readout if _is_norm("", m)), None)

    def with_readout(self, names: tuple[str, ...], modules: tuple[nn.Module, ...]) -> ModelParts:
        return dataclasses.replace(self, readout=modules, readout_names=names)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """What the model does after its last block: readout, LM head, logit scaling, soft-capping."""
        for module in self.readout:
            resid = module(resid)
        logits = self.lm_head(resid)
        if self.dims.logit_scale != 1.0:
            logits = logits * self.dims.logit_scale
        cap = self.dims.final_logit_softcap
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


def _is_norm(name: str, module: nn.Module) -> bool:
    kind = type(module).__name__.lower()
    return "norm" in kind or "norm" in name.lower() or name in ("ln_f",)


def _find_layers(model: nn.Module, n_layers: int) -> tuple[str, nn.ModuleList]:
    candidates = [(name, mod) for name, mod in model.named_modules()
                  if isinstance(mod, nn.ModuleList) and len(mod) == n_layers]
    if not candidates:
        raise ValueError(f"{type(model).__name__} is not supported: no list of {n_layers} decoder blocks found "
                         "(the app needs a transformer made of repeated blocks)")
    return min(candidates, key=lambda item: item[0].count("."))  # the outermost one


def _find_attention(block: nn.Module) -> nn.Module:
    for name in _ATTENTION_NAMES:
        if isinstance(getattr(block, name, None), nn.Module):
            return getattr(block, name)
    raise ValueError(f"{type(block).__name__} is not supported: its blocks have no attention submodule among "
                     f"{', '.join(_ATTENTION_NAMES)}")


def readout_candidates(model: nn.Module, layers_path: str) -> list[tuple[tuple[str, ...], tuple[nn.Module, ...]]]:
    """Plausible readouts, most likely first: a norm registered after the blocks (model.norm, transformer.ln_f),
    then a norm registered before them that is not the embedding's (OPT's final_layer_norm), then none; each
    followed by a projection when the model has one (OPT's project_out)."""
    parent_path, _, list_name = layers_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    children = list(parent.named_children())
    position = [name for name, _ in children].index(list_name)
    prefix = f"{parent_path}." if parent_path else ""
    after = [(prefix + n, m) for n, m in children[position + 1:] if _is_norm(n, m)]
    before = [(prefix + n, m) for n, m in children[:position] if _is_norm(n, m) and "emb" not in n.lower()]
    projections = [(prefix + n, m) for n, m in children if n in _PROJECTION_NAMES and isinstance(m, nn.Module)]
    options: list[list[tuple[str, nn.Module]]] = [[norm] for norm in after + before] + [[]]
    found = []
    for option in options:
        for tail in ([*option, *projections], option) if projections else (option,):
            found.append((tuple(n for n, _ in tail), tuple(m for _, m in tail)))
    return found


def find_model_parts(model: nn.Module) -> tuple[ModelParts, list[tuple[tuple[str, ...], tuple[nn.Module, ...]]]]:
    """The parts of `model` with its most likely readout, and every readout candidate for the self-check."""
    dims = dims_from_config(model.config)
    layers_path, layers = _find_layers(model, dims.n_layers)
    lm_head = model.get_output_embeddings()
    if lm_head is None or getattr(lm_head, "weight", None) is None:
        raise ValueError(f"{type(model).__name__} is not supported: it has no output embedding (LM head), so it "
                         "is not a causal language model")
    dims = dataclasses.replace(dims, d_vocab=int(lm_head.weight.shape[0]))
    candidates = readout_candidates(model, layers_path)
    names, modules = candidates[0]
    parts = ModelParts(layers=layers, attentions=tuple(_find_attention(block) for block in layers), lm_head=lm_head,
                       dims=dims, readout=modules, readout_names=names)
    return parts, candidates
