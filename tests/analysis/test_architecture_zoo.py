"""Table-driven over architectures (tiny configs, built on meta and for real): KV heads are the config's, fused
splits add up from the dimensions, parameters are sum(numel), KV bytes per token follow the one formula and
match transformers' cache, and no module with weights is left without a role."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from visualizer.analysis.architecture import build_meta_model, describe_config, kv_cache_estimate
from visualizer.analysis.kv_memory import kv_cache_bytes

_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)  # inside the tiny vocabulary
_SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=8, vocab_size=320)
_LLAMA_LIKE = dict(_SMALL, intermediate_size=96, num_key_value_heads=2)

# name -> (model_type, config overrides, n_kv_heads, kv sharing, fused QKV (Q, K, V) or None, experts)
ZOO: dict[str, tuple[str, dict, int, str, tuple[int, int, int] | None, int]] = {
    "falcon_new": ("falcon", dict(_SMALL, new_decoder_architecture=True, num_kv_heads=2, multi_query=True),
                   2, "grouped-query", (64, 16, 16), 0),
    "falcon_7b_layout": ("falcon", dict(_SMALL, new_decoder_architecture=False, multi_query=True),
                         1, "multi-query", (64, 8, 8), 0),
    "bloom": ("bloom", dict(hidden_size=64, n_layer=2, n_head=8, vocab_size=320), 8, "multi-head", (64, 64, 64), 0),
    "gpt_bigcode": ("gpt_bigcode", dict(n_embd=64, n_layer=2, n_head=8, multi_query=True, vocab_size=320,
                                        n_positions=128), 1, "multi-query", (64, 8, 8), 0),
    "mixtral": ("mixtral", dict(_LLAMA_LIKE, num_local_experts=4, num_experts_per_tok=2), 2, "grouped-query",
                None, 4),
    "qwen2_moe": ("qwen2_moe", dict(_LLAMA_LIKE, moe_intermediate_size=32, shared_expert_intermediate_size=48,
                                    num_experts=4, num_experts_per_tok=2), 2, "grouped-query", None, 4),
    "gemma2": ("gemma2", dict(_LLAMA_LIKE, head_dim=16, sliding_window=64), 2, "grouped-query", None, 0),
    "phi3": ("phi3", dict(_LLAMA_LIKE, max_position_embeddings=128, original_max_position_embeddings=128),
             2, "grouped-query", (64, 16, 16), 0),
    "gpt2": ("gpt2", dict(n_embd=64, n_layer=2, n_head=8, vocab_size=320, n_positions=128), 8, "multi-head",
             (64, 64, 64), 0),
    "llama": ("llama", _LLAMA_LIKE, 2, "grouped-query", None, 0),
    "opt_projected": ("opt", dict(_SMALL, ffn_dim=96, word_embed_proj_dim=32, max_position_embeddings=128),
                      8, "multi-head", None, 0),
    "cohere": ("cohere", dict(_LLAMA_LIKE, logit_scale=0.5), 2, "grouped-query", None, 0),
}
NAMES = list(ZOO)


def _config(name: str):
    model_type, overrides, *_ = ZOO[name]
    return AutoConfig.for_model(model_type, **_IDS, **overrides)


@functools.cache
def _real_model(name: str):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(_config(name), attn_implementation="eager").eval()


@pytest.mark.parametrize("name", NAMES)
def test_kv_heads_and_sharing(name):
    _, _, n_kv_heads, sharing, _, _ = ZOO[name]
    report = describe_config(_config(name))
    assert (report.dims.n_kv_heads, report.dims.kv_sharing) == (n_kv_heads, sharing)
    assert (report.summary.n_kv_heads, report.summary.kv_sharing) == (n_kv_heads, sharing)
    assert dict(report.summary.rows())["Attention"] == sharing


@pytest.mark.parametrize("name", NAMES)
def test_fused_qkv_split_sizes(name):
    expected = ZOO[name][4]
    report = describe_config(_config(name))
    qkv = [split for split in report.fused if split.kind == "qkv"]
    if expected is None:
        assert not qkv
        return
    (split,) = qkv
    assert tuple(size for _, size in split.parts) == expected
    assert sum(expected) == split.d_out  # the module's real output width
    assert "assuming equal thirds" not in split.formula


@pytest.mark.parametrize("name", NAMES)
def test_parameters_equal_sum_of_numel(name):
    config = _config(name)
    total = sum(p.numel() for p in build_meta_model(config).parameters())
    report = describe_config(config)
    assert report.n_params == report.tree.params_total == report.breakdown.total == total
    assert sum(item.n_params for item in report.breakdown.items) == total
    assert sum(node.params_own * node.repeat * node.multiplier for node in report.tree.walk()) == total


@pytest.mark.parametrize("name", NAMES)
def test_every_module_with_weights_has_a_role(name):
    report = describe_config(_config(name))
    unnamed = [node.path for node in report.tree.walk() if node.params_own and node.role == "other"]
    assert not unnamed
    # Exactly one final norm, whatever the family calls it (OPT keeps it inside its decoder, BLOOM also
    # normalises its embedding).
    assert len([node for node in report.tree.walk() if node.role == "final_norm"]) == 1


@pytest.mark.parametrize("name", [n for n in NAMES if ZOO[n][5]])
def test_moe_router_experts_and_active_parameters(name):
    config = _config(name)
    n_experts, k = ZOO[name][5], 2
    report = describe_config(config)
    roles = {node.role for node in report.tree.walk()}
    assert {"moe", "router", "experts"} <= roles
    experts = next(node for node in report.tree.walk() if node.role == "experts")
    assert f"{n_experts} experts, {k} active per token" in experts.explanation
    routed = sum(p.numel() for n, p in build_meta_model(config).named_parameters() if ".experts." in n)
    assert report.breakdown.expert_params == routed
    assert report.breakdown.active_params == report.n_params - routed * (n_experts - k) // n_experts
    assert (report.summary.n_experts, report.summary.n_experts_per_token) == (n_experts, k)


@pytest.mark.parametrize("name", NAMES)
def test_kv_bytes_per_token_follow_the_formula(name):
    dims = describe_config(_config(name)).dims
    estimate = kv_cache_estimate(dims, tokens=100, batch=1, dtype="fp16")
    assert estimate.bytes_per_token == 2 * dims.n_layers * dims.n_kv_heads * dims.d_head * 2
    assert estimate.bytes == 100 * estimate.bytes_per_token


@pytest.mark.parametrize("name", NAMES)
def test_kv_formula_matches_the_cache_transformers_keeps(name):
    model = _real_model(name)
    dims = describe_config(_config(name)).dims
    n_tokens, batch = 80, 2
    with torch.inference_mode():
        out = model(torch.randint(3, 300, (batch, n_tokens)), use_cache=True)
    held = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in out.cache.layers)
    formula = kv_cache_bytes(dims, n_tokens, batch, 4, sliding=True)
    # Falcon's new decoder architecture stores its KV heads broadcast to every query head (see kv.py's note).
    assert held == formula * dims.d_cached_kv // dims.d_kv
