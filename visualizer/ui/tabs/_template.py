"""Template tab (not registered in TABS): copy it to ui/tabs/<topic>.py to add a view.

The shape every tab follows: module-level handlers of (session, inputs...) that return one frozen outputs
dataclass; `render` lays out components in a dict keyed by the dataclass's field names and wires them with
`wire`. No tensors here: a handler passes `session.trace(...)` to an analysis function and its result to a
figure function. Test it in tests/ui/test_<topic>.py by calling the handlers with `make_tiny_session`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from visualizer.analysis.next_token import top_k  # your analysis function
from visualizer.figures.next_token import top_k_figure  # your figure function
from visualizer.ui.common import data_handler, model_event, prompt_or_sequence, unchanged, wire

TITLE = "Template"


@dataclass(frozen=True)
class TemplateOutputs:
    chart: Any = unchanged()  # figure
    note: Any = unchanged()  # Markdown


def show(session, prompt: str, sequence: dict | None, k: int) -> TemplateOutputs:
    """What the endpoint does, in one line: it becomes the API's description."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))  # ValueErrors become messages in the page
    result = top_k(trace, session.tokenizer, -1, k)
    return TemplateOutputs(chart=top_k_figure(result), note=f"{trace.n_pos} tokens")


def template_data(session, prompt: str, k: int = 5) -> dict:
    """The numbers behind the chart, as JSON (type hints are required: Gradio builds the schema from them)."""
    result = top_k(session.trace(prompt), session.tokenizer, -1, k)
    return {"token_ids": result.token_ids, "probabilities": [float(p) for p in result.probs]}


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    c: dict[str, Any] = {}
    k = gr.Slider(1, session.config.limits.max_top_k, value=5, step=1, label="k")
    button = gr.Button("Show", variant="primary")
    c["chart"] = gr.Plot(label="chart")
    c["note"] = gr.Markdown()
    wire(button.click, show, session, [prompt, sequence, k], TemplateOutputs, c, api_name="template",
         api_description=show.__doc__, **model_event(session))
    gr.api(data_handler(template_data, session), api_name="template_data", api_description=template_data.__doc__,
           **model_event(session))
