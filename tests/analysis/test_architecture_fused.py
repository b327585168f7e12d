"""Fused projections: the splits agree with the attention modules' own attributes and output sizes."""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_config, tiny_model
from visualizer.analysis.architecture import (
    build_meta_model,
    describe_known_model,
    fused_projections,
    load_known_config,
)


def test_fused_splits_phi3_mha():
    model = tiny_model("phi3")
    splits = {s.kind: s for s in fused_projections(model)}
    attn = model.model.layers[0].self_attn
    q = model.config.num_attention_heads * attn.head_dim  # transformers' own query_pos
    kv = attn.num_key_value_heads * attn.head_dim
    assert splits["qkv"].parts == (("Q", q), ("K", kv), ("V", kv))
    assert splits["qkv"].d_out == attn.qkv_proj.out_features == q + 2 * kv
    assert splits["qkv"].n_copies == model.config.num_hidden_layers
    d_mlp = model.config.intermediate_size
    assert splits["gate_up"].parts == (("gate", d_mlp), ("up", d_mlp))
    assert splits["gate_up"].d_out == model.model.layers[0].mlp.gate_up_proj.out_features


def test_fused_split_grouped_query_phi3():
    config = tiny_config("phi3")
    config.num_key_value_heads = 2  # 4 query heads share 2 key/value heads
    model = build_meta_model(config)
    attn = model.model.layers[0].self_attn
    qkv = next(s for s in fused_projections(config) if s.kind == "qkv")
    q, kv = 4 * attn.head_dim, 2 * attn.head_dim
    assert qkv.parts == (("Q", q), ("K", kv), ("V", kv))
    assert qkv.d_out == attn.qkv_proj.out_features
    assert "grouped-query" in qkv.formula


def test_fused_splits_of_real_sized_configs():
    phi3 = {s.kind: s for s in fused_projections(load_known_config("Phi-3-mini-4k-instruct"))}
    assert phi3["qkv"].parts == (("Q", 3072), ("K", 3072), ("V", 3072)) and phi3["qkv"].d_out == 9216
    assert phi3["gate_up"].parts == (("gate", 8192), ("up", 8192)) and phi3["gate_up"].d_out == 16384
    (gpt2,) = fused_projections(load_known_config("gpt2"))
    assert (gpt2.class_name, gpt2.d_in, gpt2.d_out) == ("Conv1D", 768, 2304)
    assert gpt2.parts == (("Q", 768), ("K", 768), ("V", 768)) and "transposed" in gpt2.layout
    (neox,) = fused_projections(load_known_config("pythia-160m"))
    assert neox.path.endswith("query_key_value") and "interleaved per head" in neox.layout
    assert fused_projections(load_known_config("Llama-3.1-8B")) == []


def test_falcon_40b_split_is_not_thirds():
    """Falcon-40B: 128 query heads, 8 KV heads of 64: Q 8192 + K 512 + V 512, grouped per KV head (#13)."""
    (qkv,) = describe_known_model("falcon-40b").fused
    assert qkv.parts == (("Q", 8192), ("K", 512), ("V", 512)) and qkv.d_out == 9216
    assert "grouped-query" in qkv.formula and "[8 groups, 16 + 2 heads, 64]" in qkv.layout


def test_fused_split_gpt_neox_tiny_matches_module():
    model = tiny_model("gpt_neox")
    (split,) = fused_projections(model)
    qkv = model.gpt_neox.layers[0].attention.query_key_value
    assert split.d_out == qkv.out_features and sum(size for _, size in split.parts) == qkv.out_features


def test_fused_projections_rejects_other_input():
    with pytest.raises(ValueError):
        fused_projections("phi3")
