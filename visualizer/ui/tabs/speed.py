"""Speed tab: the chapter's four speed tips (attention kernels, precision, torch.compile, batch size) measured live.

Handlers are module-level generators of (session, inputs...) yielding `SpeedOutputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from visualizer.analysis.speed import DEFAULT_PARTS, MIN_NEW_TOKENS, PART_TITLES, PARTS
from visualizer.figures.speed import (
    TABLE_HEADERS,
    batch_figure,
    conditions_markdown,
    decode_figure,
    prefill_figure,
    speed_table,
    verdicts_markdown,
)
from visualizer.ui.common import PROGRESS, model_event, prompt_or_sequence, unchanged, wire

TITLE = "Speed"

INTRO = """The chapter ends with four tips: flash-attention, `torch.compile()`, larger batches, and FP16/BF16.
This tab times each one on the model in front of you, with the same rules as the KV race: an untimed warm-up,
repeats (median and spread), greedy tokens compared, and the model held alone while it runs (other students'
requests wait). Other dtypes and the compiled model run on a copy; the shared model is never changed."""
CHOICES = [(PART_TITLES[p], p) for p in PARTS if p != "compile"]


@dataclass(frozen=True)
class SpeedOutputs:
    status: Any = unchanged()  # Markdown: progress line
    conditions: Any = unchanged()  # Markdown: machine load and warnings
    table: Any = unchanged()  # Dataframe: every setting's numbers
    decode: Any = unchanged()  # figure: decode tokens/s per setting
    prefill: Any = unchanged()  # figure: prefill time against prompt length
    batch: Any = unchanged()  # figure: throughput against latency
    verdicts: Any = unchanged()  # Markdown: which tips held here


def speed_lab(session, prompt: str, sequence: dict | None, parts: list[str], with_compile: bool, n_repeats: int,
              n_new_tokens: int, progress: gr.Progress = PROGRESS):
    """Time attention implementations, dtypes, torch.compile and batch sizes on the loaded model, streamed."""
    chosen = [*(parts or []), *(["compile"] if with_compile else [])]
    if not chosen:
        raise ValueError("parts: tick at least one of the measurements (or torch.compile).")
    for update in session.speed_lab(prompt_or_sequence(prompt, sequence), chosen, n_repeats, n_new_tokens):
        progress(update.fraction_done, desc=update.phase)
        result = update.result
        yield SpeedOutputs(
            status=f"{'✅' if result else '⏱️'} {update.message}",
            conditions=conditions_markdown(result.conditions if result else None, update.load,
                                           result.warning if result else None),
            table=speed_table(update.rows), decode=decode_figure(update.rows), prefill=prefill_figure(update.rows),
            batch=batch_figure(update.rows), verdicts=verdicts_markdown(result) if result else "")


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    limits = session.config.limits
    c: dict[str, Any] = {}
    gr.Markdown(INTRO)
    with gr.Row():
        parts = gr.CheckboxGroup(CHOICES, value=list(DEFAULT_PARTS), label="measure", elem_id="itl-speed-parts")
        with_compile = gr.Checkbox(False, label="torch.compile too (compiling takes a minute or more on a CPU)",
                                   elem_id="itl-speed-compile")
    with gr.Row():
        n_new = gr.Slider(MIN_NEW_TOKENS, limits.max_new_tokens, value=min(32, limits.max_new_tokens), step=1,
                          label="new tokens per run (N)", elem_id="itl-speed-n")
        repeats = gr.Slider(1, limits.max_repeats, value=min(3, limits.max_repeats), step=1, label="repeats (R)",
                            elem_id="itl-speed-r")
        start = gr.Button("Measure", variant="primary", elem_id="itl-speed-start")
    c["status"] = gr.Markdown(elem_id="itl-speed-status")
    c["conditions"] = gr.Markdown(elem_id="itl-speed-conditions")
    c["table"] = gr.Dataframe(headers=TABLE_HEADERS, datatype=["str"] * len(TABLE_HEADERS), interactive=False,
                              wrap=True, elem_id="itl-speed-table")
    c["verdicts"] = gr.Markdown(elem_id="itl-speed-verdicts")
    c["decode"] = gr.Plot(label="decode speed", elem_id="itl-speed-decode")
    with gr.Row():
        c["prefill"] = gr.Plot(label="prefill", elem_id="itl-speed-prefill")
        c["batch"] = gr.Plot(label="batch size", elem_id="itl-speed-batch")
    wire(start.click, speed_lab, session, [prompt, sequence, parts, with_compile, repeats, n_new], SpeedOutputs, c,
         api_name="speed_lab", api_description=speed_lab.__doc__, show_progress_on=[c["status"]],
         **model_event(session))
