"""The capture's named activations equal the model's own, and a recorder without edits changes nothing."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_tiny_session
from visualizer.capture import find_mlp, find_out_proj
from visualizer.names import act_name


@pytest.mark.parametrize("arch", ["gpt2", "llama", "opt", "falcon_40b_layout", "gpt_neo"])
def test_named_activations_match_the_modules(arch):
    session = make_tiny_session(arch)
    capture = session.capture
    ids = session.encode("one two three")[None]
    n_layers = session.dims.n_layers
    keep = {act_name(kind, layer) for layer in range(n_layers) for kind in ("attn_out", "mlp_out", "z")}
    keep |= {act_name("resid_pre", 0), act_name("resid_post", n_layers - 1)}
    with torch.inference_mode():
        out = session.model(input_ids=ids, use_cache=False, output_hidden_states=True)
        with capture.record(want_resid=True, capture=keep) as recorder:
            again = session.model(input_ids=ids, use_cache=False)
    assert torch.equal(out.logits, again.logits)
    acts = recorder.acts
    assert torch.equal(acts[act_name("resid_pre", 0)], out.hidden_states[0])
    assert torch.equal(acts[act_name("resid_post", n_layers - 1)], recorder.resid[-1])
    for layer in range(n_layers):
        z = acts[act_name("z", layer)]
        assert z.shape == (1, ids.shape[1], session.dims.n_heads, session.dims.d_head)
        with torch.inference_mode():
            projected = capture.out_projs[layer](z.flatten(-2))
        assert torch.allclose(projected, acts[act_name("attn_out", layer)], atol=1e-6)
        assert acts[act_name("mlp_out", layer)].shape == (1, ids.shape[1], session.dims.d_model)
    assert capture.available("mlp_out") is None and capture.available("z") is None


def test_modules_are_found_by_name():
    session = make_tiny_session("opt")
    assert find_mlp(session.parts.layers[0]) is session.parts.layers[0].fc2  # OPT has no MLP module
    assert find_out_proj(session.parts.attentions[0]) is session.parts.attentions[0].out_proj


def test_a_wrongly_shaped_edit_is_refused():
    session = make_tiny_session("llama")
    ids = session.encode("one two")[None]
    with pytest.raises(RuntimeError, match="shape"), torch.inference_mode():
        with session.capture.record(edits={act_name("mlp_out", 0): lambda x: x[:, :1]}):
            session.model(input_ids=ids, use_cache=False)
