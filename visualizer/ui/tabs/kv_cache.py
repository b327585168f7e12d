"""KV-cache tab: a live, honest race of generation with and without the cache, and what the cache holds.

Handlers are module-level generators of (session, inputs...) yielding `KvCacheOutputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

# Every name this tab takes from the KV-cache analysis, in one place (the package may move).
from visualizer.analysis.kv_cache import MIN_SWEEP_REPEATS, default_sweep_lengths
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
from visualizer.ui.common import (
    PROGRESS,
    TabSync,
    made_from,
    marker_box,
    model_event,
    prompt_or_sequence,
    skip,
    unchanged,
    wire,
)

TITLE = "KV cache"
TAB_ID = "kv_cache"
CAPTIONS = {
    "latency": "Each point: how long one new token took. Without the cache the line climbs; with it, it stays flat.",
    "repeats": "Total time of every repeat, both modes: a wide spread means the machine was busy.",
    "memory": "How the cache grows with the tokens it holds: a straight line (the same bytes per token).",
    "sweep": "Total time against N: near-straight with the cache, bending upwards without it.",
}

INTRO = """Without a cache, every new token re-runs the whole sequence so far, so each step is slower than the
last; with the cache, the keys and values of earlier tokens are kept and each step runs only the newest token.
The race below times `model.generate` both ways, token by token, greedily and at a fixed length (no early stop),
after a warm-up, while holding the model alone (other students' requests wait for the few seconds it takes)."""


@dataclass(frozen=True)
class KvCacheOutputs:
    status: Any = unchanged()  # Markdown: the race's progress line
    latency: Any = unchanged()  # figure: time per new token, both modes
    summary: Any = unchanged()  # HTML: the race's result in numbers
    repeats: Any = unchanged()  # figure: every repeat
    outputs: Any = unchanged()  # HTML: the texts both modes produced (identical)
    inspector: Any = unchanged()  # HTML: the cache's tensors against the formula
    memory: Any = unchanged()  # figure: cache size
    sweep_status: Any = unchanged()
    sweep_plot: Any = unchanged()  # figure: total time against N
    marker: Any = unchanged()  # hidden: made_from of the timed prompt


RACE_FIELDS = ["status", "latency", "summary", "repeats", "outputs", "inspector", "memory", "marker"]
SWEEP_FIELDS = ["sweep_status", "sweep_plot", "marker"]


def race(session, prompt: str, sequence: dict | None, n_new_tokens: int, n_repeats: int, fresh: bool = False,
         progress: gr.Progress = PROGRESS):
    """Time generation of N tokens with and without the KV cache, R times each, streamed as it runs. An identical
    race finished in the last minute is shown at once (another visitor's), unless `fresh`."""
    for update in session.kv_race(prompt_or_sequence(prompt, sequence), n_new_tokens, n_repeats,
                                  fresh=bool(fresh)):
        progress(update.fraction_done, desc=update.phase)
        if update.result is None:
            yield KvCacheOutputs(status=f"⏱️ {update.message}",
                                 latency=latency_figure(update.latencies_s, update.n_new_tokens))
            continue
        result = update.result
        yield KvCacheOutputs(status=f"✅ {update.message}", latency=race_latency_figure(result),
                             summary=summary_html(result), repeats=repeats_figure(result),
                             outputs=outputs_html(result.outputs), inspector=cache_inspector_html(result.cache),
                             memory=cache_memory_figure(result.cache), marker=made_from(prompt, sequence))


def sweep(session, prompt: str, sequence: dict | None, progress: gr.Progress = PROGRESS):
    """Total time against N for both modes, at a few N up to the limit, streamed point by point."""
    limits = session.config.limits
    ids = [int(i) for i in session.ids_of(prompt_or_sequence(prompt, sequence))]
    room = (session.dims.n_ctx or 10**9) - len(ids)  # the sweep's longest run must fit the context
    lengths = default_sweep_lengths(min(limits.max_new_tokens, room), min(5, limits.max_sweep_points))
    for update in session.kv_sweep(ids, lengths, MIN_SWEEP_REPEATS):
        progress(update.fraction_done, desc=update.phase)
        yield KvCacheOutputs(sweep_status=update.message, sweep_plot=sweep_figure(update.result or update),
                             marker=made_from(prompt, sequence) if update.result is not None else skip())


def render(session, prompt: gr.Textbox, sequence: gr.State) -> TabSync:
    limits = session.config.limits
    # Timing runs never start by themselves: results from an earlier prompt are only greyed.
    c: dict[str, Any] = {"marker": marker_box(TAB_ID, auto=False)}
    with gr.Row():
        n_new = gr.Slider(2, limits.max_new_tokens, value=min(100, limits.max_new_tokens), step=1,
                          label="new tokens (N)", elem_id="itl-kv-n")
        repeats = gr.Slider(1, limits.max_repeats, value=min(3, limits.max_repeats), step=1, label="repeats (R)",
                            elem_id="itl-kv-r")
        fresh = gr.Checkbox(False, label="time a fresh race (never reuse another visitor's from the last minute)",
                            elem_id="itl-kv-fresh")
        start = gr.Button("Start the race", variant="primary", elem_id="itl-kv-start")
    gr.Markdown(INTRO)
    c["status"] = gr.Markdown(elem_id="itl-kv-status")
    c["latency"] = gr.Plot(label="time per new token", elem_id="itl-kv-latency", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["latency"], elem_classes=["itl-caption"])
    c["summary"] = gr.HTML(elem_id="itl-kv-summary", elem_classes=["itl-out"])
    with gr.Row():
        with gr.Column():
            c["repeats"] = gr.Plot(label="repeats", elem_classes=["itl-out"])
            gr.Markdown(CAPTIONS["repeats"], elem_classes=["itl-caption"])
        c["outputs"] = gr.HTML(elem_id="itl-kv-outputs", elem_classes=["itl-out"])
    gr.Markdown("### What the cache holds")
    c["inspector"] = gr.HTML(elem_id="itl-kv-inspector", elem_classes=["itl-out"])
    c["memory"] = gr.Plot(label="cache size", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["memory"], elem_classes=["itl-caption"])
    gr.Markdown("### Length sweep\nTotal time against N for both modes: about linear with the cache, about "
                "quadratic without, which is why the gap grows with N.")
    sweep_btn = gr.Button("Run the sweep", elem_id="itl-kv-sweep")
    c["sweep_status"] = gr.Markdown()
    c["sweep_plot"] = gr.Plot(label="total time against N", elem_id="itl-kv-sweep-plot", elem_classes=["itl-out"])
    gr.Markdown(CAPTIONS["sweep"], elem_classes=["itl-caption"])

    # The progress bar sits on the status line: the charts stay visible while they grow.
    wire(start.click, race, session, [prompt, sequence, n_new, repeats, fresh], KvCacheOutputs, c, RACE_FIELDS,
         api_name="kv_cache", api_description=race.__doc__, show_progress_on=[c["status"]], **model_event(session))
    wire(sweep_btn.click, sweep, session, [prompt, sequence], KvCacheOutputs, c, SWEEP_FIELDS,
         api_name="kv_cache_sweep", api_description=sweep.__doc__, show_progress_on=[c["sweep_status"]],
         **model_event(session))
    return TabSync(TAB_ID, c["marker"])
