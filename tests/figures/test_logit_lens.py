"""Logit-lens grid and a token's path across layers, built from a real trace of a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import make_tiny_session
from visualizer.analysis.logit_lens import LensGrid, lens_grid, target_trajectory
from visualizer.figures.logit_lens import lens_grid_figure, target_figure

PROMPT = "The capital of <France> is"


@pytest.fixture(scope="module")
def session_and_trace():
    session = make_tiny_session("phi3")
    return session, session.trace(PROMPT)


def test_lens_grid_cells_are_the_lens_result(session_and_trace):
    session, trace = session_and_trace
    grid = lens_grid(trace, session.tokenizer, session.lens_top(trace))
    fig = lens_grid_figure(grid)
    (heatmap,) = fig.data
    np.testing.assert_array_equal(heatmap["z"], session.lens_top(trace).probs)  # [layer + 1, pos]
    assert heatmap["z"].shape == (trace.n_layers + 1, trace.n_pos)
    assert heatmap["texttemplate"] == "%{text}" and heatmap["zmin"] == 0 and heatmap["zmax"] == 1
    assert heatmap["colorbar"]["title"]["text"] == "p(top-1)"
    assert "top-1 %{customdata[1]}" in heatmap["hovertemplate"]
    assert fig.layout["yaxis"]["ticktext"] == ["embed", "layer 0", "layer 1"]
    assert fig.layout["yaxis"]["title"]["text"] == "read after"
    assert fig.layout["xaxis"]["title"]["text"].startswith("input position")
    assert "&lt;" in "".join(fig.layout["xaxis"]["ticktext"])  # token text escaped
    assert not any("<" in label for row in heatmap["text"] for label in row)


def test_large_grids_drop_the_cell_text():
    rows, cols = 33, 50
    grid = LensGrid(["embed"] + [f"layer {i}" for i in range(rows - 1)], [f"t{i}" for i in range(cols)],
                    [["x"] * cols for _ in range(rows)], np.zeros((rows, cols), np.float32))
    assert "texttemplate" not in lens_grid_figure(grid).data[0]


@pytest.mark.parametrize("target", [None, 7])
def test_target_path_is_the_trajectory(session_and_trace, target):
    session, trace = session_and_trace
    pos = trace.n_pos - 1
    trajectory = target_trajectory(trace, session.tokenizer, session.lens_log_probs(trace, pos), pos, target)
    fig = target_figure(trajectory)
    probability, rank = fig.data
    assert probability["name"] == "probability" and rank["name"] == "rank"
    np.testing.assert_array_equal(probability["y"], trajectory.probs)
    np.testing.assert_array_equal(rank["y"], trajectory.ranks + 1)  # rank 1 = top
    assert probability["x"] == rank["x"] == ["embed", "layer 0", "layer 1"]
    assert (probability["yaxis"], rank["yaxis"]) == ("y", "y2")
    assert fig.layout["yaxis"]["title"]["text"] == "probability"
    assert fig.layout["yaxis2"]["title"]["text"] == "rank (1 = top)"
    assert fig.layout["yaxis2"]["type"] == "log" and fig.layout["yaxis2"]["overlaying"] == "y"
    assert f"(id {trajectory.target_id})" in fig.layout["title"]["text"]


def test_target_figures_do_not_share_their_axes(session_and_trace):
    session, trace = session_and_trace
    trajectory = target_trajectory(trace, session.tokenizer, session.lens_log_probs(trace, 1), 1)
    first = target_figure(trajectory)
    first.layout["yaxis"]["range"] = [0, 0.5]
    assert target_figure(trajectory).layout["yaxis"]["range"] == [0, 1.05]


def test_json_is_what_plotly_sends(session_and_trace):
    session, trace = session_and_trace
    pos = trace.n_pos - 1
    for fig in (lens_grid_figure(lens_grid(trace, session.tokenizer, session.lens_top(trace))),
                target_figure(target_trajectory(trace, session.tokenizer, session.lens_log_probs(trace, pos), pos))):
        assert json.loads(fig.to_json()) == json.loads(fig.to_figure().to_json())
