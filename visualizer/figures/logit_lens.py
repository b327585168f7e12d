"""Logit-lens figures: the layer x position grid of top-1 tokens, and one token's path across layers."""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
from plotly.subplots import make_subplots

from visualizer.analysis.logit_lens import LensGrid, TargetTrajectory
from visualizer.figures.common import PlotlyJSON, colorscale, index_axis, layout_base, plotly_text, title


def lens_grid_figure(grid: LensGrid) -> PlotlyJSON:
    n_rows, n_cols = grid.top_probs.shape
    text = [[plotly_text(label) for label in row] for row in grid.top_labels]
    inputs = np.array([[plotly_text(c) for c in grid.column_labels]] * n_rows)
    heatmap = dict(
        type="heatmap", z=grid.top_probs, x=list(range(grid.first_pos, grid.first_pos + n_cols)),
        y=list(range(n_rows)), text=text,
        textfont=dict(size=10), customdata=np.dstack([inputs, np.array(text)]), colorscale=colorscale("Blues"),
        zmin=0, zmax=1, colorbar=dict(title=title("p(top-1)")), xgap=1, ygap=1,
        hovertemplate="%{y}<br>after input %{customdata[0]} (pos %{x})<br>top-1 %{customdata[1]}"
                      "<br>p = %{z:.3f}<extra></extra>")
    if n_cols * n_rows <= 1200:  # beyond that the cell text is unreadable and slow to draw
        heatmap["texttemplate"] = "%{text}"
    yaxis = dict(tickmode="array", tickvals=list(range(n_rows)), ticktext=grid.row_labels, title=title("read after"))
    xaxis = dict(title=title("input position (prediction of the next token)"), **index_axis(grid.column_labels))
    xaxis["tickvals"] = [grid.first_pos + v for v in xaxis["tickvals"]]
    heading = "Logit lens: top-1 next token read from each layer's residual stream"
    if grid.first_pos:
        heading += f" (the last {n_cols} positions)"
    return PlotlyJSON([heatmap], layout_base(heading,
                                             height=max(320, 60 + 26 * n_rows), xaxis=xaxis, yaxis=yaxis))


@lru_cache(maxsize=1)
def _secondary_y_axes() -> dict:
    """The axes make_subplots lays out for one plot with a secondary y axis (built once)."""
    layout = make_subplots(specs=[[{"secondary_y": True}]]).to_plotly_json()["layout"]
    return {name: layout[name] for name in ("xaxis", "yaxis", "yaxis2")}


def target_figure(trajectory: TargetTrajectory) -> PlotlyJSON:
    x = trajectory.row_labels
    probability = dict(type="scatter", x=x, y=trajectory.probs, mode="lines+markers", name="probability",
                       xaxis="x", yaxis="y")
    rank = dict(type="scatter", x=x, y=trajectory.ranks + 1, mode="lines+markers", name="rank",
                line=dict(dash="dot"), xaxis="x", yaxis="y2")
    axes = copy.deepcopy(_secondary_y_axes())
    axes["yaxis"].update(title=title("probability"), range=[0, 1.05])
    axes["yaxis2"].update(title=title("rank (1 = top)"), type="log", autorange="reversed")
    heading = (f"{plotly_text(trajectory.target_label)} (id {trajectory.target_id}) at position "
               f"{trajectory.pos}, layer by layer")
    return PlotlyJSON([probability, rank], layout_base(heading, height=320, **axes))
