"""Find the parts the views need (decoder layers, attention modules, final norm, LM head) in any causal LM.

Discovered from the module tree, not from per-model tables, so a new architecture works if it looks like
a transformer: one ModuleList of blocks, an attention submodule per block, a norm after the last block
and an output embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")


@dataclass(frozen=True)
class ModelParts:
    layers: nn.ModuleList  # the decoder blocks, in order
    attentions: tuple[nn.Module, ...]  # one attention module per block
    final_norm: nn.Module | None  # applied to the last block's output before the LM head
    lm_head: nn.Module
    final_logit_softcap: float | None  # Gemma-2 squashes logits: cap * tanh(logits / cap)
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    max_context: int | None

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm, then LM head (then soft-cap): the model's own readout of a residual stream."""
        normed = self.final_norm(resid) if self.final_norm is not None else resid
        logits = self.lm_head(normed)
        if self.final_logit_softcap:
            logits = torch.tanh(logits / self.final_logit_softcap) * self.final_logit_softcap
        return logits


def _config_int(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    n_layers = _config_int(model.config, "num_hidden_layers", "n_layer", "num_layers")
    candidates = [(name, mod) for name, mod in model.named_modules()
                  if isinstance(mod, nn.ModuleList) and len(mod) == n_layers]
    if not candidates:
        raise ValueError(f"{type(model).__name__}: no list of {n_layers} decoder blocks found")
    return min(candidates, key=lambda item: item[0].count("."))  # the outermost one


def _find_attention(block: nn.Module) -> nn.Module:
    for name in _ATTENTION_NAMES:
        if isinstance(getattr(block, name, None), nn.Module):
            return getattr(block, name)
    raise ValueError(f"{type(block).__name__}: no attention submodule among {_ATTENTION_NAMES}")


def _find_final_norm(model: nn.Module, layers_path: str) -> nn.Module | None:
    """The norm that sits beside the block list in the same parent (model.norm, transformer.ln_f, ...)."""
    parent_path = layers_path.rsplit(".", 1)[0] if "." in layers_path else ""
    parent = model.get_submodule(parent_path) if parent_path else model
    for name, child in parent.named_children():
        if name != layers_path.rsplit(".", 1)[-1] and ("norm" in name.lower() or name in ("ln_f",)):
            return child
    return None


def find_model_parts(model: nn.Module) -> ModelParts:
    config = model.config
    layers_path, layers = _find_layers(model)
    lm_head = model.get_output_embeddings()
    if lm_head is None:
        raise ValueError(f"{type(model).__name__} has no output embedding (LM head): not a causal LM")
    n_heads = _config_int(config, "num_attention_heads", "n_head")
    d_model = _config_int(config, "hidden_size", "n_embd", "d_model")
    d_head = _config_int(config, "head_dim") or d_model // n_heads
    return ModelParts(
        layers=layers,
        attentions=tuple(_find_attention(block) for block in layers),
        final_norm=_find_final_norm(model, layers_path),
        lm_head=lm_head,
        final_logit_softcap=getattr(config, "final_logit_softcapping", None),
        n_layers=len(layers),
        n_heads=n_heads,
        n_kv_heads=_config_int(config, "num_key_value_heads", "n_kv_heads") or n_heads,
        d_model=d_model,
        d_head=d_head,
        d_vocab=lm_head.weight.shape[0],
        max_context=_config_int(config, "max_position_embeddings", "n_positions", "n_ctx"),
    )
