"""Architecture tab: the module tree, parameter counts, fused projections, memory, the KV-cache formula.

For the loaded model, or for any known or pasted config built on the `meta` device (no weights, no download).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from visualizer.figures.export import figures_csv
from visualizer.ui.common import check_choice, data_handler, unchanged, wire
from visualizer.ui.exports import download_control, wire_download, write_download
from visualizer.validation import whole_number

TITLE = "Architecture"
SOURCES = ["loaded model", "known model", "paste config.json"]
MAX_KV_TOKENS = 10_000_000
MAX_KV_BATCH = 100_000
BREAKDOWN_CAPTION = "Bar length = parameters in that part of the model; the share of the total is written on it."


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


@dataclass(frozen=True)
class ArchitectureOutputs:
    overview: Any = unchanged()  # Markdown: name, sizes, parameter count
    tree: Any = unchanged()  # HTML: the collapsible module tree
    breakdown: Any = unchanged()  # figure: where the parameters are
    fused: Any = unchanged()  # Markdown: fused projections split into their parts
    memory: Any = unchanged()  # Markdown: weight memory per dtype
    kv: Any = unchanged()  # Markdown: the KV-cache calculator's answer
    summary: Any = unchanged()  # Markdown: the config's main numbers
    roles: Any = unchanged()  # Markdown: what each kind of part does


def architecture_view(session, source: str, known_model: str | None, pasted_config: str | None, kv_tokens: int,
                      kv_batch: int, kv_dtype: str) -> ArchitectureOutputs:
    """The module tree, parameter counts, fused projections, memory and KV cache of a model or a config."""
    report = report_for(session, source, known_model, pasted_config)
    return ArchitectureOutputs(
        overview=architecture_overview_markdown(report), tree=module_tree_html(report.tree),
        breakdown=parameter_breakdown_figure(report.breakdown),
        fused=fused_projections_markdown(report.fused) or "No fused projections in this model.",
        memory=weight_memory_markdown(report.weight_memory, report.n_params),
        kv=kv_text(report, kv_tokens, kv_batch, kv_dtype), summary=config_summary_markdown(report.summary),
        roles=_roles_markdown(report))


def kv_calculator(session, source: str, known_model: str | None, pasted_config: str | None, kv_tokens: int,
                  kv_batch: int, kv_dtype: str) -> ArchitectureOutputs:
    """The KV-cache size for a number of tokens, a batch size and a dtype."""
    report = report_for(session, source, known_model, pasted_config)
    return ArchitectureOutputs(kv=kv_text(report, kv_tokens, kv_batch, kv_dtype))


def export_numbers(session, source: str, known_model: str | None, pasted_config: str | None) -> str:
    """The parameter breakdown's numbers as one CSV file (page only)."""
    report = report_for(session, source, known_model, pasted_config)
    return write_download("architecture-parameters", ".csv",
                          figures_csv({"parameters": parameter_breakdown_figure(report.breakdown)}))


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
    c: dict[str, Any] = {}
    c["overview"] = gr.Markdown(first.overview, elem_id="itl-arch-overview")
    with gr.Row():
        with gr.Column(scale=3):
            c["tree"] = gr.HTML(first.tree, elem_id="itl-arch-tree")
        with gr.Column(scale=2):
            c["summary"] = gr.Markdown(first.summary)
            c["breakdown"] = gr.Plot(first.breakdown, label="where the parameters are", elem_id="itl-arch-breakdown")
            gr.Markdown(BREAKDOWN_CAPTION, elem_classes=["itl-caption"])
            numbers_btn, numbers_file = download_control("⬇ numbers (CSV)", "itl-arch-export")
    c["fused"] = gr.Markdown(first.fused)
    c["memory"] = gr.Markdown(first.memory)
    gr.Markdown("### KV-cache calculator")
    with gr.Row():
        tokens = gr.Number(1000, label="tokens", precision=0, minimum=1)
        batch = gr.Number(1, label="batch", precision=0, minimum=1)
        dtype = gr.Dropdown(list(DTYPE_BYTES), value="fp16", label="dtype")
    c["kv"] = gr.Markdown(first.kv, elem_id="itl-arch-kv")
    with gr.Accordion("What each part does", open=True):
        c["roles"] = gr.Markdown(first.roles)

    inputs = [source, known, pasted, tokens, batch, dtype]
    cpu_only = dict(concurrency_id="architecture", concurrency_limit=4)  # no forward pass: own queue
    wire_download(numbers_btn, numbers_file, data_handler(export_numbers, session), inputs[:3], **cpu_only)
    wire(show.click, architecture_view, session, inputs, ArchitectureOutputs, c, api_name="architecture",
         api_description=architecture_view.__doc__, **cpu_only)
    for control in (source.input, known.input):
        wire(control, architecture_view, session, inputs, ArchitectureOutputs, c, api_visibility="private", **cpu_only)
    wire(tokens.change, kv_calculator, session, inputs, ArchitectureOutputs, c, ["kv"], api_name="architecture_kv",
         api_description=kv_calculator.__doc__, **cpu_only)
    for control in (batch.change, dtype.change):
        wire(control, kv_calculator, session, inputs, ArchitectureOutputs, c, ["kv"], api_visibility="private",
             **cpu_only)
