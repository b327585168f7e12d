"""Figures and tables for the Sampling tab: the next-token distribution before and after temperature,
top-k and top-p, the empirical check, streamed continuations and the left-padded batch.

Inputs are the result dataclasses of ``visualizer.analysis.sampling`` (numpy arrays and python strings).
Token labels arrive with whitespace made visible (``visualizer.trace.visible_token``) and are
html-escaped everywhere: plotly renders a subset of HTML in tick labels and hovers, gr.HTML all of it.
"""

from __future__ import annotations

import html

import numpy as np

from visualizer.analysis.sampling import (
    CUT_TOP_K,
    CUT_TOP_P,
    KEPT,
    STAGE_NAMES,
    BatchResult,
    ContinuationsStep,
    EmpiricalResult,
    SamplingResult,
    SamplingSettings,
)
from visualizer.figures.common import PlotlyJSON, index_axis, layout_base, plotly_text, title

RAW_COLOR = "#9ecae1"
PROCESSED_COLOR = "#08519c"
CUT_COLOR = "#d0d0d0"
CUMULATIVE_COLOR = "#e6550d"
EMPIRICAL_COLOR = "#31a354"
BAR_WIDTH = 0.4  # raw at x - 0.2, processed at x + 0.2

READOUT_HEADERS = ["quantity", "value"]
CONTINUATION_HEADERS = ["continuation", "text", "tokens", "stopped at EOS"]
BATCH_HEADERS = ["prompt", "continuation", "prompt tokens", "padding added", "stopped at EOS"]


def settings_label(settings: SamplingSettings) -> str:
    if settings.is_greedy:
        return "T = 0 (greedy)"
    top_k = "off" if settings.top_k == 0 else str(settings.top_k)
    top_p = "off" if settings.top_p >= 1.0 else f"{settings.top_p:g}"
    return f"T = {settings.temperature:g}, top-k {top_k}, top-p {top_p}"


# ---------------------------------------------------------------------------------------------------
# The distribution figure
# ---------------------------------------------------------------------------------------------------

def distribution_figure(result: SamplingResult, empirical: EmpiricalResult | None = None,
                        top_n: int = 30) -> PlotlyJSON:
    """Raw (T = 1) and processed probabilities of the ``top_n`` first tokens in display order.

    Cut-off tokens keep a grey bar of the probability they had before the cut; dashed lines mark the
    top-k and top-p boundaries; the cumulative probability that top-p sees is drawn on the right axis
    with the p line; sampled frequencies, when given, are diamonds over the processed bars.
    """
    n_shown = max(1, min(int(top_n), result.d_vocab))
    token_ids = result.order[:n_shown]  # [n_shown]
    x = np.arange(n_shown)
    raw_labels = [result.token_labels[i] if i < len(result.token_labels) else f"#{token_ids[i]}"
                  for i in range(n_shown)]
    labels = [plotly_text(label) for label in raw_labels]
    stages = result.cut_stage[token_ids]
    kept = stages == KEPT
    before_cut = result.raw_probs if result.is_greedy else result.tempered_probs
    hover = _hover_data(result, token_ids, labels)
    hover_template = ("<b>%{customdata[1]}</b> (id %{customdata[0]})<br>raw (T = 1): %{customdata[2]}<br>"
                      "after temperature: %{customdata[3]}<br>processed: %{customdata[4]}<br>"
                      "%{customdata[5]}<extra></extra>")
    settings_text = plotly_text(settings_label(result.settings))

    def bars(x_values, y_values, name, marker, rows):
        return dict(type="bar", x=x_values, y=y_values, width=BAR_WIDTH, name=name, marker=marker,
                    customdata=hover[rows], hovertemplate=hover_template)

    traces = [
        bars(x - BAR_WIDTH / 2, result.raw_probs[token_ids], "raw (T = 1)", dict(color=RAW_COLOR), slice(None)),
        bars((x + BAR_WIDTH / 2)[kept], result.processed_probs[token_ids][kept], f"processed ({settings_text})",
             dict(color=PROCESSED_COLOR), kept),
        bars((x + BAR_WIDTH / 2)[~kept], before_cut[token_ids][~kept], "cut off (probability before the cut)",
             dict(color=CUT_COLOR, line=dict(color="#909090", width=1), pattern=dict(shape="/")), ~kept),
    ]
    if not result.is_greedy:
        traces.append(dict(type="scatter", x=x, y=result.cumulative_pre_top_p[:n_shown], yaxis="y2",
                           mode="lines+markers", name="cumulative probability (after temperature and top-k)",
                           line=dict(color=CUMULATIVE_COLOR, width=2), marker=dict(size=4),
                           hovertemplate="cumulative: %{y:.4f}<extra></extra>"))
    if empirical is not None:
        traces.append(dict(
            type="scatter", x=x + BAR_WIDTH / 2, y=empirical.freqs[token_ids], mode="markers",
            name=f"sampled frequency (N = {empirical.n:,})",
            marker=dict(symbol="diamond", size=9, color=EMPIRICAL_COLOR, line=dict(color="white", width=1)),
            customdata=np.stack([empirical.counts[token_ids], labels], axis=-1),
            hovertemplate="<b>%{customdata[1]}</b><br>drawn %{customdata[0]} times: %{y:.4f}<extra></extra>"))
    shapes, annotations = _cut_lines(result, n_shown)
    cut_marks = {key: value for key, value in (("shapes", shapes), ("annotations", annotations)) if value}
    layout = layout_base(
        f"Next-token distribution: raw vs {settings_text}", 520, **cut_marks,
        barmode="overlay", hovermode="closest", bargap=0.1,
        xaxis=dict(title=title("token (display order: kept first, then by raw probability)"),
                   range=[-0.7, n_shown - 0.3], **index_axis(raw_labels, max_ticks=100)),
        yaxis=dict(title=title("probability"), rangemode="tozero"),
        yaxis2=dict(title=title("cumulative probability"), overlaying="y", side="right", range=[0, 1.05],
                    tickmode="linear", tick0=0, dtick=0.25, showgrid=False),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        margin=dict(t=110, r=70),
    )
    return PlotlyJSON(traces, layout)


def _hover_data(result: SamplingResult, token_ids: np.ndarray, labels: list[str]) -> np.ndarray:
    """[n_shown, 6] strings: id, label, raw, tempered, processed, status."""
    tempered = result.raw_probs if result.is_greedy else result.tempered_probs
    rows = [[str(int(token_id)), label, f"{result.raw_probs[token_id]:.4f}", f"{tempered[token_id]:.4f}",
             f"{result.processed_probs[token_id]:.4f}", STAGE_NAMES[int(result.cut_stage[token_id])]]
            for token_id, label in zip(token_ids, labels, strict=True)]
    return np.array(rows, dtype=object)


def _cut_lines(result: SamplingResult, n_shown: int) -> tuple[list[dict], list[dict]]:
    """Shapes and annotations: dashed vertical lines between the last token a cutoff keeps and the first it
    removes, and the p line on the cumulative axis."""
    settings = result.settings
    shapes: list[dict] = []
    annotations: list[dict] = []
    if result.is_greedy:
        return shapes, annotations
    if settings.top_k and np.any(result.cut_stage == CUT_TOP_K):
        _cut_line(shapes, annotations, result.n_after_top_k, n_shown, f"top-k = {settings.top_k}", "#756bb1",
                  note_y=1.0)
    if settings.top_p < 1.0:
        shapes.append(dict(type="line", xref="paper", x0=0, x1=1, yref="y2", y0=settings.top_p, y1=settings.top_p,
                           line=dict(color=CUMULATIVE_COLOR, dash="dot", width=1)))
        annotations.append(dict(xref="paper", x=1, yref="y2", y=settings.top_p, text=f"p = {settings.top_p:g}",
                                showarrow=False, xanchor="right", yanchor="bottom", font=dict(color=CUMULATIVE_COLOR)))
        if np.any(result.cut_stage == CUT_TOP_P):
            _cut_line(shapes, annotations, result.n_kept, n_shown, f"top-p: nucleus of {result.n_kept}",
                      CUMULATIVE_COLOR, note_y=0.955)
    return shapes, annotations


def _cut_line(shapes: list[dict], annotations: list[dict], n_before: int, n_shown: int, text: str, color: str,
              note_y: float) -> None:
    if n_before >= n_shown:  # the cut lies beyond the tokens shown: say so at the top right
        annotations.append(dict(xref="paper", x=1, yref="paper", y=note_y, text=f"{text} (beyond the first {n_shown})",
                                showarrow=False, xanchor="right", yanchor="top", font=dict(color=color)))
        return
    # what fig.add_vline draws: a line across the whole plot height at x
    shapes.append(dict(type="line", x0=n_before - 0.5, x1=n_before - 0.5, xref="x", y0=0, y1=1, yref="y domain",
                       line=dict(color=color, dash="dash", width=2)))
    annotations.append(dict(x=n_before - 0.5, yref="paper", y=1.0, text=text, showarrow=False,
                            xanchor="left", yanchor="top", font=dict(color=color)))


# ---------------------------------------------------------------------------------------------------
# Readouts
# ---------------------------------------------------------------------------------------------------

def readout_rows(result: SamplingResult, empirical: EmpiricalResult | None = None) -> list[list[str]]:
    """[quantity, value] rows (plain text, not escaped: for a gr.Dataframe with READOUT_HEADERS)."""
    greedy_id = result.greedy_token_id
    rows = [
        ["settings", settings_label(result.settings)],
        ["entropy, raw (T = 1)", _entropy_text(result.entropy_raw)],
        ["entropy, processed", _entropy_text(result.entropy_processed)],
        ["effective candidates, raw: exp(entropy)",
         f"{result.effective_candidates_raw:,.1f} of {result.d_vocab:,} tokens"],
        ["effective candidates, processed", f"{result.effective_candidates_processed:,.1f}"],
        ["nucleus size: tokens kept by top-k and top-p", f"{result.n_kept:,} of {result.d_vocab:,}"],
        ["probability kept (before renormalising to 1)",
         f"{result.kept_mass_raw:.1%} of the raw distribution"
         + ("" if result.is_greedy else f", {result.kept_mass_tempered:.1%} after temperature")],
        ["greedy token (argmax)",
         f"{_token_label(result, greedy_id)} (id {greedy_id}, raw p = "
         f"{result.raw_probs[greedy_id]:.3f})"],
    ]
    if empirical is not None:
        rows.append([f"total-variation distance of {empirical.n:,} draws (seed {empirical.seed})",
                     f"{empirical.tv_distance:.4f}; expected below {empirical.tv_bound:.4f} "
                     f"with probability {empirical.confidence:.1%}"])
    return rows


def readouts_html(result: SamplingResult, empirical: EmpiricalResult | None = None) -> str:
    """The readout rows and the result's notes as an escaped HTML table."""
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(name)}</th>"
                   f"<td>{html.escape(value)}</td></tr>" for name, value in readout_rows(result, empirical))
    notes = "".join(f"<p><em>{html.escape(note)}</em></p>" for note in result.notes)
    return f"<table class='sampling-readouts'>{body}</table>{notes}"


def _entropy_text(nats: float) -> str:
    return f"{nats:.3f} nats = {nats / np.log(2):.3f} bits"


def _token_label(result: SamplingResult, token_id: int) -> str:
    positions = np.flatnonzero(result.order[: len(result.token_labels)] == token_id)
    return result.token_labels[int(positions[0])] if positions.size else f"#{token_id}"


# ---------------------------------------------------------------------------------------------------
# Continuations and batch tables
# ---------------------------------------------------------------------------------------------------

def continuation_rows(step: ContinuationsStep) -> list[list]:
    """[label, text, n tokens, stopped at EOS] rows, greedy first (plain text for a gr.Dataframe)."""
    return [[c.label, c.text, len(c.token_ids), c.finished]
            for c in (step.greedy, *step.samples)]


def continuations_html(step: ContinuationsStep) -> str:
    """Prompt (grey) + continuation for the greedy and each sampled row, escaped, newlines kept."""
    prompt = html.escape(step.prompt_text)
    rows = []
    for c in (step.greedy, *step.samples):
        end = " <span title='end of sequence'>⏹</span>" if c.finished else ""
        rows.append(f"<tr><th style='text-align:left;vertical-align:top;padding-right:1em'>"
                    f"{html.escape(c.label)}</th><td style='white-space:pre-wrap'>"
                    f"<span style='color:#888'>{prompt}</span><b>{html.escape(c.text)}</b>{end}</td></tr>")
    status = "done" if step.done else f"generating… {step.step}/{step.max_new_tokens}"
    notes = "".join(f"<p><em>{html.escape(note)}</em></p>" for note in step.notes)
    return (f"<p>{html.escape(settings_label(step.settings))}, seed {step.settings.seed}: {status}</p>"
            f"<table class='sampling-continuations'>{''.join(rows)}</table>{notes}")


def batch_rows(batch: BatchResult) -> list[list]:
    """[prompt, continuation, prompt tokens, padding added, stopped at EOS] (for a gr.Dataframe)."""
    return [[row.prompt, row.continuation, row.n_prompt_tokens, row.n_pad, row.finished]
            for row in batch.rows]


def batch_html(batch: BatchResult) -> str:
    """The left-padded input grid (pad cells grey, attention mask 0, position id under each token)
    followed by each prompt with its continuation."""
    grid_rows = []
    for token_labels, mask, positions in zip(batch.padded_token_labels, batch.attention_mask,
                                             batch.position_ids, strict=True):
        cells = []
        for label, masked_in, position in zip(token_labels, mask, positions, strict=True):
            style = "padding:2px 4px;border:1px solid #ccc;text-align:center"
            if masked_in:
                sub = f"<br><small>pos {position}</small>"
            else:
                style += ";background:#eee;color:#999"
                sub = "<br><small>mask 0</small>"
            cells.append(f"<td style='{style}'>{html.escape(label)}{sub}</td>")
        grid_rows.append(f"<tr>{''.join(cells)}</tr>")
    results = "".join(
        f"<tr><td style='white-space:pre-wrap;color:#888'>{html.escape(row.prompt)}</td>"
        f"<td style='white-space:pre-wrap'><b>{html.escape(row.continuation)}</b>"
        f"{' ⏹' if row.finished else ''}</td></tr>" for row in batch.rows)
    return (f"<p>Input batch, left-padded with token id {batch.pad_token_id}:</p>"
            f"<table class='sampling-padding' style='border-collapse:collapse'>{''.join(grid_rows)}</table>"
            f"<p>Greedy continuations ({batch.max_new_tokens} new tokens at most):</p>"
            f"<table class='sampling-batch'><tr><th>prompt</th><th>continuation</th></tr>{results}</table>")
