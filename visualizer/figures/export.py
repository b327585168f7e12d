"""What a chart shows, as files: its numbers as CSV or JSON, and a bertviz view as one standalone offline page.

Pure functions (no gradio): the UI writes what they return to a temporary file for a download button.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from visualizer.figures.bertviz_embed import FILE_URL_PREFIX, bertviz_static_paths

CSV_HEADER = ["chart", "trace", "row", "column", "x", "y", "value", "text"]


def figure_dict(figure: Any) -> dict:
    """{"data": [...], "layout": {...}} of a PlotlyJSON or a plotly go.Figure (duck typed: no plotly import)."""
    if isinstance(figure, Mapping):
        return dict(figure)
    if hasattr(figure, "to_dict"):
        return figure.to_dict()
    return figure.to_plotly_json()


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as lists and numbers; NaN (the causal mask) as None, which JSON can hold."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _trace_name(trace: Mapping, index: int) -> str:
    return str(trace.get("name") or f"{trace.get('type', 'trace')} {index}")


def _rows_of_trace(chart: str, index: int, trace: Mapping) -> list[list]:
    """One row per number the trace draws: a heatmap's cells (row, column, value) or a bar's/line's points."""
    name = _trace_name(trace, index)
    if trace.get("z") is not None:  # heatmap: z[row][column], x and y label the columns and rows
        z = _plain(trace["z"])
        x, y = _plain(trace.get("x")), _plain(trace.get("y"))
        text = _plain(trace.get("text"))
        rows = []
        for r, row in enumerate(z):
            for c, value in enumerate(row):
                rows.append([chart, name, r, c, x[c] if x is not None and c < len(x) else c,
                             y[r] if y is not None and r < len(y) else r, value,
                             text[r][c] if isinstance(text, list) and r < len(text) and c < len(text[r]) else ""])
        return rows
    x, y = _plain(trace.get("x")), _plain(trace.get("y"))
    if x is None and y is None:
        return []
    n = len(x if x is not None else y)
    text = _plain(trace.get("text"))
    value_axis = x if trace.get("orientation") == "h" else y  # horizontal bars carry their values on x
    return [[chart, name, i, "", x[i] if x is not None else i, y[i] if y is not None else "",
             value_axis[i] if value_axis is not None else "",
             text[i] if isinstance(text, list) and i < len(text) else ""] for i in range(n)]


def figures_csv(figures: Mapping[str, Any]) -> str:
    """Every chart's numbers in one long table: CSV_HEADER, then a row per drawn number."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for chart, figure in figures.items():
        if figure is None:
            continue
        for index, trace in enumerate(figure_dict(figure).get("data", [])):
            writer.writerows(_rows_of_trace(chart, index, trace))
    return out.getvalue()


def figures_json(figures: Mapping[str, Any], **context: Any) -> str:
    """The charts' traces (type, name, x, y, z, text) and titles as JSON, with `context` (prompt, settings)."""
    charts = {}
    for chart, figure in figures.items():
        if figure is None:
            continue
        data = figure_dict(figure)
        title = (data.get("layout") or {}).get("title") or {}
        charts[chart] = {
            "title": title.get("text") if isinstance(title, Mapping) else title,
            "traces": [{key: _plain(trace[key]) for key in ("type", "name", "x", "y", "z", "text") if key in trace}
                       for trace in data.get("data", [])]}
    return json.dumps({**_plain(context), "charts": charts}, ensure_ascii=False, indent=1)


# --- bertviz: one file that opens anywhere, with no server and no network --------------------------------------

_SRC = re.compile(r'<script src="([^"]*)"></script>')
_SRCDOC = re.compile(r'srcdoc="([^"]*)"')


def _inline_script(path: Path) -> str:
    # "</script" inside the code would end the element early; "<\/" reads back as "</" in JavaScript strings.
    return "<script>\n" + path.read_text(encoding="utf-8").replace("</script", "<\\/script") + "\n</script>"


def standalone_bertviz_html(iframe_html: str) -> str:
    """The page inside a bertviz iframe (figures.bertviz_embed) with its three served scripts inlined.

    Only the app's own registered script files are inlined; anything else referenced by URL is an error.
    """
    found = _SRCDOC.search(iframe_html)
    if found is None:
        raise ValueError("bertviz view: expected an <iframe srcdoc=...> from head_view_html or model_view_html")
    doc = html.unescape(found.group(1))
    allowed = {Path(p).resolve() for p in bertviz_static_paths()}

    def inline(match: re.Match) -> str:
        url = html.unescape(match.group(1))
        if not url.startswith(FILE_URL_PREFIX):
            raise ValueError(f"bertviz view: unexpected script {url!r}")
        path = Path(unquote(url[len(FILE_URL_PREFIX):])).resolve()
        if path not in allowed:
            raise ValueError(f"bertviz view: script {path} is not one of the view's own files")
        return _inline_script(path)

    return _SRC.sub(inline, doc)
