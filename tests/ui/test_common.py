"""Outputs by name and the step-through sequence that belongs to its prompt."""

from dataclasses import dataclass

import gradio as gr
import pytest

from visualizer.ui.common import (
    components_for,
    handler,
    names_of,
    prompt_or_sequence,
    stepped,
    steps_so_far,
    unchanged,
    values_for,
)


@dataclass(frozen=True)
class Outputs:
    a: object = unchanged()
    b: object = unchanged()


def test_outputs_map_to_components_by_name_in_one_order():
    assert names_of(Outputs) == ["a", "b"]
    assert components_for({"b": "B", "a": "A"}, ["b", "a"]) == ["B", "A"]
    assert values_for(Outputs(a=1, b=2), ["b", "a"]) == (2, 1)
    assert values_for(Outputs(a=1, b=2), ["b"]) == 2  # one output: the bare value, as Gradio expects
    with pytest.raises(KeyError, match="c"):
        components_for({"a": "A"}, ["a", "c"])


def test_a_field_left_alone_is_a_skip():
    assert Outputs(a=1).b == gr.skip()


def test_handler_binds_the_session_and_hides_it_from_the_api():
    import inspect

    def view(session, prompt: str, k: int = 3) -> Outputs:
        return Outputs(a=(session, prompt, k))

    call = handler(view, "S", ["a"])
    assert call("p") == ("S", "p", 3)
    assert list(inspect.signature(call).parameters) == ["prompt", "k"]
    assert call.__name__ == "view"


def test_handler_turns_value_errors_into_messages():
    def bad(session, prompt: str) -> Outputs:
        raise ValueError("prompt is empty: type something")

    with pytest.raises(gr.Error, match="prompt is empty"):
        handler(bad, "S", ["a"])("")


def test_the_sequence_is_used_only_for_the_prompt_it_grew_from():
    state = stepped("The capital", [1, 2, 3], [[1, "x"]])
    assert prompt_or_sequence("The capital", state) == [1, 2, 3]
    assert steps_so_far("The capital", state) == [[1, "x"]]
    for other in ("The capital ", "Paris is", ""):  # any other prompt, by any route, discards it
        assert prompt_or_sequence(other, state) == other
        assert steps_so_far(other, state) == []
    assert prompt_or_sequence("The capital", None) == "The capital"
    assert prompt_or_sequence("x", {"ids": [1]}) == "x"  # malformed state from a client is ignored
