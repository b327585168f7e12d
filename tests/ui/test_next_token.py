"""Next-token handlers called directly with a real tiny session."""

import pytest

from tests.conftest import make_tiny_session
from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.analysis.next_token import top_k
from visualizer.ui.tabs import next_token as tab

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def _plot_json(figure) -> str:
    return figure.to_json() if hasattr(figure, "to_json") else str(figure)


def test_run_fills_every_view_from_the_trace(session):
    out = tab.run_next_token(session, PROMPT, 5, "")
    trace = session.trace(PROMPT)
    assert isinstance(out, tab.NextTokenOutputs)
    assert out.chips.count("itl-chip") >= trace.n_pos and isinstance(out.shapes, str)
    expected = top_k(trace, session.tokenizer, -1, 5)
    assert all(label in _plot_json(out.topk) for label in expected.token_labels if label.isalnum())
    assert out.lens is not None and out.target is not None and out.lens_note == ""
    assert out.position == trace.n_pos - 1 and out.text == trace.text
    assert out.table == [] and out.sequence is None


def test_position_is_checked_against_the_trace_not_the_slider(session):
    out = tab.at_position(session, PROMPT, None, 5, 3, "")  # no earlier run in this "session"
    assert out.topk is not None and out.chips == tab.NextTokenOutputs().chips  # only its fields are set
    with pytest.raises(ValueError, match="position"):
        tab.at_position(session, PROMPT, None, 5, 99, "")


def test_steps_belong_to_their_prompt(session):
    first = tab.step(session, PROMPT, None, 5, None, "")
    assert first.sequence["prompt"] == PROMPT and len(first.table) == 1
    assert "rank 1" in first.table[0][-1]
    second = tab.step(session, PROMPT, first.sequence, 5, None, "")
    assert len(second.sequence["ids"]) == len(first.sequence["ids"]) + 1 and len(second.table) == 2
    other = tab.step(session, "Paris is", second.sequence, 5, None, "")  # a new prompt starts afresh
    assert len(other.table) == 1 and other.sequence["prompt"] == "Paris is"
    assert other.sequence["ids"][:-1] == [int(i) for i in session.trace("Paris is").token_ids]


def test_a_picked_candidate_must_be_listed(session):
    trace = session.trace(PROMPT)
    second = top_k(trace, session.tokenizer, -1, 2).token_ids[1]
    out = tab.step(session, PROMPT, None, 5, second, "")
    assert out.sequence["ids"][-1] == second and "(picked)" in out.table[0][1]
    with pytest.raises(ValueError, match="candidates"):
        tab.step(session, PROMPT, None, 5, -7, "")


def test_generate_streams_rows_then_the_whole_view(session):
    outs = list(tab.generate(session, PROMPT, None, 3, 5, ""))
    assert [len(o.table) for o in outs[:-1]] == [1, 2, 3]
    final = outs[-1]
    assert len(final.sequence["ids"]) == session.trace(PROMPT).n_pos + 3 and final.sequence["prompt"] == PROMPT
    with pytest.raises(ValueError, match="N new tokens"):
        list(tab.generate(session, PROMPT, None, float("nan"), 5, ""))


def test_page_hints_and_data_endpoint(session):
    hints = tab.page_hints(session, PROMPT, None, 5)
    assert len(hints.candidates["choices"]) == 5 and hints.chosen is None
    data = tab.next_token_data(session, PROMPT, 4)
    expected = top_k(session.trace(PROMPT), session.tokenizer, -1, 4)
    assert data["token_ids"] == expected.token_ids and data["tokens"] == expected.token_labels
    assert data["probabilities"] == pytest.approx([float(p) for p in expected.probs])


def test_an_unavailable_lens_leaves_the_rest_of_the_tab():
    model = tiny_model("llama")
    handle = model.register_forward_hook(lambda module, args, out: out.__setitem__("logits", out.logits * 3 + 1))
    try:
        from visualizer.session import ModelSession

        session = ModelSession(model, tiny_tokenizer(), source="tiny-llama-rescaled")
        out = tab.run_next_token(session, PROMPT, 5, "")
        moved = tab.at_position(session, PROMPT, None, 5, 2, "")
    finally:
        handle.remove()
    assert "itl-chip" in out.chips and out.topk is not None
    assert out.lens is None and out.target is None and "logit lens is unavailable" in out.lens_note
    assert moved.topk is not None and "unavailable" in moved.lens_note


def test_warm_up_leaves_the_first_click_on_the_default_prompt_nothing_to_compute():
    from visualizer.config import DEFAULT_PROMPT
    from visualizer.ui import EXAMPLES

    assert EXAMPLES[0] == DEFAULT_PROMPT  # what the page opens with
    session = make_tiny_session("llama")
    lens_grids = []
    compute_lens = session._compute_lens_top
    session._compute_lens_top = lambda *args: lens_grids.append(1) or compute_lens(*args)
    session.warm_up(DEFAULT_PROMPT)
    passes = session.forward_passes
    assert passes == 1 and lens_grids == [1]
    tab.run_next_token(session, EXAMPLES[0], 5, "")  # what the page's Next-token tab asks on its first open
    assert session.forward_passes == passes and lens_grids == [1]
