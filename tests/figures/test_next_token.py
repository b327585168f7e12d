"""Top-k bars of the Next-token tab, built from a real trace of a tiny model."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from tests.conftest import make_tiny_session
from visualizer.analysis.next_token import top_k
from visualizer.figures.next_token import top_k_figure

PROMPT = "The <b>capital</b> of France is"


@pytest.fixture(scope="module")
def session_and_trace():
    session = make_tiny_session("llama")
    return session, session.trace(PROMPT)


@pytest.mark.parametrize("pos", [-1, 2])
def test_top_k_bars_are_the_analysis_result(session_and_trace, pos):
    session, trace = session_and_trace
    result = top_k(trace, session.tokenizer, pos, 5)
    fig = top_k_figure(result)
    (bar,) = fig.data
    assert bar["type"] == "bar" and bar["orientation"] == "h"
    np.testing.assert_array_equal(bar["x"], result.probs[::-1])  # the most likely token drawn at the top
    assert [row[0] for row in bar["customdata"]] == result.token_ids[::-1]
    assert bar["y"][-1].startswith("1. ") and len(bar["y"]) == 5
    assert bar["hovertemplate"].startswith("%{y}<br>id %{customdata[0]}<br>p = %{x:.4f}")
    assert fig.layout["xaxis"]["title"]["text"] == "probability"
    assert fig.layout["xaxis"]["range"][1] <= 1.0
    assert f"position {result.pos}" in fig.layout["title"]["text"] and "nats" in fig.layout["title"]["text"]
    assert fig.layout["height"] == 120 + 28 * 5


def test_token_text_is_escaped():
    session = make_tiny_session("gpt2")
    trace = session.trace(PROMPT)
    pos = next(i for i, text in enumerate(trace.token_texts) if "<" in text)
    fig = top_k_figure(top_k(trace, session.tokenizer, pos, 3))  # the bars after the "<" token
    assert "&lt;" in fig.layout["title"]["text"] and "<b>" not in fig.layout["title"]["text"]


def test_json_is_what_plotly_sends(session_and_trace):
    session, trace = session_and_trace
    fig = top_k_figure(top_k(trace, session.tokenizer, -1, 7))
    assert json.loads(fig.to_json()) == json.loads(fig.to_figure().to_json())


def test_chips_show_their_top_next_tokens_on_hover(session_and_trace):
    from visualizer.analysis.next_token import tokenization, top_next_summaries
    from visualizer.figures.next_token import token_chips_html

    session, trace = session_and_trace
    lines = top_next_summaries(trace, session.tokenizer, 5)
    html_text = token_chips_html(tokenization(trace), lines)
    assert html_text.count("next: ") == trace.n_pos
    assert html.escape(f"next: {lines[-1]}") in html_text
