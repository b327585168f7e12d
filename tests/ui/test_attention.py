"""Attention handlers called directly with a real tiny session (grouped-query llama: 4 heads, 2 KV heads)."""

import numpy as np
import pytest

from tests.conftest import make_tiny_session
from visualizer.analysis.attention import head_pattern, metric_grid
from visualizer.ui.common import stepped
from visualizer.ui.tabs import attention as tab

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def test_show_attention_fills_heatmaps_grid_and_note(session):
    out = tab.show_attention(session, PROMPT, None, 1, 2, False, "entropy")
    assert isinstance(out, tab.AttentionOutputs)
    assert out.heatmap is not None and out.all_heads is not None and out.grid is not None
    assert "layer 1, head 2" in out.note


def test_all_heads_are_the_analysis_patterns(session):
    trace = session.trace(PROMPT)
    out = tab.show_head(session, PROMPT, None, 0, 0, False)
    expected = head_pattern(trace, session.layer_patterns(trace, 0), 0, 3).weights
    assert out.all_heads is not None and expected.shape == (trace.n_pos, trace.n_pos)
    data = tab.attention_data(session, PROMPT, 0)
    assert len(data["pattern"]) == trace.n_heads and data["tokens"] == trace.token_labels()
    assert np.allclose(data["pattern"][3], expected, atol=1e-6)
    assert np.allclose(np.asarray(data["pattern"]).sum(-1), 1, atol=1e-4)  # every row sums to 1


def test_metric_and_grid_click(session):
    trace = session.trace(PROMPT)
    out = tab.show_metric(session, PROMPT, None, "sink")
    assert out.grid is not None and out.heatmap == tab.AttentionOutputs().heatmap
    assert metric_grid(trace, "sink").shape == (trace.n_layers, trace.n_heads)
    clicked = tab.open_clicked_cell(session, PROMPT, None, "1,3,12345")
    assert (clicked.layer, clicked.head, clicked.mean) == (1, 3, False) and "head 3" in clicked.note
    with pytest.raises(ValueError, match="layer,head"):
        tab.open_clicked_cell(session, PROMPT, None, "nonsense")
    with pytest.raises(ValueError, match="metric"):
        tab.show_metric(session, PROMPT, None, "nope")


def test_a_stored_sequence_of_another_prompt_is_ignored(session):
    long_prompt = "word " * 200  # over the session's limit
    stale = stepped(PROMPT, [int(i) for i in session.trace(PROMPT).token_ids], [[1]])
    with pytest.raises(ValueError, match="limit|tokens"):
        tab.show_attention(session, long_prompt, stale, 0, 0, False, "sink")


def test_bertviz_views_are_sandboxed_iframes(session):
    out = tab.bertviz_views(session, PROMPT, None, 0)
    assert "<iframe" in out.bertviz_head and "<iframe" in out.bertviz_model and "Head view" in out.bertviz_note


def test_induction_example_opens_the_measured_head(session):
    from visualizer.analysis.examples import examples_for

    example = examples_for(session, "induction")
    out = tab.induction_example(session)
    layer, head, _ = example.induction
    assert out.prompt == example.prompt.text and (out.layer, out.head, out.mean) == (layer, head, False)
    assert out.metric == "previous_token" and out.grid is not None and out.heatmap is not None
    assert example.summary() in out.induction_note
    assert f"layer {layer}, head {head}" in out.selection
    assert out.marker == tab.made_from(example.prompt.text, None)
