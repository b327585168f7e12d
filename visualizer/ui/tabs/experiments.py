"""Experiments tab: ask the model why. Direct logit attribution, ablation, activation patching, minimal pairs.

Handlers are module-level functions of (session, inputs...) returning `ExperimentOutputs`; the session's
ExperimentsMixin does the work through the permanent capture (nothing is hooked per request).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from visualizer.figures.experiments import (
    ablation_bars,
    attention_diff_heatmap,
    attribution_bars,
    head_attribution_heatmap,
    head_grid_heatmap,
    highlight_heads,
    pair_bars,
    patching_heatmap,
)
from visualizer.ui.common import model_event, prompt_or_sequence, skip, unchanged, wire
from visualizer.validation import whole_number

TITLE = "Experiments"

INTRO = """Every other tab observes; here you intervene. **Attribution** splits the chosen token's logit into what
each layer, attention block, MLP and head wrote into the residual stream (read through the final norm *frozen* at
that position). **Ablation** knocks parts out and shows what changes. **Patching** copies activations from a clean
prompt into a corrupted one to find where the answer is carried. **Minimal pair** compares two prompts.
Click a cell of a layer x head grid to pick that head for ablation (click again to drop it)."""

GRID_IDS = ("itl-exp-heads", "itl-exp-head-grid")  # the layer x head grids whose cells pick heads
# gr.Plot has no click event: this page script, run when a hidden gr.HTML mounts, turns a grid cell's click into
# that component's click event (no page-wide include needed).
GRID_CLICK_JS = (Path(__file__).resolve().parents[2] / "assets" / "experiments.js").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ExperimentOutputs:
    attribution_plot: Any = unchanged()
    heads_plot: Any = unchanged()
    attribution_note: Any = unchanged()
    ablation_plot: Any = unchanged()
    head_grid_plot: Any = unchanged()
    ablation_note: Any = unchanged()
    patching_plot: Any = unchanged()
    patching_note: Any = unchanged()
    pair_plot: Any = unchanged()
    pair_attention_plot: Any = unchanged()
    pair_note: Any = unchanged()
    heads_text: Any = unchanged()


def parse_heads(text: str) -> list[list[int]]:
    """'0.1, 2.3' (layer.head) -> [[0, 1], [2, 3]].

    >>> parse_heads("0.1, 2.3")
    [[0, 1], [2, 3]]
    """
    pairs = []
    for item in (text or "").replace(";", ",").split(","):
        if item.strip():
            layer, _, head = item.strip().partition(".")
            if not (layer.isdigit() and head.isdigit()):
                raise ValueError(f"heads: write layer.head pairs separated by commas (e.g. 0.1, 2.3), got {item!r}")
            pairs.append([int(layer), int(head)])
    return pairs


def format_heads(pairs: list[list[int]]) -> str:
    return ", ".join(f"{layer}.{head}" for layer, head in pairs)


def toggle_head(heads: str, layer: int, head: int) -> str:
    """Add layer.head to the list, or take it out when it is already there.

    >>> toggle_head("0.1, 2.3", 1, 0)
    '0.1, 2.3, 1.0'
    >>> toggle_head("0.1, 2.3", 0, 1)
    '2.3'
    """
    pairs = parse_heads(heads)
    return format_heads([p for p in pairs if p != [layer, head]] if [layer, head] in pairs else [*pairs, [layer, head]])


def selected_heads(text: str) -> list[list[int]]:
    """The well-formed layer.head items of a list being typed (the rest is ignored until it is complete)."""
    pairs = []
    for item in (text or "").replace(";", ",").split(","):
        try:
            pairs += parse_heads(item)
        except ValueError:
            continue
    return pairs


def on_grid_click(session, heads: str, evt: gr.EventData) -> ExperimentOutputs:
    """A click on cell (layer, head) of a layer x head grid toggles that head in the ablation list."""
    data = getattr(evt, "_data", None) or {}
    layer = whole_number(data.get("layer"), "clicked layer", 0, session.dims.n_layers - 1)
    head = whole_number(data.get("head"), "clicked head", 0, session.dims.n_heads - 1)
    return ExperimentOutputs(heads_text=toggle_head(heads, layer, head))


def _outlined(plot: Any, pairs: list[list[int]]) -> Any:
    """The grid `plot` (as the page sends it back) with `pairs` outlined; left alone while there is no grid."""
    figure = plot.get("plot") if isinstance(plot, dict) else getattr(plot, "plot", None)
    return highlight_heads(figure, [(layer, head) for layer, head in pairs]) if figure else skip()


def show_selection(heads: str, heads_plot: Any, head_grid_plot: Any) -> ExperimentOutputs:
    """Outline the heads picked for ablation on both layer x head grids."""
    pairs = selected_heads(heads)
    return ExperimentOutputs(heads_plot=_outlined(heads_plot, pairs), head_grid_plot=_outlined(head_grid_plot, pairs))


def parse_layers(text: str, name: str) -> list[int]:
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not all(item.isdigit() for item in items):
        raise ValueError(f"{name}: write layer numbers separated by commas (e.g. 0, 3), got {text!r}")
    return [int(item) for item in items]


def attribution(session, prompt: str, sequence: dict | None, target: str = "", position: int = -1
                ) -> ExperimentOutputs:
    """Direct logit attribution of a target token (empty: the top-1) at a position (-1: the last)."""
    result = session.attribution(prompt_or_sequence(prompt, sequence), target=target or None, position=position)
    notes = [*result.notes, f"Parts sum to {result.total:.4f}; the logit is {result.parts_logit:.4f} "
             f"(|difference| {result.max_error:.2g})."]
    notes += [f"Attention and MLP not shown apart: {result.split_unavailable}."] if result.split_unavailable else []
    notes += [f"Heads not shown: {result.heads_unavailable}."] if result.heads_unavailable else []
    return ExperimentOutputs(attribution_plot=attribution_bars(result), heads_plot=head_attribution_heatmap(result),
                             attribution_note="\n\n".join(notes))


def ablation(session, prompt: str, sequence: dict | None, heads: str = "", attention_layers: str = "",
             mlp_layers: str = "", mode: str = "zero", target: str = "", each_head: bool = False
             ) -> ExperimentOutputs:
    """Ablate heads ('layer.head, ...'), attention and MLP blocks ('0, 3'); optionally every head in turn."""
    source = prompt_or_sequence(prompt, sequence)
    result = session.ablation(source, heads=parse_heads(heads), attention_layers=parse_layers(attention_layers,
                              "attention layers"), mlp_layers=parse_layers(mlp_layers, "MLP layers"), mode=mode,
                              target=target or None)
    grid = session.ablate_each_head(source, mode=mode, target=result.target_id) if each_head else None
    note = (f"**{result.description}**: log p({result.target_text!r}) {result.log_prob_before:.3f} → "
            f"{result.log_prob_after:.3f} (Δ {result.delta_log_prob:+.3f}); KL(before ‖ after) = {result.kl:.4f} "
            "nats over the whole vocabulary.")
    return ExperimentOutputs(ablation_plot=ablation_bars(result), ablation_note=note,
                             head_grid_plot=head_grid_heatmap(grid) if grid is not None else None)


def patching(session, clean_prompt: str, corrupted_prompt: str, site: str = "resid", clean_answer: str = "",
             corrupted_answer: str = "") -> ExperimentOutputs:
    """Patch each activation at each position from the clean run into the corrupted one (empty answers: top-1)."""
    result = session.patching(clean_prompt, corrupted_prompt, site=site, clean_answer=clean_answer or None,
                              corrupted_answer=corrupted_answer or None)
    note = (f"Logit difference {result.clean_answer!r} − {result.corrupted_answer!r}: clean {result.clean_diff:.3f},"
            f" corrupted {result.corrupted_diff:.3f}; {result.forward_passes} batched forward passes.")
    return ExperimentOutputs(patching_plot=patching_heatmap(result), patching_note=note)


def minimal_pair(session, prompt_a: str, prompt_b: str, layer: int = 0, head: int = 0) -> ExperimentOutputs:
    """Next-token distributions of two prompts side by side, and one head's attention difference."""
    result = session.minimal_pair(prompt_a, prompt_b, layer=layer, head=head)
    note = (f"KL(A‖B) = {result.kl_ab:.4f}, KL(B‖A) = {result.kl_ba:.4f}, JS = {result.js:.4f} nats. "
            f"{result.attention_note}")
    return ExperimentOutputs(pair_plot=pair_bars(result), pair_attention_plot=attention_diff_heatmap(result),
                             pair_note=note)


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    dims = session.dims
    gr.Markdown(INTRO)
    c: dict[str, Any] = {}
    with gr.Accordion("Direct logit attribution", open=True):
        with gr.Row():
            target = gr.Textbox(label="target token (empty: the top-1)", elem_id="itl-exp-target")
            position = gr.Number(value=-1, precision=0, label="position (-1: last)")
            attribute_btn = gr.Button("Attribute", variant="primary", elem_id="itl-exp-attribute")
        c["attribution_note"] = gr.Markdown()
        c["attribution_plot"] = gr.Plot(label="per layer")
        c["heads_plot"] = gr.Plot(label="per head", elem_id="itl-exp-heads")
    with gr.Accordion("Ablation", open=False):
        with gr.Row():
            heads = gr.Textbox(label="heads (layer.head, ...; or click a grid cell)", elem_id="itl-exp-heads-text")
            attention_layers = gr.Textbox(label="attention blocks (layers)")
            mlp_layers = gr.Textbox(label="MLP blocks (layers)")
            mode = gr.Radio(["zero", "mean"], value="zero", label="ablation")
            each_head = gr.Checkbox(label="also each head in turn", value=False)
            ablate_btn = gr.Button("Ablate", variant="primary", elem_id="itl-exp-ablate")
        c["ablation_note"] = gr.Markdown(elem_id="itl-exp-ablation-note")
        c["ablation_plot"] = gr.Plot(label="top-k before and after", elem_id="itl-exp-ablation")
        c["head_grid_plot"] = gr.Plot(label="each head in turn", elem_id="itl-exp-head-grid")
    c["heads_text"] = heads
    grid_click = gr.HTML("", js_on_load=GRID_CLICK_JS, elem_id="itl-exp-grid-click", elem_classes=["itl-hidden"])
    with gr.Accordion("Activation patching", open=False):
        with gr.Row():
            clean = gr.Textbox(value="The capital of France is", label="clean prompt")
            corrupted = gr.Textbox(value="The capital of Japan is", label="corrupted prompt")
            site = gr.Radio(["resid", "attn_out", "mlp_out"], value="resid", label="patch")
        with gr.Row():
            clean_answer = gr.Textbox(label="clean answer (empty: top-1)")
            corrupted_answer = gr.Textbox(label="corrupted answer (empty: top-1)")
            patch_btn = gr.Button("Patch", variant="primary")
        c["patching_note"] = gr.Markdown()
        c["patching_plot"] = gr.Plot(label="restored logit difference")
    with gr.Accordion("Minimal pair", open=False):
        with gr.Row():
            prompt_a = gr.Textbox(value="The capital of France is", label="prompt A")
            prompt_b = gr.Textbox(value="The capital of Japan is", label="prompt B")
            layer = gr.Slider(0, dims.n_layers - 1, value=0, step=1, label="layer")
            head = gr.Slider(0, dims.n_heads - 1, value=0, step=1, label="head")
            pair_btn = gr.Button("Compare", variant="primary")
        c["pair_note"] = gr.Markdown()
        c["pair_plot"] = gr.Plot(label="next-token change")
        c["pair_attention_plot"] = gr.Plot(label="attention difference")
    selection_inputs = [heads, c["heads_plot"], c["head_grid_plot"]]
    selection_outputs = ["heads_plot", "head_grid_plot"]
    for button, fn, inputs, names in [
        (attribute_btn, attribution, [prompt, sequence, target, position],
         ["attribution_plot", "heads_plot", "attribution_note"]),
        (ablate_btn, ablation, [prompt, sequence, heads, attention_layers, mlp_layers, mode, target, each_head],
         ["ablation_plot", "head_grid_plot", "ablation_note"]),
        (patch_btn, patching, [clean, corrupted, site, clean_answer, corrupted_answer],
         ["patching_plot", "patching_note"]),
        (pair_btn, minimal_pair, [prompt_a, prompt_b, layer, head], ["pair_plot", "pair_attention_plot", "pair_note"]),
    ]:
        event = wire(button.click, fn, session, inputs, ExperimentOutputs, c, names, api_name=fn.__name__,
                     api_description=fn.__doc__, **model_event(session))
        if fn in (attribution, ablation):  # a new grid shows the heads already picked
            wire(event.then, show_selection, None, selection_inputs, ExperimentOutputs, c, selection_outputs,
                 api_visibility="private", show_progress="hidden")
    wire(grid_click.click, on_grid_click, session, [heads], ExperimentOutputs, c, ["heads_text"],
         api_visibility="private", show_progress="hidden")
    wire(heads.change, show_selection, None, selection_inputs, ExperimentOutputs, c, selection_outputs,
         api_visibility="private", show_progress="hidden", trigger_mode="always_last")
