"""Next-token tab: tokens -> shapes -> top-k at every position -> logit lens -> step-through generation."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from visualizer.analysis.logit_lens import lens_grid, target_id_of, target_trajectory
from visualizer.analysis.next_token import check_position, tokenization, top_k
from visualizer.figures.logit_lens import lens_grid_figure, target_figure
from visualizer.figures.next_token import STEP_HEADERS, shapes_markdown, step_rows, token_chips_html, top_k_figure
from visualizer.ui.common import model_event, prompt_or_sequence, slider_event, user_errors
from visualizer.validation import whole_number

TITLE = "Next token"

INTRO = """The prompt becomes token ids; the model turns them into one hidden vector per token and a score
for every vocabulary entry **at every position at once**. The last position's distribution picks the next
token. The logit lens reads the same prediction out of every layer, so you can watch it form."""


@dataclass(frozen=True)
class Views:
    chips: str
    shapes: str
    topk: object
    lens: object
    target: object


def _target_id(session, trace, pos: int, target_text: str | None) -> int | None:
    return target_id_of(session.tokenizer, target_text) if target_text else None


def views(session, prompt, k, pos, target_text) -> Views:
    trace = session.trace(prompt)
    pos = check_position(trace, pos)
    lens = session.lens_log_probs(trace, pos)
    trajectory = target_trajectory(trace, session.tokenizer, lens, pos,
                                   _target_id(session, trace, pos, target_text))
    tokens = tokenization(trace)
    return Views(token_chips_html(tokens), shapes_markdown(tokens),
                 top_k_figure(top_k(trace, session.tokenizer, pos, k)),
                 lens_grid_figure(lens_grid(trace, session.tokenizer)), target_figure(trajectory))


def candidate_choices(session, prompt, k) -> list[tuple[str, int]]:
    result = top_k(session.trace(prompt), session.tokenizer, -1, min(int(k), 10))
    return [(f"{label} ({p:.2f})", token_id) for label, token_id, p in
            zip(result.token_labels, result.token_ids, result.probs, strict=True)]


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    limits = session.config.limits
    gr.Markdown(INTRO)
    with gr.Row():
        k = gr.Slider(1, limits.max_top_k, value=10, step=1, label="top-k candidates")
        target = gr.Textbox(label="target token for the lens (empty = the final top-1)", placeholder=" Paris")
        run = gr.Button("Run", variant="primary")
    chips = gr.HTML(elem_id="itl-token-chips")
    shapes = gr.Markdown()
    position = gr.Slider(0, 1, value=1, step=1, label="position (the next token after this one)")
    with gr.Row():
        topk_plot = gr.Plot(label="top-k next tokens", elem_id="itl-topk")
        target_plot = gr.Plot(label="target across layers", elem_id="itl-target")
    lens_plot = gr.Plot(label="logit lens", elem_id="itl-lens")

    gr.Markdown("### Step-through generation\nEach step appends one token (the argmax, or the candidate you "
                "pick) and shows that step's choice. *Generate N* feeds the KV cache from step to step: one "
                "new token per forward pass.")
    with gr.Row():
        candidate = gr.Radio(label="branch: pick the next token (empty = argmax)", choices=[], elem_id="itl-cands")
    with gr.Row():
        step_btn = gr.Button("Next token", elem_id="itl-next-token")
        n_new = gr.Slider(1, limits.max_new_tokens, value=min(20, limits.max_new_tokens), step=1,
                          label="N new tokens")
        generate_btn = gr.Button("Generate N")
    text = gr.Textbox(label="text so far", interactive=False, lines=3, elem_id="itl-growing-text")
    table = gr.Dataframe(headers=STEP_HEADERS, datatype=["number", "str", "number", "number", "number", "str"],
                         label="steps", interactive=False, elem_id="itl-steps")
    steps = gr.State([])

    view_outputs = [chips, shapes, topk_plot, lens_plot, target_plot]

    def full_update(source, k_value, target_text, step_rows_so_far):
        trace = session.trace(source)
        v = views(session, source, k_value, -1, target_text)
        return (v.chips, v.shapes, v.topk, v.lens, v.target,
                gr.update(maximum=max(trace.n_pos - 1, 1), value=trace.n_pos - 1),
                gr.update(choices=candidate_choices(session, source, k_value), value=None),
                trace.text, step_rows_so_far)

    @user_errors
    def on_run(prompt_text, k_value, target_text):
        return (*full_update(prompt_text, k_value, target_text, []), None, [])

    @user_errors
    def on_position(prompt_text, seq, k_value, pos, target_text):
        v = views(session, prompt_or_sequence(prompt_text, seq), k_value, pos, target_text)
        return v.topk, v.target

    @user_errors
    def on_step(prompt_text, seq, rows, k_value, chosen, target_text):
        trace = session.trace(prompt_or_sequence(prompt_text, seq))
        candidates = [int(i) for i in trace.topk_ids[-1]]
        forced = chosen is not None and int(chosen) != candidates[0]
        token_id = int(chosen) if chosen is not None else candidates[0]
        if token_id not in candidates:
            raise ValueError("pick one of the listed candidates")
        rank = candidates.index(token_id)
        label = top_k(trace, session.tokenizer, -1, rank + 1).token_labels[rank]
        rows = rows + [[len(rows) + 1, label + (" (picked)" if forced else ""), token_id,
                        round(float(trace.topk_probs[-1, rank]), 4), round(float(trace.entropy[-1]), 3),
                        f"rank {rank + 1} of the candidates"]]
        new_sequence = list(map(int, trace.token_ids)) + [token_id]
        return (*full_update(new_sequence, k_value, target_text, rows), new_sequence, rows)

    @user_errors
    def on_generate(prompt_text, seq, rows, n, k_value, target_text):
        source = prompt_or_sequence(prompt_text, seq)
        start = list(map(int, session.ids_of(source)))
        whole_number(n, "N new tokens", 1, limits.max_new_tokens)
        new_ids: list[int] = []
        for step in session.generate_steps(start, n):
            new_ids.append(step.token_id)
            rows = rows + [[len(rows) + 1] + step_rows([step])[0][1:]]
            yield (*[gr.skip()] * 7, session.tokenizer.decode(start + new_ids), rows, gr.skip(), gr.skip())
        final = start + new_ids
        yield (*full_update(final, k_value, target_text, rows), final, rows)

    full_outputs = [*view_outputs, position, candidate, text, table, sequence, steps]
    run.click(on_run, [prompt, k, target], full_outputs, api_name="next_token", **model_event(session))
    prompt.submit(on_run, [prompt, k, target], full_outputs, api_visibility="private", **model_event(session))
    position.release(on_position, [prompt, sequence, k, position, target], [topk_plot, target_plot],
                     api_name="next_token_position", **slider_event(session))
    target.submit(on_position, [prompt, sequence, k, position, target], [topk_plot, target_plot],
                  api_name="next_token_target", **model_event(session))
    step_btn.click(on_step, [prompt, sequence, steps, k, candidate, target], full_outputs,
                   api_name="next_token_step", **model_event(session))
    generate_btn.click(on_generate, [prompt, sequence, steps, n_new, k, target], full_outputs,
                       api_name="next_token_generate", **model_event(session))
