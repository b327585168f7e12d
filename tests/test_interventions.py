"""Interventions checked against independent computation: plain torch hooks on a fresh copy of the model."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import make_tiny_session
from visualizer.interventions import (
    AblationSpec,
    ablate,
    each_head_log_probs,
    patch,
    patch_grid,
    run,
    site_names,
)
from visualizer.names import act_name

ARCHS = ["gpt2", "llama", "gemma2", "falcon_7b_layout", "opt", "gpt_neox", "mixtral", "phi"]
PROMPT = "The capital of Paris is"
CORRUPTED = "The capital of Japan is"


@pytest.fixture(params=ARCHS, scope="module")
def session(request):
    return make_tiny_session(request.param)


def plain_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids[None], use_cache=False).logits[0].float()


def test_ablating_nothing_reproduces_the_plain_logits_exactly(session):
    ids = session.encode(PROMPT)
    plain, ablated = ablate(session.model, session.capture, ids, AblationSpec())
    expected = plain_logits(session.model, ids)
    assert torch.equal(plain, expected)
    assert torch.equal(ablated, expected)


def _reference_with_attention_output(model, layer: int, ids: torch.Tensor, session) -> torch.Tensor:
    """A fresh copy whose attention `layer` outputs only its projection's bias (what zeroing every head leaves),
    by a plain forward hook: nothing of the app's capture runs here."""
    reference = copy.deepcopy(model)
    attention = session.parts.attentions[layer]
    path = next(name for name, module in model.named_modules() if module is attention)
    out_proj = session.capture.out_projs[layer]
    bias = getattr(out_proj, "bias", None)

    def zero(module, args, output):
        first = output[0] if isinstance(output, tuple) else output
        value = torch.zeros_like(first) if bias is None else bias.detach().expand_as(first).clone()
        return (value, *output[1:]) if isinstance(output, tuple) else value
    reference.get_submodule(path).register_forward_hook(zero)
    return plain_logits(reference, ids)


def test_zeroing_every_head_of_a_layer_equals_a_plain_hook_on_a_copy(session):
    ids = session.encode(PROMPT)
    layer = session.dims.n_layers - 1
    spec = AblationSpec(heads=tuple((layer, h) for h in range(session.dims.n_heads)))
    _, ablated = ablate(session.model, session.capture, ids, spec)
    expected = _reference_with_attention_output(session.model, layer, ids, session)
    assert float((ablated - expected).abs().max()) <= 1e-5


def test_zeroing_an_attention_block_equals_a_plain_hook_on_a_copy(session):
    ids = session.encode(PROMPT)
    reference = copy.deepcopy(session.model)
    attention = session.parts.attentions[0]
    path = next(name for name, module in session.model.named_modules() if module is attention)

    def zero(module, args, output):
        return (torch.zeros_like(output[0]), *output[1:]) if isinstance(output, tuple) else torch.zeros_like(output)
    reference.get_submodule(path).register_forward_hook(zero)
    _, ablated = ablate(session.model, session.capture, ids, AblationSpec(attention_layers=(0,)))
    assert float((ablated - plain_logits(reference, ids)).abs().max()) <= 1e-5


def test_the_head_grid_equals_one_ablation_per_head(session):
    ids = session.encode(PROMPT)
    n_layers, n_heads = session.dims.n_layers, session.dims.n_heads
    target = int(plain_logits(session.model, ids)[-1].argmax())
    for mode in ("zero", "mean"):
        grid, passes = each_head_log_probs(session.model, session.capture, ids, n_layers, n_heads, mode,
                                           len(ids) - 1, target, rows_per_pass=3)
        assert passes == 1 + n_layers * 2  # 4 heads in chunks of 3: two passes per layer
        for layer, head in [(0, 0), (n_layers - 1, n_heads - 1)]:
            _, one = ablate(session.model, session.capture, ids, AblationSpec(heads=((layer, head),), mode=mode))
            assert abs(float(torch.log_softmax(one[-1], -1)[target]) - float(grid[layer, head])) <= 1e-4


def test_patching_the_last_residual_everywhere_reproduces_the_clean_logits(session):
    clean, corrupted = session.encode(PROMPT), session.encode(CORRUPTED)
    assert len(clean) == len(corrupted)
    last = act_name("resid_post", session.dims.n_layers - 1)
    patched = patch(session.model, session.capture, clean, corrupted, [last], list(range(len(clean))))
    assert float((patched - plain_logits(session.model, clean)).abs().max()) <= 1e-4


def test_patch_grid_rows_equal_single_patches(session):
    clean, corrupted = session.encode(PROMPT), session.encode(CORRUPTED)
    names = site_names("resid", session.dims.n_layers)
    answers = (5, 7)
    grid, _ = patch_grid(session.model, session.capture, clean, corrupted, names, answers, rows_per_pass=4)
    for row, pos in [(0, 0), (len(names) - 1, len(clean) - 1), (1, len(clean) // 2)]:
        one = patch(session.model, session.capture, clean, corrupted, [names[row]], [pos])[-1]
        assert abs(float(one[answers[0]] - one[answers[1]]) - float(grid[row, pos])) <= 1e-4
    # patching the embedding at every position is running the clean prompt
    full = patch(session.model, session.capture, clean, corrupted, [names[0]], list(range(len(clean))))
    assert float((full - plain_logits(session.model, clean)).abs().max()) <= 1e-4


def test_edits_are_only_seen_by_the_calling_thread(session):
    import threading

    ids = session.encode(PROMPT)[None]
    expected = plain_logits(session.model, ids[0])
    seen = {}

    def other():
        seen["logits"] = plain_logits(session.model, ids[0])
    name = act_name("attn_out", 0)

    def edit(x):
        thread = threading.Thread(target=other)  # runs the model while this thread's edit is active
        thread.start()
        thread.join()
        return torch.zeros_like(x)
    edited, _ = run(session.model, session.capture, ids, edits={name: edit})
    assert torch.equal(seen["logits"], expected)
    assert not torch.equal(edited[0], expected)


# ----- the session's experiments (ExperimentsMixin) -------------------------------------------------------------

def experiments_session(arch: str):
    from tests.conftest import make_tiny_session  # ModelSession carries the ExperimentsMixin

    return make_tiny_session(arch)


@pytest.fixture(params=["gpt2", "llama", "gemma2"], scope="module")
def experiments(request):
    return experiments_session(request.param)


def test_session_attribution_sums_and_is_cached(experiments):
    result = experiments.attribution(PROMPT)
    assert result.max_error <= 1e-3 * max(1.0, abs(result.parts_logit))
    assert result.target_id == int(plain_logits(experiments.model, experiments.encode(PROMPT))[-1].argmax())
    assert experiments.attribution(PROMPT) is result
    assert experiments.attribution(PROMPT, target=17, position=2).position == 2


def test_session_ablation_and_head_grid(experiments):
    nothing = experiments.ablation(PROMPT)
    assert nothing.delta_log_prob == 0.0 and nothing.kl == 0.0
    one = experiments.ablation(PROMPT, heads=[[0, 1]], mode="mean")
    grid = experiments.ablate_each_head(PROMPT, mode="mean", target=one.target_id)
    assert grid.deltas.shape == (experiments.dims.n_layers, experiments.dims.n_heads)
    assert abs(grid.deltas[0, 1] - one.delta_log_prob) <= 1e-4
    assert grid.forward_passes == 1 + experiments.dims.n_layers  # all heads of a layer in one batched pass
    assert one.kl > 0


def test_session_patching(experiments):
    result = experiments.patching(PROMPT, CORRUPTED, clean_answer=11, corrupted_answer=" is")
    assert result.scores.shape == (experiments.dims.n_layers + 1, len(experiments.encode(PROMPT)))
    # patching the last block's output at the last position restores all of the difference
    assert result.scores[-1, -1] == pytest.approx(1.0, abs=1e-4)
    attn = experiments.patching(PROMPT, CORRUPTED, site="attn_out", clean_answer=5, corrupted_answer=7)
    assert attn.scores.shape == (experiments.dims.n_layers, len(experiments.encode(PROMPT)))


def test_session_minimal_pair(experiments):
    same = experiments.minimal_pair(PROMPT, CORRUPTED, layer=1, head=2)
    assert same.attention_diff is not None and same.kl_ab > 0 and 0 < same.js <= 0.6932
    other = experiments.minimal_pair(PROMPT, "The capital of France is")
    assert other.attention_diff is None and "B has 8" in other.attention_note


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.patching(PROMPT, "The capital of France is"), "7 tokens and the corrupted prompt 8"),
    (lambda s: s.ablation(PROMPT, heads=[[0, 9]]), "head"),
    (lambda s: s.ablation(PROMPT, mode="half"), "mode"),
    (lambda s: s.attribution(PROMPT, target="Paris is"), "tokens"),
    (lambda s: s.patching(PROMPT, PROMPT), "answers"),
])
def test_session_refuses_bad_input_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call(experiments_session("llama"))
