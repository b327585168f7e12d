"""Sampling handlers called directly with a real tiny session."""

import numpy as np
import pytest

from tests.conftest import make_tiny_session
from visualizer.analysis.sampling import process_logits
from visualizer.ui.tabs import sampling as tab

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def test_distribution_and_readouts(session):
    out = tab.distribution(session, PROMPT, None, 0.7, 10, 0.9, 0, 500)
    assert isinstance(out, tab.SamplingOutputs)
    assert out.plot is not None and isinstance(out.readouts, str) and out.samples == tab.SamplingOutputs().samples


def test_data_endpoint_is_the_processed_distribution(session):
    data = tab.sampling_data(session, PROMPT, 0.7, 5, 1.0, 10)
    expected = process_logits(session.trace(PROMPT).last_logits, tab.settings_of(0.7, 5, 1.0, 0))
    assert data["n_kept"] == expected.n_kept == 5
    assert data["processed_probabilities"] == pytest.approx(
        [float(expected.processed_probs[i]) for i in data["token_ids"]])
    assert np.isclose(sum(data["processed_probabilities"]), 1, atol=1e-5)


def test_continuations_stream_and_batch(session):
    outs = list(tab.continuations(session, PROMPT, None, 0.8, 0, 1.0, 1, 2, 3))
    assert outs and "greedy" in outs[-1].samples
    assert "left" in tab.batch(session, "The capital\nParis is the").batch
    with pytest.raises(ValueError, match="one per line"):
        tab.batch(session, "  \n ")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_settings_are_refused(session, bad):
    with pytest.raises(ValueError):
        tab.distribution(session, PROMPT, None, 1.0, 0, 1.0, bad, 500)


def test_suggested_prompt_is_the_measured_choice(session):
    from visualizer.analysis.examples import examples_for

    chosen = examples_for(session, "sampling")
    text = tab.suggestion_text(session)
    assert chosen.prompt in text and f"entropy {chosen.entropy:.2f} nats on this model" in text
    out = tab.use_suggestion(session, 1.0, 0, 1.0, 0, 200)
    assert out.prompt == chosen.prompt and out.plot is not None and out.suggestion == text
    assert out.marker == tab.made_from(chosen.prompt, None)


def test_the_suggestion_is_measured_only_when_the_tab_is_open(session):
    assert tab.suggest(session, "attention") == tab.SamplingOutputs()
    assert tab.suggest(session, tab.TAB_ID).suggestion == tab.suggestion_text(session)
    opened = tab.refresh(session, tab.TAB_ID, "", PROMPT, None, 1.0, 0, 1.0, 0, 200)
    assert opened.plot is not None
    assert tab.refresh(session, tab.TAB_ID, opened.marker, PROMPT, None, 1.0, 0, 1.0, 0, 200) == tab.SamplingOutputs()


def test_batch_default_lines_and_their_lengths(session):
    lines, note = tab.batch_default(session)
    lengths = [len(session.tokenizer(line)["input_ids"]) for line in lines.splitlines()]
    assert len(lengths) >= 2 and lengths == sorted(set(lengths))
    assert all(f"{n} token" in note for n in lengths)
    assert "left" in tab.batch(session, lines).batch
