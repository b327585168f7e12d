"""Small helpers shared by the figure builders, and the light figure object the hot-path tabs return."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
import plotly.graph_objects as go
from _plotly_utils.utils import is_homogeneous_array, is_skipped_key, to_typed_array_spec


def plotly_text(label: str) -> str:
    """Plotly draws a subset of HTML in labels and hovers; escape so token text stays text."""
    return html.escape(label, quote=False)


# A few lines of style instead of the full "plotly_white" template: assigning a full template deep-copies and
# validates it on every figure, which cost more than the model's forward pass on short prompts.
# Sizes for a projector: at 1280x720 and 150% zoom every chart text is >= 14 px on screen (builders that set a
# smaller annotation keep >= 10 CSS px, i.e. 15 px at 150%); the modebar sits in the top margin, clear of labels.
FONT_SIZE = 14
TITLE_SIZE = 17
_AXIS = dict(gridcolor="#ebebeb", zerolinecolor="#d0d0d0", linecolor="#d0d0d0", automargin=True,
             title=dict(font=dict(size=FONT_SIZE)), tickfont=dict(size=FONT_SIZE - 1))
_TEMPLATE_LAYOUT = dict(
    paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f", size=FONT_SIZE), xaxis=_AXIS, yaxis=_AXIS,
    legend=dict(font=dict(size=FONT_SIZE - 1)), hoverlabel=dict(font=dict(size=FONT_SIZE)),
    # The title sits at the top of the margin, so a legend placed above the plot (see layout_base) stays clear.
    title=dict(font=dict(size=TITLE_SIZE), xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=8)),
    modebar=dict(orientation="h", bgcolor="rgba(255,255,255,0.85)", color="#7a8699"),
    colorway=["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880"])
# The template as plain JSON, shared read-only by every PlotlyJSON figure. Not built through go.layout.Template
# here: that loads plotly's layout validators, 0.28 s of every start-up (tests check the two are equal).
TEMPLATE_JSON: dict = {"layout": _TEMPLATE_LAYOUT}


@lru_cache(maxsize=1)
def graph_objects_template() -> go.layout.Template:
    """The template as graph_objects wants it, for the figures built with go.Figure (off the hot path)."""
    return go.layout.Template(layout=_TEMPLATE_LAYOUT)
MARGIN = dict(l=60, r=20, t=64, b=50)
_LINE = 24  # px the top margin grows per title line (<br>) or for a legend above the plot


def _title_and_top(title: str, legend: Any) -> tuple[dict, int]:
    """The title (placed and sized by the template), and a top margin tall enough for its lines and for a
    legend that sits above the plot (plotly draws such a legend over the title otherwise)."""
    top = MARGIN["t"] + _LINE * title.count("<br>")
    if isinstance(legend, dict) and legend.get("y", 0) >= 1 and legend.get("yanchor") == "bottom":
        top += 3 * _LINE  # room for a legend that wraps to two rows at projector or phone width
    return {"text": title, "x": 0.01}, top


def base_layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Title, height, margins and template of a graph_objects figure (the tabs off the hot path)."""
    title_json, top = _title_and_top(title, None)
    fig.update_layout(title=title_json, height=height + top - MARGIN["t"], margin={**MARGIN, "t": top},
                      template=graph_objects_template())
    return fig


def layout_base(title: str, height: int, **layout: Any) -> dict:
    """The layout `base_layout` gives, as a plain dict, with `layout` keys added (margin keys are merged)."""
    title_json, top = _title_and_top(title, layout.get("legend"))
    margin = {**MARGIN, **layout.pop("margin", {})}
    margin["t"] = max(margin["t"], top)
    return {**layout, "title": title_json, "height": height + top - MARGIN["t"], "margin": margin,
            "template": TEMPLATE_JSON}


def index_axis(labels: list[str], max_ticks: int = 80) -> dict:
    """A numeric axis labelled with tokens: categorical axes would merge repeated tokens."""
    step = max(1, len(labels) // max_ticks)
    positions = list(range(0, len(labels), step))
    return dict(tickmode="array", tickvals=positions,
                ticktext=[plotly_text(labels[i]) for i in positions], tickangle=-45 if len(labels) > 8 else 0)


def title(text: str) -> dict:
    """Plotly turns a bare string title into {"text": ...}; plain JSON has to spell it out."""
    return {"text": text}


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


@dataclass
class PlotlyJSON:
    """A plotly figure as plain data: what `go.Figure(...).to_json()` would send, without graph_objects.

    Building a go.Figure validates and deep-copies every property (about 10 ms a figure, more than the forward
    pass on a short prompt); gr.Plot only calls `to_json()` on what it is given, so the hot-path tabs return
    this. Arrays may be numpy: `to_json()` encodes them exactly as plotly does (numeric arrays as base64 typed
    arrays, NaN kept as the typed array's NaN or null in a list). `to_figure()` gives the real go.Figure, which
    validates every property, for tests, notebooks and export.
    """

    data: list[dict] = field(default_factory=list)
    layout: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"data": self.data, "layout": self.layout}

    def to_plotly_json(self) -> dict:
        return self.to_dict()

    def to_json(self) -> str:
        # orjson in C instead of plotly's pure-Python walk over every list element (40 ms for one 146-token
        # heatmap's hover labels); numeric arrays are typed arrays already, NaN in lists becomes null as in plotly.
        return orjson.dumps(_typed_arrays(self.to_dict()), option=_ORJSON_OPTIONS).decode()

    def to_figure(self) -> go.Figure:
        return go.Figure(self.to_dict())

    def show(self, *args: Any, **kwargs: Any) -> None:
        self.to_figure().show(*args, **kwargs)


def _typed_arrays(value: Any, key: str | None = None) -> Any:
    """A copy of `value` with numpy arrays turned into plotly.js typed arrays, as `go.Figure.to_dict` does."""
    if isinstance(value, dict):
        return {k: v if is_skipped_key(k) else _typed_arrays(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_typed_arrays(v) for v in value]
    if isinstance(value, np.ndarray):  # numeric: a typed array; anything else (labels): a plain list
        numeric = value.dtype.kind in "biuf" and is_homogeneous_array(value)
        return to_typed_array_spec(value) if numeric else value.tolist()
    return value


@lru_cache(maxsize=16)
def _colorscale(name: str) -> tuple:
    return tuple(tuple(stop) for stop in go.Heatmap(colorscale=name).colorscale)


def colorscale(name: str) -> list[list]:
    """A named colorscale as the explicit stops plotly's validator would send (expanded once per name)."""
    return [list(stop) for stop in _colorscale(name)]
