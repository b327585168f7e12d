"""Architecture tab: the module tree, parameter counts, fused projections, memory, the KV-cache formula.

For the loaded model, or for any known or pasted config built on the `meta` device (no weights, no download).
"""

from __future__ import annotations

import functools

import gradio as gr

from visualizer.analysis.architecture import (
    DTYPE_BYTES,
    ROLE_EXPLANATIONS,
    describe_config_json,
    describe_known_model,
    known_model_names,
    kv_cache_estimate,
)
from visualizer.figures.architecture import (
    architecture_overview_markdown,
    config_summary_markdown,
    fused_projections_markdown,
    kv_cache_markdown,
    module_tree_html,
    parameter_breakdown_figure,
    weight_memory_markdown,
)
from visualizer.ui.common import check_choice, user_errors
from visualizer.validation import whole_number

TITLE = "Architecture"
SOURCES = ["loaded model", "known model", "paste config.json"]
MAX_KV_TOKENS = 10_000_000
MAX_KV_BATCH = 100_000


def _roles_markdown(report) -> str:
    roles = []
    for node in report.tree.walk():
        if node.role in ROLE_EXPLANATIONS and node.role not in roles:
            roles.append(node.role)
    return "\n".join(f"- **{role.replace('_', ' ')}**: {ROLE_EXPLANATIONS[role]}" for role in roles)


def report_for(session, source: str, known: str | None, pasted: str | None):
    check_choice(source, SOURCES, "source")
    if source == "loaded model":
        return _loaded_report(session)
    if source == "known model":
        return describe_known_model(known)
    if not isinstance(pasted, str) or not pasted.strip():
        raise ValueError("Paste the text of a config.json first.")
    return describe_config_json(pasted)


def _loaded_report(session):
    return session.architecture()


def kv_text(report, tokens, batch, dtype) -> str:
    if report.kv_spec is None:
        return "This config does not say enough about its attention sizes to compute the KV cache."
    tokens = whole_number(tokens, "tokens", 1, MAX_KV_TOKENS)
    batch = whole_number(batch, "batch", 1, MAX_KV_BATCH)
    check_choice(dtype, list(DTYPE_BYTES), "dtype")
    return kv_cache_markdown(kv_cache_estimate(report.kv_spec, tokens, batch, dtype))


def architecture_view(session, source, known, pasted, tokens, batch, dtype):
    report = report_for(session, source, known, pasted)
    return (architecture_overview_markdown(report), module_tree_html(report.tree),
            parameter_breakdown_figure(report.breakdown),
            fused_projections_markdown(report.fused) or "No fused projections in this model.",
            weight_memory_markdown(report.weight_memory, report.n_params),
            kv_text(report, tokens, batch, dtype), config_summary_markdown(report.summary), _roles_markdown(report))


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    names = known_model_names()
    with gr.Row():
        source = gr.Radio(SOURCES, value="loaded model", label="show")
        known = gr.Dropdown(names, value="Phi-3-mini-4k-instruct" if "Phi-3-mini-4k-instruct" in names else names[0],
                            label="known model (config only, built on the meta device)")
        show = gr.Button("Show", variant="primary", elem_id="itl-arch-show")
    pasted = gr.Code(label="or paste a config.json", language="json", lines=6)
    # The loaded model's view is filled in at build time: it needs no forward pass and no GPU.
    first = architecture_view(session, "loaded model", None, None, 1000, 1, "fp16")
    overview = gr.Markdown(first[0], elem_id="itl-arch-overview")
    with gr.Row():
        with gr.Column(scale=3):
            tree = gr.HTML(first[1], elem_id="itl-arch-tree")
        with gr.Column(scale=2):
            summary = gr.Markdown(first[6])
            breakdown = gr.Plot(first[2], label="where the parameters are", elem_id="itl-arch-breakdown")
    fused = gr.Markdown(first[3])
    memory = gr.Markdown(first[4])
    gr.Markdown("### KV-cache calculator")
    with gr.Row():
        tokens = gr.Number(1000, label="tokens", precision=0, minimum=1)
        batch = gr.Number(1, label="batch", precision=0, minimum=1)
        dtype = gr.Dropdown(list(DTYPE_BYTES), value="fp16", label="dtype")
    kv = gr.Markdown(first[5], elem_id="itl-arch-kv")
    with gr.Accordion("What each part does", open=True):
        roles = gr.Markdown(first[7])

    outputs = [overview, tree, breakdown, fused, memory, kv, summary, roles]
    inputs = [source, known, pasted, tokens, batch, dtype]
    cpu_only = dict(concurrency_id="architecture", concurrency_limit=4)  # no forward pass: own queue

    view = user_errors(functools.partial(architecture_view, session))
    show.click(view, inputs, outputs, api_name="architecture", **cpu_only)
    source.input(view, inputs, outputs, api_visibility="private", **cpu_only)
    known.input(view, inputs, outputs, api_visibility="private", **cpu_only)

    @user_errors
    def on_kv(source_value, known_value, pasted_value, tokens_value, batch_value, dtype_value):
        report = report_for(session, source_value, known_value, pasted_value)
        return kv_text(report, tokens_value, batch_value, dtype_value)

    tokens.change(on_kv, inputs, kv, api_name="architecture_kv", **cpu_only)
    for control in (batch, dtype):
        control.change(on_kv, inputs, kv, api_visibility="private", **cpu_only)
