"""Figures of the Next-token tab: token chips, shapes, top-k bars and the step table."""

from __future__ import annotations

import html
import math

import numpy as np

from visualizer.analysis.generation import Step
from visualizer.analysis.next_token import Tokenization, TopK
from visualizer.figures.common import PlotlyJSON, layout_base, plotly_text, title


def _chip_colour(prob: float | None) -> str:
    """Green = the model expected this token, red = it was surprised (probability on a log scale)."""
    if prob is None:
        return "hsla(220, 10%, 70%, 0.35)"
    hue = 120 * min(max(1 + math.log10(max(prob, 1e-4)) / 4, 0.0), 1.0)  # 1e-4 -> 0 (red), 1 -> 120 (green)
    return f"hsla({hue:.0f}, 70%, 55%, 0.35)"


def token_chips_html(tokenization: Tokenization, top_next: list[str] | None = None) -> str:
    """The prompt as chips; `top_next[i]`, when given, is chip i's top next-token candidates (shown on hover)."""
    chips = []
    for chip in tokenization.chips:
        seen = "" if chip.next_prob is None else (
            f" · p={chip.next_prob:.3f} (rank {chip.next_rank + 1}) before it was seen")
        after = f"\nnext: {top_next[chip.pos]}" if top_next is not None else ""
        title = html.escape(f"position {chip.pos} · id {chip.token_id} · piece {chip.piece!r}{seen}{after}")
        special = " itl-special" if chip.special else ""
        chips.append(
            f'<span class="itl-chip{special}" title="{title}" style="background:{_chip_colour(chip.next_prob)}">'
            f'<span class="itl-chip-text">{html.escape(chip.text)}</span>'
            f'<span class="itl-chip-id">{chip.token_id}</span></span>')
    legend = ('<div class="itl-legend">Each chip is one token: its text (␣ = space, ↵ = newline) and its id. '
              'Colour: how likely the model found the token before seeing it (green = expected, '
              'red = surprising; grey = first token). Dashed border = special token such as BOS.</div>')
    return f'<div class="itl-chips">{"".join(chips)}</div>{legend}'


def shapes_markdown(tokenization: Tokenization) -> str:
    batch, tokens, hidden = tokenization.hidden_shape
    vocab = tokenization.logits_shape[2]
    return (f"**{tokenization.count} tokens.** `input_ids` = `{tokenization.ids_printed}`\n\n"
            f"| tensor | shape | meaning |\n|---|---|---|\n"
            f"| hidden states (`model.model` output) | `[{batch}, {tokens}, {hidden}]` | "
            f"[batch, tokens, hidden]: one {hidden}-number vector per token |\n"
            f"| logits (`lm_head` output) | `[{batch}, {tokens}, {vocab}]` | "
            f"[batch, tokens, vocab]: a score for every one of {vocab:,} tokens, at every position |")


def top_k_figure(topk: TopK) -> PlotlyJSON:
    labels = [plotly_text(label) for label in topk.token_labels]
    bar = dict(
        type="bar", x=topk.probs[::-1], y=[f"{i + 1}. {label}" for i, label in enumerate(labels)][::-1],
        orientation="h", text=[f"{p:.1%}" for p in topk.probs[::-1]],
        textposition="auto", insidetextanchor="end",  # a near-1 bar holds its label inside: nothing clipped
        customdata=np.array(topk.token_ids[::-1])[:, None],
        hovertemplate="%{y}<br>id %{customdata[0]}<br>p = %{x:.4f}<extra></extra>", marker=dict(color="#4c78a8"))
    xaxis = dict(title=title("probability"), range=[0, min(1.0, float(topk.probs.max()) * 1.25 + 0.02)])
    heading = f"Next token after position {topk.pos} ({plotly_text(topk.after)}) · entropy {topk.entropy:.2f} nats"
    return PlotlyJSON([bar], layout_base(heading, height=120 + 28 * len(labels), xaxis=xaxis))


STEP_HEADERS = ["step", "chosen token", "id", "probability", "entropy (nats)", "top alternatives"]


def step_rows(steps: list[Step]) -> list[list]:
    """Rows for a table (gr.Dataframe renders cell text as text, not HTML)."""
    return [[s.index + 1, s.label + (" (picked)" if s.forced else ""), s.token_id, round(s.prob, 4),
             round(s.entropy, 3), ", ".join(f"{c.label} {c.prob:.2f}" for c in s.candidates[:4])]
            for s in steps]
