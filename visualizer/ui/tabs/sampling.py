"""Sampling tab: what temperature, top-k and top-p do to the next-token distribution, and what comes out.

Handlers are module-level functions of (session, inputs...) returning `SamplingOutputs`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

# Every name this tab takes from the sampling analysis, in one place (the package may move).
from visualizer.analysis.examples import examples_for
from visualizer.analysis.sampling import SamplingSettings, draw_samples, process_logits
from visualizer.figures.export import figures_json
from visualizer.figures.sampling import batch_html, continuations_html, distribution_figure, readouts_html
from visualizer.ui.common import (
    PROGRESS,
    TabSync,
    data_handler,
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

TITLE = "Sampling"
TAB_ID = "sampling"
CAPTION = ("Grey bars: the model's own probabilities; coloured: after temperature, top-k and top-p (cut tokens "
           "drop to 0); diamonds: how often each token came up in the seeded draws.")

INTRO = """`do_sample=True` draws the next token from the distribution instead of taking the top one. **Temperature**
divides the logits before the softmax (below 1 sharpens, above 1 flattens, 0 = greedy); **top-k** keeps the k most
likely tokens; **top-p** keeps the smallest set whose probability reaches p. They are applied in that order, exactly
as `generate` does, and the bars show what each cut removes (greyed). The diamonds are real seeded draws."""

MAX_TEMPERATURE = 2.0
MAX_TOP_K_SLIDER = 100
BATCH_NEW_TOKENS = 10


@dataclass(frozen=True)
class SamplingOutputs:
    plot: Any = unchanged()  # figure: the distribution before and after the cuts, with the draws
    readouts: Any = unchanged()  # HTML: kept tokens, mass, entropy, draws against theory
    samples: Any = unchanged()  # HTML: sampled continuations beside the greedy one
    batch: Any = unchanged()  # HTML: a left-padded batch and its greedy continuations
    marker: Any = unchanged()  # hidden: made_from of the drawn distribution
    suggestion: Any = unchanged()  # Markdown: the prompt measured to have the flattest distribution on this model
    prompt: Any = unchanged()  # the shared prompt box (set by "use this prompt")


def settings_of(temperature, top_k, top_p, seed) -> SamplingSettings:
    return SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed).validated(
        max_temperature=MAX_TEMPERATURE)


def _processed(session, source, temperature, top_k, top_p, seed):
    settings = settings_of(temperature, top_k, top_p, seed)
    trace = session.trace(source)  # cached: moving a slider never runs the model again
    return process_logits(trace.last_logits, settings, tokenizer=session.tokenizer)


def distribution(session, prompt: str, sequence: dict | None, temperature: float, top_k: int, top_p: float,
                 seed: int, n_samples: int) -> SamplingOutputs:
    """The next-token distribution after temperature, top-k and top-p, with seeded draws against it."""
    n_samples = whole_number(n_samples, "number of samples", 1, session.config.limits.max_samples)
    result = _processed(session, prompt_or_sequence(prompt, sequence), temperature, top_k, top_p, seed)
    empirical = draw_samples(result, n_samples, max_samples=session.config.limits.max_samples)
    return SamplingOutputs(plot=distribution_figure(result, empirical), readouts=readouts_html(result, empirical),
                           marker=made_from(prompt, sequence))


def refresh(session, open_tab: str, marker: str, prompt: str, sequence: dict | None, temperature: float,
            top_k: int, top_p: float, seed: int, n_samples: int) -> SamplingOutputs:
    """Redraw when this tab is open and its distribution is from another prompt (page only)."""
    if is_current(TAB_ID, open_tab, marker, prompt, sequence):
        return SamplingOutputs()
    return distribution(session, prompt, sequence, temperature, top_k, top_p, seed, n_samples)


def suggest(session, open_tab: str) -> SamplingOutputs:
    """The suggested prompt, measured the first time this tab is open, after its distribution is drawn (page only)."""
    return SamplingOutputs(suggestion=suggestion_text(session)) if open_tab == TAB_ID else SamplingOutputs()


def suggestion_text(session) -> str:
    """The suggested prompt with its entropy on this model (measured once per session, a few forward passes)."""
    chosen = examples_for(session, "sampling")
    return (f"**Try:** *{html.escape(chosen.prompt)}* (entropy {chosen.entropy:.2f} nats on this model; top token "
            f"`{chosen.top_label}` at p = {chosen.top_prob:.3f}). Of a few candidate prompts it has the flattest "
            "next-token distribution, so temperature and top-p visibly move the bars.")


def use_suggestion(session, temperature: float, top_k: int, top_p: float, seed: int,
                   n_samples: int) -> SamplingOutputs:
    """Put the suggested prompt into the prompt box and draw its distribution (page only)."""
    chosen = examples_for(session, "sampling").prompt
    shown = distribution(session, chosen, None, temperature, top_k, top_p, seed, n_samples)
    return replace(shown, prompt=chosen, suggestion=suggestion_text(session))


def batch_default(session) -> tuple[str, str]:
    """The batch box's default lines (candidates of clearly different token lengths) and a note of the lengths."""
    lines = examples_for(session, "batch")
    lengths = ", ".join(f"*{html.escape(line.prompt)}* {line.n_tokens} token{'s' * (line.n_tokens != 1)}"
                        for line in lines)
    note = f"On this model the default lines are {lengths}: the shorter ones get that many pad tokens on the left."
    return "\n".join(line.prompt for line in lines), note


def export_numbers(session, prompt: str, sequence: dict | None, temperature: float, top_k: int, top_p: float,
                   seed: int, n_samples: int) -> str:
    """The distribution chart's numbers, with the prompt and settings, as one JSON file (page only)."""
    shown = distribution(session, prompt, sequence, temperature, top_k, top_p, seed, n_samples)
    text = figures_json({"distribution": shown.plot}, prompt=prompt, temperature=temperature, top_k=top_k,
                        top_p=top_p, seed=seed, n_samples=n_samples)
    return write_download(f"sampling-t{temperature}-k{top_k}-p{top_p}-seed{seed}", ".json", text)


def continuations(session, prompt: str, sequence: dict | None, temperature: float, top_k: int, top_p: float,
                  seed: int, n_continuations: int, n_new_tokens: int, progress: gr.Progress = PROGRESS):
    """Several seeded continuations with these settings beside the greedy one, streamed token by token."""
    settings = settings_of(temperature, top_k, top_p, seed)
    source = prompt_or_sequence(prompt, sequence)
    for index, item in enumerate(session.sample_continuations(source, settings, n_continuations, n_new_tokens)):
        progress((index + 1, None), desc="sampling")
        yield SamplingOutputs(samples=continuations_html(item))


def batch(session, prompts: str, progress: gr.Progress = PROGRESS) -> SamplingOutputs:
    """Greedy continuations of several prompts (one per line) in one left-padded batch."""
    lines = [line for line in str(prompts or "").splitlines() if line.strip()]
    if not lines:
        raise ValueError("Type at least one prompt, one per line.")
    progress(None, desc="running the batch")
    return SamplingOutputs(batch=batch_html(session.batch_generate(lines, BATCH_NEW_TOKENS)))


def sampling_data(session, prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  top: int = 20) -> dict:
    """The processed next-token distribution: the `top` most likely tokens before and after the settings."""
    result = _processed(session, prompt, temperature, top_k, top_p, 0)
    top = whole_number(top, "top", 1, min(1000, result.d_vocab))
    ids = [int(i) for i in result.order[:top]]
    return {"token_ids": ids, "tokens": list(result.token_labels[:top]),
            "raw_probabilities": [float(result.raw_probs[i]) for i in ids],
            "processed_probabilities": [float(result.processed_probs[i]) for i in ids],
            "n_kept": result.n_kept, "greedy_token_id": result.greedy_token_id,
            "entropy_raw_nats": result.entropy_raw, "entropy_processed_nats": result.entropy_processed}


def render(session, prompt: gr.Textbox, sequence: gr.State) -> TabSync:
    limits = session.config.limits
    gr.Markdown(INTRO)
    c: dict[str, Any] = {"marker": marker_box(TAB_ID, auto=True), "prompt": prompt}
    with gr.Row():
        c["suggestion"] = gr.Markdown("**Try:** a prompt measured on this model appears here when the tab opens.",
                                      elem_id="itl-sampling-suggestion")
        suggest_btn = gr.Button("use this prompt", size="sm", scale=0, elem_id="itl-sampling-use-suggestion")
    with gr.Row():
        temperature = gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label="temperature (0 = greedy)",
                                elem_id="itl-temperature")
        top_k = gr.Slider(0, MAX_TOP_K_SLIDER, value=0, step=1, label="top-k (0 = off)", elem_id="itl-top-k")
        top_p = gr.Slider(0.01, 1.0, value=1.0, step=0.01, label="top-p (1 = off)", elem_id="itl-top-p")
    with gr.Row():
        seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="itl-seed")
        n_samples = gr.Slider(100, limits.max_samples, value=min(1000, limits.max_samples), step=100,
                              label="samples to draw", elem_id="itl-n-samples")
        show = gr.Button("Show distribution", variant="primary", elem_id="itl-sampling-show")
    c["plot"] = gr.Plot(label="next-token distribution", elem_id="itl-sampling-plot", elem_classes=["itl-out"])
    gr.Markdown(CAPTION, elem_classes=["itl-caption"])
    c["readouts"] = gr.HTML(elem_id="itl-sampling-readouts", elem_classes=["itl-out"])
    numbers_btn, numbers_file = download_control("⬇ numbers (JSON)", "itl-sampling-export")

    gr.Markdown("### Sampled text\nSeveral continuations drawn with these settings (seeded), beside the greedy one.")
    with gr.Row():
        n_continuations = gr.Slider(1, limits.max_continuations, value=min(3, limits.max_continuations), step=1,
                                    label="continuations")
        n_new = gr.Slider(1, min(64, limits.max_new_tokens), value=20, step=1, label="new tokens")
        sample_btn = gr.Button("Generate", elem_id="itl-sampling-generate")
    c["samples"] = gr.HTML(elem_id="itl-sampling-texts")

    gr.Markdown("### Batch\nSeveral prompts in one forward pass: shorter prompts are padded on the **left** (a "
                "decoder-only model continues from the last position) and the attention mask hides the padding.")
    batch_lines, batch_note = batch_default(session)
    gr.Markdown(batch_note, elem_id="itl-batch-note")
    prompts = gr.Textbox(batch_lines, lines=4, label="one prompt per line", elem_id="itl-batch-prompts")
    batch_btn = gr.Button("Run batch (greedy)", elem_id="itl-batch-run")
    c["batch"] = gr.HTML(elem_id="itl-batch-result")

    inputs = [prompt, sequence, temperature, top_k, top_p, seed, n_samples]
    shown = ["plot", "readouts", "marker"]
    wire(suggest_btn.click, use_suggestion, session, inputs[2:], SamplingOutputs, c, ["prompt", "suggestion", *shown],
         api_visibility="private", **model_event(session))
    wire_download(numbers_btn, numbers_file, data_handler(export_numbers, session), inputs, **model_event(session))
    wire(show.click, distribution, session, inputs, SamplingOutputs, c, shown, api_name="sampling",
         api_description=distribution.__doc__, **model_event(session))
    for slider in (temperature, top_k, top_p, n_samples):
        wire(slider.release, distribution, session, inputs, SamplingOutputs, c, shown, api_visibility="private",
             **slider_event(session))
    wire(seed.submit, distribution, session, inputs, SamplingOutputs, c, shown, api_visibility="private",
         **slider_event(session))
    wire(sample_btn.click, continuations, session,
         [prompt, sequence, temperature, top_k, top_p, seed, n_continuations, n_new], SamplingOutputs, c, ["samples"],
         api_name="sampling_text", api_description=continuations.__doc__, **model_event(session))
    wire(batch_btn.click, batch, session, [prompts], SamplingOutputs, c, ["batch"], api_name="sampling_batch",
         api_description=batch.__doc__, **model_event(session))
    gr.api(data_handler(sampling_data, session), api_name="sampling_data",
           api_description=sampling_data.__doc__, **model_event(session))

    def draw(event, open_tab):
        drawn = wire(event, refresh, session, [open_tab, c["marker"], *inputs], SamplingOutputs, c, shown,
                     api_visibility="private", **model_event(session))
        # a few forward passes the first time: after the bars, and not in the chain that later steps wait on
        wire(drawn.then, suggest, session, [open_tab], SamplingOutputs, c, ["suggestion"], api_visibility="private",
             **model_event(session))
        return drawn
    return TabSync(TAB_ID, c["marker"], draw,
                   dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, n=n_samples))
