"""The shared session: loaded once, one forward pass per prompt, bounded memory, safe under concurrency."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_session
from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer import loading
from visualizer import session as session_module
from visualizer.analysis.next_token import top_k
from visualizer.config import AppConfig, Limits
from visualizer.loading import resolve_dtype
from visualizer.session import ModelSession, load_session

PROMPTS = ["The capital of France is", "Paris is the capital of", "one two three four five six seven",
           "Attention lets each token look back", "Write an email apologizing to Sarah"]


def test_views_reuse_one_forward_pass():
    session = make_tiny_session("llama")
    trace = session.trace(PROMPTS[0])
    assert session.forward_passes == 1
    assert session.trace(PROMPTS[0]) is trace
    for pos in range(trace.n_pos):
        top_k(trace, session.tokenizer, pos, 5)
        session.lens_log_probs(trace, pos)  # the LM head on cached residuals: not a forward pass
    for layer in range(trace.n_layers):
        session.layer_patterns(trace, layer)
    assert session.forward_passes == 1


def test_same_ids_share_a_trace_whether_given_as_text_or_ids():
    session = make_tiny_session("gpt2")
    trace = session.trace(PROMPTS[1])
    assert session.trace([int(i) for i in trace.token_ids]) is trace
    assert session.forward_passes == 1


def test_cache_is_bounded_in_bytes():
    one = make_tiny_session("llama").trace(PROMPTS[2]).nbytes
    session = make_tiny_session("llama", trace_cache_bytes=int(one * 2.5))
    for prompt in PROMPTS:
        session.trace(prompt)
        assert session.cache_bytes <= int(one * 2.5)
    assert session.forward_passes == len(PROMPTS)
    session.trace(PROMPTS[-1])  # most recent: still cached
    assert session.forward_passes == len(PROMPTS)


def test_patterns_over_budget_are_recomputed_per_layer_and_exact():
    full = make_tiny_session("qwen2").trace(PROMPTS[0])
    session = make_tiny_session("qwen2", attention_store_bytes=0)
    trace = session.trace(PROMPTS[0])
    assert trace.attention_patterns is None and trace.notes
    assert full.computed_metrics is None  # kept patterns: summarised when a view first asks (a CPU model)
    size = full.nbytes
    assert trace.computed_metrics is not None  # none kept: summarised layer by layer in the forward pass
    assert set(trace.attention_metrics) == set(full.attention_metrics)
    for name, values in full.attention_metrics.items():
        np.testing.assert_allclose(trace.attention_metrics[name], values, rtol=1e-6, atol=1e-7, err_msg=name)
    assert full.nbytes == size  # one size per trace, whether or not a view has asked for its metrics
    for layer in range(trace.n_layers):
        torch.testing.assert_close(session.layer_patterns(trace, layer), full.attention_patterns[layer])
    assert session.forward_passes == 1 + trace.n_layers


def test_request_over_memory_budget_is_refused_with_numbers():
    session = make_tiny_session("llama", memory_budget_bytes=1000)
    with pytest.raises(ValueError, match=r"MiB.*budget"):
        session.trace(PROMPTS[0])
    assert session.forward_passes == 0


@pytest.mark.parametrize("bad", ["", "   \n\t ", None, 42, ["a"], "x" * 100_000])
def test_bad_prompts_get_clear_messages(bad):
    session = make_tiny_session("gpt2")
    with pytest.raises(ValueError) as info:
        session.trace(bad)
    assert len(str(info.value)) > 10
    assert session.forward_passes == 0


def test_prompt_over_token_limit_names_both_numbers():
    session = make_tiny_session("llama", max_prompt_tokens=8)
    with pytest.raises(ValueError, match=r"tokens; the limit here is 8"):
        session.trace("one two three four five six seven eight nine ten eleven twelve")


@pytest.mark.parametrize("text", ["emoji 😀🎉 ok", "日本の首都は東京", "مرحبا بالعالم", "nul\x00 and \x07 bell",
                                  "<script>alert(1)</script>"])
def test_unusual_text_is_analysed(text):
    session = make_tiny_session("phi3")
    trace = session.trace(text)
    assert trace.n_pos > 0 and trace.attention_patterns is not None
    assert session.tokenizer.decode(trace.token_ids.tolist()) == text


def test_twenty_threads_never_lose_attentions():
    session = make_tiny_session("mistral")
    reference = {p: make_tiny_session("mistral").trace(p) for p in PROMPTS}
    barrier = threading.Barrier(20)

    def worker(i):
        barrier.wait()
        prompt = PROMPTS[i % len(PROMPTS)]
        trace = session.trace(prompt)
        return prompt, trace

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(worker, range(20)))
    for prompt, trace in results:
        assert trace.attention_patterns is not None and trace.attention_patterns.numel() > 0
        torch.testing.assert_close(trace.attention_patterns, reference[prompt].attention_patterns)
        torch.testing.assert_close(trace.last_logits, reference[prompt].last_logits)
    assert session.forward_passes == len(PROMPTS)  # concurrent requests for one prompt wait for one pass


def test_concurrent_distinct_prompts_do_not_mix_activations():
    session = make_tiny_session("gemma")
    prompts = [f"{p} {i}" for i in range(4) for p in PROMPTS]
    reference = {p: make_tiny_session("gemma").trace(p) for p in prompts}
    with ThreadPoolExecutor(8) as pool:
        traces = list(pool.map(session.trace, prompts))
    for prompt, trace in zip(prompts, traces, strict=True):
        torch.testing.assert_close(trace.resid, reference[prompt].resid)
        torch.testing.assert_close(trace.attention_patterns, reference[prompt].attention_patterns)


@pytest.fixture
def saved_tiny_model(tmp_path):
    path = tmp_path / "tiny-phi3"
    tiny_model("phi3").save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_model_is_loaded_once_however_many_requests(saved_tiny_model, monkeypatch):
    monkeypatch.setattr(session_module, "_shared", {})
    before = loading.load_count
    config = AppConfig(model=str(saved_tiny_model), device="cpu")
    with ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(lambda _: load_session(config), range(16)))
    assert all(s is sessions[0] for s in sessions)
    assert loading.load_count == before + 1
    for prompt in PROMPTS:
        sessions[0].trace(prompt)
    assert loading.load_count == before + 1


def test_unloadable_model_falls_back_to_bundled_with_banner(saved_tiny_model, monkeypatch):
    monkeypatch.setattr(loading, "bundled_model_dir", lambda: saved_tiny_model)
    session = ModelSession.load(AppConfig(model="no-such-org/no-such-model-xyz", device="cpu"))
    assert session.source == str(saved_tiny_model)
    assert "no-such-org/no-such-model-xyz" in session.banner and "bundled" in session.banner
    with pytest.raises(OSError):
        ModelSession.load(AppConfig(model="no-such-org/no-such-model-xyz", device="cpu", allow_fallback=False))


def test_dtype_policy():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16


def test_exclusive_lock_waits_for_readers_and_reports_contention():
    session = make_tiny_session("llama")
    order = []
    with session.lock.shared():
        def timing():
            with session.lock.exclusive() as free:
                order.append(("exclusive", free))
        t = threading.Thread(target=timing)
        t.start()
        t.join(0.2)
        assert t.is_alive()  # waits while a reader holds the model
        order.append(("reader done", None))
    t.join(5)
    assert order == [("reader done", None), ("exclusive", False)]
    with session.lock.exclusive() as free:
        assert free


def test_config_limits_are_respected():
    session = ModelSession(tiny_model("gpt2"), tiny_tokenizer(), AppConfig(limits=Limits(max_prompt_tokens=4000)))
    assert session.max_prompt_tokens == 128  # capped by the model's context


def test_out_of_memory_becomes_a_message_and_the_server_keeps_serving(monkeypatch):
    session = make_tiny_session("llama")
    real_forward = session.model.forward
    calls = {"n": 0}

    def forward_that_runs_out(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(session.model, "forward", forward_that_runs_out)
    with pytest.raises(ValueError, match="ran out of memory"):
        session.trace(PROMPTS[0])
    assert session.trace(PROMPTS[0]).n_pos > 0  # the next request is served (nothing half-cached)


def test_zero_gpu_wrapper_is_identity_off_spaces():
    from visualizer import gpu

    assert not gpu.ZERO_GPU
    assert gpu._duration(0, "x", gpu_seconds=1000) == 300 and gpu._duration(0, "x", gpu_seconds=1) == 5


def test_session_implements_the_closed_backend_interface():
    from visualizer.backend import ModelBackend

    session = make_tiny_session("llama")
    assert isinstance(session, ModelBackend)
    assert not hasattr(session, "call") and not hasattr(session, "stream") and not hasattr(session, "stream_timed")


def test_an_identical_race_within_a_minute_is_shown_at_once_as_another_visitors():
    session = make_tiny_session("llama")
    first = list(session.kv_race("one two three", 4, 1, update_interval_s=0))
    passes = session.forward_passes
    again = list(session.kv_race("one two three", 4, 1, update_interval_s=0))
    assert len(again) == 1 and again[0].result is first[-1].result
    assert again[0].message.startswith("Another visitor's race from") and session.forward_passes == passes
    fresh = list(session.kv_race("one two three", 4, 1, update_interval_s=0, fresh=True))
    assert fresh[-1].result is not first[-1].result and len(fresh) > 1
    other = list(session.kv_race("one two three", 5, 1, update_interval_s=0))  # another N: its own race
    assert other[-1].result.n_new_tokens == 5


def test_recent_results_expire_and_stay_bounded():
    from visualizer.locks import RecentResults

    now = [0.0]
    recent = RecentResults(max_age_s=60, max_items=2, clock=lambda: now[0])
    recent.put("a", 1)
    now[0] = 59.0
    assert recent.get("a") == (1, 59.0)
    now[0] = 61.0
    assert recent.get("a") is None
    for key in "bcd":
        recent.put(key, key)
    assert recent.get("b") is None and recent.get("d") == ("d", 0.0)


def test_queue_size_comes_from_the_measured_probe_unless_the_operator_sets_it():
    from visualizer.config import MIN_QUEUE_SIZE, QueueSettings, derived_queue_size

    session = make_tiny_session("llama")
    assert session.checks.probe_seconds > 0
    assert session.queue_max_size == derived_queue_size(session.checks.probe_seconds, 2) >= MIN_QUEUE_SIZE
    fixed = ModelSession(tiny_model("llama"), tiny_tokenizer(), AppConfig(queue=QueueSettings(max_size=10)))
    assert fixed.queue_max_size == 10


def test_lens_log_probs_of_a_repeated_position_come_from_a_bounded_cache():
    from visualizer.locks import BytesLRU

    session = make_tiny_session("llama")
    trace = session.trace("The capital of France is")
    first = session.lens_log_probs(trace, 2)
    assert session.lens_log_probs(trace, 2) is first
    fresh = session._lens_log_probs(trace.resid[:, 2])
    assert torch.equal(first, fresh)
    lru = BytesLRU(max_bytes=10)
    lru.put("a", 1, 6)
    lru.put("b", 2, 6)  # over the bound: the oldest goes
    assert lru.get("a") is None and lru.get("b") == 2
    lru.put("c", 3, 11)  # larger than the bound: never kept
    assert lru.get("c") is None and lru.get("b") == 2
    assert lru.n_bytes == 6
    lru.clear()
    assert lru.get("b") is None and lru.n_bytes == 0
