"""Exports: a chart's numbers as CSV/JSON, bertviz as one offline page, written as files for download."""

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.conftest import make_tiny_session
from visualizer.figures.export import CSV_HEADER, figures_csv, figures_json, standalone_bertviz_html
from visualizer.ui.common import ConfiguredPlot, configured
from visualizer.ui.tabs import attention, next_token, sampling

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def test_attention_csv_holds_every_weight_of_the_heatmap(session):
    path = attention.export_numbers(session, PROMPT, None, 1, 2, False, "sink")
    rows = list(csv.reader(io.StringIO(Path(path).read_text())))
    assert rows[0] == CSV_HEADER and path.endswith(".csv")
    n = session.trace(PROMPT).n_pos
    heat = [r for r in rows[1:] if r[0] == "heatmap"]
    assert len(heat) == n * n
    # a row of the causal pattern sums to 1 over its visible keys; the future is empty (NaN -> blank)
    row3 = [float(r[6]) for r in heat if r[2] == "3" and r[6] != ""]
    assert len(row3) == 4 and abs(sum(row3) - 1) < 1e-3


def test_next_token_csv_and_sampling_json(session):
    rows = Path(next_token.export_numbers(session, PROMPT, None, 5, -1, "")).read_text().splitlines()
    assert rows[0] == ",".join(CSV_HEADER) and sum(r.startswith("top_k,") for r in rows) == 5
    data = json.loads(Path(sampling.export_numbers(session, PROMPT, None, 0.7, 5, 0.9, 1, 200)).read_text())
    assert data["prompt"] == PROMPT and data["temperature"] == 0.7 and data["charts"]["distribution"]["traces"]


def test_figures_json_keeps_nan_as_null():
    import numpy as np

    fig = {"data": [{"type": "heatmap", "z": np.array([[1.0, np.nan]])}], "layout": {"title": {"text": "t"}}}
    assert json.loads(figures_json({"a": fig}))["charts"]["a"]["traces"][0]["z"] == [[1.0, None]]
    assert figures_csv({"a": fig}).splitlines()[1:] == ["a,heatmap 0,0,0,0,0,1.0,", "a,heatmap 0,0,1,1,0,,"]


def test_bertviz_file_has_its_scripts_inlined(session):
    path = attention.export_bertviz(session, PROMPT, None, 1)
    page = Path(path).read_text()
    assert path.endswith(".html") and "<script src" not in page and not re.search(r"src=[\"']https?:", page)
    assert "const params = " in page and '"layer":1' in page
    with pytest.raises(ValueError, match="iframe"):
        standalone_bertviz_html("<div></div>")
    with pytest.raises(ValueError, match="unexpected script"):
        standalone_bertviz_html('<iframe srcdoc="&lt;script src=&quot;https://cdn/x.js&quot;&gt;&lt;/script&gt;">')


def test_charts_carry_the_toolbar_config(session):
    fig = configured(attention.show_attention(session, PROMPT, None, 0, 0, False, "sink").heatmap)
    assert isinstance(fig, ConfiguredPlot)
    assert json.loads(fig.to_json())["config"]["toImageButtonOptions"]["format"] == "png"
    assert configured("text") == "text"
