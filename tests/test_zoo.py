"""Every number true on any causal LM: the zoo of architectures, each checked against transformers' own outputs.

Random weights everywhere, norms included (tests/tiny_models.py), so a wrong or missing norm, scale or cap shows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_session
from tests.tiny_models import ZOO, tiny_config, tiny_model, tiny_tokenizer
from visualizer.analysis.attention import METRICS, head_pattern, metric_grid
from visualizer.analysis.kv_memory import kv_cache_bytes
from visualizer.analysis.logit_lens import lens_grid, target_trajectory
from visualizer.analysis.next_token import tokenization, top_k
from visualizer.analysis.sampling import SamplingSettings, process_logits
from visualizer.session import ModelSession

PROMPT = "The capital of France is Paris. The capital of Japan is"

# name -> the KV heads each config really has (Falcon's new decoder architecture groups; its 7B layout shares one)
EXPECTED_KV_HEADS = {"llama": 2, "qwen2": 2, "mistral": 2, "gemma": 1, "gemma2": 2, "falcon_40b_layout": 2,
                     "falcon_7b_layout": 1, "gpt_bigcode": 1, "mixtral": 2, "qwen2_moe": 2, "cohere": 2,
                     "granite": 2, "stablelm": 2, "starcoder2": 2, "olmo2": 2}


@pytest.fixture(params=ZOO)
def zoo_arch(request):
    return request.param


@pytest.fixture
def zoo_session(zoo_arch):
    return make_tiny_session(zoo_arch)


@torch.inference_mode()
def reference(session, trace):
    """transformers' own outputs for the trace's tokens, computed without the app's hooks."""
    ids = torch.as_tensor(trace.token_ids)[None]
    return session.model(input_ids=ids, use_cache=False, output_attentions=True, output_hidden_states=True)


def test_self_check_passes(zoo_session):
    checks = zoo_session.checks
    assert checks.lens.ok, checks.lens.message
    assert checks.attention.ok, checks.attention.message
    assert checks.resid.ok, checks.resid.message
    assert checks.lens.max_diff <= 1e-3


def test_lens_last_row_reproduces_the_logits(zoo_session):
    trace = zoo_session.trace(PROMPT)
    logits = reference(zoo_session, trace).logits[0].float()  # [pos, d_vocab]
    lens_top = zoo_session.lens_top(trace)
    np.testing.assert_array_equal(lens_top.ids[-1], logits.argmax(-1)[lens_top.first_pos:].numpy())
    for pos in (0, trace.n_pos - 1):
        lens = zoo_session.lens_log_probs(trace, pos)  # [n_layers + 1, d_vocab]
        expected = torch.log_softmax(logits[pos], -1)
        assert float((lens[-1] - expected).abs().max()) <= 1e-3


def test_top_k_and_sampling_distribution_are_the_models(zoo_session):
    trace = zoo_session.trace(PROMPT)
    logits = reference(zoo_session, trace).logits[0].float()
    probs = torch.softmax(logits, -1)
    result = top_k(trace, zoo_session.tokenizer, -1, 5)
    expected = probs[-1].topk(5)
    np.testing.assert_array_equal(result.token_ids, expected.indices.numpy())
    np.testing.assert_allclose(result.probs, expected.values.numpy(), atol=1e-5)
    sampled = process_logits(trace.last_logits, SamplingSettings(temperature=1.0), tokenizer=zoo_session.tokenizer)
    np.testing.assert_allclose(np.sort(sampled.processed_probs)[::-1][:5], expected.values.numpy(), atol=1e-5)


def test_patterns_and_residuals_equal_transformers_outputs(zoo_session):
    trace = zoo_session.trace(PROMPT)
    out = reference(zoo_session, trace)
    for layer in range(trace.n_layers):
        mine = zoo_session.layer_patterns(trace, layer).float()
        np.testing.assert_allclose(mine.numpy(), out.attentions[layer][0].float().numpy(), atol=1e-5)
    hidden = torch.stack([h[0] for h in out.hidden_states[:-1]])  # [n_layers, pos, d_model]
    np.testing.assert_allclose(trace.resid[:-1].float().numpy(), hidden.float().numpy(), atol=1e-5)


def test_dimensions_are_the_configs(zoo_arch, zoo_session):
    dims = zoo_session.dims
    trace = zoo_session.trace(PROMPT)
    config = tiny_config(zoo_arch)
    assert dims.n_kv_heads == EXPECTED_KV_HEADS.get(zoo_arch, dims.n_heads)
    assert trace.n_kv_heads == dims.n_kv_heads and trace.n_layers == len(zoo_session.parts.layers)
    k_proj_rows = _key_rows(zoo_session.model, dims)
    if k_proj_rows is not None:
        assert k_proj_rows == dims.d_kv
    assert dims.d_vocab == zoo_session.model.get_output_embeddings().weight.shape[0] >= config.vocab_size
    assert zoo_session.n_params == sum(p.numel() for p in zoo_session.model.parameters())


def _key_rows(model, dims) -> int | None:
    """Rows of the first layer's key projection when it is a separate Linear: the real KV width."""
    for name, module in model.named_modules():
        if name.endswith(("k_proj", "key")) and isinstance(module, torch.nn.Linear) and ".0." in f".{name}":
            return module.out_features
    return None


def test_kv_cache_formula_matches_a_real_cache(zoo_session):
    """The formula the Architecture and KV-cache tabs show equals the bytes transformers' cache really holds."""
    ids = torch.as_tensor(zoo_session.ids_of(PROMPT))[None]
    with torch.inference_mode():
        cache = zoo_session.model(input_ids=ids, use_cache=True).past_key_values
    tensors = [t for layer in getattr(cache, "layers", []) for t in (layer.keys, layer.values) if t is not None]
    if not tensors:
        pytest.skip(f"{type(cache).__name__} keeps no per-layer key/value tensors")
    measured = sum(t.numel() * t.element_size() for t in tensors)
    assert measured == kv_cache_bytes(zoo_session.dims, ids.shape[1], 1, tensors[0].element_size(), sliding=True,
                                     as_cached=True)


def test_every_view_builds(zoo_session):
    """What each tab computes from one trace, on every architecture."""
    session = zoo_session
    trace = session.trace(PROMPT)
    tokens = tokenization(trace)
    assert len(tokens.chips) == trace.n_pos
    grid = lens_grid(trace, session.tokenizer, session.lens_top(trace))
    assert grid.top_probs.shape == (trace.n_layers + 1, trace.n_pos)
    target_trajectory(trace, session.tokenizer, session.lens_log_probs(trace, 1), 1)
    patterns = session.layer_patterns(trace, trace.n_layers - 1)
    head_pattern(trace, patterns, trace.n_layers - 1, trace.n_heads - 1)
    for metric in METRICS:
        assert metric_grid(trace, metric).shape == (trace.n_layers, trace.n_heads)
    report = session.architecture()
    assert report is not None
    steps = list(session.generate_steps(PROMPT, 3))
    greedy = session.model.generate(torch.as_tensor(trace.token_ids)[None], max_new_tokens=3, do_sample=False)
    assert [s.token_id for s in steps] == greedy[0, trace.n_pos:].tolist()


def test_a_non_transformer_is_refused_with_a_reason():
    model, tokenizer = tiny_model("mamba"), tiny_tokenizer()
    with pytest.raises(ValueError, match="not supported|may not be a transformer"):
        ModelSession(model, tokenizer, source="tiny-mamba")


def test_a_readout_the_app_cannot_reproduce_disables_the_lens_with_the_measured_diff():
    """A model that rescales its logits after the LM head in a way no config names: the lens must say so."""
    model = tiny_model("llama")
    handle = model.register_forward_hook(lambda module, args, out: out.__setitem__("logits", out.logits * 3 + 1))
    try:
        session = ModelSession(model, tiny_tokenizer(), source="tiny-llama-rescaled")
        trace = session.trace(PROMPT)
    finally:
        handle.remove()
    assert not session.checks.lens.ok and session.checks.lens.max_diff > 1e-3
    assert "logit lens is unavailable for LlamaForCausalLM" in session.checks.lens.message
    assert trace.lens_unavailable == session.checks.lens.message
    with pytest.raises(ValueError, match="logit lens is unavailable"):
        session.lens_log_probs(trace, 0)
    with pytest.raises(ValueError, match="logit lens is unavailable"):
        session.lens_top(trace)
    assert session.checks.attention.ok and session.checks.resid.ok  # the other views stay available
