"""Figures and tables for the KV-cache tab: the live latency race, the repeats, the length sweep, the cache
inspector and the side-by-side outputs.

Inputs are the result dataclasses of ``visualizer.analysis.kv_cache`` (numpy arrays, floats, strings).
`latency_figure` takes plain per-repeat latency lists, so it can be re-drawn from every streamed
``RaceUpdate`` while the race runs. Token strings are html-escaped everywhere.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from visualizer.analysis.kv_cache import (
    CACHED,
    MODES,
    UNCACHED,
    CacheReport,
    Mode,
    OutputComparison,
    RaceResult,
    SweepResult,
    SweepUpdate,
    format_seconds,
    speed_phrase,
)
from visualizer.figures.common import base_layout
from visualizer.figures.formatting import format_bytes

COLORS: dict[Mode, str] = {CACHED: "#0072B2", UNCACHED: "#D55E00"}  # Okabe-Ito blue / vermillion
LABELS: dict[Mode, str] = {CACHED: "with KV cache", UNCACHED: "without cache (recompute all)"}
SUMMARY_HEADERS = ["", "total (median)", "spread over repeats", "tokens/s", "first token (prefill)",
                   "other tokens (decode)"]
LAYER_HEADERS = ["layer", "keys [batch, kv_heads, tokens, head_dim]", "values", "dtype", "tokens", "bytes"]


def _legend_below(fig: go.Figure, height: int) -> go.Figure:
    """Horizontal legend under the x-axis title (above the plot it collides with the title)."""
    plot_height = height - 50 - 110  # minus the top and bottom margins
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-60 / plot_height, x=0), height=height,
                      margin=dict(b=110))
    return fig


def _faded(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# ---------------------------------------------------------------------------------------------------
# The race: per-token latency, live
# ---------------------------------------------------------------------------------------------------

def latency_figure(latencies_s: Mapping[Mode, Sequence[Sequence[float]] | np.ndarray], n_new_tokens: int,
                   highlight: str = "latest", trends: Mapping[Mode, tuple[float, float]] | None = None,
                   title: str = "Time per new token") -> go.Figure:
    """Per-token latency (ms) against the token number, both modes; one line per repeat.

    `latencies_s`: mode -> repeats -> per-step seconds (a streamed `RaceUpdate.latencies_s`, or a
    `ModeTiming.latencies_s` array). The highlighted line is the latest repeat (`highlight="latest"`,
    for streaming) or the per-step median over repeats (`"median"`, once the race is done); earlier
    repeats are faint. The x axis is fixed to 1..N so it does not jump while tokens arrive.
    `trends`: mode -> (intercept_s, slope_s_per_step), drawn dashed (from `ModeTiming.latency_trend`).
    """
    fig = go.Figure()
    for mode in MODES:
        runs = [np.asarray(run, dtype=np.float64) for run in latencies_s.get(mode, ()) if len(run)]
        color = COLORS[mode]
        bold = (np.median(np.stack(runs), axis=0) if highlight == "median" and runs
                and len({r.size for r in runs}) == 1 else (runs[-1] if runs else None))
        faint = runs if highlight == "median" else runs[:-1]
        for index, run in enumerate(faint):
            fig.add_trace(go.Scatter(
                x=np.arange(1, run.size + 1), y=run * 1e3, mode="lines", line=dict(color=_faded(color, 0.25), width=1),
                name=f"{LABELS[mode]}, repeat {index + 1}", legendgroup=mode, showlegend=False,
                hovertemplate=f"repeat {index + 1}, token %{{x}}: %{{y:.2f}} ms<extra>{mode}</extra>"))
        label = LABELS[mode] + (" (median)" if highlight == "median" and len(runs) > 1 else "")
        fig.add_trace(go.Scatter(
            x=np.arange(1, bold.size + 1) if bold is not None else [], y=bold * 1e3 if bold is not None else [],
            mode="lines+markers" if bold is not None and bold.size <= 60 else "lines",
            line=dict(color=color, width=2.5), marker=dict(size=4), name=label, legendgroup=mode,
            hovertemplate="token %{x}: %{y:.2f} ms<extra>" + mode + "</extra>"))
        if trends and mode in trends and n_new_tokens > 2:
            intercept, slope = trends[mode]
            x = np.array([2, n_new_tokens])
            fig.add_trace(go.Scatter(
                x=x, y=(intercept + slope * (x - 1)) * 1e3, mode="lines", legendgroup=mode,
                line=dict(color=color, width=1.5, dash="dash"),
                name=f"trend {mode}: {slope * 1e6:+.3g} µs per token",
                hovertemplate=f"trend: {slope * 1e6:+.3g} µs more per token<extra>{mode}</extra>"))
    fig.add_annotation(x=1, y=0, xref="x", yref="paper", yanchor="bottom", showarrow=False, xanchor="left",
                       text="token 1 = prefill (whole prompt)", font=dict(size=10, color="#666"))
    base_layout(fig, title, height=420)
    fig.update_xaxes(title="new token number", range=[0.5, max(n_new_tokens, 1) + 0.5])
    fig.update_yaxes(title="latency (ms)", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    return _legend_below(fig, 420)


def race_latency_figure(result: RaceResult) -> go.Figure:
    """The finished race: median latency per token, each repeat faint, and the robust trend lines."""
    return latency_figure({m: result.mode(m).latencies_s for m in MODES}, result.n_new_tokens,
                          highlight="median", trends={m: result.mode(m).latency_trend for m in MODES},
                          title=f"Time per new token (median of {result.n_repeats} repeats)")


# ---------------------------------------------------------------------------------------------------
# Totals, repeats, summary
# ---------------------------------------------------------------------------------------------------

def totals_figure(result: RaceResult) -> go.Figure:
    """Stacked bars: median prefill + median decode time per mode, whiskers from min to max total."""
    fig = go.Figure()
    names = [LABELS[m] for m in MODES]
    prefill = [float(np.median(result.mode(m).prefill_s)) for m in MODES]
    decode = [float(np.median(result.mode(m).decode_s)) for m in MODES]
    fig.add_trace(go.Bar(y=names, x=prefill, orientation="h", name="first token (prefill)",
                         marker_color=[_faded(COLORS[m], 0.55) for m in MODES],
                         hovertemplate="prefill: %{x:.3f} s<extra></extra>"))
    stats = [result.mode(m).total for m in MODES]
    fig.add_trace(go.Bar(
        y=names, x=decode, orientation="h", name="other tokens (decode)", marker_color=[COLORS[m] for m in MODES],
        error_x=dict(type="data", symmetric=False,
                     array=[max(0.0, s.max_s - (p + d)) for s, p, d in zip(stats, prefill, decode, strict=True)],
                     arrayminus=[max(0.0, (p + d) - s.min_s) for s, p, d in zip(stats, prefill, decode,
                                                                                 strict=True)]),
        text=[f"total {format_seconds(s.median_s)}" for s in stats], textposition="inside",
        insidetextanchor="middle", textfont=dict(color="white"),
        hovertemplate="decode: %{x:.3f} s<extra></extra>"))
    base_layout(fig, f"{result.n_new_tokens} tokens: {speed_phrase(result.speedup)} with the cache "
                     f"(median of {result.n_repeats})", height=300)
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="seconds (whiskers: fastest and slowest repeat)", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    return _legend_below(fig, 300)


def repeats_figure(result: RaceResult) -> go.Figure:
    """Every repeat's total time per mode (box with all points), as %%timeit summarises them."""
    fig = go.Figure()
    for mode in MODES:
        timing = result.mode(mode)
        fig.add_trace(go.Box(
            y=timing.totals_s, name=LABELS[mode], marker_color=COLORS[mode], boxpoints="all", jitter=0.3,
            pointpos=0, boxmean="sd", text=[f"repeat {i + 1}" for i in range(timing.totals_s.size)],
            hovertemplate="%{text}: %{y:.3f} s<extra></extra>"))
    base_layout(fig, f"Total time of each of the {result.n_repeats} repeats", height=340)
    fig.update_yaxes(title="seconds", rangemode="tozero")
    fig.update_layout(showlegend=False)
    return fig


def summary_rows(result: RaceResult) -> list[list[str]]:
    """Rows under SUMMARY_HEADERS, one per mode (plain text, e.g. for a gr.Dataframe)."""
    rows = []
    for mode in MODES:
        t = result.mode(mode)
        s = t.total
        rows.append([LABELS[mode], format_seconds(s.median_s),
                     f"{format_seconds(s.min_s)} – {format_seconds(s.max_s)}; "
                     f"{format_seconds(s.mean_s)} ± {format_seconds(s.std_s)}",
                     f"{t.tokens_per_s:.1f}", format_seconds(float(np.median(t.prefill_s))),
                     format_seconds(float(np.median(t.decode_s)))])
    return rows


def summary_html(result: RaceResult) -> str:
    """The summary table, the speed-up, the %%timeit lines and any timing warning, escaped."""
    head = "".join(f"<th style='text-align:left;padding-right:1em'>{html.escape(h)}</th>" for h in SUMMARY_HEADERS)
    body = "".join("<tr>" + "".join(f"<td style='padding-right:1em'>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in summary_rows(result))
    paired = result.speedup_per_repeat
    lines = [f"<p><b>{speed_phrase(result.speedup)} with the cache</b> (ratio of medians {result.speedup:.2f}×; "
             f"per repeat {paired.min():.2f}× – {paired.max():.2f}×).</p>"]
    for mode in MODES:
        lines.append(f"<p><code>{html.escape(LABELS[mode])}: {html.escape(result.mode(mode).total.timeit_text())}"
                     f"</code></p>")
    c = result.conditions
    access = ("exclusive use of the model, acquired at once" if c.exclusive and c.acquired_without_waiting
              else f"exclusive use of the model after waiting {format_seconds(c.waited_s)}" if c.exclusive
              else "no exclusive use of the model")
    schedule = ("the two modes alternate during the run" if result.interleaved
                else "one mode after the other, the first one alternating between repeats")
    if c.cpu_share is not None:
        schedule += f"; the timed work got {c.cpu_share:.0%} of a CPU core"
    lines.append(f"<p><small>{html.escape(access)}; device {html.escape(c.device)}, {c.torch_threads} torch "
                 f"thread(s), {c.cpu_count} CPUs; warm-up {result.warmup_tokens} tokens per mode; {schedule}; "
                 f"times come from model.generate() itself.</small></p>")
    if c.warning:
        lines.append(f"<p style='color:#b35900'><b>⚠ {html.escape(c.warning)}</b></p>")
    return f"<table class='kv-summary'><tr>{head}</tr>{body}</table>{''.join(lines)}"


# ---------------------------------------------------------------------------------------------------
# Length sweep
# ---------------------------------------------------------------------------------------------------

def sweep_figure(sweep: SweepResult | SweepUpdate) -> go.Figure:
    """Total time against N for both modes: medians with min–max whiskers, and the fitted curves.

    Works on a finished SweepResult (points + fits + a "too busy" note when the repeats disagree) and on a
    streamed SweepUpdate (points so far). The hover gives each point's median, every repeat and the spread.
    """
    fig = go.Figure()
    lengths = [int(n) for n in sweep.lengths]
    for mode in MODES:
        _sweep_points(fig, mode, lengths, sweep.totals_s.get(mode, ()))
    fits = getattr(sweep, "fits", None) or {}
    for mode in MODES:
        if mode in fits:
            fit = fits[mode]
            grid = np.linspace(0, max(lengths), 100)
            shape = "linear" if fit.degree == 1 else "quadratic"
            fig.add_trace(go.Scatter(
                x=grid, y=fit(grid), mode="lines", legendgroup=mode, line=dict(color=COLORS[mode], dash="dash"),
                name=f"{shape} fit: {fit.equation} (R² {fit.r_squared:.3f})",
                hovertemplate=f"{shape} fit, N = %{{x:.0f}}: %{{y:.3f}} s<extra>{mode}</extra>"))
    title = "Total time against the number of new tokens"
    if isinstance(sweep, SweepResult):
        title += f" (median of {sweep.n_repeats} repeats; whiskers: fastest and slowest)"
    base_layout(fig, title, height=440)
    if isinstance(sweep, SweepResult) and sweep.busy_warning:  # the full sentence is in the status line
        fig.add_annotation(x=0, y=1, xref="paper", yref="paper", xanchor="left", yanchor="bottom", showarrow=False,
                           text="⚠ the repeats disagree: the machine was too busy to trust these times",
                           font=dict(color="#b35900", size=12))
    fig.update_xaxes(title="new tokens N", range=[0, max(lengths) * 1.05 if lengths else 1])
    fig.update_yaxes(title="total time (s)", rangemode="tozero")
    return _legend_below(fig, 440)


def _sweep_points(fig: go.Figure, mode: Mode, lengths: list[int], totals: Sequence[Sequence[float]]) -> None:
    """One marker per measured length at the median, whiskers to the fastest and slowest repeat."""
    # A streamed sweep has fewer points than lengths so far: zip stops at the shorter.
    points = [(n, np.asarray(runs, dtype=np.float64)) for n, runs in zip(lengths, totals, strict=False) if len(runs)]
    if not points:
        return
    x = np.array([n for n, _ in points])
    med = np.array([np.median(r) for _, r in points])
    lo = np.array([r.min() for _, r in points])
    hi = np.array([r.max() for _, r in points])
    spread = np.where(med > 0, (hi - lo) / np.where(med > 0, med, 1), 0.0)
    runs_text = [", ".join(f"{v:.3f}" for v in r) for _, r in points]
    fig.add_trace(go.Scatter(
        x=x, y=med, mode="markers", name=LABELS[mode], legendgroup=mode, marker=dict(color=COLORS[mode], size=9),
        error_y=dict(type="data", symmetric=False, array=hi - med, arrayminus=med - lo),
        customdata=np.stack([lo, hi, spread * 100, [r.size for _, r in points]], axis=1), text=runs_text,
        hovertemplate=("N = %{x}: median %{y:.3f} s of %{customdata[3]} repeats (%{text} s); fastest "
                       "%{customdata[0]:.3f} s, slowest %{customdata[1]:.3f} s, spread %{customdata[2]:.0f}% "
                       "of the median<extra>" + mode + "</extra>")))


# ---------------------------------------------------------------------------------------------------
# Cache inspector
# ---------------------------------------------------------------------------------------------------

def layer_rows(report: CacheReport) -> list[list]:
    """Rows under LAYER_HEADERS (plain values, e.g. for a gr.Dataframe)."""
    return [[i.layer, str(list(i.key_shape)), str(list(i.value_shape)), i.dtype, i.n_cached_tokens, i.n_bytes]
            for i in report.layers]


def cache_inspector_html(report: CacheReport) -> str:
    """Per-layer shapes and bytes, the measured total beside the formula, and the note on hidden_dim."""
    head = "".join(f"<th style='text-align:left;padding-right:1em'>{html.escape(h)}</th>" for h in LAYER_HEADERS)
    rows = []
    for i in report.layers:
        window = f" (sliding window {i.sliding_window})" if i.sliding_window else ""
        cells = [str(i.layer), str(list(i.key_shape)), str(list(i.value_shape)), i.dtype,
                 f"{i.n_cached_tokens}{window}", f"{i.n_bytes:,}"]
        rows.append("<tr>" + "".join(f"<td style='padding-right:1em'>{html.escape(c)}</td>" for c in cells) + "</tr>")
    check = "✓ equal" if report.measured_equals_formula else "✗ different"
    facts = [
        ("tokens seen", f"{report.n_tokens} (the prompt and every new token except the last, which is not fed "
                        f"back yet)"),
        ("bytes per token", f"{report.bytes_per_token:,} ({format_bytes(report.bytes_per_token)}) = 2 × "
                            f"{report.n_layers} layers × {report.n_kv_heads} kv_heads × {report.d_head} head_dim × "
                            f"{report.bytes_per_element} bytes"),
        ("measured from the tensors", f"{report.measured_bytes:,} bytes ({format_bytes(report.measured_bytes)})"),
        ("formula", f"{report.formula_text} ({check})"),
        ("chapter's hidden_dim formula", f"2 × {report.n_layers} × {report.batch} × {report.n_tokens} × "
                                         f"{report.d_model} × {report.bytes_per_element} = "
                                         f"{report.hidden_dim_formula_bytes:,} bytes"),
    ]
    fact_rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                        f"<td>{html.escape(v)}</td></tr>" for k, v in facts)
    return (f"<table class='kv-facts'>{fact_rows}</table><p>{html.escape(report.note)}</p>"
            f"<table class='kv-layers'><tr>{head}</tr>{''.join(rows)}</table>")


def cache_memory_figure(report: CacheReport, max_tokens: int | None = None) -> go.Figure:
    """Cache size against context length for this model: the measured point, the formula line, and the
    chapter's hidden_dim formula (dashed) that over-counts under grouped-query attention."""
    max_tokens = max_tokens or max(4 * report.n_tokens, 16)
    tokens = np.array([0, max_tokens])
    per_token_hidden = 2 * report.n_layers * report.d_model * report.bytes_per_element
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=tokens, y=tokens * report.bytes_per_token, mode="lines",
                             name="formula: 2 × layers × kv_heads × head_dim × bytes × tokens",
                             line=dict(color=COLORS[CACHED]),
                             hovertemplate="%{x} tokens: %{y:,.0f} bytes<extra></extra>"))
    if per_token_hidden != report.bytes_per_token:
        fig.add_trace(go.Scatter(x=tokens, y=tokens * per_token_hidden, mode="lines",
                                 name="chapter: 2 × layers × hidden_dim × bytes × tokens",
                                 line=dict(color="#999", dash="dash"),
                                 hovertemplate="%{x} tokens: %{y:,.0f} bytes<extra></extra>"))
    fig.add_trace(go.Scatter(x=[report.n_tokens], y=[report.measured_bytes], mode="markers",
                             name="measured after the race", marker=dict(color=COLORS[UNCACHED], size=11,
                                                                          symbol="diamond"),
                             hovertemplate="%{x} tokens: %{y:,.0f} bytes measured<extra></extra>"))
    base_layout(fig, f"KV cache size ({report.dtype}, batch {report.batch})", height=380)
    fig.update_xaxes(title="tokens in the cache", rangemode="tozero")
    fig.update_yaxes(title="bytes", rangemode="tozero", tickformat="~s", ticksuffix="B")
    return _legend_below(fig, 380)


# ---------------------------------------------------------------------------------------------------
# Same output?
# ---------------------------------------------------------------------------------------------------

def outputs_html(outputs: OutputComparison) -> str:
    """Both modes' new tokens, one chip per token; chips that differ are outlined in red."""
    def chips(token_ids: list[int], token_strs: list[str] | None, other: list[int]) -> str:
        out = []
        for index, token_id in enumerate(token_ids):
            label = token_strs[index] if token_strs is not None else f"#{token_id}"
            differs = index >= len(other) or other[index] != token_id
            border = "2px solid #d62728" if differs else "1px solid #ccc"
            out.append(f"<span title='token {index + 1}: id {token_id}' style='display:inline-block;margin:1px;"
                       f"padding:0 3px;border:{border};border-radius:3px;font-family:monospace;"
                       f"white-space:pre'>{html.escape(label)}</span>")
        return "".join(out)

    rows = [(LABELS[CACHED], chips(outputs.cached_token_ids, outputs.cached_token_strs, outputs.uncached_token_ids)),
            (LABELS[UNCACHED], chips(outputs.uncached_token_ids, outputs.uncached_token_strs,
                                     outputs.cached_token_ids))]
    table = "".join(f"<tr><th style='text-align:left;vertical-align:top;padding-right:1em'>{html.escape(name)}"
                    f"</th><td>{cells}</td></tr>" for name, cells in rows)
    mark = "✓" if outputs.identical else "✗"
    return f"<p><b>{mark} {html.escape(outputs.message)}</b></p><table class='kv-outputs'>{table}</table>"


__all__ = [
    "COLORS", "LABELS", "SUMMARY_HEADERS", "LAYER_HEADERS", "format_bytes", "latency_figure",
    "race_latency_figure", "totals_figure", "repeats_figure", "summary_rows", "summary_html", "sweep_figure",
    "layer_rows", "cache_inspector_html", "cache_memory_figure", "outputs_html",
]
