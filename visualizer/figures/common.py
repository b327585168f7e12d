"""Small helpers shared by the figure builders."""

from __future__ import annotations

import html

import plotly.graph_objects as go


def plotly_text(label: str) -> str:
    """Plotly draws a subset of HTML in labels and hovers; escape so token text stays text."""
    return html.escape(label, quote=False)


def base_layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), height=height, margin=dict(l=60, r=20, t=50, b=50),
                      template="plotly_white")
    return fig


def index_axis(labels: list[str], max_ticks: int = 80) -> dict:
    """A numeric axis labelled with tokens: categorical axes would merge repeated tokens."""
    step = max(1, len(labels) // max_ticks)
    positions = list(range(0, len(labels), step))
    return dict(tickmode="array", tickvals=positions,
                ticktext=[plotly_text(labels[i]) for i in positions], tickangle=-45 if len(labels) > 8 else 0)
