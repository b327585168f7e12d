"""Attention tab: one head's heatmap, all heads of a layer, the layer x head summary grid, bertviz views."""

from __future__ import annotations

import gradio as gr

from visualizer.analysis.attention import METRICS, head_pattern, kv_head_of, metric_grid
from visualizer.figures.attention import head_heatmap, layer_heads_figure, summary_grid_figure
from visualizer.figures.bertviz_embed import head_view_html, model_view_html
from visualizer.ui.common import check_choice, model_event, prompt_or_sequence, slider_event, user_errors
from visualizer.validation import whole_number

TITLE = "Attention"

INTRO = """Each row of a heatmap is one token (the query) looking back at the tokens before it (the keys): the
weights in a row sum to 1, and the grey triangle is the causal mask (a token cannot see the future). The grid
below reduces every head to one number so you can find the heads worth opening: **click a cell** to open it."""

METRIC_HELP = "\n".join(f"- **{name.replace('_', ' ')}**: {text}" for name, text in METRICS.items())


def head_views(session, source, layer, head, mean_over_heads: bool):
    trace = session.trace(source)
    layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
    head = whole_number(head, "head", 0, trace.n_heads - 1)
    patterns = session.layer_patterns(trace, layer)  # [head, query_pos, key_pos]
    shown = head_pattern(trace, patterns, layer, None if mean_over_heads else head)
    kv_of_head = [kv_head_of(h, trace.n_heads, trace.n_kv_heads) for h in range(trace.n_heads)]
    small_multiples = layer_heads_figure(patterns.float().numpy(), trace.token_labels(), layer, kv_of_head)
    note = f"**{shown.description}**" + "".join(f"\n\n{n}" for n in trace.notes)
    return head_heatmap(shown), small_multiples, note


def bertviz_views(session, source, layer) -> tuple[str, str, str]:
    """bertviz's head and model views; all layers when they fit the page, else the chosen layer alone."""
    trace = session.trace(source)
    limit = session.config.limits.max_bertviz_tokens
    if trace.n_pos > limit:
        raise ValueError(f"The prompt has {trace.n_pos} tokens; the bertviz views draw every weight in the "
                         f"browser and support at most {limit}. Shorten the prompt (the heatmaps above have no "
                         "such limit).")
    layer = whole_number(layer, "layer", 0, trace.n_layers - 1)
    attention = [session.layer_patterns(trace, index) for index in range(trace.n_layers)]
    labels = trace.token_labels()
    try:
        head = head_view_html(attention, labels, initial_layer=layer, max_tokens=limit, prettify_tokens=False)
        note = "Head view: all layers (pick one in its menu). "
    except ValueError:
        head = head_view_html(attention, labels, layers=[layer], max_tokens=limit, prettify_tokens=False)
        note = f"Head view: layer {layer} only (all layers would be too large for the page). "
    try:
        model = model_view_html(attention, labels, max_tokens=limit, prettify_tokens=False)
        note += "Model view: every layer and head."
    except ValueError:
        model = model_view_html(attention, labels, layers=[layer], max_tokens=limit, prettify_tokens=False)
        note += f"Model view: layer {layer} only (all layers would be too large for the page)."
    return note, head, model


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    parts = session.dims
    gr.Markdown(INTRO)
    with gr.Row():
        layer = gr.Slider(0, parts.n_layers - 1, value=0, step=1, label="layer", elem_id="itl-attn-layer")
        head = gr.Slider(0, parts.n_heads - 1, value=0, step=1, label="head", elem_id="itl-attn-head")
        mean = gr.Checkbox(label="mean over heads", value=False)
        show = gr.Button("Show attention", variant="primary", elem_id="itl-attn-show")
    note = gr.Markdown()
    heatmap = gr.Plot(label="one head", elem_id="itl-attn-heatmap")
    with gr.Row():
        metric = gr.Radio(list(METRICS), value="sink", label="summary metric")
    grid = gr.Plot(label="layer x head summary", elem_id="itl-summary-grid")
    # The page script writes "layer,head,click-time" here when a grid cell is clicked (gr.Plot has no click event).
    grid_click = gr.Textbox(elem_id="itl-grid-click", elem_classes=["itl-hidden"], show_label=False)
    with gr.Accordion("What the metrics mean", open=False):
        gr.Markdown(METRIC_HELP)
    all_heads = gr.Plot(label="all heads of the layer", elem_id="itl-attn-layer-heads")
    gr.Markdown("### bertviz\nThe classic head view (lines from each token to the tokens it attends to; hover "
                "a token, click the coloured head swatches) and model view (every head as a thumbnail). They "
                f"draw every weight in the browser, so they take prompts of up to "
                f"{session.config.limits.max_bertviz_tokens} tokens.")
    bertviz_btn = gr.Button("Draw bertviz views", elem_id="itl-bertviz-btn")
    bertviz_note = gr.Markdown()
    bertviz_head = gr.HTML(elem_id="itl-bertviz-head")
    bertviz_model = gr.HTML(elem_id="itl-bertviz-model")

    @user_errors
    def on_show(prompt_text, seq, layer_value, head_value, mean_value, metric_value):
        source = prompt_or_sequence(prompt_text, seq)
        trace = session.trace(source)
        check_choice(metric_value, list(METRICS), "metric")
        one, small, text = head_views(session, source, layer_value, head_value, mean_value)
        return one, small, summary_grid_figure(metric_grid(trace, metric_value), metric_value), text

    @user_errors
    def on_head(prompt_text, seq, layer_value, head_value, mean_value):
        one, small, text = head_views(session, prompt_or_sequence(prompt_text, seq), layer_value, head_value,
                                      mean_value)
        return one, small, text

    @user_errors
    def on_metric(prompt_text, seq, metric_value):
        check_choice(metric_value, list(METRICS), "metric")
        trace = session.trace(prompt_or_sequence(prompt_text, seq))
        return summary_grid_figure(metric_grid(trace, metric_value), metric_value)

    @user_errors
    def on_grid_click(prompt_text, seq, cell):
        try:
            layer_value, head_value = (int(v) for v in str(cell).split(",")[:2])
        except ValueError as error:
            raise ValueError(f"expected 'layer,head', got {cell!r}") from error
        one, small, text = head_views(session, prompt_or_sequence(prompt_text, seq), layer_value, head_value,
                                      False)
        return layer_value, head_value, False, one, small, text

    @user_errors
    def on_bertviz(prompt_text, seq, layer_value):
        return bertviz_views(session, prompt_or_sequence(prompt_text, seq), layer_value)

    bertviz_btn.click(on_bertviz, [prompt, sequence, layer], [bertviz_note, bertviz_head, bertviz_model],
                      api_name="attention_bertviz", **model_event(session))
    show.click(on_show, [prompt, sequence, layer, head, mean, metric], [heatmap, all_heads, grid, note],
               api_name="attention", **model_event(session))
    layer.release(on_head, [prompt, sequence, layer, head, mean], [heatmap, all_heads, note],
                  api_name="attention_head", **slider_event(session))
    head.release(on_head, [prompt, sequence, layer, head, mean], [heatmap, all_heads, note],
                 api_visibility="private", **slider_event(session))
    mean.input(on_head, [prompt, sequence, layer, head, mean], [heatmap, all_heads, note],
               api_visibility="private", **slider_event(session))
    metric.input(on_metric, [prompt, sequence, metric], grid, api_name="attention_summary",
                 **slider_event(session))
    grid_click.change(on_grid_click, [prompt, sequence, grid_click], [layer, head, mean, heatmap, all_heads, note],
                     api_visibility="private", **slider_event(session))
