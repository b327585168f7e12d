"""The KV-cache calculator: published configs give the known sizes, and the formula agrees with the tensors
transformers' own DynamicCache holds."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import ARCHITECTURES, tiny_model
from visualizer.analysis.architecture import describe_known_model, kv_cache_estimate, load_known_config
from visualizer.analysis.kv_memory import kv_cache_bytes, sharing_notes
from visualizer.dims import dims_from_config


def test_kv_cache_phi3_mini_and_llama():
    phi3 = dims_from_config(load_known_config("Phi-3-mini-4k-instruct"))
    assert (phi3.n_layers, phi3.n_kv_heads, phi3.d_head) == (32, 32, 96)
    assert kv_cache_bytes(phi3, 1000, 1, 2) == 393_216_000
    assert kv_cache_bytes(phi3, 1000, 1, "fp16") == 2 * 32 * 1 * 1000 * 32 * 96 * 2
    llama = dims_from_config(load_known_config("Llama-3.1-8B"))
    estimate = kv_cache_estimate(llama, tokens=1000, batch=1, dtype="fp16")
    assert estimate.bytes == 131_072_000
    assert estimate.naive_bytes == 2 * 32 * 1000 * 4096 * 2
    assert estimate.naive_bytes / estimate.bytes == llama.n_heads / llama.n_kv_heads == 4
    assert estimate.bytes_per_token == 131_072
    assert kv_cache_bytes(llama, 1000, 3, 4) == 6 * 131_072_000


def test_kv_dims_gpt2_naming_and_gemma_head_dim():
    gpt2 = dims_from_config(load_known_config("gpt2"))
    assert (gpt2.n_layers, gpt2.n_heads, gpt2.n_kv_heads, gpt2.d_head, gpt2.d_model) == (12, 12, 12, 64, 768)
    assert gpt2.d_model / gpt2.d_kv == 1 and not sharing_notes(gpt2)
    gemma = dims_from_config(load_known_config("gemma-2-2b"))
    assert (gemma.n_kv_heads, gemma.d_head) == (4, 256)
    assert kv_cache_bytes(gemma, 1000, 1, 2) == 2 * 26 * 1000 * 4 * 256 * 2
    assert gemma.n_sliding_layers == 13 and gemma.sliding_window == 4096
    assert any("Hybrid" in note for note in kv_cache_estimate(gemma, 10).notes)
    mistral = dims_from_config(load_known_config("Mistral-7B-v0.1"))
    assert mistral.n_sliding_layers == 32 and any("Sliding" in note for note in kv_cache_estimate(mistral, 10).notes)


def test_falcon_40b_kv_cache_is_8x_multi_query():
    """Falcon-40B keeps 8 KV heads (grouped-query), not the 1 its multi_query flag suggests (#13)."""
    report = describe_known_model("falcon-40b")
    assert report.summary.n_kv_heads == 8 and report.summary.kv_sharing == "grouped-query"
    estimate = kv_cache_estimate(report.dims, tokens=1000, batch=1, dtype="fp16")
    assert estimate.bytes_per_token == 2 * 60 * 8 * 64 * 2 == 8 * (2 * 60 * 1 * 64 * 2)
    assert any("expands them to 128 heads" in note for note in estimate.notes)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_kv_formula_matches_transformers_cache(name):
    """The calculator's bytes equal the tensors transformers' DynamicCache really holds."""
    model = tiny_model(name)
    dims = dims_from_config(model.config)
    n_tokens, batch = 80, 2  # gemma2's tiny window is 64: its sliding layers stop growing
    with torch.inference_mode():
        out = model(torch.randint(3, 300, (batch, n_tokens)), use_cache=True)
    held = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in out.cache.layers)
    expected = kv_cache_bytes(dims, n_tokens, batch, 4, sliding=True)
    assert held == expected
    if dims.n_sliding_layers:
        assert kv_cache_bytes(dims, n_tokens, batch, 4) > held
    else:
        assert kv_cache_bytes(dims, n_tokens, batch, 4) == held


def test_kv_cache_bad_input():
    dims = dims_from_config(load_known_config("gpt2"))
    with pytest.raises(ValueError, match="dtype"):
        kv_cache_bytes(dims, 10, 1, "fp13")
    with pytest.raises(ValueError, match="batch"):
        kv_cache_bytes(dims, 10, 0, 2)
    with pytest.raises(ValueError):
        kv_cache_bytes(dims, -1, 1, 2)
    with pytest.raises(ValueError, match="dtype"):
        kv_cache_estimate(dims, 10, 1, "fp13")
