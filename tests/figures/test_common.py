"""The light figure object: plotly's own JSON without graph_objects, numpy and NaN encoded as plotly does."""

from __future__ import annotations

import base64
import doctest
import json

import numpy as np
import plotly.graph_objects as go
import pytest

from visualizer.figures import formatting
from visualizer.figures.common import TEMPLATE_JSON, PlotlyJSON, colorscale, layout_base


def _figure() -> PlotlyJSON:
    z = np.array([[0.5, np.nan], [0.25, 0.75]], dtype=np.float32)  # NaN: the masked cell
    return PlotlyJSON(
        [dict(type="heatmap", z=z, x=[0, 1], customdata=np.array([["a", "b"], ["c", "d"]], dtype=object),
              colorscale=colorscale("Viridis"), hovertemplate="%{customdata} %{z}<extra></extra>"),
         dict(type="scatter", x=np.arange(3), y=[1.0, float("nan"), 3.0], name="<b>")],
        layout_base("a title", 300, xaxis=dict(title=dict(text="x"), range=[0, 1]), margin=dict(t=99)))


def test_to_json_is_plotly_json_of_the_same_figure():
    fig = _figure()
    assert json.loads(fig.to_json()) == json.loads(go.Figure(fig.to_dict()).to_json())
    assert json.loads(fig.to_json()) == json.loads(fig.to_figure().to_json())


def test_numpy_arrays_become_typed_arrays_and_nan_in_lists_becomes_null():
    sent = json.loads(_figure().to_json())
    heatmap, scatter = sent["data"]
    assert heatmap["z"]["dtype"] == "f4" and heatmap["z"]["shape"] == "2, 2"
    decoded = np.frombuffer(base64.b64decode(heatmap["z"]["bdata"]), dtype=np.float32)
    assert np.isnan(decoded[1]) and decoded[[0, 2, 3]].tolist() == [0.5, 0.25, 0.75]
    assert heatmap["customdata"] == [["a", "b"], ["c", "d"]]  # object arrays stay lists of strings
    assert scatter["y"] == [1.0, None, 3.0]
    assert scatter["x"]["dtype"] in {"i1", "i4"}  # int64 narrowed as plotly does


def test_to_json_leaves_the_figure_unchanged():
    fig = _figure()
    fig.to_json()
    assert isinstance(fig.data[0]["z"], np.ndarray) and isinstance(fig.data[1]["x"], np.ndarray)


def test_layout_base_merges_margins_and_shares_the_template():
    layout = _figure().layout
    assert layout["margin"] == {"l": 60, "r": 20, "t": 99, "b": 50}
    assert layout["title"] == {"text": "a title", "x": 0.01} and layout["height"] == 300
    assert layout["template"] is TEMPLATE_JSON  # built once, never copied per figure
    assert _figure().to_figure().layout.template.layout.plot_bgcolor == "white"


def test_colorscale_is_what_plotly_expands_the_name_to():
    assert colorscale("Blues") == [list(stop) for stop in go.Heatmap(colorscale="Blues").colorscale]
    assert colorscale("Blues") is not colorscale("Blues")  # callers get their own list


def test_invalid_properties_fail_when_turned_into_a_figure():
    with pytest.raises(ValueError, match="colourscale"):
        PlotlyJSON([dict(type="heatmap", colourscale="Blues")], {}).to_figure()


def test_formatting_doctests():
    result = doctest.testmod(formatting)
    assert result.attempted >= 8 and result.failed == 0


def test_the_plain_template_is_what_plotly_validates_it_to():
    import plotly.graph_objects as go

    from visualizer.figures.common import _TEMPLATE_LAYOUT, graph_objects_template

    assert TEMPLATE_JSON == go.layout.Template(layout=_TEMPLATE_LAYOUT).to_plotly_json()
    assert graph_objects_template().to_plotly_json() == TEMPLATE_JSON
