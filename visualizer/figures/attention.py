"""Attention figures: one head's heatmap, all heads of a layer, and the layer x head summary grid."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from plotly.subplots import make_subplots

from visualizer.analysis.attention import METRICS, HeadPattern
from visualizer.figures.common import PlotlyJSON, colorscale, index_axis, layout_base, plotly_text, title

MASKED = np.nan  # the causal mask: drawn as the grey background, never as a weight
MASK_COLOUR = "#d9d9d9"  # plot_bgcolor: masked (future) cells show this grey


def _masked(weights: np.ndarray) -> np.ndarray:
    """[..., query_pos, key_pos] float32 copy with the future (above the diagonal) set to NaN."""
    n_pos = weights.shape[-1]
    future = np.triu(np.ones((n_pos, n_pos), dtype=bool), k=1)  # [query_pos, key_pos]
    return np.where(future, np.float32(MASKED), weights.astype(np.float32, copy=False))


def head_heatmap(pattern: HeadPattern) -> PlotlyJSON:
    labels = [plotly_text(label) for label in pattern.token_labels]
    n = len(labels)
    queries = np.repeat(np.array(labels, dtype=object)[:, None], n, axis=1)
    keys = np.repeat(np.array(labels, dtype=object)[None, :], n, axis=0)
    heatmap = dict(
        type="heatmap", z=_masked(pattern.weights), x=list(range(n)), y=list(range(n)),
        colorscale=colorscale("Viridis"), zmin=0, customdata=np.dstack([queries, keys]),
        colorbar=dict(title=title("weight")),
        hovertemplate="query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>"
                      "weight %{z:.4f}<extra></extra>")
    xaxis = dict(title=title("key (attended to)"), **index_axis(pattern.token_labels), side="bottom")
    yaxis = dict(title=title("query (attending)"), autorange="reversed", **index_axis(pattern.token_labels))
    return PlotlyJSON([heatmap], layout_base(plotly_text(pattern.description), height=min(900, max(420, 140 + 14 * n)),
                                             xaxis=xaxis, yaxis=yaxis, plot_bgcolor=MASK_COLOUR))


@lru_cache(maxsize=8)
def _small_multiples_layout(rows: int, cols: int, titles: tuple[str, ...]) -> dict:
    """make_subplots' axes and title annotations for the grid of heads (built once per model shape)."""
    layout = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.04,
                           subplot_titles=list(titles)).to_plotly_json()["layout"]
    for name, axis in layout.items():
        if name.startswith("xaxis"):
            axis["showticklabels"] = False
        elif name.startswith("yaxis"):
            axis.update(showticklabels=False, autorange="reversed")
    for annotation in layout.get("annotations", []):
        annotation["font"] = dict(size=10)
    return layout


def _axis_suffix(index: int) -> str:
    return "" if index == 0 else str(index + 1)


def layer_heads_figure(weights: np.ndarray, labels: list[str], layer: int, kv_of_head: list[int]) -> PlotlyJSON:
    """Small multiples: every head of one layer. weights: [head, query_pos, key_pos]."""
    n_heads = weights.shape[0]
    cols = min(8, n_heads)
    rows = math.ceil(n_heads / cols)
    shown = _masked(weights)  # [head, query_pos, key_pos]
    traces = [dict(type="heatmap", z=shown[head], coloraxis="coloraxis",
                   hovertemplate=f"head {head}<br>query %{{y}} key %{{x}}<br>%{{z:.3f}}<extra></extra>",
                   xaxis=f"x{_axis_suffix(head)}", yaxis=f"y{_axis_suffix(head)}") for head in range(n_heads)]
    grid = _small_multiples_layout(rows, cols, tuple(f"h{h} (kv {kv_of_head[h]})" for h in range(n_heads)))
    # The cached layout is shared: copy the parts a caller might edit, the axes and annotations.
    layout = {name: dict(value) if isinstance(value, dict) else [dict(a) for a in value]
              for name, value in grid.items()}
    return PlotlyJSON(traces, layout_base(
        f"Layer {layer}: all {n_heads} heads (rows = queries, columns = keys)", height=90 + 190 * rows,
        **layout, coloraxis=dict(colorscale=colorscale("Viridis"), cmin=0), plot_bgcolor=MASK_COLOUR))


def summary_grid_figure(grid: np.ndarray, metric: str, selected: tuple[int, int] | None = None) -> PlotlyJSON:
    """grid: [layer, head] values of one metric; click a cell to open that head; `selected` (layer, head) is
    outlined with its value written in the cell."""
    n_layers, n_heads = grid.shape
    name = metric.replace("_", " ")
    heatmap = dict(type="heatmap", z=grid, x=list(range(n_heads)), y=list(range(n_layers)),
                   colorscale=colorscale("Magma"), colorbar=dict(title=title(name)), xgap=1, ygap=1,
                   hovertemplate="layer %{y}, head %{x}<br>" + name + " %{z:.3f}<extra></extra>")
    xaxis = dict(title=title("head"), dtick=1 if n_heads <= 16 else 4)
    yaxis = dict(title=title("layer"), dtick=1 if n_layers <= 16 else 4, autorange="reversed")
    extra = _selected_cell(grid, selected) if selected is not None else {}
    return PlotlyJSON([heatmap], layout_base(f"Every head, one number: {METRICS[metric].split(':')[0]}",
                                             height=max(300, 80 + 18 * n_layers), xaxis=xaxis, yaxis=yaxis, **extra))


def _selected_cell(grid: np.ndarray, selected: tuple[int, int]) -> dict:
    layer, head = selected
    box = dict(type="rect", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
               line=dict(color="white", width=3), fillcolor="rgba(0,0,0,0)")
    label = dict(x=head, y=layer, text=f"{float(grid[layer, head]):.3f}", showarrow=False,
                 font=dict(color="white"), bgcolor="rgba(0,0,0,0.55)")
    return dict(shapes=[box], annotations=[label])
