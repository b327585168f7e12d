"""ZeroGPU glue off ZeroGPU: durations fitted to the quota, the race and sweep shrunk to fit, and the quota
learnt from the refusal text the `spaces` package raises (spaces/zero/client.py, 0.51.3)."""

from __future__ import annotations

import gradio as gr
import pytest

from visualizer import gpu

REFUSAL = ("You have exceeded your free ZeroGPU quota (120s requested vs. 55s left). Try again in 0:09:12. ")


@pytest.fixture
def memo(monkeypatch):
    fresh = gpu._QuotaMemo()
    monkeypatch.setattr(gpu, "QUOTA", fresh)
    return fresh


def test_off_zero_gpu_only_the_call_bounds_apply():
    assert not gpu.ZERO_GPU
    assert gpu.fit_to_quota(1) == (gpu.MIN_REQUEST_S, None)
    seconds, note = gpu.fit_to_quota(1000)
    assert seconds == gpu.MAX_REQUEST_S and "300 s" in note
    assert gpu._duration(0, "x", gpu_seconds=40) == 40


def test_unknown_visitor_on_zero_gpu_gets_an_anonymous_day(memo):
    seconds, note = gpu.fit_to_quota(300, "visitor", zero_gpu=True)
    assert seconds == gpu.ASSUMED_LEFT_S and "not logged in" in note
    assert gpu.fit_to_quota(30, "visitor", zero_gpu=True) == (30, None)


def test_a_refusal_tells_what_is_left_and_use_counts_down(memo):
    assert gpu.quota_left_in(gr.Error(REFUSAL)) == 55
    assert gpu.quota_left_in(RuntimeError("CUDA error")) is None
    memo.learn("visitor", 55)
    seconds, note = gpu.fit_to_quota(100, "visitor", zero_gpu=True)
    assert seconds == 55 and "55 s of ZeroGPU time left" in note
    memo.spend("visitor", 20)
    assert gpu.fit_to_quota(100, "visitor", zero_gpu=True)[0] == 35
    assert gpu.fit_to_quota(300, "someone else", zero_gpu=True)[0] == gpu.ASSUMED_LEFT_S


def test_refusals_are_remembered_for_the_visitor(memo, monkeypatch):
    monkeypatch.setattr(gpu, "current_visitor", lambda: "visitor")

    def refused(*args, **kwargs):
        raise gr.Error(REFUSAL)

    def refused_stream(*args, **kwargs):
        yield 1
        raise gr.Error(REFUSAL.replace("55s", "12s"))

    with pytest.raises(gr.Error):
        gpu._remembering(refused, streaming=False)()
    assert 54 < memo.left("visitor") <= 55  # less the (tiny) time the call took
    with pytest.raises(gr.Error):
        list(gpu._remembering(refused_stream, streaming=True)())
    assert memo.left("visitor") <= 12


def test_race_shrinks_repeats_then_n_to_fit():
    assert gpu.fit_race(20, 1, 120) == (20, 1, None)
    n, repeats, note = gpu.fit_race(200, 7, 120)
    assert n == 200 and 1 <= repeats < 7 and gpu.race_seconds(n, repeats) <= 120
    assert "repeat" in note and "N = 200" in note
    n, repeats, note = gpu.fit_race(200, 3, 25)
    assert repeats == 1 and n < 200 and gpu.race_seconds(n, repeats) <= 25 and f"N = {n}" in note


def test_sweep_drops_repeats_then_the_longest_lengths_but_keeps_three_of_each():
    lengths = [16, 32, 64, 128, 256]
    assert gpu.fit_sweep(lengths, 3, 600) == (lengths, 3, None)
    kept, repeats, note = gpu.fit_sweep(lengths, 5, 60)
    assert repeats == 3 and kept == lengths[:len(kept)] and 3 <= len(kept) < len(lengths)
    assert gpu.sweep_seconds(kept, repeats) <= 60 and "asked for 5 lengths" in note
    kept, repeats, note = gpu.fit_sweep(lengths, 5, 25)  # three lengths at three repeats are too long: scale N down
    assert repeats == 3 and len(kept) == 3 and kept[-1] < 64 and gpu.sweep_seconds(kept, repeats) <= 25
