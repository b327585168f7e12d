"""Figures and tables for the Speed tab: decode tokens/s per setting, prefill against prompt length, the batch
throughput/latency trade-off, the results table and the timing conditions.

Inputs are the rows of ``visualizer.analysis.speed`` (numpy arrays, floats, strings), so every figure can be
re-drawn from each streamed update. Setting names and reasons are escaped wherever they become HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from visualizer.analysis.kv_cache import TimingConditions, format_seconds
from visualizer.analysis.speed import PART_TITLES, PARTS, SpeedResult, SpeedRow
from visualizer.figures.common import base_layout, plotly_text
from visualizer.figures.formatting import format_bytes

COLORS = {"attention": "#0072B2", "precision": "#D55E00", "compile": "#009E73", "batch": "#CC79A7"}  # Okabe-Ito
TABLE_HEADERS = ["part", "setting", "decode tokens/s (median)", "spread (min – max)", "prefill (median)",
                 "memory", "quality vs loaded", "same tokens", "note"]


def _spread(row: SpeedRow) -> str:
    stats = row.decode
    return f"{stats.min_s:,.1f} – {stats.max_s:,.1f} (n={stats.n_runs})" if stats else ""


def _prefill(row: SpeedRow) -> str:
    return ", ".join(f"{n} tok: {format_seconds(float(np.median(v)))}" for n, v in sorted(row.prefill_s.items()))


def _memory(row: SpeedRow) -> str:
    if row.peak_bytes is not None:
        return f"peak {format_bytes(row.peak_bytes)}" + ("" if row.peak_measured else " (estimate)")
    return f"weights {format_bytes(row.weight_bytes)}" if row.weight_bytes is not None else ""


def _quality(row: SpeedRow) -> str:
    if row.kl_nats is None or row.top1_agreement is None:
        return ""
    return f"KL {row.kl_nats:.2g} nats, top-1 {row.top1_agreement:.0%}"


def _same(row: SpeedRow) -> str:
    return "" if row.same_tokens is None else "yes" if row.same_tokens else "no"


def table_row(row: SpeedRow) -> list[str]:
    """One table line: numbers for a measured row, the reason for a skipped one."""
    if not row.measured:
        return [PART_TITLES[row.part], row.setting, "skipped", "", "", "", "", "", row.reason or ""]
    rate = f"{row.decode.median_s:,.1f}" if row.decode else ""
    note = "; ".join(n for n in (row.note, "baseline" if row.baseline else None,
                                 f"compile {format_seconds(row.compile_s)}" if row.compile_s is not None else None,
                                 f"latency {format_seconds(row.latency.median_s)}" if row.latency else None) if n)
    return [PART_TITLES[row.part], row.setting, rate, _spread(row), _prefill(row), _memory(row), _quality(row),
            _same(row), note]


def speed_table(rows: Sequence[SpeedRow]) -> list[list[str]]:
    """Every row as text, in the run's order (TABLE_HEADERS are the columns)."""
    return [table_row(r) for r in rows]


def text_table(rows: Sequence[SpeedRow]) -> str:
    """The table as aligned plain text, for the benchmark's output."""
    lines = [TABLE_HEADERS, *speed_table(rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADERS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def decode_figure(rows: Sequence[SpeedRow]) -> go.Figure:
    """Decode tokens/s per setting (median bar, min–max whisker), one colour per part."""
    fig = go.Figure()
    for part in PARTS:
        measured = [r for r in rows if r.part == part and r.measured and r.decode and part != "batch"]
        if not measured:
            continue
        medians = [r.decode.median_s for r in measured]
        fig.add_trace(go.Bar(
            x=medians, y=[plotly_text(f"{part}: {r.setting}") for r in measured], orientation="h",
            name=PART_TITLES[part], marker_color=COLORS[part],
            error_x=dict(type="data", symmetric=False, array=[r.decode.max_s - m for r, m in zip(measured, medians,
                                                                                                  strict=True)],
                         arrayminus=[m - r.decode.min_s for r, m in zip(measured, medians, strict=True)]),
            hovertemplate="%{y}<br>%{x:,.1f} tokens/s (median)<extra></extra>"))
    fig.update_xaxes(title_text="decode tokens/s (one sequence; higher is faster)")
    fig.update_yaxes(autorange="reversed")
    n_bars = sum(len(trace.y) for trace in fig.data)
    return base_layout(fig, "Decode speed per setting (median, whiskers: fastest and slowest repeat)",
                       max(260, 80 + 32 * n_bars))


def prefill_figure(rows: Sequence[SpeedRow]) -> go.Figure:
    """Prefill time against prompt length, one line per attention implementation."""
    fig = go.Figure()
    for row in rows:
        if row.part == "attention" and row.measured and row.prefill_s:
            lengths = sorted(row.prefill_s)
            fig.add_trace(go.Scatter(x=lengths, y=[1e3 * float(np.median(row.prefill_s[n])) for n in lengths],
                                     mode="lines+markers", name=plotly_text(row.setting),
                                     hovertemplate="%{x} tokens: %{y:.3g} ms<extra></extra>"))
    fig.update_xaxes(title_text="prompt length (tokens)", type="log")
    fig.update_yaxes(title_text="prefill time (ms, median)", rangemode="tozero")
    return base_layout(fig, "Prefill: one forward pass over the prompt", 320)


def batch_figure(rows: Sequence[SpeedRow]) -> go.Figure:
    """Total tokens/s against each sequence's latency, one point per batch size: the trade-off."""
    measured = [r for r in rows if r.part == "batch" and r.measured and r.decode and r.latency]
    fig = go.Figure(go.Scatter(
        x=[r.latency.median_s for r in measured], y=[r.decode.median_s for r in measured], mode="lines+markers+text",
        text=[f"batch {r.batch}" for r in measured], textposition="top left", marker=dict(size=10,
                                                                                            color=COLORS["batch"]),
        customdata=[_memory(r) for r in measured], name="batch size",
        hovertemplate="%{text}<br>%{y:,.0f} tokens/s in total<br>%{x:.3g} s per sequence<br>%{customdata}"
                      "<extra></extra>"))
    fig.update_xaxes(title_text="latency: seconds until a sequence is finished (median)", rangemode="tozero")
    fig.update_yaxes(title_text="throughput: tokens/s over the whole batch (median)", rangemode="tozero")
    return base_layout(fig, "Batch size: throughput against latency", 360)


def conditions_markdown(conditions: TimingConditions | None, load: float | None, warning: str | None) -> str:
    """The machine's load now, what the timing ran under, and the warning when it was too busy to trust."""
    parts = [f"Machine load (1-minute average): {load:.2f}" if load is not None else "Machine load: not available"]
    if conditions is not None:
        parts.append(f"{conditions.cpu_count} CPUs, {conditions.torch_threads} torch thread(s), device "
                     f"{conditions.device}")
        if conditions.cpu_share is not None:
            parts.append(f"the timed work got {conditions.cpu_share:.0%} of a CPU core")
    text = "; ".join(parts) + "."
    return text + (f"\n\n⚠️ **{warning}**" if warning else "")


def verdicts_markdown(result: SpeedResult) -> str:
    """Each part's verdict as a paragraph, escaped (error messages in reasons may hold any text)."""
    return "\n\n".join(html.escape(v) for v in result.verdicts.values())
