"""Names of internal activations, TransformerLens-style, declared once.

Capture, the trace, interventions, figure labels and test ids all use these strings, so a learner can search
for them in TransformerLens's documentation. Layers are 0-based; `resid_pre` of layer 0 is the embedding.
"""

from __future__ import annotations

EMBED = "hook_embed"
LN_FINAL = "ln_final.hook_normalized"
LOGITS = "logits"

_PER_LAYER = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",  # the residual stream entering block `layer`
    "resid_post": "blocks.{layer}.hook_resid_post",  # ... leaving it (= resid_pre of layer + 1)
    "attn_out": "blocks.{layer}.hook_attn_out",  # what the attention block adds to the residual stream
    "mlp_out": "blocks.{layer}.hook_mlp_out",  # what the MLP block adds
    "pattern": "blocks.{layer}.attn.hook_pattern",  # [head, query_pos, key_pos] attention weights
    "z": "blocks.{layer}.attn.hook_z",  # [pos, head, d_head] each head's mixed values, before the output projection
}


def act_name(kind: str, layer: int) -> str:
    """The activation name of `kind` at `layer`.

    >>> act_name("pattern", 3)
    'blocks.3.attn.hook_pattern'
    >>> act_name("resid_post", 0)
    'blocks.0.hook_resid_post'
    """
    if kind not in _PER_LAYER:
        raise ValueError(f"unknown activation {kind!r}; known: {', '.join(_PER_LAYER)}")
    return _PER_LAYER[kind].format(layer=layer)


def resid_label(index: int) -> str:
    """Row `index` of the stacked residual stream [n_layers + 1, ...]: 'embed', then each block's output.

    >>> resid_label(0), resid_label(2)
    ('embed', 'blocks.1.hook_resid_post')
    """
    return "embed" if index == 0 else act_name("resid_post", index - 1)
