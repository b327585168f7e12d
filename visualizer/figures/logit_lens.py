"""Logit-lens figures: the layer x position grid of top-1 tokens, and one token's path across layers."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from visualizer.analysis.logit_lens import LensGrid, TargetTrajectory
from visualizer.figures.common import base_layout, index_axis, plotly_text


def lens_grid_figure(grid: LensGrid) -> go.Figure:
    n_rows, n_cols = grid.top_probs.shape
    text = [[plotly_text(label) for label in row] for row in grid.top_labels]
    inputs = np.array([[plotly_text(c) for c in grid.column_labels]] * n_rows)
    fig = go.Figure(go.Heatmap(
        z=grid.top_probs, x=list(range(n_cols)), y=list(range(n_rows)), text=text,
        texttemplate="%{text}" if n_cols * n_rows <= 1200 else None, textfont=dict(size=10),
        customdata=np.dstack([inputs, np.array(text)]), colorscale="Blues", zmin=0, zmax=1,
        colorbar=dict(title="p(top-1)"),
        hovertemplate="%{y}<br>after input %{customdata[0]} (pos %{x})<br>top-1 %{customdata[1]}"
                      "<br>p = %{z:.3f}<extra></extra>"))
    fig.update_yaxes(tickmode="array", tickvals=list(range(n_rows)), ticktext=grid.row_labels, title="read after")
    fig.update_xaxes(title="input position (prediction of the next token)", **index_axis(grid.column_labels))
    fig.update_traces(ygap=1, xgap=1)
    return base_layout(fig, "Logit lens: top-1 next token read from each layer's residual stream",
                       height=max(320, 60 + 26 * n_rows))


def target_figure(trajectory: TargetTrajectory) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = trajectory.row_labels
    fig.add_trace(go.Scatter(x=x, y=trajectory.probs, mode="lines+markers", name="probability"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=trajectory.ranks + 1, mode="lines+markers", name="rank",
                             line=dict(dash="dot")), secondary_y=True)
    fig.update_yaxes(title_text="probability", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title_text="rank (1 = top)", type="log", autorange="reversed", secondary_y=True)
    title = (f"{plotly_text(trajectory.target_label)} (id {trajectory.target_id}) at position "
             f"{trajectory.pos}, layer by layer")
    return base_layout(fig, title, height=320)
