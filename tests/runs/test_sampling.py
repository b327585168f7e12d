"""The Sampling tab's model runs: next-token distribution, seeded continuations, left-padded batches."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from tests.tiny_models import ARCHITECTURES, tiny_model, tiny_tokenizer
from visualizer.analysis.sampling import SamplingSettings
from visualizer.bundled import BUNDLED_MODEL_DIR
from visualizer.runs.sampling import batch_generate, next_token_distribution, sample_continuations

PROMPTS = ["The capital of France is", "Hi", "Attention lets each token look at the", "one two"]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma2"])
def test_model_distribution_equals_what_generate_samples_from(arch):
    model, tokenizer = tiny_model(arch), tiny_tokenizer()
    settings = SamplingSettings(temperature=0.25, top_k=40, top_p=0.8).validated()
    input_ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                         output_scores=True, return_dict_in_generate=True, pad_token_id=0,
                         **settings.generate_kwargs())
    expected = torch.softmax(out.scores[0][0], dim=-1).numpy()  # the processed scores generate() used
    result = next_token_distribution(model, tokenizer, PROMPTS[0], settings)
    np.testing.assert_allclose(result.processed_probs, expected, atol=1e-6, rtol=0)
    assert result.n_kept == (expected > 0).sum()
    greedy = model.generate(input_ids, max_new_tokens=1, do_sample=False, pad_token_id=0)
    assert result.greedy_token_id == int(greedy[0, -1])



# --- streamed continuations ------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["gpt2", "phi3", "gpt_neox"])
def test_continuations_match_generate_with_the_same_seed(arch):
    model, tokenizer = tiny_model(arch), tiny_tokenizer()
    settings = SamplingSettings(temperature=0.9, top_k=30, top_p=0.9, seed=3).validated()
    steps = list(sample_continuations(model, tokenizer, PROMPTS[0], settings, n_samples=4, max_new_tokens=12))
    input_ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    torch.manual_seed(settings.seed)  # generate() draws from the global RNG; ours from its own generator
    sampled = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=12,
                             num_return_sequences=4, pad_token_id=0, **settings.generate_kwargs())
    greedy = model.generate(input_ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    final = steps[-1]
    assert final.done
    for continuation, row in zip(final.samples, sampled[:, input_ids.shape[1]:].tolist(), strict=True):
        assert list(continuation.token_ids) == row[: len(continuation.token_ids)]
    assert list(final.greedy.token_ids) == greedy[0, input_ids.shape[1]:].tolist()[: len(final.greedy.token_ids)]


def test_rows_that_reach_eos_stop_like_generate():
    model = copy.deepcopy(tiny_model("llama"))  # a private copy: the cached model is shared
    model.generation_config.eos_token_id = list(range(3, 80))  # a quarter of the vocabulary ends a row
    tokenizer = tiny_tokenizer()
    settings = SamplingSettings(temperature=1.0, seed=1).validated()
    final = list(sample_continuations(model, tokenizer, PROMPTS[1], settings, n_samples=6, max_new_tokens=10,
                                      max_continuations=8))[-1]
    input_ids = tokenizer(PROMPTS[1], return_tensors="pt").input_ids
    torch.manual_seed(settings.seed)
    sampled = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=10,
                             num_return_sequences=6, pad_token_id=0, **settings.generate_kwargs())
    assert sum(c.finished for c in final.samples) >= 3
    for continuation, row in zip(final.samples, sampled[:, input_ids.shape[1]:].tolist(), strict=True):
        assert list(continuation.token_ids) == row[: len(continuation.token_ids)]
        if continuation.finished:
            assert 3 <= continuation.token_ids[-1] < 80 and set(row[len(continuation.token_ids):]) <= {0}


def test_continuations_stream_one_token_per_step_and_repeat_per_seed():
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    settings = SamplingSettings(temperature=1.2, seed=9).validated()
    steps = list(sample_continuations(model, tokenizer, "The capital", settings, 3, 8))
    assert [s.step for s in steps] == list(range(1, len(steps) + 1)) and steps[-1].done
    assert not any(s.done for s in steps[:-1])
    for before, after in zip(steps, steps[1:], strict=False):
        for a, b in zip((before.greedy, *before.samples), (after.greedy, *after.samples), strict=True):
            assert b.token_ids[: len(a.token_ids)] == a.token_ids  # each update extends the last
    again = list(sample_continuations(model, tokenizer, "The capital", settings, 3, 8))[-1]
    assert again.samples == steps[-1].samples
    other_seed = SamplingSettings(temperature=1.2, seed=10)
    assert list(sample_continuations(model, tokenizer, "The capital", other_seed, 3, 8))[-1].samples \
        != steps[-1].samples


def test_concurrent_streams_do_not_share_randomness_or_leak_inference_mode():
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    settings = [SamplingSettings(temperature=1.0, seed=seed) for seed in range(4)]
    sequential = [list(sample_continuations(model, tokenizer, "one two", s, 2, 6))[-1] for s in settings]

    def resumed_on_fresh_threads(s: SamplingSettings):
        # gradio may resume a generator on any worker thread: each next() here runs on a new one
        stream, last, modes = sample_continuations(model, tokenizer, "one two", s, 2, 6), None, []
        while True:
            with ThreadPoolExecutor(max_workers=1) as pool:
                step = pool.submit(lambda: (next(stream, None), torch.is_inference_mode_enabled())).result()
            if step[0] is None:
                return last, modes
            last = step[0]
            modes.append(step[1])

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(resumed_on_fresh_threads, settings))
    assert [c[0] for c in concurrent] == sequential
    assert not any(mode for _, modes in concurrent for mode in modes)


def test_greedy_continuations_are_all_the_greedy_one():
    model, tokenizer = tiny_model("qwen2"), tiny_tokenizer()
    final = list(sample_continuations(model, tokenizer, "one two", SamplingSettings(temperature=0), 2, 6))[-1]
    assert all(s.token_ids == final.greedy.token_ids for s in final.samples) and final.notes


def test_continuation_bad_input_raises_before_streaming():
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    with pytest.raises(ValueError, match="empty"):
        sample_continuations(model, tokenizer, "", SamplingSettings())
    with pytest.raises(ValueError, match="new tokens"):
        sample_continuations(model, tokenizer, "Hi", SamplingSettings(), 2, 10_000)
    with pytest.raises(ValueError, match="sampled continuations"):
        sample_continuations(model, tokenizer, "Hi", SamplingSettings(), 100, 5)
    with pytest.raises(ValueError, match="token ids"):
        sample_continuations(model, tokenizer, [5, 999], SamplingSettings())
    with pytest.raises(ValueError, match="context"):  # tiny models have 128 positions
        sample_continuations(model, tokenizer, "x" * 120, SamplingSettings(), 1, 60)


# --- batch generation ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_greedy_equals_unbatched_for_prompts_of_different_lengths(arch):
    model, tokenizer = tiny_model(arch), tiny_tokenizer()
    batch = batch_generate(model, tokenizer, PROMPTS, max_new_tokens=6)
    lengths = [len(tokenizer(p).input_ids) for p in PROMPTS]
    assert len(set(lengths)) > 1
    for prompt, row in zip(PROMPTS, batch.rows, strict=True):
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        alone = model.generate(input_ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert list(row.continuation_ids) == alone[0, input_ids.shape[1]:].tolist()[: len(row.continuation_ids)]


def test_batch_is_left_padded_with_a_mask_and_leaves_the_tokenizer_alone():
    model = tiny_model("llama")
    tokenizer = copy.deepcopy(tiny_tokenizer())
    tokenizer.pad_token = None  # no pad token: EOS pads instead
    side_before = tokenizer.padding_side
    batch = batch_generate(model, tokenizer, PROMPTS, max_new_tokens=4)
    assert batch.pad_token_id == tokenizer.eos_token_id and tokenizer.pad_token is None
    assert tokenizer.padding_side == side_before
    width = max(row.n_prompt_tokens for row in batch.rows)
    for row, ids, mask, positions in zip(batch.rows, batch.padded_token_ids, batch.attention_mask,
                                         batch.position_ids, strict=True):
        assert len(ids) == width and row.n_pad == width - row.n_prompt_tokens
        assert list(mask) == [0] * row.n_pad + [1] * row.n_prompt_tokens  # padding on the left
        assert list(ids[: row.n_pad]) == [batch.pad_token_id] * row.n_pad
        assert list(positions[row.n_pad:]) == list(range(row.n_prompt_tokens))  # as if run alone


def test_batch_bad_input():
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    with pytest.raises(ValueError, match="no prompts"):
        batch_generate(model, tokenizer, [])
    with pytest.raises(ValueError, match="empty"):
        batch_generate(model, tokenizer, ["Hi", "  "])
    with pytest.raises(ValueError, match="number of prompts"):
        batch_generate(model, tokenizer, ["Hi"] * 9, max_batch=8)
    with pytest.raises(ValueError, match="new tokens"):
        batch_generate(model, tokenizer, ["Hi"], max_new_tokens=0)


@pytest.mark.slow
@pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").exists(),
                    reason="bundled model not built yet (python -m visualizer.bundled.train)")
def test_bundled_model_capitals_batch_and_distribution():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from visualizer.bundled.corpus import capital_prompts

    model = AutoModelForCausalLM.from_pretrained(BUNDLED_MODEL_DIR, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL_DIR)
    prompts = [prompt for prompt, _ in capital_prompts()[:3]] + ["Paris is the capital of",
                                                                  "Question: What is the capital of Japan? Answer:"]
    batch = batch_generate(model, tokenizer, prompts, max_new_tokens=4)
    assert len({row.n_prompt_tokens for row in batch.rows}) > 1
    for prompt, row in zip(prompts, batch.rows, strict=True):
        alone = batch_generate(model, tokenizer, [prompt], max_new_tokens=4).rows[0]
        assert row.continuation_ids == alone.continuation_ids
    settings = SamplingSettings(temperature=0.7, top_k=50, top_p=0.9).validated()
    input_ids = tokenizer(prompts[0], return_tensors="pt").input_ids
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                         output_scores=True, return_dict_in_generate=True,
                         pad_token_id=batch.pad_token_id, **settings.generate_kwargs())
    result = next_token_distribution(model, tokenizer, prompts[0], settings)
    np.testing.assert_allclose(result.processed_probs, torch.softmax(out.scores[0][0], -1).numpy(),
                               atol=1e-6, rtol=0)
