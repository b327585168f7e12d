"""Examples chosen by measuring the loaded model: the choices are the argmax of numbers computed here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_session
from visualizer.analysis import examples as ex
from visualizer.tokens import token_label


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def _entropy(logits: torch.Tensor) -> float:
    probs = np.exp(logits.double().numpy() - logits.double().numpy().max())
    probs /= probs.sum()
    return float(-(probs * np.log(probs)).sum())


def test_measured_entropy_and_top_token(session):
    prompt = ex.SAMPLING_CANDIDATES[0]
    trace = session.trace(prompt)
    measured = ex.measure_sampling_candidate(trace, session.tokenizer, prompt)
    assert measured.entropy == pytest.approx(_entropy(trace.last_logits), rel=1e-5)
    top = int(trace.last_logits.argmax())
    assert measured.top_prob == pytest.approx(float(torch.softmax(trace.last_logits, -1)[top]), rel=1e-5)
    assert measured.top_label == token_label(session.tokenizer, top)


def test_sampling_choice_is_the_flattest_word_topped_candidate(session):
    chosen = ex.sampling_example(session.trace, session.tokenizer)
    measured = [ex.measure_sampling_candidate(session.trace(p), session.tokenizer, p) for p in ex.SAMPLING_CANDIDATES]
    words = [m for m in measured if m.top_is_word] or measured
    assert chosen.prompt == words[int(np.argmax([m.entropy for m in words]))].prompt


def test_a_flat_distribution_topped_by_punctuation_loses_to_a_word():
    flat_comma = ex.SamplingCandidate("a", 6.0, ",", 0.01, False)
    word = ex.SamplingCandidate("b", 4.0, "␣flour", 0.2, True)
    sharper_word = ex.SamplingCandidate("c", 1.0, "␣Paris", 0.9, True)
    assert ex.choose_sampling_prompt([flat_comma, sharper_word, word]) is word
    assert ex.choose_sampling_prompt([flat_comma]) is flat_comma  # nothing better: still an answer
    with pytest.raises(ValueError, match="at least one"):
        ex.choose_sampling_prompt([])


def test_batch_lines_have_distinct_lengths_from_shortest_to_longest(session):
    tokenizer = session.tokenizer
    lines = ex.choose_batch_prompts(tokenizer)
    lengths = {p: len(tokenizer(p)["input_ids"]) for p in ex.BATCH_CANDIDATES}
    assert [line.n_tokens for line in lines] == [lengths[line.prompt] for line in lines]
    assert [line.n_tokens for line in lines] == sorted({line.n_tokens for line in lines})  # distinct, increasing
    assert len(lines) == min(ex.N_BATCH_LINES, len(set(lengths.values())))
    assert lines[0].n_tokens == min(lengths.values()) and lines[-1].n_tokens == max(lengths.values())


def test_repeated_prompt_encodes_as_two_copies_even_with_a_tiny_vocabulary(session):
    tokenizer = session.tokenizer
    prompt = ex.repeated_words_prompt(tokenizer, 20, seed=0)
    ids = tokenizer(prompt.text)["input_ids"]
    block = ids[prompt.offset:prompt.offset + prompt.period]
    assert 2 <= prompt.period <= 20 and ids[prompt.offset:] == block + block and len(set(block)) == prompt.period
    assert ex.repeated_words_prompt(tokenizer, 20, seed=0) == prompt  # seeded
    with pytest.raises(ValueError, match="period"):
        ex.repeated_words_prompt(tokenizer, 1)


def test_induction_heads_are_the_argmax_of_the_measured_grids(session):
    example = ex.induction_example(session.trace, session.tokenizer)
    trace = session.trace(example.prompt.text)
    patterns = trace.attention_patterns.float()  # [layer, head, query_pos, key_pos]
    period, offset = example.prompt.period, example.prompt.offset
    queries = range(offset + period, trace.n_pos)
    induction = torch.stack([patterns[:, :, q, q - period + 1] for q in queries]).mean(0).numpy()  # [layer, head]
    previous = trace.attention_metrics["previous_token"]
    assert example.induction[:2] == np.unravel_index(np.argmax(induction), induction.shape)
    assert example.induction[2] == pytest.approx(induction.max(), rel=1e-5)
    assert example.previous_token[:2] == np.unravel_index(np.argmax(previous), previous.shape)
    il, ih, score = example.induction
    if score < ex.INDUCTION_FOUND:
        assert f"no induction head found on this model (best L{il} H{ih} {score:.2f})" in example.summary()
    else:
        assert f"induction head L{il} H{ih} ({score:.2f})" in example.summary()


def test_summary_names_a_found_head():
    prompt = ex.RepeatedPrompt("x", 20, 0)
    found = ex.InductionExample(prompt, (11, 1, 0.9), (18, 6, 0.85))
    assert found.found and found.summary() == ("on this model: previous-token head L11 H1 (0.90); "
                                               "induction head L18 H6 (0.85)")
    assert "no induction head" in ex.InductionExample(prompt, (2, 3, 0.41), (1, 0, 0.05)).summary()


def test_examples_are_measured_once_per_session():
    session = make_tiny_session("gpt2")
    first = ex.examples_for(session, "sampling")
    passes = session.forward_passes
    assert passes == len(set(ex.SAMPLING_CANDIDATES))  # one forward pass per candidate
    assert ex.examples_for(session, "sampling") is first and session.forward_passes == passes
    assert ex.examples_for(make_tiny_session("gpt2"), "sampling") is not first  # another session measures anew
    with pytest.raises(ValueError, match="kind"):
        ex.examples_for(session, "colour")


# --- on the real model ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def smollm2(smollm2_session):
    return smollm2_session


@pytest.mark.slow
def test_smollm2_examples_teach(smollm2):
    chosen = ex.examples_for(smollm2, "sampling")
    assert chosen.entropy >= 2 and chosen.top_is_word  # flat enough that temperature and top-p move the bars
    induction = ex.examples_for(smollm2, "induction")
    assert induction.found and induction.induction[2] >= 0.5
    assert induction.previous_token[2] >= 0.5
    assert len({line.n_tokens for line in ex.examples_for(smollm2, "batch")}) == ex.N_BATCH_LINES
