"""Speed-tab handler called directly with a real tiny session (short runs: no timing asserted)."""

import pytest

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.session import ModelSession
from visualizer.ui.tabs import speed as tab


@pytest.fixture(scope="module")
def session():
    return ModelSession(tiny_model("llama"), tiny_tokenizer(), source="tiny-llama")


def test_speed_lab_streams_then_fills_every_output(session):
    outs = list(tab.speed_lab(session, "The capital", None, ["attention", "batch"], False, 1, 3))
    assert all(isinstance(o, tab.SpeedOutputs) for o in outs) and len(outs) > 2
    final = outs[-1]
    assert final.status.startswith("✅") and "Machine load" in final.conditions
    assert any(line[1] == "sdpa" for line in final.table) and any(line[1] == "batch 2" for line in final.table)
    assert final.decode.data and final.prefill.data and final.batch.data
    assert "Attention implementation" in final.verdicts and "Batch size" in final.verdicts
    assert outs[0].status.startswith("⏱️") and outs[0].verdicts == ""


def test_nothing_ticked_or_bad_numbers_are_messages(session):
    with pytest.raises(ValueError, match="parts"):
        list(tab.speed_lab(session, "The capital", None, [], False, 1, 3))
    with pytest.raises(ValueError, match="repeats"):
        list(tab.speed_lab(session, "The capital", None, ["attention"], False, float("nan"), 3))


def test_render_builds_the_tab(session):
    import gradio as gr

    with gr.Blocks():
        prompt, sequence = gr.Textbox(), gr.State()
        tab.render(session, prompt, sequence)
    assert tab.TITLE == "Speed"
