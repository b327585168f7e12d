"""The speed lab on real tiny models: same greedy tokens across settings, the shared model never changed,
the attention implementation restored, concurrent traces keep their attentions. No timing is asserted."""

from __future__ import annotations

import threading

import pytest
import torch

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.analysis.speed import MIN_TOP1_BF16
from visualizer.config import AppConfig, Limits
from visualizer.runs.speed import (
    attention_implementation,
    batch_greedy,
    batch_sequences,
    hook_free_copy,
    speed_lab,
)
from visualizer.runs.timing import run_to_end
from visualizer.session import ModelSession

PROMPT = [1, 40, 41, 42, 43, 44, 45, 46]


def _session(arch: str, **limits) -> ModelSession:
    config = AppConfig(limits=Limits(**limits)) if limits else AppConfig()
    return ModelSession(tiny_model(arch), tiny_tokenizer(), config, source=f"tiny-{arch}")  # carries SpeedMixin


def _rows(result, part):
    return {r.setting: r for r in result.part(part)}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_eager_and_sdpa_give_the_same_greedy_tokens_and_eager_is_restored(arch):
    session = _session(arch)
    result = run_to_end(session.speed_lab(PROMPT, ["attention"], 1, 4))
    rows = _rows(result, "attention")
    assert rows["eager"].baseline and rows["sdpa"].same_tokens is True
    assert rows["sdpa"].token_ids == rows["eager"].token_ids and len(rows["eager"].token_ids) == 4
    assert set(rows["eager"].prefill_s) == set(rows["sdpa"].prefill_s) and rows["eager"].decode.n_runs == 1
    assert "flash" in rows["flash_attention_2"].reason or "CUDA" in rows["flash_attention_2"].reason
    assert session.model.config._attn_implementation == "eager"


def test_implementation_restored_after_an_exception_inside_the_switch():
    model = tiny_model("llama")
    with pytest.raises(RuntimeError, match="mid-run"), attention_implementation(model, "sdpa"):
        assert model.config._attn_implementation == "sdpa"
        raise RuntimeError("mid-run")
    assert model.config._attn_implementation == "eager"


def test_stopping_a_run_early_restores_the_model_and_frees_the_lock():
    session = _session("llama")
    updates = session.speed_lab(PROMPT, ["attention"], 1, 4)
    for update in updates:
        if update.phase == "attention" and "sdpa" in update.message:
            break
    updates.close()
    assert session.model.config._attn_implementation == "eager"
    assert session.trace("A fresh prompt").attention_patterns is not None  # the lock was released


def test_a_trace_during_a_speed_run_still_gets_its_attentions():
    session = _session("llama")
    traces, errors = [], []

    def trace_new_prompts():
        try:
            for text in ("Concurrent one", "Concurrent two"):
                traces.append(session.trace(text))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    other = None
    for update in session.speed_lab(PROMPT, ["attention"], 2, 6):
        if other is None and update.phase == "attention":  # the run holds the model: start the other user
            other = threading.Thread(target=trace_new_prompts)
            other.start()
    other.join()
    assert not errors and len(traces) == 2
    for trace in traces:
        patterns = trace.attention_patterns  # [layer, head, query_pos, key_pos]
        assert patterns is not None and patterns.shape[:2] == (session.dims.n_layers, session.dims.n_heads)
        assert torch.allclose(patterns.float().sum(-1), torch.ones(patterns.shape[:-1]), atol=1e-2)
    assert session.model.config._attn_implementation == "eager"


def test_precision_copies_leave_the_shared_model_alone_and_agree_within_tolerance():
    session = _session("llama")
    model = session.model
    before = {n: (p.data_ptr(), p.dtype, p.clone()) for n, p in model.named_parameters()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    result = run_to_end(speed_lab(model, PROMPT, 4, 1, parts=["precision"], tokenizer=session.tokenizer))
    rows = _rows(result, "precision")
    assert rows["float32"].baseline and rows["bfloat16"].weight_bytes * 2 == rows["float32"].weight_bytes
    bf16 = rows["bfloat16"]
    # bf16 keeps ~3 significant digits: the tolerance is top-1 agreement >= MIN_TOP1_BF16 over the prompt set's
    # positions and a small KL, not identical tokens
    assert bf16.top1_agreement >= MIN_TOP1_BF16 and 0 <= bf16.kl_nats < 0.05
    assert rows["float16"].top1_agreement >= MIN_TOP1_BF16 and "CPU" in rows["float16"].note
    for name, param in model.named_parameters():
        ptr, dtype, value = before[name]
        assert param.data_ptr() == ptr and param.dtype == dtype and torch.equal(param, value)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks


def test_the_copy_has_no_session_hooks_and_the_same_logits():
    session = _session("phi3")
    twin = hook_free_copy(session.model)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in twin.modules())
    ids = torch.tensor([PROMPT])
    with torch.inference_mode():
        assert torch.equal(twin(input_ids=ids).logits, session.model(input_ids=ids).logits)


def test_copies_and_batches_over_the_budget_are_refused_with_the_numbers():
    session = _session("llama")
    result = run_to_end(speed_lab(session.model, PROMPT, 4, 1, parts=["precision", "batch"], budget_bytes=1))
    refused = [r for r in result.rows if not r.measured]
    assert {r.setting for r in refused} >= {"bfloat16", "float16", "batch 1"}
    assert all("budget" in r.reason and "MiB" in r.reason for r in refused)
    assert "nothing measured" in result.verdicts["batch"]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "phi3"])
def test_each_batched_sequence_gets_the_greedy_tokens_of_its_unbatched_run(arch):
    model = tiny_model(arch)
    prompt = torch.tensor(PROMPT)
    sequences = batch_sequences(prompt, 4)
    assert len({s.numel() for s in sequences}) == 4  # different lengths: the left padding is real
    batched = batch_greedy(model, sequences, 6)  # [batch, new]
    for row, seq in enumerate(sequences):
        assert batched[row].tolist() == batch_greedy(model, [seq], 6)[0].tolist()


def test_batch_rows_grow_until_the_limit_with_the_same_first_sequence():
    session = _session("llama", max_batch=4)
    result = run_to_end(session.speed_lab(PROMPT, ["batch"], 1, 4))
    rows = result.part("batch")
    assert [r.batch for r in rows] == [1, 2, 4] and all(r.same_tokens in (None, True) for r in rows)
    assert all(r.peak_bytes > 0 and not r.peak_measured for r in rows)  # CPU: an estimate, and it says so


def test_compile_can_be_refused_with_a_reason():
    session = _session("llama")
    result = run_to_end(speed_lab(session.model, PROMPT, 4, 1, parts=["compile"], compile_unavailable="not here"))
    (row,) = result.part("compile")
    assert row.reason == "not here" and "nothing measured (compiled: not here)" in result.verdicts["compile"]


@pytest.mark.slow
def test_compiled_generation_gives_the_same_tokens():
    session = _session("llama")
    result = run_to_end(speed_lab(session.model, PROMPT, 3, 1, parts=["compile"]))
    plain, compiled = result.part("compile")
    if compiled.reason and "C++ compiler" in compiled.reason:
        pytest.skip(compiled.reason)
    assert compiled.measured, compiled.reason
    assert compiled.same_tokens is True and compiled.compile_s >= 0 and plain.baseline
    assert session.model.generation_config.cache_implementation is None  # only the copy was set up to compile


@pytest.mark.parametrize("bad", [dict(parts=["warp"]), dict(n_new_tokens=1), dict(n_repeats=0),
                                 dict(n_new_tokens=float("nan"))])
def test_bad_requests_name_the_field(bad):
    args = dict(parts=["attention"], n_repeats=1, n_new_tokens=4) | bad
    with pytest.raises(ValueError, match="parts|new tokens|repeats"):
        speed_lab(tiny_model("llama"), PROMPT, args["n_new_tokens"], args["n_repeats"], parts=args["parts"])
