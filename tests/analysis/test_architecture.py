"""The Architecture report: known configs give the published sizes on the meta device, the summary reads every
family's naming, skeletons are cached. Module-level tests live in test_architecture_<module>.py."""

from __future__ import annotations

import copy

import pytest

from tests.tiny_models import tiny_model
from visualizer.analysis.architecture import (
    build_meta_model,
    describe_architecture,
    describe_config,
    describe_known_model,
    known_model_names,
    load_known_config,
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
    "Mixtral-8x7B-v0.1": 46_702_792_704,
    "bloom-560m": 559_214_592,
}


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


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
    assert report.kv_spec is report.dims and report.dims.n_kv_heads == 2


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
    assert report.dims is not None


@pytest.mark.parametrize("name", known_model_names())
def test_every_known_config_describes(name):
    report = describe_known_model(name)
    assert report.n_params == _n_params(build_meta_model(load_known_config(name)))
    assert report.summary.n_layers == report.breakdown.n_layers


def test_falcon_40b_hand_count():
    """60 x (QKV 8192 x 9216 + out 8192^2 + MLP 2 x 8192 x 32768 + two LayerNorms) + tied embedding + ln_f."""
    per_layer = 8192 * 9216 + 8192 * 8192 + 2 * 8192 * 32768 + 4 * 8192
    report = describe_known_model("falcon-40b")
    assert report.n_params == 60 * per_layer + 65024 * 8192 + 2 * 8192 == 41_303_293_952
    assert report.summary.tied_embeddings and report.summary.position_encoding == "RoPE"


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
    assert describe_known_model("bloom-560m").summary.position_encoding == "ALiBi"
