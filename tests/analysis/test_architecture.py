"""Architecture analysis: counts agree with torch, known configs give the published sizes, KV formula
agrees with transformers' own DynamicCache, fused splits agree with the attention modules' attributes."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.tiny_models import ARCHITECTURES, tiny_config, tiny_model
from visualizer.analysis.architecture import (
    KNOWN_CONFIGS_DIR,
    ROLE_EXPLANATIONS,
    KvCacheSpec,
    build_meta_model,
    config_from_json,
    describe_architecture,
    describe_config,
    describe_config_json,
    describe_known_model,
    fused_projections,
    known_model_names,
    kv_cache_bytes,
    kv_cache_estimate,
    load_known_config,
    module_tree,
    parameter_breakdown,
    weight_memory,
)

# Parameter counts published for these checkpoints (model cards / safetensors metadata).
PUBLISHED_COUNTS = {
    "Phi-3-mini-4k-instruct": 3_821_079_552,
    "gpt2": 124_439_808,
    "Llama-3.1-8B": 8_030_261_248,
    "Qwen2.5-0.5B": 494_032_768,
    "Mistral-7B-v0.1": 7_241_732_096,
    "gemma-2-2b": 2_614_341_888,
    "pythia-160m": 162_322_944,
}
REQUIRED_KNOWN = {"Phi-3-mini-4k-instruct", "gpt2", "Llama-3.1-8B", "Qwen2.5-0.5B", "Mistral-7B-v0.1",
                  "gemma-2-2b"}


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _tied(model) -> bool:
    return model.get_output_embeddings().weight is model.get_input_embeddings().weight


# ------------------------------------------------------------------ tiny models: counts add up


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


def test_describe_architecture_on_loaded_model():
    model = tiny_model("llama")
    report = describe_architecture(model)
    assert report.n_params == _n_params(model)
    assert not report.on_meta
    s = report.summary
    assert (s.n_layers, s.n_heads, s.n_kv_heads, s.d_model) == (2, 4, 2, 32)
    assert s.d_head == model.model.layers[0].self_attn.head_dim
    assert s.position_encoding == "RoPE" and s.norm_type == "RMSNorm"
    assert dict(s.rows())["Attention"] == "grouped-query"


# ------------------------------------------------------------------ known configs on meta


def test_required_known_models_are_shipped():
    assert REQUIRED_KNOWN <= set(known_model_names())
    for path in KNOWN_CONFIGS_DIR.glob("*.json"):
        assert path.stat().st_size < 4_000  # small files
        assert "auto_map" not in json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(PUBLISHED_COUNTS))
def test_known_config_builds_with_published_count(name):
    config = load_known_config(name)
    model = build_meta_model(config)
    assert all(p.is_meta for p in model.parameters())
    assert _n_params(model) == PUBLISHED_COUNTS[name]
    assert model.num_parameters() == PUBLISHED_COUNTS[name]  # transformers' own count agrees
    report = describe_config(config)
    assert report.on_meta
    assert report.n_params == report.breakdown.total == report.tree.params_total == PUBLISHED_COUNTS[name]
    assert report.kv_spec is not None


@pytest.mark.parametrize("name", known_model_names())
def test_every_known_config_describes(name):
    report = describe_known_model(name)
    assert report.n_params == _n_params(build_meta_model(load_known_config(name)))
    assert report.summary.n_layers == report.breakdown.n_layers


def test_phi3_mini_tree():
    report = describe_known_model("Phi-3-mini-4k-instruct")
    nodes = {node.name: node for node in report.tree.walk()}
    assert report.n_params == 3_821_079_552
    assert nodes["embed_tokens"].signature == "Embedding(32064, 3072)"
    assert (nodes["qkv_proj"].d_in, nodes["qkv_proj"].d_out) == (3072, 9216)
    assert (nodes["gate_up_proj"].d_in, nodes["gate_up_proj"].d_out) == (3072, 16384)
    assert nodes["0-31"].repeat == 32 and nodes["0-31"].class_name == "Phi3DecoderLayer"
    assert report.summary.n_layers == 32 and report.summary.d_head == 96
    assert not report.summary.tied_embeddings
    assert report.weight_memory == {"fp32": 4 * 3_821_079_552, "bf16": 2 * 3_821_079_552,
                                    "int8": 3_821_079_552, "int4": 3_821_079_552 // 2}


def test_gpt2_and_llama_tied_vs_untied():
    gpt2 = describe_known_model("gpt2")
    llama = describe_known_model("Llama-3.1-8B")
    assert gpt2.n_params == 124_439_808 and gpt2.summary.tied_embeddings
    assert gpt2.breakdown.as_dict()["lm_head"] == 0
    assert gpt2.breakdown.as_dict()["position_embedding"] == 1024 * 768
    assert llama.n_params == 8_030_261_248 and not llama.summary.tied_embeddings
    assert llama.breakdown.as_dict()["lm_head"] == llama.breakdown.as_dict()["embedding"] == 128256 * 4096


def test_meta_models_are_cached():
    config = load_known_config("Phi-3-mini-4k-instruct")
    assert build_meta_model(config) is build_meta_model(copy.deepcopy(config))
    assert describe_config(config) is describe_known_model("Phi-3-mini-4k-instruct")


def test_meta_build_does_not_touch_callers_config():
    config = load_known_config("gpt2")
    before = config.to_dict()
    build_meta_model(config)
    assert config.to_dict() == before


def test_summary_reads_gpt2_and_gemma_naming():
    gpt2 = describe_known_model("gpt2").summary
    assert (gpt2.n_layers, gpt2.n_heads, gpt2.d_model, gpt2.d_head, gpt2.d_mlp) == (12, 12, 768, 64, 3072)
    assert gpt2.position_encoding == "learned absolute" and gpt2.context_length == 1024
    gemma = describe_known_model("gemma-2-2b").summary
    assert (gemma.d_head, gemma.n_kv_heads, gemma.d_model) == (256, 4, 2304)  # head_dim != d_model / n_heads
    llama = describe_known_model("Llama-3.1-8B").summary
    assert llama.rope_theta == 500000.0 and llama.rope_type == "llama3"


# ------------------------------------------------------------------ fused projections


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


def test_fused_split_gpt_neox_tiny_matches_module():
    model = tiny_model("gpt_neox")
    (split,) = fused_projections(model)
    qkv = model.gpt_neox.layers[0].attention.query_key_value
    assert split.d_out == qkv.out_features and sum(size for _, size in split.parts) == qkv.out_features


# ------------------------------------------------------------------ KV cache


def test_kv_cache_phi3_mini_and_llama():
    phi3 = KvCacheSpec.from_config(load_known_config("Phi-3-mini-4k-instruct"))
    assert (phi3.n_layers, phi3.n_kv_heads, phi3.d_head) == (32, 32, 96)
    assert kv_cache_bytes(phi3, tokens=1000, batch=1, bytes_per_value=2) == 393_216_000
    assert kv_cache_bytes(phi3, 1000, 1, "fp16") == 2 * 32 * 1 * 1000 * 32 * 96 * 2
    llama = KvCacheSpec.from_config(load_known_config("Llama-3.1-8B"))
    estimate = kv_cache_estimate(llama, tokens=1000, batch=1, dtype="fp16")
    assert estimate.bytes == 131_072_000
    assert estimate.naive_bytes == 2 * 32 * 1000 * 4096 * 2
    assert estimate.naive_bytes / estimate.bytes == llama.n_heads / llama.n_kv_heads == 4
    assert estimate.bytes_per_token == 131_072
    assert kv_cache_bytes(llama, 1000, batch=3, bytes_per_value=4) == 6 * 131_072_000


def test_kv_spec_gpt2_naming_and_gemma_head_dim():
    gpt2 = KvCacheSpec.from_config(load_known_config("gpt2"))
    assert (gpt2.n_layers, gpt2.n_heads, gpt2.n_kv_heads, gpt2.d_head, gpt2.d_model) == (12, 12, 12, 64, 768)
    assert gpt2.naive_overcount == 1 and not gpt2.notes
    gemma = KvCacheSpec.from_config(load_known_config("gemma-2-2b"))
    assert (gemma.n_kv_heads, gemma.d_head) == (4, 256)
    assert kv_cache_bytes(gemma, 1000, 1, 2) == 2 * 26 * 1000 * 4 * 256 * 2
    assert gemma.n_sliding_layers == 13 and gemma.sliding_window == 4096
    assert any("Hybrid" in note for note in gemma.notes)
    mistral = KvCacheSpec.from_config(load_known_config("Mistral-7B-v0.1"))
    assert mistral.n_sliding_layers == 32 and any("Sliding" in note for note in mistral.notes)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_kv_formula_matches_transformers_cache(name):
    """The calculator's bytes equal the tensors transformers' DynamicCache really holds."""
    model = tiny_model(name)
    spec = KvCacheSpec.from_config(model.config)
    n_tokens, batch = 80, 2  # gemma2's tiny window is 64: its sliding layers stop growing
    with torch.inference_mode():
        out = model(torch.randint(3, 300, (batch, n_tokens)), use_cache=True)
    held = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in out.cache.layers)
    expected = kv_cache_bytes(spec, n_tokens, batch, bytes_per_value=4, sliding=True)
    assert held == expected
    if spec.n_sliding_layers:
        assert kv_cache_bytes(spec, n_tokens, batch, 4) > held
    else:
        assert kv_cache_bytes(spec, n_tokens, batch, 4) == held


def test_kv_cache_bad_input():
    spec = KvCacheSpec.from_config(load_known_config("gpt2"))
    with pytest.raises(ValueError, match="dtype"):
        kv_cache_bytes(spec, 10, 1, "fp13")
    with pytest.raises(ValueError, match="batch"):
        kv_cache_bytes(spec, 10, 0, 2)
    with pytest.raises(ValueError):
        kv_cache_bytes(spec, -1, 1, 2)


def test_weight_memory():
    assert weight_memory(1001) == {"fp32": 4004, "bf16": 2002, "int8": 1001, "int4": 501}
    with pytest.raises(ValueError):
        weight_memory(-1)


# ------------------------------------------------------------------ pasted config.json


def _known_json(name: str) -> dict:
    return json.loads((KNOWN_CONFIGS_DIR / f"{name}.json").read_text())


def test_pasted_config_roundtrip():
    report = describe_config_json(json.dumps(_known_json("Qwen2.5-0.5B")))
    assert report.n_params == 494_032_768 and report.summary.tied_embeddings


def test_pasted_config_drops_remote_code_keys():
    data = _known_json("gpt2")
    data["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    data["trust_remote_code"] = True
    config = config_from_json(json.dumps(data))
    assert not hasattr(config, "auto_map") or not config.auto_map
    assert describe_config(config).n_params == 124_439_808


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("{'model_type': 'llama'}", "not valid JSON"),
    ('{"model_type": "llama",}', "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"hidden_size": 64}', "model_type"),
    ('{"model_type": "not_a_model"}', "not a causal language model"),
    ('{"model_type": "t5"}', "not a causal language model"),
    ('{"model_type": "llama", "num_hidden_layers": 100000}', "out of range"),
    ('{"model_type": "llama", "vocab_size": 1000000000}', "out of range"),
    ('{"model_type": "llama", "hidden_size": "big"}', "whole number"),
    ('{"model_type": "llama", "num_attention_heads": -4}', "out of range"),
    ('{"model_type": "llama", "num_hidden_layers": 1000, "hidden_size": 65536, "intermediate_size": 262144}',
     "parameters"),
    ("x" * 300_000, "characters"),
])
def test_bad_config_json_raises_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        config_from_json(text)


def test_config_that_transformers_cannot_build_gives_value_error():
    data = _known_json("gpt2") | {"n_embd": 770, "n_layer": 2}  # 770 is not divisible by 12 heads
    with pytest.raises(ValueError, match="Could not build"):
        describe_config_json(json.dumps(data))


def test_unknown_known_model_name():
    with pytest.raises(ValueError, match="Known models"):
        load_known_config("../../etc/passwd")


def test_fused_projections_rejects_other_input():
    with pytest.raises(ValueError):
        fused_projections("phi3")
