"""The Gradio page: a shared prompt above the tabs, one queue for the model, nothing loaded from a CDN."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from visualizer.ui.tabs import TABS

ASSETS = Path(__file__).resolve().parent.parent / "assets"

EXAMPLES = [
    "The capital of France is",
    "Write an email apologizing to Sarah for the tragic gardening mishap.",
    "Paris is the capital of",
    "Monday, Tuesday, Wednesday,",
]


def _model_line(session) -> str:
    p = session.dims
    n_params = session.n_params
    return (f"**Model:** {html.escape(session.display_name)} · {n_params:,} parameters · {p.n_layers} layers · "
            f"{p.n_heads} heads ({p.n_kv_heads} KV) · hidden {p.d_model} · vocab {p.d_vocab:,} · "
            f"{session.device.type} · {str(session.dtype).replace('torch.', '')}")


def build_demo(session) -> gr.Blocks:
    from visualizer.figures.bertviz_embed import bertviz_static_paths

    gr.set_static_paths(bertviz_static_paths(missing_ok=True))  # a missing script disables bertviz only
    with gr.Blocks(title="Inside the LLM") as demo:
        gr.Markdown("# Inside the LLM\nLook inside a transformer language model while it runs.")
        if session.banner:
            gr.Markdown(f"⚠️ {html.escape(session.banner)}", elem_classes=["itl-banner"], elem_id="itl-banner")
        gr.Markdown(_model_line(session), elem_classes=["itl-model-line"])
        prompt = gr.Textbox(label="Prompt", value=EXAMPLES[0], lines=2, elem_id="itl-prompt",
                            max_length=session.max_prompt_tokens * 64)
        gr.Examples(EXAMPLES, inputs=prompt, label="try")
        # This user's step-through sequence, {"prompt", "ids", "rows"}: used only while the prompt box still holds
        # the text it grew from, so a new prompt by any route (typing, an example, the API) discards it.
        sequence = gr.State(None)
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(tab.TITLE, id=tab.__name__.rsplit(".", 1)[-1]):
                    tab.render(session, prompt, sequence)
    limits = session.config.queue
    demo.queue(max_size=limits.max_size, default_concurrency_limit=limits.concurrency_limit)
    return demo


def launch_options() -> dict:
    """Styles and scripts for `demo.launch(...)` (Gradio 6 takes them at launch, not in Blocks)."""
    return dict(theme=gr.themes.Soft(font=gr.themes.Font("system-ui"), font_mono=gr.themes.Font("monospace")),
                css_paths=[ASSETS / "app.css"],
                head=f"<script>{(ASSETS / 'app.js').read_text(encoding='utf-8')}</script>")
