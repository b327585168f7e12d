"""Presenter mode: the teacher's handlers, the follower's handler, the read-only routes, and the page wiring."""

from __future__ import annotations

import gradio as gr
import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from visualizer.rooms import RoomRegistry
from visualizer.ui.presenter import (
    close_room,
    detach,
    discover_controls,
    follow,
    open_room,
    presenter_routes,
    publish,
    render_presenter,
)

KEYS = ["itl-attn-head", "itl-attn-layer"]
TABS = ["next_token", "attention"]


def _update(value) -> dict:
    return value if isinstance(value, dict) else value.__dict__


def test_teacher_opens_publishes_and_closes():
    rooms = RoomRegistry()
    room, note, timer = open_room(rooms, KEYS, "attention", "Paris is", 2, 1)
    assert room["code"] in note and room["token"] not in note  # the note shows the code, never the token
    assert rooms.snapshot(room["code"]) == (1, {"tab": "attention", "prompt": "Paris is",
                                                "controls": {"itl-attn-head": 2, "itl-attn-layer": 1}})
    publish(rooms, KEYS, room, "attention", "Paris is", 2, 1)
    assert rooms.version(room["code"]) == 1  # the timer tick with nothing new wakes nobody
    publish(rooms, KEYS, room, "attention", "Paris is the capital of", 3, 1)
    assert rooms.snapshot(room["code"])[0] == 2
    gone, note, _ = close_room(rooms, room)
    assert gone is None and rooms.version(room["code"]) is None


def test_publish_without_a_room_or_after_expiry_stops_the_timer():
    rooms = RoomRegistry()
    assert publish(rooms, KEYS, None, "attention", "x", 0, 0)[2].active is False
    room, _, _ = open_room(rooms, KEYS, "attention", "x", 0, 0)
    close_room(rooms, room)
    cleared, note, timer = publish(rooms, KEYS, room, "attention", "y", 0, 0)
    assert cleared is None and "expired" in note and timer.active is False


def test_follower_gets_the_rooms_view_read_only():
    rooms = RoomRegistry()
    room, _, _ = open_room(rooms, KEYS, "attention", "Paris is the capital of", 2, 1)
    tabs, prompt, head, layer, bar, note = follow(rooms, KEYS, TABS, f"{room['code'].lower()}:1")
    assert _update(tabs)["selected"] == "attention"
    assert _update(prompt) == {"__type__": "update", "value": "Paris is the capital of", "interactive": False}
    assert _update(head)["value"] == 2 and _update(layer)["value"] == 1 and _update(layer)["interactive"] is False
    assert _update(bar)["visible"] is True and room["code"][:4] in note
    assert rooms.snapshot(room["code"])[0] == 1  # following wrote nothing


def test_follower_of_a_missing_room_or_a_bad_code_is_told_so():
    rooms = RoomRegistry()
    *_, note = follow(rooms, KEYS, TABS, "ABCDEFGH:3")
    assert "closed or has expired" in note
    *_, note = follow(rooms, KEYS, TABS, "<b>no</b>:1")
    assert "not a room code" in note and "<b>" not in note


def test_an_unknown_tab_in_the_state_is_left_alone():
    rooms = RoomRegistry()
    code, token = rooms.open({"tab": "nope", "prompt": 5, "controls": {}})
    tabs, prompt, *_ = follow(rooms, KEYS, TABS, code)
    assert tabs.__class__.__name__ != "Tabs" and "value" not in _update(prompt)


def test_detach_gives_the_inputs_back():
    _, prompt, head, layer, bar, note = detach(KEYS)
    assert _update(prompt)["interactive"] and _update(head)["interactive"] and _update(bar)["visible"] is False


def test_routes_are_read_only_and_answer_version_and_state():
    rooms = RoomRegistry()
    code, token = rooms.open({"prompt": "é <script>"})
    client = TestClient(Starlette(routes=presenter_routes(rooms)))
    answer = client.get(f"/itl/rooms/{code}/version")
    assert answer.json() == {"version": 1} and answer.headers["cache-control"] == "no-store"
    assert client.get(f"/itl/rooms/{code}/state").json() == {"version": 1, "state": {"prompt": "é <script>"}}
    assert client.get("/itl/rooms/ABCDEFGH/version").status_code == 404
    assert client.get("/itl/rooms/bad/state").status_code == 404
    assert client.post(f"/itl/rooms/{code}/version", json={"version": 9}).status_code == 405
    assert client.put(f"/itl/rooms/{code}/state", json={"state": {}}).status_code == 405
    assert rooms.snapshot(code) == (1, {"prompt": "é <script>"})


def _page(session=None):
    with gr.Blocks() as demo:
        prompt = gr.Textbox(elem_id="itl-prompt")
        with gr.Tabs() as tabs:
            with gr.Tab("Next token", id="next_token"):
                gr.Slider(0, 5, step=1, elem_id="itl-position")
            with gr.Tab("Attention", id="attention"):
                gr.Slider(0, 3, step=1, elem_id="itl-attn-head")
                gr.Textbox(elem_id="itl-grid-click", elem_classes=["itl-hidden"])
                gr.Checkbox(label="mean")
        presenter = render_presenter(session, prompt, tabs)
    return demo, presenter


def test_render_presenter_mirrors_the_pages_controls_only():
    demo, presenter = _page()
    assert presenter.tab_ids == ["next_token", "attention"]
    keys = list(presenter.controls)
    assert "itl-attn-head" in keys and "itl-position" in keys and len(keys) == 3  # the checkbox by its id
    assert "itl-grid-click" not in keys and "itl-prompt" not in keys


def test_discover_controls_skips_the_prompt_and_hidden_boxes():
    with gr.Blocks():
        prompt = gr.Textbox()
        gr.Slider(elem_id="a")
        gr.Slider(elem_id="b", interactive=False)
        gr.Number(elem_id="c", elem_classes=["itl-hidden"])
        assert list(discover_controls(prompt)) == ["a"]


def test_launched_page_serves_the_routes_before_gradio_s_own():
    demo, presenter = _page()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        code, _ = presenter.registry.open({"tab": "attention"})
        assert httpx.get(f"{url}itl/rooms/{code}/version").json() == {"version": 1}
        assert httpx.get(f"{url}itl/rooms/{code}/state").json()["state"] == {"tab": "attention"}
        missing = httpx.get(f"{url}itl/rooms/ABCDEFGH/version")
        assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
        assert httpx.post(f"{url}itl/rooms/{code}/version").status_code == 405  # no write, by any route
        assert httpx.get(url).status_code == 200  # the page itself is untouched
        assert httpx.get(f"{url}gradio_api/info").status_code == 200
    finally:
        demo.close()


@pytest.mark.parametrize("text", ["", None, 12, "x" * 500])
def test_follow_never_raises_on_what_a_page_sends(text):
    *_, note = follow(RoomRegistry(), KEYS, TABS, text)
    assert "⚠️" in note
