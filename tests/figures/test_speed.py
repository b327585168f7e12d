"""Speed-tab figures and table: traces, axes, skipped rows, escaping, partial (streamed) rows."""

from __future__ import annotations

import numpy as np

from visualizer.analysis.kv_cache import TimingConditions
from visualizer.analysis.speed import SpeedResult, SpeedRow
from visualizer.figures.speed import (
    TABLE_HEADERS,
    batch_figure,
    conditions_markdown,
    decode_figure,
    prefill_figure,
    speed_table,
    text_table,
    verdicts_markdown,
)

ROWS = (
    SpeedRow("attention", "eager", baseline=True, decode_tokens_per_s=np.array([90.0, 100, 110]),
             prefill_s={8: np.array([0.01, 0.012]), 32: np.array([0.02, 0.03])}),
    SpeedRow("attention", "sdpa", decode_tokens_per_s=np.array([120.0]), prefill_s={8: np.array([0.005]),
                                                                                     32: np.array([0.01])},
             same_tokens=True),
    SpeedRow("attention", "flash_attention_2", reason="the <flash-attn> package is not installed"),
    SpeedRow("precision", "bfloat16", decode_tokens_per_s=np.array([80.0]), weight_bytes=2 * 2**20, kl_nats=0.002,
             top1_agreement=0.97),
    SpeedRow("batch", "batch 1", baseline=True, batch=1, decode_tokens_per_s=np.array([100.0]),
             latency_s=np.array([0.16]), peak_bytes=20 * 2**20),
    SpeedRow("batch", "batch 4", batch=4, decode_tokens_per_s=np.array([350.0]), latency_s=np.array([0.18]),
             peak_bytes=22 * 2**20),
)
CONDITIONS = TimingConditions(True, True, 0.0, "cpu", 2, 1, 0.5, 0.6, cpu_share=0.5)


def test_table_has_one_line_per_row_with_reasons_for_skipped_ones():
    table = speed_table(ROWS)
    assert len(table) == len(ROWS) and all(len(line) == len(TABLE_HEADERS) for line in table)
    assert table[0][2] == "100.0" and table[0][3] == "90.0 – 110.0 (n=3)" and "8 tok: 11 ms" in table[0][4]
    assert table[2][2] == "skipped" and "flash-attn" in table[2][-1]
    assert table[3][5] == "weights 2 MiB" and table[3][6] == "KL 0.002 nats, top-1 97%"
    assert table[4][5] == "peak 20 MiB (estimate)" and "latency 160 ms" in table[4][-1]
    assert text_table(ROWS).splitlines()[0].startswith("part")


def test_decode_figure_draws_measured_settings_except_batches():
    fig = decode_figure(ROWS)
    assert [t.name for t in fig.data] == ["Attention implementation", "Precision"]
    assert list(fig.data[0].x) == [100.0, 120.0] and list(fig.data[0].error_x.array) == [10.0, 0.0]
    assert "decode tokens/s" in fig.layout.xaxis.title.text


def test_prefill_and_batch_figures():
    prefill = prefill_figure(ROWS)
    assert [t.name for t in prefill.data] == ["eager", "sdpa"] and list(prefill.data[1].x) == [8, 32]
    batch = batch_figure(ROWS)
    (trace,) = batch.data
    assert list(trace.x) == [0.16, 0.18] and list(trace.y) == [100.0, 350.0] and list(trace.text) == [
        "batch 1", "batch 4"]
    assert "latency" in batch.layout.xaxis.title.text and "throughput" in batch.layout.yaxis.title.text


def test_figures_accept_no_rows_yet():
    assert not decode_figure(()).data and not prefill_figure(()).data and len(batch_figure(()).data) == 1


def test_conditions_and_verdicts_text():
    text = conditions_markdown(CONDITIONS, 1.25, "too <busy>")
    assert "1.25" in text and "50% of a CPU core" in text and "⚠️" in text
    assert conditions_markdown(None, None, None) == "Machine load: not available."
    result = SpeedResult("cpu", "float32", 8, 16, 3, ROWS, CONDITIONS)
    assert "&lt;flash-attn&gt;" in verdicts_markdown(result)
