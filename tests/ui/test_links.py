"""Deep links and lesson files: parsed with the inputs' own checks; the page built with them wired."""

import json

import pytest

from tests.conftest import make_tiny_session
from visualizer.ui.links import LESSON_KIND, View, lesson_json, load_lesson, parse_view


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def test_a_good_link_gives_its_view(session):
    parsed = parse_view(session, {"tab": "attention", "prompt": "Paris is the capital of", "layer": "1",
                                  "head": "2", "metric": "entropy", "temperature": "0.7", "top_k": "5",
                                  "top_p": "0.9", "seed": "3", "n": "500", "position": "2", "other": "x"})
    assert parsed.problems == []
    assert parsed.view == View(tab="attention", prompt="Paris is the capital of", position=2, layer=1, head=2,
                               metric="entropy", temperature=0.7, top_k=5, top_p=0.9, seed=3, n=500)


def test_bad_values_are_reported_with_the_inputs_messages_and_left_out(session):
    parsed = parse_view(session, {"tab": "nope", "layer": "99", "head": "x", "metric": "bad", "temperature": "5",
                                  "top_p": "0", "prompt": "ok"})
    assert parsed.view == View(prompt="ok")
    text = " ".join(parsed.problems)
    assert len(parsed.problems) == 6
    for expected in ("tab must be one of", "layer must be from 0", "head must be a whole number", "metric must be",
                     "temperature (0 = greedy)", "top-p must be greater than 0"):
        assert expected in text, (expected, text)


def test_a_lesson_round_trips(session):
    view = View(tab="sampling", prompt="Hello", temperature=0.5, seed=7)
    text = lesson_json(view)
    assert json.loads(text)["kind"] == LESSON_KIND
    assert load_lesson(session, text).view == view
    with pytest.raises(ValueError, match="lesson file"):
        load_lesson(session, "{not json")
    with pytest.raises(ValueError, match="lesson file"):
        load_lesson(session, json.dumps({"prompt": "x"}))


def test_the_page_builds_with_links_and_downloads(session):
    from visualizer.ui import build_demo

    demo = build_demo(session)
    config = demo.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    for elem_id in ("itl-copy-link", "itl-lesson-save", "itl-attn-export", "itl-bertviz-export", "itl-made-attention",
                    "itl-made-kv_cache", "itl-position-click", "itl-head-click", "itl-open-tab"):
        assert elem_id in ids, elem_id
