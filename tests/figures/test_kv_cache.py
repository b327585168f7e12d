"""Figures and tables of the KV-cache tab: traces, axes, partial (streamed) data, escaping."""

from __future__ import annotations

import functools

import numpy as np
import plotly.graph_objects as go
import pytest

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.analysis.kv_cache import (
    CACHED,
    MODES,
    UNCACHED,
    OutputComparison,
    SweepResult,
    fit_polynomial,
    speed_phrase,
)
from visualizer.figures.kv_cache import (
    LABELS,
    LAYER_HEADERS,
    SUMMARY_HEADERS,
    cache_inspector_html,
    cache_memory_figure,
    format_bytes,
    latency_figure,
    layer_rows,
    outputs_html,
    race_latency_figure,
    repeats_figure,
    summary_html,
    summary_rows,
    sweep_figure,
    totals_figure,
)
from visualizer.runs.kv_race import race_kv_cache
from visualizer.runs.kv_sweep import sweep_kv_cache
from visualizer.runs.timing import run_to_end

NASTY = "<b>x</b> & \"y\""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine extra threads spin against other programs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def race(arch: str = "llama", n_new_tokens: int = 8, n_repeats: int = 3):
    ids = tiny_tokenizer()("The capital of France is")["input_ids"]
    return run_to_end(race_kv_cache(tiny_model(arch), ids, n_new_tokens, n_repeats, tokenizer=tiny_tokenizer(),
                                    warmup_tokens=1))


@functools.cache
def sweep_updates():
    ids = tiny_tokenizer()("The capital of France is")["input_ids"]
    return list(sweep_kv_cache(tiny_model("llama"), ids, [4, 8, 12], 3, warmup_tokens=1))


def traces_named(fig: go.Figure, fragment: str) -> list:
    return [t for t in fig.data if fragment in (t.name or "")]


# ----- live latency chart ---------------------------------------------------------------------------

def test_latency_figure_draws_partial_streams_on_a_fixed_axis():
    partial = {CACHED: ((0.010, 0.002, 0.002), (0.011,)), UNCACHED: ((0.012, 0.004),)}
    fig = latency_figure(partial, n_new_tokens=20)
    assert fig.layout.xaxis.range == (0.5, 20.5)  # does not jump while tokens arrive
    assert fig.layout.xaxis.title.text == "new token number" and fig.layout.yaxis.title.text == "latency (ms)"
    cached = traces_named(fig, LABELS[CACHED])
    bold = [t for t in cached if t.showlegend is not False]
    assert len(bold) == 1 and list(bold[0].y) == pytest.approx([11.0])  # the latest (running) repeat
    faint = [t for t in cached if t.showlegend is False]
    assert len(faint) == 1 and list(faint[0].y) == pytest.approx([10.0, 2.0, 2.0])
    uncached = [t for t in traces_named(fig, LABELS[UNCACHED]) if t.showlegend is not False]
    assert list(uncached[0].x) == [1, 2]


def test_latency_figure_before_the_first_token():
    fig = latency_figure({CACHED: (), UNCACHED: ()}, n_new_tokens=5)
    assert isinstance(fig, go.Figure)
    assert all(len(t.x) == 0 for t in fig.data)


def test_finished_race_shows_medians_each_repeat_and_trends():
    result = race()
    fig = race_latency_figure(result)
    for mode in MODES:
        timing = result.mode(mode)
        median = [t for t in traces_named(fig, LABELS[mode] + " (median)")]
        assert len(median) == 1
        np.testing.assert_allclose(median[0].y, timing.median_latencies_s * 1e3)
        assert len([t for t in fig.data if t.legendgroup == mode and t.showlegend is False]) == 3
        trend = traces_named(fig, f"trend {mode}")
        assert len(trend) == 1 and "µs per token" in trend[0].name
    assert "median of 3 repeats" in fig.layout.title.text


# ----- totals, repeats, summary ---------------------------------------------------------------------

def test_totals_figure_stacks_prefill_and_decode():
    result = race()
    fig = totals_figure(result)
    assert fig.layout.barmode == "stack" and len(fig.data) == 2
    prefill, decode = fig.data
    for index, mode in enumerate(MODES):
        assert prefill.x[index] == pytest.approx(np.median(result.mode(mode).prefill_s))
        assert decode.x[index] == pytest.approx(np.median(result.mode(mode).decode_s))
    assert speed_phrase(result.speedup) in fig.layout.title.text


def test_repeats_figure_has_every_repeat():
    result = race()
    fig = repeats_figure(result)
    assert [t.type for t in fig.data] == ["box", "box"]
    for trace, mode in zip(fig.data, MODES, strict=True):
        np.testing.assert_allclose(trace.y, result.mode(mode).totals_s)


def test_summary_lists_both_modes_speedup_and_warning():
    result = race()
    rows = summary_rows(result)
    assert len(rows) == 2 and all(len(r) == len(SUMMARY_HEADERS) for r in rows)
    text = summary_html(result)
    assert f"{speed_phrase(result.speedup)} with the cache" in text  # "faster" or "slower", by the result
    assert f"{result.speedup:.2f}×" in text
    assert "mean ± std. dev. of 3 runs" in text
    assert "without exclusive use" in text  # this race ran without a lock: the page must say so


# ----- sweep ----------------------------------------------------------------------------------------

def test_sweep_figure_shows_points_and_fitted_shapes():
    result = sweep_updates()[-1].result
    fig = sweep_figure(result)
    for mode in MODES:
        points = [t for t in fig.data if t.name == LABELS[mode]]
        assert list(points[0].x) == [4, 8, 12]
        np.testing.assert_allclose(points[0].y, result.medians_s(mode))
    assert len(traces_named(fig, "linear fit")) == 1 and len(traces_named(fig, "quadratic fit")) == 1
    assert fig.layout.xaxis.title.text == "new tokens N"
    assert "median of 3 repeats" in fig.layout.title.text
    for trace in traces_named(fig, "fit"):
        assert min(trace.y) >= 0  # a fitted total time never dips below 0 s


def test_sweep_hover_gives_median_every_repeat_and_spread_and_flags_a_busy_machine():
    result = sweep_updates()[-1].result
    fig = sweep_figure(result)
    cached = [t for t in fig.data if t.name == LABELS[CACHED]][0]
    assert "median" in cached.hovertemplate and "spread" in cached.hovertemplate
    assert cached.customdata.shape == (3, 4) and list(cached.customdata[:, 3]) == [3, 3, 3]
    np.testing.assert_allclose(cached.customdata[:, 2], result.spreads(CACHED) * 100)
    assert cached.text[0].count(",") == 2  # all three repeats listed
    lengths = np.array([10, 20, 30])
    totals = {CACHED: np.array([[1.0, 1.9, 1.1], [2.0, 2.1, 2.0], [3.0, 3.1, 3.0]]),
              UNCACHED: np.array([[1.2, 1.3, 1.2], [3.0, 3.1, 3.0], [6.0, 6.2, 6.1]])}
    busy = SweepResult(5, lengths, totals, {m: fit_polynomial(np.repeat(lengths, 3), totals[m].ravel(), 1)
                                            for m in MODES}, result.conditions)
    notes = [a.text for a in sweep_figure(busy).layout.annotations]
    assert any("too busy" in note for note in notes)
    assert not any("too busy" in (a.text or "") for a in fig.layout.annotations) or result.busy_warning


def test_sweep_figure_from_a_streamed_update():
    updates = [u for u in sweep_updates() if u.phase == "timing"]
    fig = sweep_figure(updates[7])  # N = 4 done (3 repeats x 2 modes), N = 8 started: uncached, then cached
    assert not traces_named(fig, "fit")
    cached = [t for t in fig.data if t.name == LABELS[CACHED]][0]
    assert list(cached.x) == [4, 8]


# ----- cache inspector ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_cache_inspector_shows_shapes_bytes_and_the_formula(arch):
    report = race(arch).cache
    text = cache_inspector_html(report)
    for layer in report.layers:
        assert str(list(layer.key_shape)) in text
    assert "✓ equal" in text and f"{report.measured_bytes:,}" in text
    assert ("grouped-query" in text) == (report.n_kv_heads < report.n_heads)
    rows = layer_rows(report)
    assert len(rows) == report.n_layers and all(len(r) == len(LAYER_HEADERS) for r in rows)
    fig = cache_memory_figure(report)
    assert len(traces_named(fig, "chapter")) == (1 if report.n_kv_heads < report.n_heads else 0)
    marker = traces_named(fig, "measured")[0]
    assert list(marker.x) == [report.n_tokens] and list(marker.y) == [report.measured_bytes]


def test_format_bytes():
    assert format_bytes(393_216) == "384 KiB"
    assert format_bytes(1.5 * 2**30) == "1.5 GiB"
    assert format_bytes(512) == "512 B"


# ----- outputs --------------------------------------------------------------------------------------

def test_outputs_html_escapes_tokens_and_marks_differences():
    comparison = OutputComparison(
        cached_token_ids=[5, 6, 7], uncached_token_ids=[5, 6, 8], cached_token_strs=[NASTY, "a", "b"],
        uncached_token_strs=[NASTY, "a", "c"], identical=False, first_mismatch=2)
    text = outputs_html(comparison)
    assert NASTY not in text and "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;" in text
    assert text.count("2px solid #d62728") == 2  # token 3 in both rows
    assert "differ from new token 3" in text


def test_outputs_html_for_a_real_race():
    text = outputs_html(race().outputs)
    assert "✓ Both modes produced the same 8 tokens." in text
    assert "#d62728" not in text
