"""Figures of the Experiments tab: per-layer attribution bars, layer x head heatmaps, diverging token bars."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go

from visualizer.analysis.experiments import AblationResult, Attribution, HeadGrid, PairDiff, PatchingResult
from visualizer.analysis.experiments.metrics import TokenChange

_DIVERGING = "RdBu_r"
SELECTED = "itl-selected"  # the name of the outline shapes that mark heads picked for ablation


def attribution_bars(result: Attribution) -> go.Figure:
    """The embedding's, each layer's attention and MLP (or whole block) and the bias terms' logit shares."""
    n_layers = len(result.block)
    fig = go.Figure()
    fig.add_bar(x=["embed", "biases"], y=[result.embed, result.norm_bias + result.head_bias_term], name="other",
                marker_color="grey")
    layers = [f"L{layer}" for layer in range(n_layers)]
    if result.attention is None:
        fig.add_bar(x=layers, y=result.block, name="block")
    else:
        fig.add_bar(x=layers, y=result.attention, name="attention")
        fig.add_bar(x=layers, y=result.mlp, name="MLP")
    fig.update_layout(title=f"Direct contributions to the logit of {result.target_text!r} at position "
                      f"{result.position} (sum {result.total:.3f}, logit {result.parts_logit:.3f})",
                      barmode="group", xaxis_title="part", yaxis_title="logit contribution")
    return fig


def layer_head_heatmap(values: np.ndarray, title: str, colorbar: str) -> go.Figure:
    """A [layer, head] grid, diverging around 0; the page reads clicks as 'layer,head'."""
    limit = float(np.abs(values).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=values, x=list(range(values.shape[1])), y=list(range(values.shape[0])),
                               colorscale=_DIVERGING, zmid=0, zmin=-limit, zmax=limit,
                               colorbar=dict(title=colorbar), hovertemplate="layer %{y}, head %{x}: %{z:.4f}"))
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer")
    return fig


def highlight_heads(figure: go.Figure | str | dict, heads: list[tuple[int, int]]) -> go.Figure:
    """The layer x head grid `figure` (a figure or its JSON) with each (layer, head) in `heads` outlined, and no
    other outline: earlier selections are replaced, other shapes kept."""
    if isinstance(figure, str):
        figure = json.loads(figure)
    fig = go.Figure(figure)
    kept = [shape for shape in fig.layout.shapes if shape.name != SELECTED]
    outlines = [dict(type="rect", name=SELECTED, xref="x", yref="y", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5,
                     y1=layer + 0.5, line=dict(color="black", width=3), fillcolor="rgba(0,0,0,0)")
                for layer, head in heads]
    fig.layout.shapes = kept + outlines  # assigned: update_layout would merge shape lists element by element
    return fig


def head_attribution_heatmap(result: Attribution) -> go.Figure | None:
    if result.heads is None:
        return None
    return layer_head_heatmap(result.heads, f"Each head's direct contribution to {result.target_text!r}", "logit")


def head_grid_heatmap(grid: HeadGrid) -> go.Figure:
    return layer_head_heatmap(grid.deltas, f"Δ log p({grid.target_text!r}) with each head {grid.mode}-ablated "
                              f"({grid.forward_passes} forward passes)", "Δ log p")


def token_change_bars(changes: list[TokenChange], title: str, a: str = "before", b: str = "after") -> go.Figure:
    """Diverging bars of the probability change of each candidate token (b minus a)."""
    labels = [repr(c.text) for c in changes][::-1]
    deltas = [c.delta for c in changes][::-1]
    hover = [f"{a}: {c.prob_a:.4f} (rank {c.rank_a + 1})<br>{b}: {c.prob_b:.4f} (rank {c.rank_b + 1})"
             for c in changes][::-1]
    fig = go.Figure(go.Bar(x=deltas, y=labels, orientation="h", hovertext=hover,
                           marker_color=["#b2182b" if d > 0 else "#2166ac" for d in deltas]))
    fig.update_layout(title=title, xaxis_title=f"probability change ({b} − {a})", yaxis_title="token")
    return fig


def ablation_bars(result: AblationResult) -> go.Figure:
    return token_change_bars(result.changes, f"{result.description}: Δ log p({result.target_text!r}) = "
                             f"{result.delta_log_prob:+.3f}, KL = {result.kl:.4f} nats")


def patching_heatmap(result: PatchingResult) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=result.scores, x=list(range(len(result.token_labels))), y=result.row_labels,
                               customdata=np.array([result.token_labels] * len(result.row_labels)),
                               colorscale=_DIVERGING, zmid=0, zmin=-1, zmax=1, colorbar=dict(title="restored"),
                               hovertemplate="%{y} at %{customdata} (position %{x}): %{z:.3f}"))
    fig.update_layout(title=f"Logit difference {result.clean_answer!r} − {result.corrupted_answer!r} restored by "
                      "patching (0 = corrupted, 1 = clean)", xaxis_title="position", yaxis_title=result.site)
    fig.update_xaxes(tickvals=list(range(len(result.token_labels))), ticktext=result.token_labels)
    return fig


def pair_bars(result: PairDiff) -> go.Figure:
    return token_change_bars(result.changes, f"Next token: B − A (KL(A‖B) = {result.kl_ab:.4f}, JS = "
                             f"{result.js:.4f} nats)", a="A", b="B")


def attention_diff_heatmap(result: PairDiff) -> go.Figure | None:
    if result.attention_diff is None:
        return None
    diff = result.attention_diff
    limit = float(np.abs(diff).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=diff, colorscale=_DIVERGING, zmid=0, zmin=-limit, zmax=limit,
                               x=list(range(diff.shape[1])), y=list(range(diff.shape[0]))))
    fig.update_layout(title=result.attention_note, xaxis_title="key position", yaxis_title="query position",
                      yaxis_autorange="reversed")
    return fig
