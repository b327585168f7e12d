"""Sampling tab: what temperature, top-k and top-p do to the next-token distribution, and what comes out."""

from __future__ import annotations

import gradio as gr

from visualizer.analysis.sampling import (
    SamplingSettings,
    draw_samples,
    process_logits,
)
from visualizer.figures.sampling import batch_html, continuations_html, distribution_figure, readouts_html
from visualizer.ui.common import model_event, prompt_or_sequence, slider_event, user_errors
from visualizer.validation import whole_number

TITLE = "Sampling"

INTRO = """`do_sample=True` draws the next token from the distribution instead of taking the top one. **Temperature**
divides the logits before the softmax (below 1 sharpens, above 1 flattens, 0 = greedy); **top-k** keeps the k most
likely tokens; **top-p** keeps the smallest set whose probability reaches p. They are applied in that order, exactly
as `generate` does, and the bars show what each cut removes (greyed). The diamonds are real seeded draws."""

CAPITALS = "The capital of France is\nThe capital of Japan is\nThe capital of Brazil is"
MAX_TEMPERATURE = 2.0
MAX_TOP_K_SLIDER = 100


def settings_of(temperature, top_k, top_p, seed) -> SamplingSettings:
    return SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed).validated(
        max_temperature=MAX_TEMPERATURE)


def distribution_view(session, source, temperature, top_k, top_p, seed, n_samples):
    settings = settings_of(temperature, top_k, top_p, seed)
    n_samples = whole_number(n_samples, "number of samples", 1, session.config.limits.max_samples)
    trace = session.trace(source)  # cached: moving a slider never runs the model again
    result = process_logits(trace.last_logits, settings, tokenizer=session.tokenizer)
    empirical = draw_samples(result, n_samples, max_samples=session.config.limits.max_samples)
    return distribution_figure(result, empirical), readouts_html(result, empirical)


def render(session, prompt: gr.Textbox, sequence: gr.State) -> None:
    limits = session.config.limits
    gr.Markdown(INTRO)
    with gr.Row():
        temperature = gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label="temperature (0 = greedy)",
                                elem_id="itl-temperature")
        top_k = gr.Slider(0, MAX_TOP_K_SLIDER, value=0, step=1, label="top-k (0 = off)", elem_id="itl-top-k")
        top_p = gr.Slider(0.01, 1.0, value=1.0, step=0.01, label="top-p (1 = off)", elem_id="itl-top-p")
    with gr.Row():
        seed = gr.Number(0, label="seed", precision=0, minimum=0)
        n_samples = gr.Slider(100, limits.max_samples, value=min(1000, limits.max_samples), step=100,
                              label="samples to draw")
        show = gr.Button("Show distribution", variant="primary", elem_id="itl-sampling-show")
    plot = gr.Plot(label="next-token distribution", elem_id="itl-sampling-plot")
    readouts = gr.HTML(elem_id="itl-sampling-readouts")

    gr.Markdown("### Sampled text\nSeveral continuations drawn with these settings (seeded), beside the greedy one.")
    with gr.Row():
        n_continuations = gr.Slider(1, limits.max_continuations, value=min(3, limits.max_continuations), step=1,
                                    label="continuations")
        n_new = gr.Slider(1, min(64, limits.max_new_tokens), value=20, step=1, label="new tokens")
        sample_btn = gr.Button("Generate", elem_id="itl-sampling-generate")
    samples = gr.HTML(elem_id="itl-sampling-texts")

    gr.Markdown("### Batch\nSeveral prompts in one forward pass: shorter prompts are padded on the **left** (a "
                "decoder-only model continues from the last position) and the attention mask hides the padding.")
    prompts = gr.Textbox(CAPITALS, lines=4, label="one prompt per line", elem_id="itl-batch-prompts")
    batch_btn = gr.Button("Run batch (greedy)", elem_id="itl-batch-run")
    batch = gr.HTML(elem_id="itl-batch-result")

    inputs = [prompt, sequence, temperature, top_k, top_p, seed, n_samples]

    @user_errors
    def on_distribution(prompt_text, seq, t, k, p, s, n):
        return distribution_view(session, prompt_or_sequence(prompt_text, seq), t, k, p, s, n)

    @user_errors
    def on_sample(prompt_text, seq, t, k, p, s, n_cont, n_tokens):
        settings = settings_of(t, k, p, s)
        for step in session.sample_continuations(prompt_or_sequence(prompt_text, seq), settings, n_cont, n_tokens):
            yield continuations_html(step)

    @user_errors
    def on_batch(text):
        lines = [line for line in str(text or "").splitlines() if line.strip()]
        if not lines:
            raise ValueError("Type at least one prompt, one per line.")
        return batch_html(session.batch_generate(lines, 10))

    show.click(on_distribution, inputs, [plot, readouts], api_name="sampling", **model_event(session))
    for slider in (temperature, top_k, top_p, n_samples):
        slider.release(on_distribution, inputs, [plot, readouts], api_visibility="private", **slider_event(session))
    seed.submit(on_distribution, inputs, [plot, readouts], api_visibility="private", **slider_event(session))
    sample_btn.click(on_sample, [prompt, sequence, temperature, top_k, top_p, seed, n_continuations, n_new], samples,
                     api_name="sampling_text", **model_event(session))
    batch_btn.click(on_batch, prompts, batch, api_name="sampling_batch", **model_event(session))
