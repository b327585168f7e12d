"""Attention tab: one head's heatmap, all heads of a layer, the layer x head summary grid, bertviz views.

Handlers are module-level functions of (session, inputs...) returning `AttentionOutputs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
import numpy as np

from visualizer.analysis.attention import METRICS, head_pattern, kv_head_of, metric_grid
from visualizer.analysis.examples import examples_for
from visualizer.figures.attention import head_heatmap, layer_heads_figure, summary_grid_figure
from visualizer.figures.bertviz_embed import head_view_html, model_view_html
from visualizer.figures.export import figures_csv, standalone_bertviz_html
from visualizer.ui.common import (
    PROGRESS,
    TabSync,
    check_choice,
    data_handler,
    handler,
    is_current,
    made_from,
    marker_box,
    model_event,
    prompt_or_sequence,
    slider_event,
    unchanged,
    wire,
)
from visualizer.ui.exports import download_control, wire_download, write_download
from visualizer.validation import whole_number

TITLE = "Attention"
TAB_ID = "attention"
CAPTIONS = {
    "heatmap": "Row = the token attending, column = the token it looks at; brighter = more weight; each row sums to 1.",
    "grid": "One cell per head: the chosen metric (hover for its value). Click a cell to open that head above.",
    "all_heads": "The same layer's heads side by side, same colour scale: click one to open it above.",
}

INTRO = """Each row of a heatmap is one token (the query) looking back at the tokens before it (the keys): the
weights in a row sum to 1, and the grey triangle is the causal mask (a token cannot see the future). The grid
below reduces every head to one number so you can find the heads worth opening: **click a cell** to open it."""

METRIC_HELP = "\n".join(f"- **{name.replace('_', ' ')}**: {text}" for name, text in METRICS.items())


@dataclass(frozen=True)
class AttentionOutputs:
    heatmap: Any = unchanged()  # figure: one head (or the mean over heads)
    all_heads: Any = unchanged()  # figure: every head of the layer
    grid: Any = unchanged()  # figure: layer x head summary metric
    note: Any = unchanged()  # Markdown: what is shown, grouped-query sharing, or why attention is unavailable
    layer: Any = unchanged()  # the layer slider (set by a grid click)
    head: Any = unchanged()  # the head slider (set by a grid click)
    mean: Any = unchanged()  # the mean-over-heads checkbox (cleared by a grid click)
    bertviz_note: Any = unchanged()
    bertviz_head: Any = unchanged()  # HTML: bertviz head view in a sandboxed iframe
    bertviz_model: Any = unchanged()  # HTML: bertviz model view in a sandboxed iframe
    selection: Any = unchanged()  # Markdown: the chosen grid cell and its value
    marker: Any = unchanged()  # hidden: made_from of the drawn results
    prompt: Any = unchanged()  # the shared prompt box (set by the induction example)
    metric: Any = unchanged()  # the summary-metric radio (set by the induction example)
    induction_note: Any = unchanged()  # Markdown: the heads measured on the induction example


HEAD_FIELDS = ["heatmap", "all_heads", "note"]


def head_views(session, source, layer, head, mean_over_heads: bool) -> AttentionOutputs:
    trace = session.trace(source)
    layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
    head = whole_number(head, "head", 0, trace.n_heads - 1)
    if trace.attention_unavailable:
        return AttentionOutputs(heatmap=None, all_heads=None, note=f"⚠️ {trace.attention_unavailable}")
    patterns = session.layer_patterns(trace, layer)  # [head, query_pos, key_pos], passed on untouched
    shown = head_pattern(trace, patterns, layer, None if mean_over_heads else head)
    weights = np.stack([head_pattern(trace, patterns, layer, h).weights for h in range(trace.n_heads)])
    kv_of_head = [kv_head_of(h, trace.n_heads, trace.n_kv_heads) for h in range(trace.n_heads)]
    note = f"**{shown.description}**" + "".join(f"\n\n{n}" for n in trace.notes)
    return AttentionOutputs(heatmap=head_heatmap(shown), note=note,
                            all_heads=layer_heads_figure(weights, trace.token_labels(), layer, kv_of_head))


def _grid(trace, metric: str, layer=None, head=None):
    check_choice(metric, list(METRICS), "metric")
    if trace.attention_unavailable:
        return None
    selected = None
    if layer is not None and head is not None:
        selected = (whole_number(layer, "layer", 0, trace.n_layers - 1),
                    whole_number(head, "head", 0, trace.n_heads - 1))
    return summary_grid_figure(metric_grid(trace, metric), metric, selected=selected)


def show_attention(session, prompt: str, sequence: dict | None, layer: int, head: int, mean_over_heads: bool,
                   metric: str) -> AttentionOutputs:
    """One head's heatmap, all heads of the layer, and the layer x head grid of one metric."""
    source = prompt_or_sequence(prompt, sequence)
    check_choice(metric, list(METRICS), "metric")
    views = head_views(session, source, layer, head, mean_over_heads)
    return replace(views, grid=_grid(session.trace(source), metric, layer, head), marker=made_from(prompt, sequence),
                   selection=_selection(session.trace(source), layer, head, metric))


def _selection(trace, layer, head, metric: str) -> str:
    if trace.attention_unavailable:
        return ""
    layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
    head = whole_number(head, "head", 0, trace.n_heads - 1)
    value = float(metric_grid(trace, metric)[layer, head])
    return f"**Selected: layer {layer}, head {head}** · {metric.replace('_', ' ')} = {value:.3f}"


def selected_cell(session, prompt: str, sequence: dict | None, layer: int, head: int, metric: str) -> AttentionOutputs:
    """The chosen grid cell and its value: outlined on the grid and in the line under it (page only)."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))
    return AttentionOutputs(selection=_selection(trace, layer, head, check_choice(metric, list(METRICS), "metric")),
                            grid=_grid(trace, metric, layer, head))


def refresh(session, open_tab: str, marker: str, prompt: str, sequence: dict | None, layer: int, head: int,
            mean_over_heads: bool, metric: str) -> AttentionOutputs:
    """Redraw when this tab is open and its results are from another prompt (page only)."""
    if is_current(TAB_ID, open_tab, marker, prompt, sequence):
        return AttentionOutputs()
    return show_attention(session, prompt, sequence, layer, head, mean_over_heads, metric)


def show_head(session, prompt: str, sequence: dict | None, layer: int, head: int,
              mean_over_heads: bool) -> AttentionOutputs:
    """One head's heatmap and all heads of its layer."""
    return head_views(session, prompt_or_sequence(prompt, sequence), layer, head, mean_over_heads)


def show_metric(session, prompt: str, sequence: dict | None, metric: str) -> AttentionOutputs:
    """The layer x head grid of one summary metric."""
    return AttentionOutputs(grid=_grid(session.trace(prompt_or_sequence(prompt, sequence)), metric))


def open_clicked_head(session, prompt: str, sequence: dict | None, layer: int, clicked: str) -> AttentionOutputs:
    """The page writes 'head,time' when a small multiple is clicked: open that head of the shown layer."""
    try:
        head = int(str(clicked).split(",")[0])
    except ValueError as error:
        raise ValueError(f"expected 'head', got {clicked!r}") from error
    return open_clicked_cell(session, prompt, sequence, f"{layer},{head}")


def open_clicked_cell(session, prompt: str, sequence: dict | None, cell: str) -> AttentionOutputs:
    """The page writes 'layer,head,time' when a grid cell is clicked: open that head."""
    try:
        layer, head = (int(v) for v in str(cell).split(",")[:2])
    except ValueError as error:
        raise ValueError(f"expected 'layer,head', got {cell!r}") from error
    views = head_views(session, prompt_or_sequence(prompt, sequence), layer, head, False)
    return replace(views, layer=layer, head=head, mean=False)


def induction_example(session) -> AttentionOutputs:
    """Random words written twice: open the strongest induction head and grid the previous-token metric, both
    as measured on this model (page only)."""
    example = examples_for(session, "induction")
    layer, head, _ = example.induction
    text = example.prompt.text
    shown = show_attention(session, text, None, layer, head, False, "previous_token")
    return replace(shown, prompt=text, layer=layer, head=head, mean=False, metric="previous_token",
                   induction_note=_induction_note(example))


def _induction_note(example) -> str:
    period = example.prompt.period
    opened = "the induction head" if example.found else "the best candidate"
    return (f"**{example.summary()}.** The prompt is {period} random words written twice. A previous-token head "
            "looks at the token just before; an induction head, in the second copy, looks at the token that "
            f"followed the current word's first occurrence (the stripe {period - 1} tokens left of the diagonal), "
            f"so the model can copy what came next. The grid shows the previous-token metric; the heatmap opens "
            f"{opened}.")


def bertviz_views(session, prompt: str, sequence: dict | None, layer: int,
                  progress: gr.Progress = PROGRESS) -> AttentionOutputs:
    """bertviz's head and model views; all layers when they fit the page, else the chosen layer alone."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))
    limit = session.config.limits.max_bertviz_tokens
    if trace.n_pos > limit:
        raise ValueError(f"The prompt has {trace.n_pos} tokens; the bertviz views draw every weight in the "
                         f"browser and support at most {limit}. Shorten the prompt (the heatmaps above have no "
                         "such limit).")
    layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
    trace.check_attention()
    attention = []
    for index in range(trace.n_layers):
        progress((index, trace.n_layers + 2), desc="reading attention")
        attention.append(session.layer_patterns(trace, index))
    labels = trace.token_labels()
    progress((trace.n_layers, trace.n_layers + 2), desc="drawing the head view")
    head, head_note = _one_view(head_view_html, "Head view", "all layers (pick one in its menu)", attention, labels,
                                layer, limit, initial_layer=layer)
    progress((trace.n_layers + 1, trace.n_layers + 2), desc="drawing the model view")
    model, model_note = _one_view(model_view_html, "Model view", "every layer and head", attention, labels, layer,
                                  limit)
    return AttentionOutputs(bertviz_note=f"{head_note} {model_note}", bertviz_head=head, bertviz_model=model)


def _one_view(view, name: str, all_text: str, attention, labels, layer: int, limit: int, **extra) -> tuple[str, str]:
    """All layers when they fit the page, else the chosen layer alone."""
    try:
        return view(attention, labels, max_tokens=limit, prettify_tokens=False, **extra), f"{name}: {all_text}."
    except ValueError:
        extra.pop("initial_layer", None)
        return (view(attention, labels, layers=[layer], max_tokens=limit, prettify_tokens=False, **extra),
                f"{name}: layer {layer} only (all layers would be too large for the page).")


def export_numbers(session, prompt: str, sequence: dict | None, layer: int, head: int, mean_over_heads: bool,
                   metric: str) -> str:
    """The numbers of the three charts as one CSV file (page only)."""
    shown = show_attention(session, prompt, sequence, layer, head, mean_over_heads, metric)
    text = figures_csv({"heatmap": shown.heatmap, "all_heads": shown.all_heads, "grid": shown.grid})
    return write_download(f"attention-layer{layer}-head{head}", ".csv", text)


def export_bertviz(session, prompt: str, sequence: dict | None, layer: int) -> str:
    """bertviz's head view as one HTML file that opens offline, with its scripts inlined (page only)."""
    views = bertviz_views(session, prompt, sequence, layer)
    return write_download(f"bertviz-head-view-layer{layer}", ".html", standalone_bertviz_html(views.bertviz_head))


def attention_data(session, prompt: str, layer: int = 0) -> dict:
    """One layer's attention weights as nested lists [head][query_pos][key_pos], with the token labels."""
    trace = session.trace(prompt)
    layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
    trace.check_attention()
    patterns = session.layer_patterns(trace, layer)
    weights = [head_pattern(trace, patterns, layer, h).weights.round(6).tolist() for h in range(trace.n_heads)]
    return {"layer": layer, "tokens": trace.token_labels(), "n_heads": trace.n_heads, "n_kv_heads": trace.n_kv_heads,
            "kv_head_of": [kv_head_of(h, trace.n_heads, trace.n_kv_heads) for h in range(trace.n_heads)],
            "pattern": weights}


def render(session, prompt: gr.Textbox, sequence: gr.State) -> TabSync:
    dims = session.dims
    gr.Markdown(INTRO)
    c: dict[str, Any] = {"marker": marker_box(TAB_ID, auto=True)}
    with gr.Row():
        c["layer"] = gr.Slider(0, dims.n_layers - 1, value=0, step=1, label="layer", elem_id="itl-attn-layer")
        c["head"] = gr.Slider(0, dims.n_heads - 1, value=0, step=1, label="head", elem_id="itl-attn-head")
        c["mean"] = gr.Checkbox(label="mean over heads", value=False)
        show = gr.Button("Show attention", variant="primary", elem_id="itl-attn-show")
        induction = gr.Button("induction example", elem_id="itl-attn-induction")
    c["induction_note"] = gr.Markdown(elem_id="itl-attn-induction-note")
    c["note"] = gr.Markdown(elem_classes=["itl-out"])
    c["heatmap"] = gr.Plot(label="one head", elem_id="itl-attn-heatmap", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["heatmap"], elem_classes=["itl-caption"])
    with gr.Row():
        c["metric"] = metric = gr.Radio(list(METRICS), value="sink", label="summary metric",
                                        elem_id="itl-attn-metric")
    c["prompt"] = prompt
    c["grid"] = gr.Plot(label="layer x head summary", elem_id="itl-summary-grid", elem_classes=["itl-out"])
    c["selection"] = gr.Markdown(elem_id="itl-attn-selection", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["grid"], elem_classes=["itl-caption"])
    # The page script writes "layer,head,click-time" here when a grid cell is clicked (gr.Plot has no click event),
    # and "head,click-time" in the second box when a small multiple is clicked.
    grid_click = gr.Textbox(elem_id="itl-grid-click", elem_classes=["itl-hidden"], show_label=False)
    head_click = gr.Textbox(elem_id="itl-head-click", elem_classes=["itl-hidden"], show_label=False)
    with gr.Accordion("What the metrics mean", open=False):
        gr.Markdown(METRIC_HELP)
    c["all_heads"] = gr.Plot(label="all heads of the layer", elem_id="itl-attn-layer-heads", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["all_heads"], elem_classes=["itl-caption"])
    numbers_btn, numbers_file = download_control("⬇ numbers (CSV)", "itl-attn-export")
    gr.Markdown("### bertviz\nThe classic head view (lines from each token to the tokens it attends to; hover "
                "a token, click the coloured head swatches) and model view (every head as a thumbnail). They "
                f"draw every weight in the browser, so they take prompts of up to "
                f"{session.config.limits.max_bertviz_tokens} tokens. The head view opens at the chosen layer.")
    with gr.Row():
        bertviz_btn = gr.Button("Draw bertviz views", elem_id="itl-bertviz-btn")
        bertviz_export, bertviz_file = download_control("⬇ head view as one offline HTML file", "itl-bertviz-export")
    c["bertviz_note"] = gr.Markdown()
    c["bertviz_head"] = gr.HTML(elem_id="itl-bertviz-head", elem_classes=["itl-out"])
    c["bertviz_model"] = gr.HTML(elem_id="itl-bertviz-model", elem_classes=["itl-out"])
    gr.Markdown("Line thickness = attention weight from the token on the left to the token on the right; colours "
                "are heads.", elem_classes=["itl-caption"])

    on_head = [prompt, sequence, c["layer"], c["head"], c["mean"]]
    wire(induction.click, induction_example, session, [], AttentionOutputs, c,
         ["prompt", "layer", "head", "mean", "metric", "induction_note", *HEAD_FIELDS, "grid", "selection", "marker"],
         api_visibility="private", **model_event(session))
    _wire(session, c, on_head, metric, show, grid_click, head_click, bertviz_btn)
    wire_download(numbers_btn, numbers_file, data_handler(export_numbers, session), [*on_head, metric],
                  **model_event(session))
    wire_download(bertviz_export, bertviz_file, data_handler(export_bertviz, session), [prompt, sequence, c["layer"]],
                  **model_event(session))
    gr.api(data_handler(attention_data, session), api_name="attention_data",
           api_description=attention_data.__doc__, **model_event(session))

    def draw(event, open_tab):
        return wire(event, refresh, session, [open_tab, c["marker"], *on_head, metric], AttentionOutputs, c,
                    [*HEAD_FIELDS, "grid", "selection", "marker"], api_visibility="private", **model_event(session))
    return TabSync(TAB_ID, c["marker"], draw, dict(layer=c["layer"], head=c["head"], metric=metric))


def _wire(session, c, on_head, metric, show, grid_click, head_click, bertviz_btn) -> None:
    prompt, sequence = on_head[0], on_head[1]
    selection = dict(fn=handler(selected_cell, session, ["selection", "grid"]),
                     inputs=[prompt, sequence, c["layer"], c["head"], metric], outputs=[c["selection"], c["grid"]],
                     api_visibility="private", **model_event(session))
    wire(bertviz_btn.click, bertviz_views, session, [prompt, sequence, c["layer"]], AttentionOutputs, c,
         ["bertviz_note", "bertviz_head", "bertviz_model"], api_name="attention_bertviz",
         api_description=bertviz_views.__doc__, **model_event(session))
    wire(show.click, show_attention, session, [*on_head, metric], AttentionOutputs, c,
         [*HEAD_FIELDS, "grid", "selection", "marker"], api_name="attention", api_description=show_attention.__doc__,
         **model_event(session))
    wire(c["layer"].release, show_head, session, on_head, AttentionOutputs, c, HEAD_FIELDS,
         api_name="attention_head", api_description=show_head.__doc__, **slider_event(session)).then(**selection)
    for control in (c["head"].release, c["mean"].input):
        wire(control, show_head, session, on_head, AttentionOutputs, c, HEAD_FIELDS, api_visibility="private",
             **slider_event(session)).then(**selection)
    wire(metric.input, show_metric, session, [prompt, sequence, metric], AttentionOutputs, c, ["grid"],
         api_name="attention_summary", api_description=show_metric.__doc__, **slider_event(session)).then(**selection)
    wire(grid_click.change, open_clicked_cell, session, [prompt, sequence, grid_click], AttentionOutputs, c,
         ["layer", "head", "mean", *HEAD_FIELDS], api_visibility="private", **slider_event(session)).then(**selection)
    wire(head_click.change, open_clicked_head, session, [prompt, sequence, c["layer"], head_click], AttentionOutputs,
         c, ["layer", "head", "mean", *HEAD_FIELDS], api_visibility="private",
         **slider_event(session)).then(**selection)
