"""Experiments handlers called directly with a real tiny session (the mixin added as ModelSession's will be)."""

import pytest

from tests.test_interventions import CORRUPTED, PROMPT, experiments_session
from visualizer.ui.tabs import experiments as tab


@pytest.fixture(scope="module")
def session():
    return experiments_session("llama")


def test_attribution_and_ablation(session):
    out = tab.attribution(session, PROMPT, None, "", -1)
    assert out.attribution_plot is not None and out.heads_plot is not None and "frozen" in out.attribution_note
    out = tab.ablation(session, PROMPT, None, "0.1, 1.2", "", "0", "mean", "", True)
    assert out.head_grid_plot is not None and "mean-ablated: L0H1, L1H2, MLP of layer 0" in out.ablation_note


def test_patching_and_pair(session):
    out = tab.patching(session, PROMPT, CORRUPTED, "resid", "11", "12")
    assert out.patching_plot is not None and "clean" in out.patching_note
    out = tab.minimal_pair(session, PROMPT, CORRUPTED, 1, 0)
    assert out.pair_attention_plot is not None and "JS" in out.pair_note


def test_bad_lists_are_named():
    with pytest.raises(ValueError, match="heads"):
        tab.parse_heads("0-1")
    with pytest.raises(ValueError, match="MLP layers"):
        tab.parse_layers("a", "MLP layers")


def test_a_grid_click_toggles_the_head_and_both_grids_show_the_selection(session):
    import gradio as gr

    from visualizer.figures.experiments import SELECTED

    click = gr.EventData(None, {"layer": 1, "head": 2})
    assert tab.on_grid_click(session, "0.1", click).heads_text == "0.1, 1.2"
    assert tab.on_grid_click(session, "0.1, 1.2", click).heads_text == "0.1"
    with pytest.raises(ValueError, match="clicked head"):
        tab.on_grid_click(session, "", gr.EventData(None, {"layer": 0, "head": session.dims.n_heads}))
    grid = tab.attribution(session, PROMPT, None, "", -1).heads_plot
    plot = {"type": "plotly", "plot": grid.to_json()}  # what the page sends back for a gr.Plot
    out = tab.show_selection("0.1, 1.2, 1.", plot, None)  # "1." is still being typed: ignored
    outlined = [(s.y0 + 0.5, s.x0 + 0.5) for s in out.heads_plot.layout.shapes if s.name == SELECTED]
    assert outlined == [(0, 1), (1, 2)]
    assert not hasattr(out.head_grid_plot, "layout")  # no grid yet: left as it is


def test_the_page_script_watches_both_grids():
    for elem_id in tab.GRID_IDS:
        assert f'"{elem_id}"' in tab.GRID_CLICK_JS
