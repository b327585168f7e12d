"""Next-token tab: tokens -> shapes -> top-k at every position -> logit lens -> step-through generation.

Handlers are module-level functions of (session, inputs...) returning `NextTokenOutputs`; `render` only lays out
components and wires them by field name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from visualizer.analysis.logit_lens import lens_grid, target_id_of, target_trajectory
from visualizer.analysis.next_token import check_position, tokenization, top_k, top_next_summaries
from visualizer.figures.export import figures_csv
from visualizer.figures.logit_lens import lens_grid_figure, target_figure
from visualizer.figures.next_token import STEP_HEADERS, shapes_markdown, step_rows, token_chips_html, top_k_figure
from visualizer.ui.common import (
    PROGRESS,
    TabSync,
    components_for,
    data_handler,
    handler,
    is_current,
    made_from,
    marker_box,
    model_event,
    names_of,
    prompt_or_sequence,
    slider_event,
    stepped,
    steps_so_far,
    unchanged,
    wire,
)
from visualizer.ui.exports import download_control, wire_download, write_download
from visualizer.validation import whole_number

TITLE = "Next token"
TAB_ID = "next_token"
CAPTIONS = {
    "chips": "Click a chip to read the prediction after it below; hover for its id and how expected it was.",
    "topk": "Bars: the most likely next tokens after the chosen position, longest = the model's favourite.",
    "target": "The target token's probability (solid) and rank (dotted, 1 = top) as each layer reads it.",
    "lens": "Each cell: the top-1 next token read after that layer at that position (darker = surer). "
            "Click a cell to choose its position.",
}

INTRO = """The prompt becomes token ids; the model turns them into one hidden vector per token and a score
for every vocabulary entry **at every position at once**. The last position's distribution picks the next
token. The logit lens reads the same prediction out of every layer, so you can watch it form."""


@dataclass(frozen=True)
class NextTokenOutputs:
    chips: Any = unchanged()  # HTML of the token chips
    shapes: Any = unchanged()  # Markdown: hidden-state and logits shapes
    topk: Any = unchanged()  # figure: top-k after the chosen position
    lens: Any = unchanged()  # figure: the logit lens grid (None when the lens is unavailable)
    target: Any = unchanged()  # figure: one token across layers (None when the lens is unavailable)
    lens_note: Any = unchanged()  # Markdown: why the lens is not shown, or ""
    position: Any = unchanged()  # the position slider's value
    text: Any = unchanged()  # the text so far
    table: Any = unchanged()  # the step table rows
    sequence: Any = unchanged()  # gr.State: {"prompt", "ids", "rows"} or None
    marker: Any = unchanged()  # hidden: made_from of the drawn results


VIEW_FIELDS = ["chips", "shapes", "topk", "lens", "target", "lens_note"]
POSITION_FIELDS = ["topk", "target", "lens_note"]


def _lens_views(session, trace, pos: int, target_text: str | None, with_grid: bool = True) -> dict:
    """The lens charts, or the self-check's message in their place (the rest of the tab still shows).
    The grid does not depend on the position: a position change redraws the target's chart only."""
    if trace.lens_unavailable:
        return dict(lens=None, target=None, lens_note=f"⚠️ {trace.lens_unavailable}")
    lens = session.lens_log_probs(trace, pos)
    target_id = target_id_of(session.tokenizer, target_text) if target_text else None
    trajectory = target_trajectory(trace, session.tokenizer, lens, pos, target_id)
    views = dict(target=target_figure(trajectory), lens_note="")
    if with_grid:
        views["lens"] = lens_grid_figure(lens_grid(trace, session.tokenizer, session.lens_top(trace)))
    return views


def _views(session, source, k, pos, target_text) -> NextTokenOutputs:
    trace = session.trace(source)
    pos = check_position(trace, pos)
    tokens = tokenization(trace)
    return NextTokenOutputs(chips=token_chips_html(tokens, top_next_summaries(trace, session.tokenizer)),
                            shapes=shapes_markdown(tokens),
                            topk=top_k_figure(top_k(trace, session.tokenizer, pos, k)),
                            **_lens_views(session, trace, pos, target_text))


def _whole_view(session, source, k, target_text, prompt: str, rows: list[list]) -> NextTokenOutputs:
    """Every view of a sequence at its last position, with the state that says which prompt it belongs to."""
    trace = session.trace(source)
    ids = [int(i) for i in trace.token_ids]
    state = stepped(prompt, ids, rows) if rows else None
    return replace(_views(session, source, k, -1, target_text), position=trace.n_pos - 1, text=trace.text,
                   table=rows, sequence=state, marker=made_from(prompt, state))


def run_next_token(session, prompt: str, top_k_count: int, target_token: str) -> NextTokenOutputs:
    """Tokens, shapes, top-k, logit lens for the prompt; any stored step-through sequence is dropped."""
    return _whole_view(session, prompt, top_k_count, target_token, prompt, [])


def at_position(session, prompt: str, sequence: dict | None, top_k_count: int, position: int,
                target_token: str) -> NextTokenOutputs:
    """Top-k and the target's path across layers after one position (validated against the trace)."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))
    pos = check_position(trace, position)
    return NextTokenOutputs(topk=top_k_figure(top_k(trace, session.tokenizer, pos, top_k_count)),
                            **_lens_views(session, trace, pos, target_token, with_grid=False))


def refresh(session, open_tab: str, marker: str, prompt: str, sequence: dict | None, top_k_count: int,
            target_token: str) -> NextTokenOutputs:
    """Redraw when this tab is open and its results are from another prompt (page only)."""
    if is_current(TAB_ID, open_tab, marker, prompt, sequence):
        return NextTokenOutputs()
    return run_next_token(session, prompt, top_k_count, target_token)


def at_clicked_position(session, prompt: str, sequence: dict | None, top_k_count: int, clicked: str,
                        target_token: str) -> NextTokenOutputs:
    """The page writes 'position,time' when a chip or a lens cell is clicked: show that position."""
    try:
        position = int(str(clicked).split(",")[0])
    except ValueError as error:
        raise ValueError(f"expected 'position', got {clicked!r}") from error
    return replace(at_position(session, prompt, sequence, top_k_count, position, target_token), position=position)


def at_link_position(session, prompt: str, sequence: dict | None, top_k_count: int, link: dict | None,
                     target_token: str) -> NextTokenOutputs:
    """After a link or lesson redraws the tab, move to the position it names, if any (page only)."""
    if not isinstance(link, dict) or link.get("position") is None or link.get("tab") not in (None, TAB_ID):
        return NextTokenOutputs()
    return at_clicked_position(session, prompt, sequence, top_k_count, str(link["position"]), target_token)


def export_numbers(session, prompt: str, sequence: dict | None, top_k_count: int, position: int,
                   target_token: str) -> str:
    """The numbers of the top-k, target and logit-lens charts as one CSV file (page only)."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))
    pos = check_position(trace, position)
    shown = _views(session, prompt_or_sequence(prompt, sequence), top_k_count, pos, target_token)
    text = figures_csv({"top_k": shown.topk, "target_across_layers": shown.target, "logit_lens": shown.lens})
    return write_download(f"next-token-position{pos}", ".csv", text)


def step(session, prompt: str, sequence: dict | None, top_k_count: int, chosen_token_id: int | None,
         target_token: str) -> NextTokenOutputs:
    """Append one token (the argmax, or a picked candidate) to the sequence grown from this prompt."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))
    candidates = top_k(trace, session.tokenizer, -1, session.config.limits.max_top_k)
    token_id = candidates.token_ids[0] if chosen_token_id is None else chosen_token_id
    if token_id not in candidates.token_ids:
        raise ValueError(f"chosen token id must be one of the listed candidates, got {chosen_token_id!r}")
    rank = candidates.token_ids.index(token_id)
    forced = rank != 0
    rows = steps_so_far(prompt, sequence)
    rows.append([len(rows) + 1, candidates.token_labels[rank] + (" (picked)" if forced else ""), int(token_id),
                 round(float(candidates.probs[rank]), 4), round(candidates.entropy, 3),
                 f"rank {rank + 1} of the candidates"])
    return _whole_view(session, [int(i) for i in trace.token_ids] + [int(token_id)], top_k_count, target_token,
                       prompt, rows)


def generate(session, prompt: str, sequence: dict | None, n_new_tokens: int, top_k_count: int, target_token: str,
             progress: gr.Progress = PROGRESS):
    """Greedy generation of N tokens with the KV cache, streamed one row at a time."""
    start = [int(i) for i in session.ids_of(prompt_or_sequence(prompt, sequence))]
    n = whole_number(n_new_tokens, "N new tokens", 1, session.config.limits.max_new_tokens)
    rows = steps_so_far(prompt, sequence)
    new_ids: list[int] = []
    for index, item in enumerate(session.generate_steps(start, n)):
        progress((index + 1, n), desc="generating")
        new_ids.append(item.token_id)
        rows.append([len(rows) + 1] + step_rows([item])[0][1:])
        yield NextTokenOutputs(text=session.tokenizer.decode(start + new_ids), table=list(rows))
    yield _whole_view(session, start + new_ids, top_k_count, target_token, prompt, rows)


@dataclass(frozen=True)
class HintOutputs:
    position: Any  # gr.update of the slider's bounds (page only)
    candidates: Any  # gr.update of the branch choices (page only)
    chosen: Any  # the hidden chosen-token id, reset


def page_hints(session, prompt: str, sequence: dict | None, top_k_count: int) -> HintOutputs:
    """Slider bounds and branch choices for the page. Run after an event by the page only (a .then), so the
    API's validation never depends on what a session called before."""
    trace = session.trace(prompt_or_sequence(prompt, sequence))
    result = top_k(trace, session.tokenizer, -1, min(whole_number(top_k_count, "k", 1, 10**6), 10))
    choices = [(f"{label} ({p:.2f})", token_id) for label, token_id, p in
               zip(result.token_labels, result.token_ids, result.probs, strict=True)]
    return HintOutputs(gr.update(maximum=max(trace.n_pos - 1, 1)), gr.update(choices=choices, value=None), None)


def next_token_data(session, prompt: str, top_k_count: int = 10, position: int = -1) -> dict:
    """The numbers behind the top-k chart: ids, tokens and probabilities of the k most likely next tokens."""
    trace = session.trace(prompt)
    result = top_k(trace, session.tokenizer, position, top_k_count)
    return {"position": result.pos, "after": result.after, "token_ids": list(result.token_ids),
            "tokens": list(result.token_labels), "probabilities": [float(p) for p in result.probs],
            "entropy_nats": result.entropy, "n_tokens": trace.n_pos}


def render(session, prompt: gr.Textbox, sequence: gr.State) -> TabSync:
    limits = session.config.limits
    gr.Markdown(INTRO)
    with gr.Row():
        k = gr.Slider(1, limits.max_top_k, value=10, step=1, label="top-k candidates")
        target = gr.Textbox(label="target token for the lens (empty = the final top-1)", placeholder=" Paris")
        run = gr.Button("Run", variant="primary")
    c: dict[str, Any] = dict(sequence=sequence, marker=marker_box(TAB_ID, auto=True))
    c["chips"] = gr.HTML(elem_id="itl-token-chips", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["chips"], elem_classes=["itl-caption"])
    c["shapes"] = gr.Markdown(elem_classes=["itl-out"])
    # The server bounds the position by the trace; this maximum only lets any prompt's positions through
    # (the page narrows it after each run, for the page alone).
    c["position"] = gr.Slider(0, max(session.max_prompt_tokens - 1, 1), value=1, step=1,
                              label="position (the next token after this one)", elem_id="itl-position")
    # The page script writes "position,click-time" here when a chip or a lens cell is clicked.
    clicked = gr.Textbox(elem_id="itl-position-click", elem_classes=["itl-hidden"], show_label=False)
    c["lens_note"] = gr.Markdown(elem_id="itl-lens-note")
    with gr.Row():
        with gr.Column():
            c["topk"] = gr.Plot(label="top-k next tokens", elem_id="itl-topk", elem_classes=["itl-out"])
            gr.Markdown(CAPTIONS["topk"], elem_classes=["itl-caption"])
        with gr.Column():
            c["target"] = gr.Plot(label="target across layers", elem_id="itl-target", elem_classes=["itl-out"])
            gr.Markdown(CAPTIONS["target"], elem_classes=["itl-caption"])
    c["lens"] = gr.Plot(label="logit lens", elem_id="itl-lens", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["lens"], elem_classes=["itl-caption"])
    numbers_btn, numbers_file = download_control("⬇ numbers (CSV)", "itl-next-export")

    gr.Markdown("### Step-through generation\nEach step appends one token (the argmax, or the candidate you "
                "pick) and shows that step's choice. *Generate N* feeds the KV cache from step to step: one "
                "new token per forward pass.")
    with gr.Row():
        c["candidates"] = gr.Radio(label="branch: pick the next token (empty = argmax)", choices=[],
                                   elem_id="itl-cands")
        c["chosen"] = gr.Number(None, precision=0, visible=False, label="chosen token id")
    with gr.Row():
        step_btn = gr.Button("Next token", elem_id="itl-next-token")
        n_new = gr.Slider(1, limits.max_new_tokens, value=min(20, limits.max_new_tokens), step=1,
                          label="N new tokens")
        generate_btn = gr.Button("Generate N", elem_id="itl-generate")
    c["text"] = gr.Textbox(label="text so far", interactive=False, lines=3, elem_id="itl-growing-text")
    c["table"] = gr.Dataframe(headers=STEP_HEADERS, datatype=["number", "str", "number", "number", "number", "str"],
                              label="steps", interactive=False, elem_id="itl-steps")
    # Picking a branch only copies its id into the hidden number, in the page: the choices never gate the API.
    c["candidates"].input(None, c["candidates"], c["chosen"], js="(v) => v", queue=False, api_visibility="private")

    hints = _wire(session, c, prompt, sequence, k, target, n_new, run, step_btn, generate_btn)
    wire(clicked.change, at_clicked_position, session, [prompt, sequence, k, clicked, target], NextTokenOutputs, c,
         ["position", *POSITION_FIELDS], api_visibility="private", **slider_event(session))
    wire_download(numbers_btn, numbers_file, data_handler(export_numbers, session),
                  [prompt, sequence, k, c["position"], target], **model_event(session))
    gr.api(data_handler(next_token_data, session), api_name="next_token_data",
           api_description=next_token_data.__doc__, **model_event(session))

    def draw(event, open_tab):
        return wire(event, refresh, session, [open_tab, c["marker"], prompt, sequence, k, target], NextTokenOutputs,
                    c, FULL_FIELDS, api_visibility="private", **model_event(session)).then(**hints)

    def after_link(event, link):
        return wire(event, at_link_position, session, [prompt, sequence, k, link, target], NextTokenOutputs, c,
                    ["position", *POSITION_FIELDS], api_visibility="private", **model_event(session))
    return TabSync(TAB_ID, c["marker"], draw, dict(position=c["position"]), after_link)


FULL_FIELDS = ["chips", "shapes", "topk", "lens", "target", "lens_note", "position", "text", "table", "sequence",
               "marker"]


def _wire(session, c, prompt, sequence, k, target, n_new, run, step_btn, generate_btn) -> dict:
    full = FULL_FIELDS
    hint_names = names_of(HintOutputs)
    hints = dict(fn=handler(page_hints, session, hint_names), inputs=[prompt, sequence, k],
                 outputs=components_for(c, hint_names), api_visibility="private", **model_event(session))
    on_run = [prompt, k, target]
    wire(run.click, run_next_token, session, on_run, NextTokenOutputs, c, full, api_name="next_token",
         api_description=run_next_token.__doc__, **model_event(session)).then(**hints)
    on_position = [prompt, sequence, k, c["position"], target]
    wire(c["position"].release, at_position, session, on_position, NextTokenOutputs, c, POSITION_FIELDS,
         api_name="next_token_position", api_description=at_position.__doc__, **slider_event(session))
    wire(target.submit, at_position, session, on_position, NextTokenOutputs, c, POSITION_FIELDS,
         api_name="next_token_target", api_description=at_position.__doc__, **model_event(session))
    wire(step_btn.click, step, session, [prompt, sequence, k, c["chosen"], target], NextTokenOutputs, c, full,
         api_name="next_token_step", api_description=step.__doc__, **model_event(session)).then(**hints)
    wire(generate_btn.click, generate, session, [prompt, sequence, n_new, k, target], NextTokenOutputs, c, full,
         api_name="next_token_generate", api_description=generate.__doc__, **model_event(session)).then(**hints)
    return hints
