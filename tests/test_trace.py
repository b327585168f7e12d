"""Invariants of one trace, on every tiny architecture: the views show what transformers computes."""

import numpy as np
import pytest
import torch

from visualizer.analysis.attention import head_metrics

PROMPT = "The capital of France is Paris. Paris is the capital of"


@pytest.fixture
def traced(tiny_session):
    trace = tiny_session.trace(PROMPT)
    ids = torch.as_tensor(trace.token_ids)[None]
    with torch.inference_mode():
        reference = tiny_session.model(ids, output_attentions=True, output_hidden_states=True)
    return tiny_session, trace, reference


def test_top_k_equals_softmax_of_model_logits(traced):
    _, trace, ref = traced
    probs = torch.softmax(ref.logits[0].float(), -1)  # [pos, d_vocab]
    k = trace.topk_ids.shape[1]
    top = probs.topk(k, -1)
    np.testing.assert_allclose(trace.topk_probs, top.values.numpy(), atol=1e-5)
    chosen = probs.gather(-1, torch.as_tensor(trace.topk_ids))
    np.testing.assert_allclose(trace.topk_probs, chosen.numpy(), atol=1e-5)
    next_probs = probs[:-1].gather(-1, torch.as_tensor(trace.token_ids[1:])[:, None])[:, 0]
    np.testing.assert_allclose(trace.actual_next_probs, next_probs.numpy(), atol=1e-5)


def test_logit_lens_last_layer_equals_model_logits(traced):
    session, trace, ref = traced
    for pos in (0, trace.n_pos // 2, trace.n_pos - 1):
        lens = session.lens_log_probs(trace, pos)  # [layer + 1, d_vocab]
        expected = torch.log_softmax(ref.logits[0, pos].float(), -1)
        torch.testing.assert_close(lens[-1], expected, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(trace.lens_top_ids[-1], ref.logits[0].argmax(-1)[trace.lens_first_pos:].numpy())


def test_lens_grid_of_a_long_prompt_covers_its_last_positions_with_exact_probabilities():
    from tests.conftest import make_tiny_session
    from visualizer.analysis.logit_lens import lens_grid

    session = make_tiny_session("llama")
    ids = [int(i) for i in torch.arange(100) * 7 % 300 + 3]  # 100 tokens: more than the grid's 64 columns
    trace = session.trace(ids)
    with torch.inference_mode():
        logits = session.model(torch.tensor([ids])).logits[0].float()  # [pos, d_vocab]
    assert trace.lens_first_pos == 36 and trace.lens_top_ids.shape == (trace.n_layers + 1, 64)
    probs = torch.softmax(logits[36:], -1).max(-1)
    np.testing.assert_array_equal(trace.lens_top_ids[-1], probs.indices.numpy())
    np.testing.assert_allclose(trace.lens_top_probs[-1], probs.values.numpy(), atol=1e-5)
    grid = lens_grid(trace, session.tokenizer)
    assert grid.first_pos == 36 and grid.column_labels == trace.token_labels()[36:]


def test_residual_stream_order_matches_hidden_states(traced):
    _, trace, ref = traced
    # transformers' last hidden state is already final-normed; all earlier ones are raw block outputs
    for layer in range(trace.n_layers):
        torch.testing.assert_close(trace.resid[layer], ref.hidden_states[layer][0], atol=1e-5, rtol=1e-5)


def test_attention_equals_eager_output_attentions(traced):
    _, trace, ref = traced
    expected = torch.stack([a[0] for a in ref.attentions])  # [layer, head, query_pos, key_pos]
    assert trace.attention_patterns.shape == expected.shape
    torch.testing.assert_close(trace.attention_patterns, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(trace.attention_patterns.sum(-1), torch.ones(expected.shape[:-1]), atol=1e-5,
                               rtol=0)
    assert torch.triu(trace.attention_patterns, diagonal=1).abs().max() == 0


def _direct_metrics(pattern: np.ndarray) -> dict[str, np.ndarray]:
    """The same four metrics written as plain loops, independently of the vectorised code."""
    n_heads, n_pos, _ = pattern.shape
    out = {name: np.zeros(n_heads) for name in ("entropy", "sink", "previous_token", "distance")}
    for h in range(n_heads):
        ent, sink, prev, dist = [], [], [], []
        for q in range(1, n_pos):
            row = pattern[h, q, : q + 1]
            ent.append(-sum(p * np.log(p) for p in row if p > 0))
            sink.append(row[0])
            prev.append(row[q - 1])
            dist.append(sum(p * (q - k) for k, p in enumerate(row)))
        out["entropy"][h], out["sink"][h] = np.mean(ent), np.mean(sink)
        out["previous_token"][h], out["distance"][h] = np.mean(prev), np.mean(dist)
    return out


def test_summary_metrics_match_direct_computation(traced):
    _, trace, ref = traced
    for layer, attentions in enumerate(ref.attentions):
        direct = _direct_metrics(attentions[0].double().numpy())
        for name, values in direct.items():
            np.testing.assert_allclose(trace.attention_metrics[name][layer], values, atol=1e-4, err_msg=name)


def test_head_metrics_on_known_patterns():
    n = 5
    previous = torch.zeros(1, n, n)
    previous[0, 0, 0] = 1
    for q in range(1, n):
        previous[0, q, q - 1] = 1
    metrics = head_metrics(previous)
    assert metrics["previous_token"].item() == pytest.approx(1.0)
    assert metrics["entropy"].item() == pytest.approx(0.0)
    assert metrics["distance"].item() == pytest.approx(1.0)
    uniform = torch.tril(torch.ones(1, n, n))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    expected_entropy = np.mean([np.log(q + 1) for q in range(1, n)])
    assert head_metrics(uniform)["entropy"].item() == pytest.approx(expected_entropy, abs=1e-6)
