"""The KV-cache race on tiny random models: same tokens, exact cache bytes, fair timing, exclusive access."""

from __future__ import annotations

import contextlib
import pickle
import threading
import time

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from tests.tiny_models import ARCHITECTURES, tiny_config, tiny_model, tiny_tokenizer
from visualizer.analysis.kv_cache import CACHED, MODES, UNCACHED, RaceResult, mode_order
from visualizer.analysis.kv_memory import kv_cache_bytes
from visualizer.config import Limits
from visualizer.dims import dims_from_config
from visualizer.runs.kv_race import race_kv_cache
from visualizer.runs.timing import run_to_end

PROMPT = "The capital of France is"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def prompt_ids() -> list[int]:
    return tiny_tokenizer()(PROMPT)["input_ids"]


def quick_race(model, n_new_tokens: int = 12, n_repeats: int = 1, **kwargs) -> RaceResult:
    return run_to_end(race_kv_cache(model, prompt_ids(), n_new_tokens, n_repeats, warmup_tokens=2, **kwargs))


def greedy_truth(model, prompt: list[int], new_ids: list[int]) -> list[int]:
    """Argmax at every position of ONE uncached forward over prompt + new tokens, EOS masked as
    min_new_tokens does: what greedy decoding must have produced, checked independently of generate()."""
    ids = torch.tensor([prompt + new_ids])
    with torch.inference_mode():
        logits = model(ids, use_cache=False).logits[0].float()  # [pos, d_vocab]
        logits[:, model.generation_config.eos_token_id] = float("-inf")
        return logits[len(prompt) - 1: -1].argmax(-1).tolist()



# ----- identical output and exact cache bytes, every architecture ---------------------------------------

@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_cached_and_uncached_give_the_same_greedy_tokens(arch):
    model = tiny_model(arch)
    result = quick_race(model, n_new_tokens=12, n_repeats=2, tokenizer=tiny_tokenizer())
    assert result.outputs.identical, result.outputs.message
    assert result.outputs.first_mismatch is None
    assert result.cached.token_ids == result.uncached.token_ids
    assert result.cached.token_ids == greedy_truth(model, prompt_ids(), result.cached.token_ids)
    assert len(result.outputs.cached_token_strs) == 12


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_measured_cache_bytes_equal_the_formula(arch):
    model = tiny_model(arch)
    result = quick_race(model, n_new_tokens=10)
    report = result.cache
    dims = dims_from_config(model.config)
    n_layers, n_heads, n_kv_heads, d_head, d_model = dims.n_layers, dims.n_heads, dims.n_kv_heads, dims.d_head, \
        dims.d_model
    n_tokens = len(prompt_ids()) + 10 - 1  # the last new token is never fed back
    assert report.n_tokens == n_tokens
    assert len(report.layers) == n_layers
    for layer in report.layers:
        assert layer.key_shape == layer.value_shape == (1, n_kv_heads, n_tokens, d_head)
        assert layer.n_bytes == 2 * n_kv_heads * n_tokens * d_head * 4  # float32
    assert report.measured_equals_formula
    assert report.measured_bytes == report.formula_bytes == kv_cache_bytes(dims, n_tokens, 1, 4, sliding=True)
    assert report.bytes_per_token * n_tokens == report.measured_bytes
    assert report.hidden_dim_formula_bytes == 2 * n_layers * n_tokens * d_model * 4
    if n_kv_heads < n_heads:  # grouped-query attention: the hidden_dim formula over-counts
        assert report.hidden_dim_formula_bytes == report.measured_bytes * n_heads // n_kv_heads
        assert "grouped-query" in report.note and "over-counts" in report.note
    else:
        assert report.hidden_dim_formula_bytes == report.measured_bytes
        assert "exact here" in report.note


def test_sliding_window_layers_hold_only_the_window():
    model = tiny_model("gemma2")  # sliding_window 64 on alternate layers
    window = tiny_config("gemma2").sliding_window
    n_new = 70
    result = quick_race(model, n_new_tokens=n_new)
    n_tokens = len(prompt_ids()) + n_new - 1
    counts = [layer.n_cached_tokens for layer in result.cache.layers]
    assert n_tokens > window and min(counts) < n_tokens and max(counts) == n_tokens
    assert min(counts) <= window
    assert result.cache.measured_equals_formula
    assert "sliding window" in result.cache.note
    assert result.outputs.identical



# ----- timing shape: the uncached per-token latency climbs, the cached one does not --------------------

def test_uncached_latency_climbs_faster_than_cached():
    torch.manual_seed(0)
    # Few layers (little Python overhead per step) but a wide model: the work that grows with T shows.
    config = AutoConfig.for_model(
        "llama", vocab_size=320, hidden_size=320, intermediate_size=640, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1,
        eos_token_id=2, pad_token_id=0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    prompt = list(range(3, 3 + 8))  # short, so the uncached work grows 26-fold: from 8 to 208 tokens
    # Interleaved: a change in machine load hits both modes at the same token, so the ratio is robust.
    result = run_to_end(race_kv_cache(model, prompt, 200, 1, warmup_tokens=4, interleave=True))
    cached_slope = result.cached.latency_slope_s_per_step
    uncached_slope = result.uncached.latency_slope_s_per_step
    detail = (f"slopes {uncached_slope * 1e6:.1f} vs {cached_slope * 1e6:.1f} µs/step, "
              f"CPU share {result.conditions.cpu_share}")
    # Ratios, not absolute times: every uncached step re-reads one more token, a cached step does not.
    assert uncached_slope > 0, detail
    assert uncached_slope > 3 * max(cached_slope, 0.0), detail
    ratio = result.step_ratio  # [step] uncached / cached latency of the same token
    growth = np.median(ratio[-50:]) / np.median(ratio[1:51])  # about 2.2 on an idle machine
    assert growth > 1.4, f"{detail}, ratio growth {growth:.2f}"
    assert result.outputs.identical


# ----- repeats, streaming, order --------------------------------------------------------------------

def test_repeats_are_stored_and_summarised():
    result = quick_race(tiny_model("llama"), n_new_tokens=6, n_repeats=3)
    for mode in MODES:
        timing = result.mode(mode)
        assert timing.latencies_s.shape == (3, 6)
        assert np.all(timing.latencies_s > 0)
        np.testing.assert_allclose(timing.totals_s, timing.prefill_s + timing.decode_s)
        assert timing.cpu_s.shape == (3, 6) and np.all(timing.cpu_s >= 0)
        assert np.all(timing.setup_s < timing.prefill_s)  # setup is part of the first token's time
        stats = timing.total
        assert stats.n_runs == 3
        assert stats.min_s <= stats.median_s <= stats.max_s
        assert stats.median_s == pytest.approx(float(np.median(timing.totals_s)))
        assert timing.tokens_per_s == pytest.approx(6 / stats.median_s)
    assert result.order == [mode_order(0), mode_order(1), mode_order(2)]
    assert result.order[0] == (CACHED, UNCACHED) and result.order[1] == (UNCACHED, CACHED)
    assert result.speedup == pytest.approx(result.uncached.total.median_s / result.cached.total.median_s)
    assert result.speedup_per_repeat.shape == (3,)
    assert not result.interleaved and result.step_ratio.shape == (6,)
    assert result.conditions.cpu_share is not None and 0 < result.conditions.cpu_share < 4


def test_sequential_schedule_runs_one_mode_after_the_other():
    updates = list(race_kv_cache(tiny_model("gpt2"), prompt_ids(), 4, 2, warmup_tokens=1, update_interval_s=0))
    modes = [u.mode for u in updates if u.phase == "timing"]
    assert modes == [CACHED] * 4 + [UNCACHED] * 4 + [UNCACHED] * 4 + [CACHED] * 4
    result = updates[-1].result
    assert not result.interleaved and result.outputs.identical


def test_interleaved_schedule_alternates_token_by_token():
    updates = list(race_kv_cache(tiny_model("gpt2"), prompt_ids(), 3, 2, warmup_tokens=1, interleave=True,
                                 update_interval_s=0))
    steps = [(u.mode, u.step) for u in updates if u.phase == "timing"]
    assert steps == [(CACHED, 0), (UNCACHED, 0), (CACHED, 1), (UNCACHED, 1), (CACHED, 2), (UNCACHED, 2),
                     (UNCACHED, 0), (CACHED, 0), (UNCACHED, 1), (CACHED, 1), (UNCACHED, 2), (CACHED, 2)]


def test_timing_updates_stream_every_token_then_the_result():
    n_new, n_repeats = 5, 2
    updates = list(race_kv_cache(tiny_model("gpt2"), prompt_ids(), n_new, n_repeats, warmup_tokens=1,
                                 update_interval_s=0))
    phases = [u.phase for u in updates]
    assert phases[0] == "warmup" and phases[-1] == "done"
    timing = [u for u in updates if u.phase == "timing"]
    assert len(timing) == 2 * n_repeats * n_new
    fractions = [u.fraction_done for u in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Each snapshot has exactly the steps done so far, ending with the one just reported.
    for u in timing:
        runs = u.latencies_s[u.mode]
        assert len(runs[-1]) == u.step + 1
    final = updates[-1]
    assert final.result is not None and all(u.result is None for u in updates[:-1])
    # ZeroGPU runs the generator in a worker process: every update must pickle (no tensors inside).
    assert pickle.loads(pickle.dumps(final)).result.cache.measured_bytes == final.result.cache.measured_bytes
    for mode in MODES:
        np.testing.assert_array_equal(np.asarray(final.latencies_s[mode]), final.result.mode(mode).latencies_s)


def test_update_interval_thins_the_stream_but_keeps_run_ends():
    updates = list(race_kv_cache(tiny_model("gpt2"), prompt_ids(), 8, 1, warmup_tokens=1,
                                 update_interval_s=3600))
    timing = [u for u in updates if u.phase == "timing"]
    assert [u.step for u in timing] == [7, 7]  # only the last token of each run


# ----- exclusive access -----------------------------------------------------------------------------

def _timing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kv-cache-timing"]


def test_free_lock_is_held_during_timing_and_released():
    lock = threading.Lock()
    updates, seen_locked = [], []
    for update in race_kv_cache(tiny_model("llama"), prompt_ids(), 3, 1, exclusive=lock, warmup_tokens=1):
        updates.append(update)
        seen_locked.append(lock.locked())
    assert all(seen_locked[:-1])  # held from the warm-up to the end of the timing
    assert not lock.locked()
    result = updates[-1].result
    assert result.conditions.exclusive and result.conditions.acquired_without_waiting
    # held exclusively: no "without exclusive use" warning (a loaded machine may still add a CPU-share one)
    assert result.conditions.warning is None or "exclusive" not in result.conditions.warning


def test_busy_lock_makes_the_race_wait_and_say_so():
    lock = threading.Lock()
    lock.acquire()
    threading.Timer(0.3, lock.release).start()
    updates = list(race_kv_cache(tiny_model("llama"), prompt_ids(), 3, 1, exclusive=lock, warmup_tokens=1))
    assert updates[0].phase == "waiting" and "waiting" in updates[0].message
    conditions = updates[-1].result.conditions
    assert conditions.acquired_without_waiting is False
    assert conditions.waited_s >= 0.2
    assert not lock.locked()


def test_session_style_context_manager_reports_its_own_answer():
    from visualizer.locks import ReadWriteLock

    rw = ReadWriteLock()
    result = quick_race(tiny_model("llama"), n_new_tokens=3, exclusive=rw.exclusive())
    assert result.conditions.exclusive and result.conditions.acquired_without_waiting is True

    @contextlib.contextmanager
    def busy():
        yield False  # "the model was not free at once"

    assert quick_race(tiny_model("llama"), n_new_tokens=3, exclusive=busy()).conditions.acquired_without_waiting \
        is False


def test_without_a_lock_the_timing_is_flagged():
    result = quick_race(tiny_model("llama"), n_new_tokens=3)
    assert not result.conditions.exclusive
    assert "without exclusive use" in result.conditions.warning


def test_stopping_early_releases_the_lock_and_the_worker():
    lock = threading.Lock()
    updates = race_kv_cache(tiny_model("llama"), prompt_ids(), 20, 2, exclusive=lock, warmup_tokens=1,
                            interleave=True, update_interval_s=0)  # two generate() workers alive at the break
    for update in updates:
        if update.phase == "timing" and update.step == 3:
            break
    assert lock.locked()
    updates.close()  # what a cancelled request does
    assert not lock.locked()
    deadline = time.monotonic() + 5
    while _timing_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _timing_threads()


# ----- limits ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n_new_tokens=51), "New tokens must be from 1 to 50"),
    (dict(n_new_tokens=0), "New tokens must be from 1 to 50"),
    (dict(n_repeats=4), "Repeats must be from 1 to 3"),
    (dict(prompt=list(range(3, 40))), "at most 16"),
    (dict(prompt=[]), "prompt is empty"),
])
def test_race_limits_raise_clear_errors_before_running(kwargs, message):
    limits = Limits(max_new_tokens=50, max_repeats=3, max_prompt_tokens=16)
    args = dict(prompt=prompt_ids(), n_new_tokens=5, n_repeats=1) | kwargs
    lock = threading.Lock()
    with pytest.raises(ValueError, match=message):
        race_kv_cache(tiny_model("llama"), args["prompt"], args["n_new_tokens"], args["n_repeats"],
                      limits=limits, exclusive=lock)  # raised at the call, not at the first next()
    assert not lock.locked()


def test_slider_values_are_whole_numbers():
    result = run_to_end(race_kv_cache(tiny_model("llama"), prompt_ids(), 3.0, 1.0, warmup_tokens=0))
    assert result.n_new_tokens == 3 and result.cached.latencies_s.shape == (1, 3)
    with pytest.raises(ValueError, match="whole number"):
        race_kv_cache(tiny_model("llama"), prompt_ids(), 2.5)
    with pytest.raises(ValueError, match="whole number"):
        race_kv_cache(tiny_model("llama"), prompt_ids(), None)


def test_context_length_is_enforced():
    limits = Limits(max_new_tokens=1000)
    with pytest.raises(ValueError, match="context of 128 tokens"):
        race_kv_cache(tiny_model("llama"), prompt_ids(), 125, 1, limits=limits)


