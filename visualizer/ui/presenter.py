"""Presenter mode: a teacher opens a room, pages opened with `/?follow=CODE` mirror the teacher's tab, prompt and
controls, read-only, until they detach.

Cost at class size: followers poll a plain Starlette route (`/itl/rooms/CODE/version`, a dict lookup, no Gradio
queue) once a second, and only when the number moves do they run one Gradio event that reads the room's state on
the server and sets their controls, then click their open tab's "show" button, whose handler re-slices the views
from the session's trace cache (keyed by token ids: the teacher already paid the forward pass). The teacher's page
publishes on a 0.5 s timer (an unchanged state keeps the version, so followers stay asleep); followers never hold
the teacher token, so nothing they send can change the room.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import Context
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from visualizer.rooms import RoomAccessError, RoomRegistry, normalize_code

ASSET = Path(__file__).resolve().parent.parent / "assets" / "presenter.js"
ROUTE_PREFIX = "/itl/rooms"
PUBLISH_EVERY_S = 0.5  # teacher -> room; plus the followers' 1 s poll, a change shows within ~1.5 s
NO_STORE = {"cache-control": "no-store"}
MIRRORED = (gr.Slider, gr.Number, gr.Checkbox, gr.Radio, gr.Dropdown, gr.CheckboxGroup)


@dataclass
class Presenter:
    """What render_presenter made: the registry (shared by every page of this demo) and its components."""

    registry: RoomRegistry
    controls: dict[str, Any]  # key in the room's state -> the component it mirrors
    tab_ids: list[str]
    components: dict[str, Any] = field(default_factory=dict)


# --- the followers' cheap routes --------------------------------------------------------------------------------

def presenter_routes(registry: RoomRegistry) -> list[Route]:
    """GET {prefix}/CODE/version -> {"version": n}; GET {prefix}/CODE/state -> {"version": n, "state": {...}}.
    Read-only: no route writes (writes go through the teacher's session, which holds the token)."""

    async def version(request: Request) -> Response:
        found = registry.version(request.path_params["code"])
        if found is None:
            return JSONResponse({"error": "no such room (closed or expired)"}, status_code=404, headers=NO_STORE)
        return JSONResponse({"version": found}, headers=NO_STORE)

    async def state(request: Request) -> Response:
        found = registry.snapshot_json(request.path_params["code"])
        if found is None:
            return JSONResponse({"error": "no such room (closed or expired)"}, status_code=404, headers=NO_STORE)
        body = f'{{"version":{found[0]},"state":{found[1]}}}'  # state_json is already encoded JSON
        return Response(body, media_type="application/json", headers=NO_STORE)

    return [Route(f"{ROUTE_PREFIX}/{{code}}/version", version, methods=["GET"], name="itl_room_version"),
            Route(f"{ROUTE_PREFIX}/{{code}}/state", state, methods=["GET"], name="itl_room_state")]


def _install_routes(blocks: gr.Blocks, registry: RoomRegistry) -> None:
    """Put the routes first in the app that launch() creates (it builds a new FastAPI app each launch, so they
    are added in a start-up event, which Gradio runs once the server answers, before launch() returns), and let
    the version poll skip Gradio's middleware (CORS checks, brotli): it is most of what a poll would cost."""

    async def add() -> None:
        app = blocks.app
        names = {getattr(route, "name", None) for route in app.router.routes}
        for route in reversed(presenter_routes(registry)):
            if route.name not in names:
                app.router.routes.insert(0, route)
        stack = app.middleware_stack or app.build_middleware_stack()
        if not isinstance(stack, _VersionFastPath):
            app.middleware_stack = _VersionFastPath(stack, registry)

    blocks.extra_startup_events.append(add)


class _VersionFastPath:
    """ASGI: answer `GET {prefix}/CODE/version` directly; everything else goes to the app's own stack."""

    def __init__(self, app: Any, registry: RoomRegistry) -> None:
        self.app, self.registry = app, registry
        self.prefix, self.suffix = ROUTE_PREFIX + "/", "/version"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope.get("method") != "GET" or not path.startswith(self.prefix)
                or not path.endswith(self.suffix)):
            await self.app(scope, receive, send)
            return
        found = self.registry.version(path[len(self.prefix):-len(self.suffix)])
        status, body = (200, b'{"version":%d}' % found) if found is not None else (404, b'{"error":"no such room"}')
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# --- state of a page ----------------------------------------------------------------------------------------------

def _control_key(component: Any) -> str:
    return component.elem_id or f"c{component._id}"


def discover_controls(prompt: Any) -> dict[str, Any]:
    """Every slider, number, checkbox, radio and dropdown built so far in the page (except hidden helpers)."""
    found = {}
    for block in Context.root_block.blocks.values():
        hidden = "itl-hidden" in (block.elem_classes or []) if isinstance(block, gr.components.Component) else True
        if isinstance(block, MIRRORED) and block is not prompt and not hidden and block.interactive is not False:
            found[_control_key(block)] = block
    return dict(sorted(found.items()))


def view_state(tab: str, prompt: str, keys: list[str], values: list) -> dict:
    """What a room holds: the teacher's tab, prompt and control values."""
    return {"tab": tab, "prompt": prompt, "controls": dict(zip(keys, values, strict=True))}


def open_room(registry: RoomRegistry, keys: list[str], tab: str, prompt: str, *values) -> tuple:
    code, token = registry.open(view_state(tab, prompt, keys, list(values)))
    return {"code": code, "token": token}, _room_note(code), gr.Timer(active=True)


def publish(registry: RoomRegistry, keys: list[str], room: dict | None, tab: str, prompt: str, *values) -> tuple:
    """The teacher's timer tick: write the current view (a no-op when nothing changed)."""
    if not room:
        return gr.skip(), gr.skip(), gr.Timer(active=False)
    try:
        registry.publish(room["code"], room["token"], view_state(tab, prompt, keys, list(values)))
    except RoomAccessError:  # expired: say so once and stop ticking
        return None, "The room has expired. Open a new one to present again.", gr.Timer(active=False)
    except ValueError as error:  # e.g. a prompt over the state's size limit: keep the room, show why
        return gr.skip(), f"⚠️ {html.escape(str(error))}", gr.skip()
    return gr.skip(), gr.skip(), gr.skip()


def close_room(registry: RoomRegistry, room: dict | None) -> tuple:
    if room:
        try:
            registry.close(room["code"], room["token"])
        except RoomAccessError:
            pass  # already expired: closed either way
    return None, "No room open.", gr.Timer(active=False)


def _room_note(code: str) -> str:
    link = f"?follow={code}"
    return (f"**Room {code[:4]}-{code[4:]}** is open. Students open this page's address with "
            f"[`{html.escape(link)}`]({html.escape(link)}) and follow your tab, prompt and settings "
            "(read-only). It closes after a few idle hours, or with *Close room*.")


def follow(registry: RoomRegistry, keys: list[str], tab_ids: list[str], request_text: str) -> list:
    """A follower's page asks for the room's state ("CODE:version", written by presenter.js when the version
    moved): its tab, prompt and controls set from the room held on the server, inputs read-only."""
    try:
        code = normalize_code(str(request_text).split(":", 1)[0])
    except ValueError as error:
        return _followed(keys, None, f"⚠️ {html.escape(str(error))}")
    found = registry.snapshot(code)
    if found is None:
        return _followed(keys, None, f"Room {code} is closed or has expired. *Detach* to use the page freely.")
    version, state = found
    tab = state.get("tab") if state.get("tab") in tab_ids else None
    return _followed(keys, state, f"Following room **{code[:4]}-{code[4:]}** (view {version}): the teacher's tab, "
                     "prompt and settings, read-only.", tab)


def _followed(keys: list[str], state: dict | None, note: str, tab: str | None = None) -> list:
    controls = (state or {}).get("controls") or {}
    prompt = (state or {}).get("prompt")
    updates = [gr.Tabs(selected=tab) if tab else gr.skip(),
               gr.update(value=prompt, interactive=False) if isinstance(prompt, str) else gr.update(interactive=False)]
    updates += [gr.update(value=controls[key], interactive=False) if key in controls else gr.update(interactive=False)
                for key in keys]
    return [*updates, gr.update(visible=True), note]


def detach(keys: list[str]) -> list:
    """The follower leaves the room: every input is theirs again."""
    return [gr.skip(), gr.update(interactive=True), *[gr.update(interactive=True) for _ in keys],
            gr.update(visible=False), ""]


# --- the page -------------------------------------------------------------------------------------------------

def render_presenter(session, prompt: gr.Textbox, tabs: gr.Tabs, controls: dict[str, Any] | None = None,
                     registry: RoomRegistry | None = None) -> Presenter:
    """Presenter controls and the follower bar; call inside the Blocks, after the Tabs are built."""
    del session  # the views come from the tabs' own handlers and the session's trace cache
    registry = registry or RoomRegistry()
    controls = discover_controls(prompt) if controls is None else dict(controls)
    keys = list(controls)
    tab_ids = [str(tab.id) for tab in tabs.children if getattr(tab, "id", None) is not None]
    c: dict[str, Any] = {}
    tab = gr.State(tab_ids[0] if tab_ids else "")
    for child in tabs.children:
        if getattr(child, "id", None) is not None:
            child.select(lambda tab_id=str(child.id): tab_id, None, tab, queue=False, show_progress="hidden",
                         api_visibility="private")
    with gr.Row(visible=False, elem_id="itl-follow-bar", elem_classes=["itl-follow-bar"]) as c["bar"]:
        c["follow_note"] = gr.Markdown(elem_id="itl-follow-note")
        c["detach"] = gr.Button("Detach", size="sm", scale=0, elem_id="itl-detach")
    c["follow_box"] = gr.Textbox(elem_id="itl-follow-box", elem_classes=["itl-hidden"], show_label=False)
    # js_on_load runs our script once the page has mounted; gr.HTML never runs a <script> in its value.
    gr.HTML("", js_on_load=ASSET.read_text(encoding="utf-8"), elem_id="itl-presenter-js", elem_classes=["itl-hidden"])
    with gr.Accordion("Presenter mode: students follow your screen", open=False, elem_id="itl-presenter"):
        with gr.Row():
            c["open"] = gr.Button("Open a room", variant="primary", size="sm", elem_id="itl-room-open")
            c["close"] = gr.Button("Close room", size="sm", elem_id="itl-room-close")
        c["room_note"] = gr.Markdown("No room open.", elem_id="itl-room-note")
    room = gr.State(None)
    timer = gr.Timer(PUBLISH_EVERY_S, active=False)
    view_inputs = [tab, prompt, *controls.values()]
    quiet = dict(queue=False, show_progress="hidden", api_visibility="private")
    c["open"].click(lambda *v: open_room(registry, keys, *v), view_inputs, [room, c["room_note"], timer], **quiet)
    timer.tick(lambda *v: publish(registry, keys, *v), [room, *view_inputs], [room, c["room_note"], timer], **quiet)
    c["close"].click(lambda r: close_room(registry, r), room, [room, c["room_note"], timer], **quiet)
    followed = [tabs, prompt, *controls.values(), c["bar"], c["follow_note"]]
    c["follow_box"].change(lambda text: follow(registry, keys, tab_ids, text), c["follow_box"], followed,
                           **quiet).then(None, None, None, js="() => { window.itlPresenter?.refresh(); }")
    c["detach"].click(lambda: detach(keys), None, followed, js="() => { window.itlPresenter?.detach(); return []; }",
                      **quiet)
    _install_routes(Context.root_block, registry)
    return Presenter(registry, controls, tab_ids, c)
