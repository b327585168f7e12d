"""Attention figures: one head's heatmap, all heads of a layer, and the layer x head summary grid."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from visualizer.analysis.attention import METRICS, HeadPattern
from visualizer.figures.common import base_layout, index_axis, plotly_text

MASKED = np.nan  # the causal mask: drawn as the grey background, never as a weight


def _masked(weights: np.ndarray) -> np.ndarray:
    shown = weights.astype(np.float32).copy()
    shown[np.triu_indices_from(shown, k=1)] = MASKED  # [query_pos, key_pos]
    return shown


def head_heatmap(pattern: HeadPattern) -> go.Figure:
    labels = [plotly_text(label) for label in pattern.token_labels]
    n = len(labels)
    queries = np.repeat(np.array(labels, dtype=object)[:, None], n, axis=1)
    keys = np.repeat(np.array(labels, dtype=object)[None, :], n, axis=0)
    fig = go.Figure(go.Heatmap(
        z=_masked(pattern.weights), x=list(range(n)), y=list(range(n)), colorscale="Viridis", zmin=0,
        customdata=np.dstack([queries, keys]), colorbar=dict(title="weight"),
        hovertemplate="query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>"
                      "weight %{z:.4f}<extra></extra>"))
    fig.update_xaxes(title="key (attended to)", **index_axis(pattern.token_labels), side="bottom")
    fig.update_yaxes(title="query (attending)", autorange="reversed", **index_axis(pattern.token_labels))
    fig.update_layout(plot_bgcolor="#d9d9d9")  # masked (future) cells show this grey
    return base_layout(fig, plotly_text(pattern.description), height=min(900, max(420, 140 + 14 * n)))


def layer_heads_figure(weights: np.ndarray, labels: list[str], layer: int, kv_of_head: list[int]) -> go.Figure:
    """Small multiples: every head of one layer. weights: [head, query_pos, key_pos]."""
    n_heads = weights.shape[0]
    cols = min(8, n_heads)
    rows = math.ceil(n_heads / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.04,
                        subplot_titles=[f"h{h} (kv {kv_of_head[h]})" for h in range(n_heads)])
    for head in range(n_heads):
        fig.add_trace(go.Heatmap(z=_masked(weights[head]), coloraxis="coloraxis",
                                 hovertemplate=f"head {head}<br>query %{{y}} key %{{x}}<br>%{{z:.3f}}"
                                               "<extra></extra>"),
                      row=head // cols + 1, col=head % cols + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0), plot_bgcolor="#d9d9d9")
    fig.update_annotations(font_size=10)
    return base_layout(fig, f"Layer {layer}: all {n_heads} heads (rows = queries, columns = keys)",
                       height=90 + 190 * rows)


def summary_grid_figure(grid: np.ndarray, metric: str) -> go.Figure:
    """grid: [layer, head] values of one metric; click a cell to open that head."""
    n_layers, n_heads = grid.shape
    fig = go.Figure(go.Heatmap(
        z=grid, x=list(range(n_heads)), y=list(range(n_layers)), colorscale="Magma",
        colorbar=dict(title=metric.replace("_", " ")),
        hovertemplate="layer %{y}, head %{x}<br>" + metric.replace("_", " ") + " %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title="head", dtick=1 if n_heads <= 16 else 4)
    fig.update_yaxes(title="layer", dtick=1 if n_layers <= 16 else 4, autorange="reversed")
    fig.update_traces(xgap=1, ygap=1)
    return base_layout(fig, f"Every head, one number: {METRICS[metric].split(':')[0]}",
                       height=max(300, 80 + 18 * n_layers))
