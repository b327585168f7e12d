"""The template tab works as written, so a copy starts from working code."""

from tests.conftest import make_tiny_session
from visualizer.ui.tabs import _template as tab


def test_template_handlers():
    session = make_tiny_session("llama")
    out = tab.show(session, "The capital", None, 3)
    assert out.chart is not None and "tokens" in out.note
    assert len(tab.template_data(session, "The capital", 3)["token_ids"]) == 3


def test_template_renders_in_a_page():
    import gradio as gr

    session = make_tiny_session("llama")
    with gr.Blocks():
        tab.render(session, gr.Textbox("The capital"), gr.State(None))
