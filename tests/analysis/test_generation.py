import pytest
import torch

from visualizer.analysis.generation import greedy_steps


def test_step_through_with_cache_equals_generate(tiny_session):
    model, tokenizer = tiny_session.model, tiny_session.tokenizer
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids[0]
    steps = list(tiny_session.generate_steps("The capital of France is", 12))
    with torch.inference_mode():
        expected = model.generate(ids[None], max_new_tokens=12, min_new_tokens=12, do_sample=False,
                                  pad_token_id=tokenizer.pad_token_id)[0, len(ids):]
    assert [s.token_id for s in steps] == expected.tolist()
    assert all(0 < s.prob <= 1 and s.entropy >= 0 for s in steps)
    assert all(s.candidates[0].prob >= s.candidates[-1].prob for s in steps)


def test_each_step_after_prefill_feeds_one_token(tiny_session):
    model = tiny_session.model
    seen = []
    embed = model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[-1]))
    try:
        ids = tiny_session.tokenizer("one two three four", return_tensors="pt").input_ids[0]
        list(greedy_steps(model, tiny_session.tokenizer, ids, 6))
    finally:
        handle.remove()
    assert seen == [len(ids)] + [1] * 5


def test_branching_forces_the_first_token(tiny_session):
    steps = list(tiny_session.generate_steps("The capital of", 3, first_token=7))
    assert steps[0].token_id == 7 and steps[0].forced and not steps[1].forced


@pytest.mark.parametrize("n", [0, -1, 10_000, 2.5, float("nan"), "3"])
def test_bad_step_counts_are_refused(tiny_session, n):
    with pytest.raises(ValueError):
        list(tiny_session.generate_steps("The capital of", n))
