"""Module tree and roles: counts agree with torch, layers fold like print(model), signatures are torch's own."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import ARCHITECTURES, tiny_model
from visualizer.analysis.architecture import ROLE_EXPLANATIONS, describe_known_model, module_tree, parameter_breakdown


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_tree_and_breakdown_total_equal_torch_count(name):
    model = tiny_model(name)
    total = _n_params(model)
    tree = module_tree(model)
    assert tree.params_total == total
    # Every tensor is counted exactly once somewhere in the tree (folded copies via repeat x multiplier).
    assert sum(node.params_own * node.repeat * node.multiplier for node in tree.walk()) == total
    breakdown = parameter_breakdown(model)
    assert breakdown.total == total
    assert sum(item.n_params for item in breakdown.items) == total
    assert sum(item.share for item in breakdown.items) == pytest.approx(1.0)
    assert tree.share == pytest.approx(1.0)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_layers_are_folded_like_print(name):
    model = tiny_model(name)
    n_layers = model.config.num_hidden_layers
    folded = [node for node in module_tree(model).walk() if node.is_folded]
    assert len(folded) == 1
    layer = folded[0]
    assert layer.role == "decoder_layer" and layer.repeat == n_layers
    assert layer.name == f"0-{n_layers - 1}"
    # print(model) shows the same marker.
    assert f"{n_layers} x {layer.class_name}" in repr(model)
    # Children describe one block; multiplier says how many copies exist.
    assert layer.children and all(child.multiplier == n_layers for child in layer.children)
    assert parameter_breakdown(model).n_layers == n_layers


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_signatures_are_what_print_model_shows(name):
    """Every leaf's signature is the exact text print(model) puts after its name."""
    model = tiny_model(name)
    printed = repr(model)
    for node in module_tree(model).walk():
        if not node.children and not node.is_folded:
            assert f"({node.name}): {node.signature}\n" in printed, node.path


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_roles_have_explanations(name):
    roles = {node.role for node in module_tree(tiny_model(name)).walk()}
    assert {"causal_lm", "backbone", "embedding", "attention", "decoder_layer", "lm_head", "final_norm"} <= roles
    assert roles & {"mlp", "gated_mlp"}
    assert roles & {"attn_norm", "mlp_norm"}
    for role in roles - {"other"}:
        assert ROLE_EXPLANATIONS[role], role
    has_rope = any("Rotary" in type(m).__name__ for m in tiny_model(name).modules())
    assert ("rotary" in roles) == has_rope


def test_norm_explanation_names_the_norm_kind():
    gpt2 = {n.role: n for n in module_tree(tiny_model("gpt2")).walk()}
    llama = {n.role: n for n in module_tree(tiny_model("llama")).walk()}
    assert "LayerNorm: subtracts the mean" in gpt2["final_norm"].explanation
    assert "RMSNorm" in llama["final_norm"].explanation


def test_gemma2_sandwich_norms_and_gated_mlp():
    roles = {n.name: n.role for n in module_tree(tiny_model("gemma2")).walk()}
    assert roles["post_attention_layernorm"] == "attn_post_norm"
    assert roles["pre_feedforward_layernorm"] == "mlp_norm"
    assert roles["mlp"] == "gated_mlp"
    # Llama-style: the so-called post_attention_layernorm is the pre-MLP norm.
    assert {n.name: n.role for n in module_tree(tiny_model("llama")).walk()}["post_attention_layernorm"] == "mlp_norm"


def test_phi3_mini_tree():
    report = describe_known_model("Phi-3-mini-4k-instruct")
    nodes = {node.name: node for node in report.tree.walk()}
    assert report.n_params == 3_821_079_552
    # As print(model) and the chapter show it (#13): torch's own extra_repr, padding_idx included.
    assert nodes["embed_tokens"].signature == "Embedding(32064, 3072, padding_idx=32000)"
    assert nodes["qkv_proj"].signature == "Linear(in_features=3072, out_features=9216, bias=False)"
    assert nodes["norm"].signature == "Phi3RMSNorm((3072,), eps=1e-05)"
    assert (nodes["qkv_proj"].d_in, nodes["qkv_proj"].d_out) == (3072, 9216)
    assert (nodes["gate_up_proj"].d_in, nodes["gate_up_proj"].d_out) == (3072, 16384)
    assert nodes["0-31"].repeat == 32 and nodes["0-31"].class_name == "Phi3DecoderLayer"
    assert report.summary.n_layers == 32 and report.summary.d_head == 96
    assert not report.summary.tied_embeddings
    assert report.weight_memory == {"fp32": 4 * 3_821_079_552, "bf16": 2 * 3_821_079_552,
                                    "int8": 3_821_079_552, "int4": 3_821_079_552 // 2}


def test_gpt2_conv1d_signature_is_torch_repr():
    model = tiny_model("gpt2")
    c_attn = next(n for n in module_tree(model).walk() if n.name == "c_attn")
    assert c_attn.signature == repr(model.transformer.h[0].attn.c_attn)  # "Conv1D(nf=96, nx=32)"
    assert (c_attn.d_in, c_attn.d_out) == (32, 96)


def test_module_lists_below_the_body_are_not_the_layer_stack():
    layers = [n for n in module_tree(tiny_model("llama")).walk() if n.role == "layers"]
    assert len(layers) == 1 and isinstance(tiny_model("llama").model.layers, torch.nn.ModuleList)
