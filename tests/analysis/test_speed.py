"""Pure speed-lab analysis: quality metrics from logits, request checks, verdict wording on hand-built rows."""

from __future__ import annotations

import numpy as np
import pytest

from visualizer.analysis.kv_cache import TimingConditions
from visualizer.analysis.speed import (
    SpeedResult,
    SpeedRow,
    batch_sizes,
    next_token_quality,
    prefill_lengths,
    summary,
    validate_parts,
)

CALM = TimingConditions(True, True, 0.0, "cpu", 2, 1, 0.5, 0.5, cpu_share=0.95)
BUSY = TimingConditions(True, True, 0.0, "cpu", 2, 1, 3.0, 3.0, cpu_share=0.4)


def _row(part, setting, rates, **kw):
    return SpeedRow(part, setting, decode_tokens_per_s=np.array(rates, dtype=float), **kw)


def _result(rows, conditions=CALM):
    return SpeedResult("cpu", "float32", 8, 16, 3, tuple(rows), conditions)


def test_kl_is_zero_for_equal_logits_and_matches_the_formula():
    p = np.log(np.array([[0.5, 0.25, 0.25]]))
    q = np.log(np.array([[0.25, 0.5, 0.25]]))
    kl, same = next_token_quality(p + 3.0, q)  # a constant shift changes no probability
    expected = 0.5 * np.log(2) + 0.25 * np.log(0.5)
    assert kl[0] == pytest.approx(expected) and not same[0]
    kl, same = next_token_quality(p, p)
    assert kl[0] == 0 and same[0]


def test_kl_shapes_must_match():
    with pytest.raises(ValueError, match="pos, d_vocab"):
        next_token_quality(np.zeros((2, 3)), np.zeros((3, 3)))


def test_parts_batches_and_lengths():
    assert validate_parts(None) == ("attention", "precision", "batch")
    with pytest.raises(ValueError, match="parts: unknown 'warp'"):
        validate_parts(["warp"])
    with pytest.raises(ValueError, match="at least one"):
        validate_parts([])
    assert batch_sizes(16) == [1, 2, 4, 8, 16] and batch_sizes(3) == [1, 2, 3]
    assert prefill_lengths(10, 30) == [10] and prefill_lengths(2, 1000) == [2, 8, 32]


def test_verdicts_say_faster_slower_and_why_not():
    rows = [_row("attention", "eager", [100, 110, 90], baseline=True),
            _row("attention", "sdpa", [200, 210, 190], same_tokens=True),
            SpeedRow("attention", "flash_attention_2", reason="the flash-attn package is not installed"),
            _row("precision", "float32", [100, 100, 100], baseline=True, weight_bytes=400),
            _row("precision", "bfloat16", [50, 50, 50], weight_bytes=200, kl_nats=0.001, top1_agreement=0.98,
                 same_tokens=False)]
    verdicts = _result(rows).verdicts
    assert "sdpa decodes 2.00× faster than eager; same greedy tokens" in verdicts["attention"]
    assert "flash_attention_2: not measured (the flash-attn package is not installed)" in verdicts["attention"]
    precision = verdicts["precision"]
    assert "bfloat16 decodes 2.00× slower" in precision and "0.5× the weight memory" in precision
    assert "top-1 agreement 98%" in precision and "half precision is slower on this CPU" in precision
    assert "different greedy tokens" in precision
    assert summary(_result(rows)).count("\n\n") == 1


def test_batch_verdict_weighs_throughput_against_latency():
    rows = [_row("batch", "batch 1", [100], baseline=True, batch=1, latency_s=np.array([1.0])),
            _row("batch", "batch 4", [300], batch=4, latency_s=np.array([1.3])),
            SpeedRow("batch", "batch 8", batch=8, reason="needs about 9 MiB, over this server's budget of 1 MiB")]
    text = _result(rows).verdicts["batch"]
    assert "batch 4 gives 3.00× the total tokens/s" in text and "1.30× as long" in text
    assert "more throughput, more latency" in text and "batch 8 skipped: needs about 9 MiB" in text


def test_compile_verdict_gives_the_compile_time():
    rows = [_row("compile", "uncompiled (static cache)", [100], baseline=True),
            _row("compile", "compiled", [150], compile_s=42.0, same_tokens=True)]
    assert "compiling took 42 s; then the compiled model decodes 1.50× faster" in _result(rows).verdicts["compile"]


def test_busy_machine_and_noisy_repeats_are_warned_about():
    rows = [_row("attention", "eager", [100, 200, 150], baseline=True)]
    assert _result(rows).warning is not None and "attention/eager" in _result(rows).warning
    assert "Other programs were using the CPU" in _result([_row("attention", "eager", [100], baseline=True)],
                                                          BUSY).warning
    assert _result([_row("attention", "eager", [100, 101], baseline=True)]).warning is None
