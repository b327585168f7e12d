"""Roles: what a module does, independent of how an architecture names it, and the text that explains it.

``classify`` maps (name, module, parent's role) to a role key of ``ROLE_EXPLANATIONS``; ``explain_role`` gives the
teaching text, with the model's own numbers where they matter (norm kind, expert counts).
"""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from visualizer.dims import ModelDims

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
    "embedding_norm": "Embedding norm (BLOOM style): normalises the token embedding once, before the first "
                      "layer. It is not the final norm: that one sits after the last layer.",
    "project_in": "Input projection (OPT-350m): the word embeddings are narrower than d_model; this maps them "
                  "up to d_model before the first layer.",
    "project_out": "Output projection (OPT-350m): maps the final d_model vector down to the word-embedding width, "
                   "so the (tied) LM head can read it.",
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
    "moe": "Mixture-of-experts MLP: a router scores every expert for each token, only the top-scoring few "
           "run, and their outputs are mixed by the router's weights. The model holds every expert's "
           "parameters, but each token uses only a few of them.",
    "router": "Router (gate): a d_model -> n_experts linear map. For each token its softmax scores pick the "
              "experts that run and weight their outputs.",
    "experts": "The experts: separate MLPs of the same shape, each with its own weights (transformers stores "
               "them stacked, one slice per expert). The router sends each token to only a few of them.",
    "expert": "One expert: an ordinary MLP that only sees the tokens the router sends it.",
    "shared_expert": "Shared expert: an MLP every token passes through, next to the routed experts.",
    "shared_expert_gate": "Shared-expert gate: a d_model -> 1 map whose sigmoid scales the shared expert's "
                          "output per token.",
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

NORM_ROLES = frozenset({"attn_norm", "mlp_norm", "attn_post_norm", "mlp_post_norm", "qk_norm", "final_norm",
                        "norm", "embedding_norm"})
MOE_ROLES = frozenset({"moe", "router", "experts", "expert", "shared_expert", "shared_expert_gate"})
_MLP_LIKE_ROLES = frozenset({"mlp", "gated_mlp", "expert", "shared_expert"})
_POSITION_EMBEDDING_NAMES = {"wpe", "embed_positions", "position_embeddings"}
_ATTENTION_NAMES = {"self_attn", "attn", "attention", "self_attention"}
_MLP_NAMES = {"mlp", "feed_forward", "ffn"}
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
    "input_layernorm": "attn_norm", "ln_1": "attn_norm", "attention_norm": "attn_norm", "ln_attn": "attn_norm",
    "ln_2": "mlp_norm", "ffn_norm": "mlp_norm", "pre_feedforward_layernorm": "mlp_norm", "ln_mlp": "mlp_norm",
    "post_feedforward_layernorm": "mlp_post_norm",
}
_ROLES_IN_MOE = {"gate": "router", "router": "router", "experts": "experts", "shared_expert": "shared_expert",
                 "shared_experts": "shared_expert", "shared_expert_gate": "shared_expert_gate"}


def is_norm(module: nn.Module) -> bool:
    cls = type(module).__name__
    return isinstance(module, nn.LayerNorm) or "RMSNorm" in cls or "LayerNorm" in cls


def is_linear_like(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, Conv1D))


def _is_activation(module: nn.Module) -> bool:
    cls = type(module).__name__
    # BLOOM's BloomGelu lives in its model file, not in transformers.activations.
    return (type(module).__module__.startswith(("torch.nn.modules.activation", "transformers.activations"))
            or "gelu" in cls.lower() or cls.endswith("Activation"))


def _is_moe(module: nn.Module) -> bool:
    """A sparse MoE block: it owns experts and something that routes tokens to them."""
    return hasattr(module, "experts") and (hasattr(module, "gate") or hasattr(module, "router"))


def linear_dims(module: nn.Module) -> tuple[int, int]:
    """(d_in, d_out). Conv1D stores its weight transposed: [d_in, d_out]."""
    if isinstance(module, Conv1D):
        return module.nx, module.nf
    return module.in_features, module.out_features


def explain_role(role: str, module_class: str = "", dims: ModelDims | None = None) -> str:
    """The teaching text for a role; norms get a sentence on RMSNorm vs LayerNorm, MoE parts their counts."""
    text = ROLE_EXPLANATIONS.get(role, "")
    if role in NORM_ROLES and module_class:
        kind = "rmsnorm" if "RMS" in module_class else "layernorm"
        text = f"{text} {_NORM_EXPLANATIONS[kind]}".strip()
    if role in ("moe", "router", "experts") and dims is not None and dims.is_moe:
        text = f"{expert_counts_text(dims)}. {text}"
    return text


def expert_counts_text(dims: ModelDims) -> str:
    """'8 experts, 2 active per token'."""
    active = f", {dims.n_experts_per_token} active per token" if dims.n_experts_per_token else ""
    return f"{dims.n_experts} experts{active}"


def classify(name: str, module: nn.Module, parent_role: str | None, parent: nn.Module | None,
             is_output_embedding: bool) -> str:
    """The role of `module`, reached as child `name` of a module whose role is `parent_role`."""
    if parent_role is None:
        return "causal_lm"
    if isinstance(module, PreTrainedModel) or (parent_role == "backbone" and _holds_layer_stack(module)):
        return "backbone"  # OPT's body is a plain OPTDecoder module inside OPTModel
    if parent_role == "moe" and name in _ROLES_IN_MOE:
        return _ROLES_IN_MOE[name]
    if isinstance(module, nn.ModuleList):
        # Only the backbone's list is the layer stack; lists deeper down (MoE experts) are not.
        return "layers" if parent_role in ("backbone", "causal_lm") else "other"
    if parent_role == "layers":
        return "decoder_layer"
    if parent_role == "experts" and not _is_activation(module):
        return "expert"  # one MLP of a ModuleList of experts
    return _classify_leafish(name, module, parent_role, parent, is_output_embedding)


def _classify_leafish(name: str, module: nn.Module, parent_role: str, parent: nn.Module | None,
                      is_output_embedding: bool) -> str:
    cls = type(module).__name__
    if isinstance(module, nn.Embedding):
        return "position_embedding" if name in _POSITION_EMBEDDING_NAMES else "embedding"
    if "Rotary" in cls:
        return "rotary"
    if isinstance(module, nn.Dropout):
        return "dropout"
    if is_norm(module):
        return _norm_role(name, parent_role, parent)
    if is_linear_like(module):
        return _linear_role(name, parent_role, is_output_embedding)
    if _is_activation(module):
        return "activation"
    if _is_moe(module):
        return "moe"
    lowered = cls.lower()
    if name in _ATTENTION_NAMES or lowered.endswith("attention"):
        return "attention"
    if name in _MLP_NAMES or lowered.endswith(("mlp", "feedforward")):
        return "mlp"
    return "other"


def _linear_role(name: str, parent_role: str, is_output_embedding: bool) -> str:
    if is_output_embedding or name in ("lm_head", "embed_out"):
        return "lm_head"
    if parent_role == "attention":
        return _LINEAR_ROLES_IN_ATTENTION.get(name, "other")
    if parent_role in _MLP_LIKE_ROLES:
        return _LINEAR_ROLES_IN_MLP.get(name, "other")
    if parent_role == "backbone" and name in ("project_in", "project_out"):
        return name  # OPT-350m: word embeddings narrower than d_model
    if parent_role == "decoder_layer":  # OPT-style layers hold fc1/fc2 directly
        return _LINEAR_ROLES_IN_LAYER.get(name, "other")
    return "other"


def _norm_role(name: str, parent_role: str, parent: nn.Module | None) -> str:
    if parent_role == "backbone":
        # BLOOM's word_embeddings_layernorm normalises the embedding, not the output. (Registration order
        # cannot tell them apart: OPT registers its final_layer_norm before its layers.)
        return "embedding_norm" if "emb" in name.lower() else "final_norm"
    if parent_role == "attention":
        return "qk_norm"
    if parent_role != "decoder_layer":
        return "norm"
    if name == "post_attention_layernorm":
        # Gemma-2 style layers have a separate pre-MLP norm, so this one really is post-attention.
        sandwich = parent is not None and hasattr(parent, "pre_feedforward_layernorm")
        return "attn_post_norm" if sandwich else "mlp_norm"
    return _NORM_ROLES_IN_LAYER.get(name, "norm")


def _holds_layer_stack(module: nn.Module) -> bool:
    return any(isinstance(child, nn.ModuleList) for child in module.children())
