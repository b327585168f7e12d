"""KV-cache tab: a live, honest race of generation with and without the cache, and what the cache holds."""

from __future__ import annotations

import gradio as gr

from visualizer.analysis.kv_cache import RaceLimits, default_sweep_lengths
from visualizer.figures.kv_cache import (
    cache_inspector_html,
    cache_memory_figure,
    latency_figure,
    outputs_html,
    race_latency_figure,
    repeats_figure,
    summary_html,
    sweep_figure,
)
from visualizer.ui.common import model_event, prompt_or_sequence, user_errors

TITLE = "KV cache"

INTRO = """Without a cache, every new token re-runs the whole sequence so far, so each step is slower than the
last; with the cache, the keys and values of earlier tokens are kept and each step runs only the newest token.
The race below times `model.generate` both ways, token by token, greedily and at a fixed length (no early stop),
after a warm-up, while holding the model alone (other students' requests wait for the few seconds it takes)."""


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    limits = RaceLimits.from_app_limits(session.config.limits)
    with gr.Row():
        n_new = gr.Slider(2, limits.max_new_tokens, value=min(100, limits.max_new_tokens), step=1,
                          label="new tokens (N)", elem_id="itl-kv-n")
        repeats = gr.Slider(1, limits.max_repeats, value=min(3, limits.max_repeats), step=1, label="repeats (R)",
                            elem_id="itl-kv-r")
        start = gr.Button("Start the race", variant="primary", elem_id="itl-kv-start")
    gr.Markdown(INTRO)
    status = gr.Markdown(elem_id="itl-kv-status")
    latency = gr.Plot(label="time per new token", elem_id="itl-kv-latency")
    summary = gr.HTML(elem_id="itl-kv-summary")
    with gr.Row():
        repeat_plot = gr.Plot(label="repeats")
        outputs = gr.HTML(elem_id="itl-kv-outputs")
    gr.Markdown("### What the cache holds")
    inspector = gr.HTML(elem_id="itl-kv-inspector")
    memory = gr.Plot(label="cache size")
    gr.Markdown("### Length sweep\nTotal time against N for both modes: about linear with the cache, about "
                "quadratic without, which is why the gap grows with N.")
    sweep_btn = gr.Button("Run the sweep", elem_id="itl-kv-sweep")
    sweep_status = gr.Markdown()
    sweep_plot = gr.Plot(label="total time against N", elem_id="itl-kv-sweep-plot")

    @user_errors
    def on_race(prompt_text, seq, n, r):
        skip = [gr.skip()] * 6
        for update in session.kv_race(prompt_or_sequence(prompt_text, seq), n, r):
            if update.result is None:
                yield (f"⏱️ {update.message}", latency_figure(update.latencies_s, update.n_new_tokens), *skip)
                continue
            result = update.result
            yield (f"✅ {update.message}", race_latency_figure(result), summary_html(result), repeats_figure(result),
                   outputs_html(result.outputs), cache_inspector_html(result.cache), cache_memory_figure(result.cache))

    @user_errors
    def on_sweep(prompt_text, seq):
        ids = list(map(int, session.ids_of(prompt_or_sequence(prompt_text, seq))))
        room = (session.dims.n_ctx or 10**9) - len(ids)  # the sweep's longest run must fit the context
        lengths = default_sweep_lengths(min(limits.max_sweep_new_tokens, room), min(5, limits.max_sweep_points))
        for update in session.kv_sweep(ids, lengths, 1):
            yield update.message, sweep_figure(update.result or update)

    start.click(on_race, [prompt, sequence, n_new, repeats],
                [status, latency, summary, repeat_plot, outputs, inspector, memory], api_name="kv_cache",
                **model_event(session))
    sweep_btn.click(on_sweep, [prompt, sequence], [sweep_status, sweep_plot], api_name="kv_cache_sweep",
                    **model_event(session))

