"""Experiment figures show the analysis values themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_interventions import CORRUPTED, PROMPT, experiments_session
from visualizer.figures.experiments import (
    SELECTED,
    ablation_bars,
    attention_diff_heatmap,
    attribution_bars,
    head_attribution_heatmap,
    head_grid_heatmap,
    highlight_heads,
    pair_bars,
    patching_heatmap,
)


@pytest.fixture(scope="module")
def session():
    return experiments_session("llama")


def test_attribution_figures(session):
    result = session.attribution(PROMPT)
    fig = attribution_bars(result)
    np.testing.assert_allclose(fig.data[1].y, result.attention)
    np.testing.assert_allclose(fig.data[2].y, result.mlp)
    np.testing.assert_allclose(head_attribution_heatmap(result).data[0].z, result.heads)


def test_ablation_patching_and_pair_figures(session):
    ablation = session.ablation(PROMPT, heads=[[1, 0]])
    bars = ablation_bars(ablation)
    np.testing.assert_allclose(bars.data[0].x, [c.delta for c in ablation.changes][::-1])
    grid = session.ablate_each_head(PROMPT)
    np.testing.assert_allclose(head_grid_heatmap(grid).data[0].z, grid.deltas)
    patched = session.patching(PROMPT, CORRUPTED, clean_answer=11, corrupted_answer=12)
    np.testing.assert_allclose(patching_heatmap(patched).data[0].z, patched.scores)
    pair = session.minimal_pair(PROMPT, CORRUPTED, layer=1, head=1)
    assert len(pair_bars(pair).data[0].x) == len(pair.changes)
    np.testing.assert_allclose(attention_diff_heatmap(pair).data[0].z, pair.attention_diff)
    assert attention_diff_heatmap(session.minimal_pair(PROMPT, "The capital of France is")) is None


def test_selected_heads_are_outlined_and_replace_the_previous_selection(session):
    fig = head_attribution_heatmap(session.attribution(PROMPT))
    fig.add_shape(type="line", x0=0, x1=1, y0=0, y1=1)  # a shape of the figure's own, to keep
    first = highlight_heads(fig, [(1, 2), (0, 3)])
    outlines = [s for s in first.layout.shapes if s.name == SELECTED]
    assert [(s.x0, s.x1, s.y0, s.y1) for s in outlines] == [(1.5, 2.5, 0.5, 1.5), (2.5, 3.5, -0.5, 0.5)]
    again = highlight_heads(first.to_json(), [(0, 0)])  # as the page sends it back: JSON
    assert [(s.x0, s.y0) for s in again.layout.shapes if s.name == SELECTED] == [(-0.5, -0.5)]
    assert len(again.layout.shapes) == 2 and len(highlight_heads(again, []).layout.shapes) == 1
    assert again.data[0].z == json.loads(fig.to_json())["data"][0]["z"]  # the values travel untouched
