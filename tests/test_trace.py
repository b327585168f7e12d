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
    lens_top = session.lens_top(trace)
    np.testing.assert_array_equal(lens_top.ids[-1], ref.logits[0].argmax(-1)[lens_top.first_pos:].numpy())


def test_lens_grid_of_a_long_prompt_covers_its_last_positions_with_exact_probabilities():
    from tests.conftest import make_tiny_session
    from visualizer.analysis.logit_lens import lens_grid

    session = make_tiny_session("llama")
    ids = [int(i) for i in torch.arange(100) * 7 % 300 + 3]  # 100 tokens: more than the grid's columns
    trace = session.trace(ids)
    with torch.inference_mode():
        logits = session.model(torch.tensor([ids])).logits[0].float()  # [pos, d_vocab]
    lens = session.lens_top(trace)
    width = session.trace_options.lens_positions
    first = 100 - width
    assert lens.first_pos == first and lens.ids.shape == (trace.n_layers + 1, width)
    probs = torch.softmax(logits[first:], -1).max(-1)
    np.testing.assert_array_equal(lens.ids[-1], probs.indices.numpy())
    np.testing.assert_allclose(lens.probs[-1], probs.values.numpy(), atol=1e-5)
    grid = lens_grid(trace, session.tokenizer, lens)
    assert grid.first_pos == first and grid.column_labels == trace.token_labels()[first:]


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


def test_top_k_rows_equals_torch_topk_also_with_rows_of_few_finite_values():
    from visualizer.trace import top_k_rows

    generator = torch.Generator().manual_seed(0)
    values = torch.randn(7, 3072, generator=generator)
    values[3, 10:] = float("-inf")  # fewer finite values than k: padding must not win
    for k in (1, 5, 50):
        expected = values.topk(k, dim=-1)
        got_values, got_ids = top_k_rows(values, k)
        torch.testing.assert_close(got_values, expected.values, rtol=0, atol=0)
        finite = torch.isfinite(expected.values)
        assert torch.equal(got_ids[finite], expected.indices[finite])
        assert int(got_ids.max()) < values.shape[-1]


def test_row_argmax_equals_torch_argmax_with_ties_and_any_width():
    from visualizer.trace import row_argmax

    generator = torch.Generator().manual_seed(0)
    for width in (3, 255, 256, 3072, 3100, 49152):
        values = torch.randn(9, width, generator=generator)
        values[1] = 0.0  # all tied: the first index
        values[2, width // 3] = values[2, -1] = 50.0  # two maxima in different blocks
        values[3, :] = float("-inf")
        values[3, width // 2] = 1.0
        assert torch.equal(row_argmax(values), values.argmax(-1)), width


def test_the_models_own_top1_row_breaks_ties_to_the_lowest_id_as_argmax():
    from types import SimpleNamespace

    from visualizer.trace import output_top1

    trace = SimpleNamespace(topk_ids=np.array([[9, 4, 7], [2, 8, 1], [6, 3, 5]]),
                            topk_probs=np.array([[0.4, 0.4, 0.2], [0.5, 0.3, 0.2], [0.3, 0.3, 0.3]], np.float32))
    ids, probs = output_top1(trace, 0)
    assert ids.tolist() == [4, 2, 3] and probs.tolist() == pytest.approx([0.4, 0.5, 0.3])
    assert output_top1(trace, 2)[0].tolist() == [3]


def test_lens_of_every_layer_equals_that_layer_read_out_on_its_own(traced):
    """The lens runs all layers' rows through the head in chunks; each row must be what one layer alone gives."""
    from visualizer import trace as trace_module

    session, trace, ref = traced
    lens = session.lens_top(trace)
    first = lens.first_pos
    with torch.inference_mode():
        for layer in range(trace.n_layers):  # hidden_states[-1] is after the final norm in most models
            logits = session.parts.unembed(ref.hidden_states[layer][0, first:]).float()
            np.testing.assert_array_equal(lens.ids[layer], logits.argmax(-1).numpy())
            np.testing.assert_allclose(lens.probs[layer], logits.softmax(-1).max(-1).values.numpy(),
                                       rtol=1e-5, atol=1e-6)
    previous = trace_module.LENS_CHUNK_BYTES
    try:  # three rows per chunk: chunk edges fall inside layers
        trace_module.LENS_CHUNK_BYTES = 3 * 4 * trace.dims.d_vocab
        chunked = trace_module.build_lens_top(session.parts, trace.resid[:, first:], first)
    finally:
        trace_module.LENS_CHUNK_BYTES = previous
    np.testing.assert_array_equal(chunked.ids, lens.ids)
    np.testing.assert_allclose(chunked.probs, lens.probs, rtol=1e-5, atol=1e-6)


def test_the_lens_grid_is_computed_once_per_trace_and_only_when_asked(tiny_session):
    import threading

    calls = []
    compute = tiny_session._compute_lens_top
    tiny_session._compute_lens_top = lambda resid, first: calls.append(1) or compute(resid, first)
    trace = tiny_session.trace(PROMPT)
    assert calls == []  # a trace alone runs no lens
    results = []
    threads = [threading.Thread(target=lambda: results.append(tiny_session.lens_top(trace))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)
    assert tiny_session.lens_top(tiny_session.trace(PROMPT)) is results[0]


def test_concurrent_requests_for_the_lens_at_one_position_compute_it_once(tiny_session):
    import threading

    calls = []
    compute = tiny_session._lens_log_probs
    tiny_session._lens_log_probs = lambda resid: calls.append(1) or compute(resid)
    trace = tiny_session.trace(PROMPT)
    results = []
    threads = [threading.Thread(target=lambda: results.append(tiny_session.lens_log_probs(trace, 2)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)


def test_a_lens_finished_by_another_request_between_the_checks_is_returned_as_is(tiny_session):
    """The cache is read before and again inside the single flight; a tensor found the second time is returned
    (a truth test on it would raise for a multi-element tensor)."""
    trace = tiny_session.trace(PROMPT)
    expected = tiny_session.lens_log_probs(trace, 1)
    cache = tiny_session._lens_cache
    real_get, reads = cache.get, []

    def get(key):
        reads.append(key)
        return None if len(reads) == 1 else real_get(key)  # missed at first, there by the second look

    cache.get = get
    assert tiny_session.lens_log_probs(trace, 1) is expected and len(reads) == 2
