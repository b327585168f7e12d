"""Small helpers shared by the figure builders."""

from __future__ import annotations

import html

import plotly.graph_objects as go


def plotly_text(label: str) -> str:
    """Plotly draws a subset of HTML in labels and hovers; escape so token text stays text."""
    return html.escape(label, quote=False)


# A few lines of style instead of the full "plotly_white" template: assigning a full template deep-copies and
# validates it on every figure, which cost more than the model's forward pass on short prompts.
_AXIS = dict(gridcolor="#ebebeb", zerolinecolor="#d0d0d0", linecolor="#d0d0d0", automargin=True)
_TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f"), xaxis=_AXIS, yaxis=_AXIS,
    colorway=["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880"]))


def base_layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), height=height, margin=dict(l=60, r=20, t=50, b=50),
                      template=_TEMPLATE)
    return fig


def index_axis(labels: list[str], max_ticks: int = 80) -> dict:
    """A numeric axis labelled with tokens: categorical axes would merge repeated tokens."""
    step = max(1, len(labels) // max_ticks)
    positions = list(range(0, len(labels), step))
    return dict(tickmode="array", tickvals=positions,
                ticktext=[plotly_text(labels[i]) for i in positions], tickangle=-45 if len(labels) > 8 else 0)
