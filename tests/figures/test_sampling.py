"""Figures and tables of the Sampling tab: traces, cut lines, escaping of token strings."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.analysis.sampling import SamplingSettings, draw_samples, process_logits
from visualizer.figures.sampling import (
    BATCH_HEADERS,
    CONTINUATION_HEADERS,
    READOUT_HEADERS,
    batch_html,
    batch_rows,
    continuation_rows,
    continuations_html,
    distribution_figure,
    readout_rows,
    readouts_html,
)
from visualizer.runs.sampling import batch_generate, sample_continuations

NASTY = "<b>x</b> & \"y\"\n"


class FakeTokenizer:
    """Decodes every id to a string that must be escaped and made visible."""

    def decode(self, token_ids, skip_special_tokens=False):
        return "".join(NASTY if i % 2 else f" t{i}\t" for i in token_ids)


def result_for(settings: SamplingSettings, seed: int = 0, tokenizer=None):
    logits = torch.randn(320, generator=torch.Generator().manual_seed(seed)) * 1.5
    return process_logits(logits, settings.validated(), tokenizer=tokenizer or FakeTokenizer())


def traces_by_name(fig: go.Figure) -> dict[str, go.BaseTraceType]:
    return {trace.name.split(" (")[0]: trace for trace in fig.data}


def test_distribution_figure_traces_and_cut_lines():
    result = result_for(SamplingSettings(temperature=0.8, top_k=20, top_p=0.5))
    empirical = draw_samples(result, 1000)
    fig = distribution_figure(result, empirical, top_n=30).to_figure()
    traces = traces_by_name(fig)
    assert set(traces) == {"raw", "processed", "cut off", "cumulative probability", "sampled frequency"}
    # every shown token has one raw bar and exactly one processed-or-cut bar
    assert len(traces["raw"].x) == 30
    assert len(traces["processed"].x) + len(traces["cut off"].x) == 30
    assert len(traces["processed"].x) == min(result.n_kept, 30)
    np.testing.assert_allclose(traces["raw"].y, result.raw_probs[result.order[:30]])
    np.testing.assert_allclose(traces["sampled frequency"].y, empirical.freqs[result.order[:30]])
    assert traces["cumulative probability"].yaxis == "y2"
    annotations = " ".join(a.text for a in fig.layout.annotations)
    assert "top-k = 20" in annotations and "p = 0.5" in annotations and f"nucleus of {result.n_kept}" in annotations
    vertical_lines = [s for s in fig.layout.shapes if s.x0 == s.x1]
    assert sorted(s.x0 for s in vertical_lines) == [result.n_kept - 0.5, result.n_after_top_k - 0.5]
    assert fig.layout.yaxis.title.text == "probability" and fig.layout.yaxis2.range == (0, 1.05)


def test_cut_tokens_stay_visible_with_their_probability_before_the_cut():
    result = result_for(SamplingSettings(temperature=1.3, top_k=3))
    fig = distribution_figure(result, top_n=10).to_figure()
    cut = traces_by_name(fig)["cut off"]
    np.testing.assert_allclose(cut.y, result.tempered_probs[result.order[3:10]])
    assert (np.asarray(cut.y) > 0).all()
    assert all(row[5] == "cut by top-k" for row in cut.customdata)


def test_token_labels_are_escaped_in_ticks_and_hovers():
    fig = distribution_figure(result_for(SamplingSettings()), top_n=12).to_figure()
    ticktext = list(fig.layout.xaxis.ticktext)
    assert '&lt;b&gt;x&lt;/b&gt;␣&amp;␣"y"↵' in ticktext  # escaped, whitespace visible
    assert not any("<" in label or "\n" in label for label in ticktext)
    assert any(label.startswith("␣t") and label.endswith("⇥") for label in ticktext)
    hover_labels = {row[1] for trace in fig.data if trace.customdata is not None for row in trace.customdata}
    assert not any("<" in label for label in hover_labels)


def test_greedy_and_cuts_beyond_the_shown_tokens():
    greedy = result_for(SamplingSettings(temperature=0))
    fig = distribution_figure(greedy, top_n=5).to_figure()
    names = traces_by_name(fig)
    assert "cumulative probability" not in names and len(names["processed"].x) == 1
    assert list(names["processed"].y) == [1.0]
    wide = result_for(SamplingSettings(top_k=200))
    annotations = [a["text"] for a in distribution_figure(wide, top_n=10).layout["annotations"]]
    assert any("beyond the first 10" in text for text in annotations)
    assert len(distribution_figure(wide, top_n=10_000).data[0]["x"]) == 320  # clipped to the vocabulary


def test_readouts_rows_and_html():
    result = result_for(SamplingSettings(temperature=0.7, top_p=0.8, seed=4))
    empirical = draw_samples(result, 2000)
    rows = readout_rows(result, empirical)
    assert all(len(row) == len(READOUT_HEADERS) for row in rows)
    text = "\n".join(value for _, value in rows)
    assert f"{result.n_kept} of 320" in text and "nats" in text and "bits" in text
    assert f"{empirical.tv_distance:.4f}" in text
    assert readouts_html(result, empirical).startswith("<table")
    greedy_page = readouts_html(result_for(SamplingSettings(temperature=0)))
    assert "greedy" in greedy_page.lower()


def test_readouts_escape_the_greedy_token():
    logits = torch.zeros(320)
    logits[1] = 5.0  # FakeTokenizer decodes odd ids to the nasty string
    page = readouts_html(process_logits(logits, SamplingSettings(), tokenizer=FakeTokenizer()))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_continuation_and_batch_tables():
    model, tokenizer = tiny_model("gpt2"), tiny_tokenizer()
    step = list(sample_continuations(model, tokenizer, "The <b>capital</b>", SamplingSettings(seed=1), 2, 4))[-1]
    rows = continuation_rows(step)
    assert [row[0] for row in rows] == ["greedy", "sample 1", "sample 2"]
    assert all(len(row) == len(CONTINUATION_HEADERS) for row in rows)
    page = continuations_html(step)
    assert "<b>capital</b>" not in page and "&lt;b&gt;capital&lt;/b&gt;" in page and "done" in page

    batch = batch_generate(model, tokenizer, ["Hi <i>", "The capital of France is"], max_new_tokens=3)
    rows = batch_rows(batch)
    assert all(len(row) == len(BATCH_HEADERS) for row in rows) and rows[0][3] == batch.rows[0].n_pad > 0
    page = batch_html(batch)
    assert "Hi <i>" not in page and "Hi &lt;i&gt;" in page
    assert page.count("mask 0") == sum(row.n_pad for row in batch.rows)


@pytest.mark.parametrize("top_n", [1, 30])
def test_figure_serialises(top_n):
    fig = distribution_figure(result_for(SamplingSettings(top_p=0.9)), top_n=top_n)
    assert json.loads(fig.to_json()) == json.loads(fig.to_figure().to_json())  # what plotly itself would send
