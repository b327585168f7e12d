"""Direct logit attribution sums to the model's logit on every zoo architecture; metrics equal their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_session
from tests.tiny_models import ZOO
from visualizer.analysis.experiments import (
    attribute,
    js_divergence,
    kl_divergence,
    normalised_restoration,
    token_changes,
)
from visualizer.interventions import attribution_activations
from visualizer.names import act_name

PROMPT = "The capital of France is Paris. The capital of Japan is"
SPLIT_FAILS = {"gemma2", "olmo2", "bloom", "mpt"}  # post-norms, or modules that add the residual themselves


def _attribution(session, position: int, target: int | None = None):
    ids = session.encode(PROMPT)
    n_layers = session.dims.n_layers
    logits, resid, acts = attribution_activations(session.model, session.capture, ids, n_layers)
    target = int(logits[position].argmax()) if target is None else target

    def stack(kind):
        return torch.stack([acts[act_name(kind, layer)][position] for layer in range(n_layers)])
    with torch.inference_mode():  # the logit before soft-capping, from the model's own modules
        h = resid[-1, position][None]
        for module in session.parts.readout:
            h = module(h)
        uncapped = float(session.parts.lm_head(h)[0, target]) * session.dims.logit_scale
    result = attribute(session.parts, session.capture.out_projs, resid[:, position], stack("attn_out"),
                       stack("mlp_out"), stack("z"), target, position, float(logits[position, target]), uncapped)
    return result, logits


@pytest.mark.parametrize("arch", ZOO)
def test_parts_sum_to_the_logit(arch):
    session = make_tiny_session(arch)
    for position, target in [(-1, None), (3, 17)]:
        result, logits = _attribution(session, position, target)
        scale = max(1.0, abs(result.parts_logit))
        assert result.max_error <= 1e-3 * scale
        assert abs(result.block.sum() + result.embed + result.norm_bias + result.head_bias_term
                   - result.parts_logit) <= 1e-3 * scale
        if not session.dims.final_logit_softcap:
            assert abs(result.parts_logit - float(logits[position, result.target_id])) <= 1e-4 * scale
        if arch in SPLIT_FAILS:
            assert result.split_unavailable and result.attention is None and result.heads is None
        else:
            assert result.split_unavailable is None, result.split_unavailable
            np.testing.assert_allclose(result.attention + result.mlp, result.block, atol=1e-4 * scale)
            np.testing.assert_allclose(result.heads.sum(1) + result.head_bias, result.attention, atol=1e-4 * scale)


def test_divergences_equal_their_formulas():
    p = torch.log_softmax(torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64), -1)
    q = torch.log_softmax(torch.tensor([0.0, 2.5, 0.5, 1.0], dtype=torch.float64), -1)
    pp, qq = p.exp().double().numpy(), q.exp().double().numpy()
    assert kl_divergence(p, q) == pytest.approx(float((pp * np.log(pp / qq)).sum()), abs=1e-9)
    m = (pp + qq) / 2
    js = 0.5 * (pp * np.log(pp / m)).sum() + 0.5 * (qq * np.log(qq / m)).sum()
    assert js_divergence(p, q) == pytest.approx(float(js), abs=1e-9)
    assert kl_divergence(p, p) == 0.0 and 0 < js_divergence(p, q) <= np.log(2)


def test_normalised_restoration():
    np.testing.assert_allclose(normalised_restoration(np.array([-1.0, 3.0, 1.0]), 3.0, -1.0), [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="same logit difference"):
        normalised_restoration(np.array([1.0]), 2.0, 2.0)


def test_token_changes_ranks_and_union():
    a = torch.log_softmax(torch.tensor([3.0, 2.0, 1.0, 0.0]), -1)
    b = torch.log_softmax(torch.tensor([0.0, 2.0, 1.0, 3.0]), -1)
    rows = token_changes(a, b, 1, str)
    assert {r.token_id for r in rows} == {0, 3}
    by_id = {r.token_id: r for r in rows}
    assert (by_id[0].rank_a, by_id[0].rank_b, by_id[3].rank_a, by_id[3].rank_b) == (0, 3, 3, 0)
    assert by_id[3].delta == pytest.approx(float(b[3].exp() - a[3].exp()))
