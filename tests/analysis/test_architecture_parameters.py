"""Parameter breakdown: per layer, tied weights once, weight memory, MoE active parameters."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import ARCHITECTURES, tiny_model
from visualizer.analysis.architecture import describe_known_model, module_tree, parameter_breakdown, weight_memory


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _tied(model) -> bool:
    return model.get_output_embeddings().weight is model.get_input_embeddings().weight


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_per_layer_breakdown_matches_one_block(name):
    model = tiny_model(name)
    breakdown = parameter_breakdown(model)
    layers = next(m for m in model.modules() if isinstance(m, torch.nn.ModuleList))
    assert sum(breakdown.per_layer.values()) == _n_params(layers[0])
    by_key = breakdown.as_dict()
    for key in ("attention", "mlp", "norms"):
        assert by_key[key] == breakdown.per_layer[key] * breakdown.n_layers


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_tied_embeddings_counted_once(name):
    model = tiny_model(name)
    breakdown = parameter_breakdown(model)
    tied = _tied(model)
    assert breakdown.tied_embeddings == tied
    lm_head = next(item for item in breakdown.items if item.key == "lm_head")
    head_weight = model.get_output_embeddings().weight
    assert lm_head.n_params == (0 if tied else head_weight.numel())
    assert bool(lm_head.note) == tied
    head_node = next(node for node in module_tree(model).walk() if node.role == "lm_head")
    assert bool(head_node.tied_to) == tied


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_dense_models_use_every_parameter(name):
    breakdown = parameter_breakdown(tiny_model(name))
    assert breakdown.active_params == breakdown.total and breakdown.n_experts == 0 and breakdown.expert_params == 0


def test_gpt2_and_llama_tied_vs_untied():
    gpt2 = describe_known_model("gpt2")
    llama = describe_known_model("Llama-3.1-8B")
    assert gpt2.n_params == 124_439_808 and gpt2.summary.tied_embeddings
    assert gpt2.breakdown.as_dict()["lm_head"] == 0
    assert gpt2.breakdown.as_dict()["position_embedding"] == 1024 * 768
    assert llama.n_params == 8_030_261_248 and not llama.summary.tied_embeddings
    assert llama.breakdown.as_dict()["lm_head"] == llama.breakdown.as_dict()["embedding"] == 128256 * 4096


def test_mixtral_active_parameters():
    """Mixtral-8x7B: 46.7 B parameters, 12.9 B of them used per token (2 of 8 experts)."""
    report = describe_known_model("Mixtral-8x7B-v0.1")
    breakdown = report.breakdown
    assert report.n_params == 46_702_792_704
    assert (breakdown.n_experts, breakdown.n_experts_per_token) == (8, 2)
    per_expert_layer = 3 * 4096 * 14336  # gate, up and down of one expert in one layer
    assert breakdown.expert_params == 32 * 8 * per_expert_layer
    assert breakdown.active_params == 46_702_792_704 - 32 * 6 * per_expert_layer == 12_879_925_248
    assert "8 experts, 2 active per token" in next(i.note for i in breakdown.items if i.key == "mlp")
    rows = dict(report.summary.rows())
    assert rows["Experts"] == "8 (2 active per token)" and rows["Active parameters per token"] == "12,879,925,248"


def test_bloom_embedding_norm_is_not_the_final_norm():
    report = describe_known_model("bloom-560m")
    assert report.n_params == 559_214_592
    roles = {node.name: node.role for node in report.tree.walk()}
    assert roles["word_embeddings_layernorm"] == "embedding_norm" and roles["ln_f"] == "final_norm"
    assert report.breakdown.as_dict()["embedding_norm"] == report.breakdown.as_dict()["final_norm"] == 2 * 1024


def test_weight_memory():
    assert weight_memory(1001) == {"fp32": 4004, "bf16": 2002, "int8": 1001, "int4": 501}
    with pytest.raises(ValueError):
        weight_memory(-1)
