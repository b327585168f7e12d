"""Attention figures from a real trace of a tiny model, and the fast per-head metrics against the plain formulas."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_session
from visualizer.analysis.attention import METRICS, head_metrics, head_pattern, kv_head_of, metric_grid
from visualizer.figures.attention import head_heatmap, layer_heads_figure, summary_grid_figure

PROMPT = "The capital of <France> is Paris."


@pytest.fixture(scope="module")
def traced():
    session = make_tiny_session("llama")  # 4 query heads share 2 key/value heads
    trace = session.trace(PROMPT)
    return session, trace, session.layer_patterns(trace, 1)  # [head, query_pos, key_pos]


@pytest.mark.parametrize("head", [2, None])
def test_head_heatmap_shows_the_weights_under_the_causal_mask(traced, head):
    _, trace, patterns = traced
    shown = head_pattern(trace, patterns, 1, head)
    fig = head_heatmap(shown)
    (heatmap,) = fig.data
    z = heatmap["z"]  # [query_pos, key_pos]
    below = np.tril(np.ones_like(z, dtype=bool))
    np.testing.assert_array_equal(z[below], shown.weights[below])
    assert np.isnan(z[~below]).all()  # the future is masked, drawn as the grey background
    assert fig.layout["plot_bgcolor"] == "#d9d9d9"
    assert heatmap["customdata"].shape == (trace.n_pos, trace.n_pos, 2)
    assert heatmap["hovertemplate"].startswith("query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}")
    assert fig.layout["xaxis"]["title"]["text"] == "key (attended to)"
    assert fig.layout["yaxis"]["title"]["text"] == "query (attending)"
    assert fig.layout["yaxis"]["autorange"] == "reversed"
    assert not any("<" in label for label in fig.layout["xaxis"]["ticktext"])  # token text escaped
    assert ("mean over" in fig.layout["title"]["text"]) == (head is None)


def test_masked_cells_are_sent_as_nan_in_the_typed_array(traced):
    _, trace, patterns = traced
    sent = json.loads(head_heatmap(head_pattern(trace, patterns, 1, 0)).to_json())["data"][0]
    assert sent["z"]["dtype"] == "f4"  # plotly.js reads NaN in a typed array as a gap


def test_small_multiples_one_heatmap_per_head(traced):
    _, trace, patterns = traced
    kv = [kv_head_of(h, trace.n_heads, trace.n_kv_heads) for h in range(trace.n_heads)]
    fig = layer_heads_figure(patterns.float().numpy(), trace.token_labels(), 1, kv)
    assert len(fig.data) == trace.n_heads
    assert [t["xaxis"] for t in fig.data] == ["x", "x2", "x3", "x4"]
    assert [t["yaxis"] for t in fig.data] == ["y", "y2", "y3", "y4"]
    for head, trace_json in enumerate(fig.data):
        below = np.tril(np.ones((trace.n_pos, trace.n_pos), dtype=bool))
        np.testing.assert_array_equal(trace_json["z"][below], patterns[head].numpy()[below])
        assert trace_json["hovertemplate"].startswith(f"head {head}<br>")
        assert trace_json["coloraxis"] == "coloraxis"
    assert [a["text"] for a in fig.layout["annotations"]] == ["h0 (kv 0)", "h1 (kv 0)", "h2 (kv 1)", "h3 (kv 1)"]
    assert fig.layout["yaxis3"]["autorange"] == "reversed" and fig.layout["xaxis4"]["showticklabels"] is False
    assert fig.layout["coloraxis"]["cmin"] == 0


def test_small_multiples_layouts_are_independent(traced):
    _, trace, patterns = traced
    args = (patterns.float().numpy(), trace.token_labels(), 1, [0, 0, 1, 1])
    layer_heads_figure(*args).layout["annotations"][0]["text"] = "edited"
    layer_heads_figure(*args).layout["xaxis"]["showticklabels"] = True
    again = layer_heads_figure(*args).layout
    assert again["annotations"][0]["text"] == "h0 (kv 0)" and again["xaxis"]["showticklabels"] is False


@pytest.mark.parametrize("metric", list(METRICS))
def test_summary_grid_is_the_metric_grid(traced, metric):
    _, trace, _ = traced
    grid = metric_grid(trace, metric)
    fig = summary_grid_figure(grid, metric)
    (heatmap,) = fig.data
    np.testing.assert_array_equal(heatmap["z"], grid)  # [layer, head]
    assert heatmap["x"] == list(range(trace.n_heads)) and heatmap["y"] == list(range(trace.n_layers))
    assert heatmap["colorbar"]["title"]["text"] == metric.replace("_", " ")
    assert heatmap["hovertemplate"].startswith("layer %{y}, head %{x}<br>")
    assert fig.layout["xaxis"]["title"]["text"] == "head" and fig.layout["yaxis"]["title"]["text"] == "layer"


def test_json_is_what_plotly_sends(traced):
    _, trace, patterns = traced
    figures = [head_heatmap(head_pattern(trace, patterns, 1, 1)),
               layer_heads_figure(patterns.float().numpy(), trace.token_labels(), 1, [0, 0, 1, 1]),
               summary_grid_figure(metric_grid(trace, "entropy"), "entropy")]
    for fig in figures:
        assert json.loads(fig.to_json()) == json.loads(fig.to_figure().to_json())


# ---------------------------------------------------------------------------------------------------
# head_metrics: the blocked implementation against the plain formulas it replaced (copied here verbatim)
# ---------------------------------------------------------------------------------------------------

def reference_head_metrics(pattern: torch.Tensor) -> dict[str, torch.Tensor]:
    n_heads, n_pos, _ = pattern.shape
    p = pattern.float()
    later = slice(1, None) if n_pos > 1 else slice(None)
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    offsets = torch.arange(n_pos, device=p.device)
    distance = (p * (offsets[:, None] - offsets[None, :]).clamp_min(0)).sum(-1)
    if n_pos > 1:
        previous = torch.diagonal(p, offset=-1, dim1=1, dim2=2)
    else:
        previous = torch.zeros(n_heads, 1, device=p.device)
    return {"entropy": entropy[:, later].mean(-1), "sink": p[:, later, 0].mean(-1),
            "previous_token": previous.mean(-1), "distance": distance[:, later].mean(-1)}


def causal_pattern(n_heads: int, n_pos: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_heads, n_pos, n_pos, generator=generator) * 4  # peaked and flat heads alike
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), 1)
    return scores.masked_fill(future, float("-inf")).softmax(-1).to(dtype)  # [head, query_pos, key_pos]


@pytest.mark.parametrize(("n_heads", "n_pos"), [(1, 1), (3, 2), (5, 17), (6, 300), (2, 513)])
def test_head_metrics_equal_the_plain_formulas(n_heads, n_pos):
    pattern = causal_pattern(n_heads, n_pos, seed=n_pos)
    fast, plain = head_metrics(pattern), reference_head_metrics(pattern)
    assert fast.keys() == plain.keys()
    for name in plain:
        assert fast[name].shape == (n_heads,) and fast[name].dtype == torch.float32
        # the distance is q * row_sum - sum_k k * p[q, k]: float32 rounding of sums of up to n_pos terms
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-5, atol=1e-5 * max(1, n_pos / 100), msg=name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_head_metrics_of_half_precision_patterns(dtype):
    pattern = causal_pattern(4, 260, seed=1, dtype=dtype)
    fast, plain = head_metrics(pattern), reference_head_metrics(pattern)
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-5, atol=1e-4, msg=name)


def test_head_metrics_of_one_hot_heads():
    n = 6
    previous = torch.zeros(1, n, n)
    previous[0, 0, 0] = 1
    previous[0, torch.arange(1, n), torch.arange(n - 1)] = 1
    sink = torch.zeros(1, n, n)
    sink[0, :, 0] = 1
    metrics = head_metrics(torch.cat([previous, sink]))
    torch.testing.assert_close(metrics["previous_token"], torch.tensor([1.0, 0.2]))
    torch.testing.assert_close(metrics["sink"], torch.tensor([0.2, 1.0]))
    torch.testing.assert_close(metrics["entropy"], torch.zeros(2))
    torch.testing.assert_close(metrics["distance"], torch.tensor([1.0, 3.0]))  # mean of 1..5 for the sink head


def test_summary_grid_outlines_the_selected_cell_with_its_value(traced):
    _, trace, _ = traced
    grid = metric_grid(trace, "sink")
    layout = summary_grid_figure(grid, "sink", selected=(1, 3)).to_dict()["layout"]
    (box,) = layout["shapes"]
    assert (box["x0"], box["x1"], box["y0"], box["y1"]) == (2.5, 3.5, 0.5, 1.5)
    (label,) = layout["annotations"]
    assert (label["x"], label["y"], label["text"]) == (3, 1, f"{grid[1, 3]:.3f}")
    assert "shapes" not in summary_grid_figure(grid, "sink").to_dict()["layout"]
