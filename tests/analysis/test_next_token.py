import pytest

from tests.conftest import make_tiny_session
from visualizer.analysis.logit_lens import lens_grid, target_id_of, target_trajectory
from visualizer.analysis.next_token import tokenization, top_k


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("phi3")


def test_tokenization_chips_and_shapes(session):
    trace = session.trace("Hello world\n  twice")
    tok = tokenization(trace)
    assert tok.count == trace.n_pos == len(tok.chips)
    assert tok.ids_printed.startswith("tensor([[") and str(int(trace.token_ids[0])) in tok.ids_printed
    assert tok.hidden_shape == (1, trace.n_pos, session.dims.d_model)
    assert tok.logits_shape == (1, trace.n_pos, session.dims.d_vocab)
    joined = "".join(c.text for c in tok.chips)
    assert "↵" in joined and "␣" in joined and " " not in joined
    assert tok.chips[0].next_prob is None and all(0 < c.next_prob <= 1 for c in tok.chips[1:])


def test_special_tokens_are_marked(session):
    trace = session.trace([1, 50, 60])  # BOS id 1 in the tiny tokenizer
    assert tokenization(trace).chips[0].special and not tokenization(trace).chips[1].special


def test_top_k_at_every_position(session):
    trace = session.trace("The capital of France is")
    for pos in range(trace.n_pos):
        result = top_k(trace, session.tokenizer, pos, 7)
        assert len(result.token_ids) == 7 and list(result.probs) == sorted(result.probs, reverse=True)
    assert top_k(trace, session.tokenizer, -1, 3).pos == trace.n_pos - 1


@pytest.mark.parametrize("pos", [-2, 10_000, 1.5, "a", None, float("inf")])
def test_bad_positions(session, pos):
    trace = session.trace("The capital of France is")
    with pytest.raises(ValueError, match="position"):
        top_k(trace, session.tokenizer, pos, 3)


@pytest.mark.parametrize("k", [0, 51, -3, 2.5])
def test_bad_k(session, k):
    with pytest.raises(ValueError, match="k must"):
        top_k(session.trace("The capital"), session.tokenizer, -1, k)


def test_lens_grid_and_target(session):
    trace = session.trace("The capital of France is")
    grid = lens_grid(trace, session.tokenizer, session.lens_top(trace))
    assert grid.top_probs.shape == (trace.n_layers + 1, trace.n_pos) and grid.row_labels[0] == "embed"
    pos = trace.n_pos - 1
    lens = session.lens_log_probs(trace, pos)
    default = target_trajectory(trace, session.tokenizer, lens, pos)
    assert default.target_id == int(trace.topk_ids[pos, 0]) and default.ranks[-1] == 0
    chosen = target_id_of(session.tokenizer, " Paris")
    trajectory = target_trajectory(trace, session.tokenizer, lens, pos, chosen)
    assert trajectory.probs.shape == (trace.n_layers + 1,) and (trajectory.ranks >= 0).all()
    with pytest.raises(ValueError):
        target_id_of(session.tokenizer, "")


def test_top_next_summaries_are_each_positions_top_k(session):
    from visualizer.analysis.next_token import top_next_summaries

    trace = session.trace("The capital of France is")
    lines = top_next_summaries(trace, session.tokenizer, 3)
    assert len(lines) == trace.n_pos
    for pos in (0, trace.n_pos - 1):
        result = top_k(trace, session.tokenizer, pos, 3)
        pairs = zip(result.token_labels, result.probs, strict=True)
        assert lines[pos] == ", ".join(f"{label} {p:.2f}" for label, p in pairs)
