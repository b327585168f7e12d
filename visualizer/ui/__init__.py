"""The Gradio page: a shared prompt above the tabs, one queue for the model, nothing loaded from a CDN."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from visualizer.config import DEFAULT_PROMPT
from visualizer.tokens import chat_unwrap, chat_wrap, has_chat_template
from visualizer.ui import gradio_overheads
from visualizer.ui.common import TabSync, unchanged, wire
from visualizer.ui.exports import download_control, wire_download, write_download
from visualizer.ui.links import TAB_IDS, Parsed, lesson_json, load_lesson, parse_view
from visualizer.ui.presenter import render_presenter
from visualizer.ui.tabs import TABS

ASSETS = Path(__file__).resolve().parent.parent / "assets"

EXAMPLES = [
    DEFAULT_PROMPT,
    "Write an email apologizing to Sarah for the tragic gardening mishap.",
    "Paris is the capital of",
    "Monday, Tuesday, Wednesday,",
]


def _model_line(session) -> str:
    p = session.dims
    n_params = session.n_params
    return (f"**Model:** {html.escape(session.display_name)} · {n_params:,} parameters · {p.n_layers} layers · "
            f"{p.n_heads} heads ({p.n_kv_heads} KV) · hidden {p.d_model} · vocab {p.d_vocab:,} · "
            f"{session.device.type} · {str(session.dtype).replace('torch.', '')}")


@dataclass(frozen=True)
class ChatOutputs:
    prompt: Any = unchanged()  # the shared prompt box
    note: Any = unchanged()  # Markdown: the tokens the template added


def wrap_in_chat_template(session, prompt: str) -> ChatOutputs:
    """The prompt as one user turn of the model's chat template, and the exact tokens the template added."""
    inner = chat_unwrap(session.tokenizer, prompt)  # already wrapped: wrap the user's text again, not the wrapper
    wrapped = chat_wrap(session.tokenizer, prompt if inner is None else inner, session.max_prompt_tokens)
    return ChatOutputs(prompt=wrapped.text, note=wrapped.note)


def unwrap_chat_template(session, prompt: str) -> ChatOutputs:
    """The user's text back out of the chat template."""
    inner = chat_unwrap(session.tokenizer, prompt)
    if inner is None:
        raise ValueError("The prompt is not wrapped in this model's chat template, so there is nothing to unwrap: "
                         "press \"wrap in the chat template\" first.")
    return ChatOutputs(prompt=inner, note="The prompt is your text alone again, as the chapter's `pipeline(...)` "
                                          "call passed it.")


@dataclass
class _ChatControls:
    wrap: gr.Button
    unwrap: gr.Button
    note: gr.Markdown
    events: list = field(default_factory=list)  # the prompt changes that should redraw the open tab


def _prompt_row(session) -> tuple[gr.Textbox, _ChatControls | None]:
    """The shared prompt box; beside it, for an instruct model (a tokenizer with a chat template), the wrap controls."""
    def box(**layout) -> gr.Textbox:
        return gr.Textbox(label="Prompt", value=EXAMPLES[0], lines=2, elem_id="itl-prompt",
                          max_length=session.max_prompt_tokens * 64, **layout)
    if not has_chat_template(session.tokenizer):
        return box(), None
    with gr.Row(equal_height=False):
        prompt = box(scale=4)
        with gr.Column(scale=1, min_width=180):
            wrap = gr.Button("wrap in the chat template", size="sm", elem_id="itl-chat-wrap")
            unwrap = gr.Button("unwrap", size="sm", elem_id="itl-chat-unwrap")
    chat = _ChatControls(wrap, unwrap, gr.Markdown(elem_id="itl-chat-note", elem_classes=["itl-out"]))
    components = {"prompt": prompt, "note": chat.note}
    for button, fn in ((wrap, wrap_in_chat_template), (unwrap, unwrap_chat_template)):
        chat.events.append(wire(button.click, fn, session, [prompt], ChatOutputs, components,
                                api_visibility="private"))
    return prompt, chat


def build_demo(session) -> gr.Blocks:
    from visualizer.figures.bertviz_embed import bertviz_static_paths

    gr.set_static_paths(bertviz_static_paths(missing_ok=True))  # a missing script disables bertviz only
    gradio_overheads.install()  # no copy of ~280 block configs per new visitor, no matplotlib on the first request
    with gr.Blocks(title="Inside the LLM") as demo:
        gr.Markdown("# Inside the LLM\nLook inside a transformer language model while it runs.")
        if session.banner:
            gr.Markdown(f"⚠️ {html.escape(session.banner)}", elem_classes=["itl-banner"], elem_id="itl-banner")
        gr.Markdown(_model_line(session), elem_classes=["itl-model-line"])
        prompt, chat = _prompt_row(session)
        examples = gr.Examples(EXAMPLES, inputs=prompt, label="try")
        # This user's step-through sequence, {"prompt", "ids", "rows"}: used only while the prompt box still holds
        # the text it grew from, so a new prompt by any route (typing, an example, the API) discards it.
        sequence = gr.State(None)
        page = _page_controls()
        syncs: list[TabSync] = []
        with gr.Tabs(elem_id="itl-tabs", overflow_behavior="wrap") as tabs:  # a phone reaches every tab
            for tab in TABS:
                tab_id = tab.__name__.rsplit(".", 1)[-1]
                with gr.Tab(tab.TITLE, id=tab_id) as panel:
                    sync = tab.render(session, prompt, sequence)
                opened = panel.select(lambda tab_id=tab_id: tab_id, None, page.open_tab, queue=False,
                                      api_visibility="private")
                if sync is not None:
                    syncs.append(sync)
                    if sync.draw is not None:  # a prompt-driven tab draws itself when opened
                        sync.draw(opened.then, page.open_tab)
        # Enter in the prompt box or an example refreshes the open tab; the others redraw when opened.
        for sync in syncs:
            if sync.draw is not None:
                sync.draw(prompt.submit, page.open_tab)
                sync.draw(examples.load_input_event.then, page.open_tab)
                for event in chat.events if chat else []:
                    sync.draw(event.then, page.open_tab)
        _wire_links(session, demo, page, prompt, tabs, syncs)
        presenter = render_presenter(session, prompt, tabs)  # a teacher's room: followers mirror this page
    limits = session.config.queue
    demo.queue(max_size=session.queue_max_size, default_concurrency_limit=limits.concurrency_limit)
    demo.itl_presenter = presenter  # its room registry, for benchmarks and tests
    return demo


@dataclass
class _PageControls:
    open_tab: gr.Textbox
    link_state: gr.State
    copy: gr.Button
    link_box: gr.Textbox
    lesson_button: gr.Button
    lesson_file: gr.DownloadButton
    lesson_upload: gr.UploadButton


def _page_controls() -> _PageControls:
    open_tab = gr.Textbox(TAB_IDS[0], elem_id="itl-open-tab", elem_classes=["itl-hidden"], show_label=False)
    link_state = gr.State(None)  # the last link or lesson applied: what a redraw resets and it must set again
    with gr.Row(elem_id="itl-share-row"):
        copy = gr.Button("🔗 copy link to this view", size="sm", elem_id="itl-copy-link")
        link_box = gr.Textbox(label="link to this view", interactive=False, elem_id="itl-link-box", scale=3)
        lesson_button, lesson_file = download_control("⬇ save lesson (JSON)", "itl-lesson-save")
        lesson_upload = gr.UploadButton("⬆ open lesson", file_types=[".json"], size="sm", elem_id="itl-lesson-open")
    return _PageControls(open_tab, link_state, copy, link_box, lesson_button, lesson_file, lesson_upload)


def _link_components(syncs: list[TabSync]) -> dict[str, Any]:
    return {key: component for sync in syncs for key, component in sync.link.items()}


def _wire_links(session, demo: gr.Blocks, page: _PageControls, prompt, tabs, syncs: list[TabSync]) -> None:
    """Deep links, the copy-link button and lesson files: one view description, applied the same way."""
    linked = _link_components(syncs)
    keys = list(linked)
    markers = [sync.marker for sync in syncs]
    outputs = [prompt, tabs, page.open_tab, page.link_state, *markers, *linked.values()]

    def apply(parsed: Parsed) -> list:
        for problem in parsed.problems:
            gr.Warning(problem)
        view = parsed.view
        given = view.given()
        head = [view.prompt if view.prompt is not None else gr.skip(),
                gr.Tabs(selected=view.tab) if view.tab else gr.skip(), view.tab or gr.skip(), given]
        reset = ["" if given else gr.skip() for _ in markers]  # forces the open tab to redraw with the view
        return head + reset + [given[key] if key in given else gr.skip() for key in keys]

    def from_url(request: gr.Request) -> list:
        return apply(parse_view(session, dict(request.query_params) if request is not None else {}))

    def from_lesson(file) -> list:
        path = getattr(file, "name", file)
        try:
            text = Path(path).read_text(encoding="utf-8")
            return apply(load_lesson(session, text))
        except (OSError, ValueError) as error:
            raise gr.Error(str(error), print_exception=False) from error

    def then_draw(dependency) -> None:
        drawn = [sync.draw(dependency.then, page.open_tab) for sync in syncs if sync.draw is not None]
        for sync in syncs:
            if sync.after_link is not None and drawn:
                sync.after_link(drawn[-1].then, page.link_state)

    then_draw(demo.load(from_url, None, outputs, api_visibility="private"))  # queued: gr.Warning reaches the page
    then_draw(page.lesson_upload.upload(from_lesson, page.lesson_upload, outputs, api_visibility="private"))

    def lesson(prompt_text: str, open_tab: str, *values) -> str:
        parsed = parse_view(session, {"prompt": prompt_text, "tab": open_tab, **dict(zip(keys, values, strict=True))})
        for problem in parsed.problems:
            gr.Warning(problem)
        return write_download(f"lesson-{open_tab}", ".json", lesson_json(parsed.view))

    wire_download(page.lesson_button, page.lesson_file, lesson, [prompt, page.open_tab, *linked.values()],
                  queue=False)
    tab_keys = {sync.tab_id: list(sync.link) for sync in syncs}
    page.copy.click(None, [prompt, page.open_tab, *linked.values()], page.link_box, api_visibility="private",
                    js=f"(...v) => window.itlCopyLink({json.dumps(keys)}, {json.dumps(tab_keys)}, v)")


def launch_options() -> dict:
    """Styles and scripts for `demo.launch(...)` (Gradio 6 takes them at launch, not in Blocks)."""
    return dict(theme=gr.themes.Soft(font=gr.themes.Font("system-ui"), font_mono=gr.themes.Font("monospace")),
                css_paths=[ASSETS / "app.css"],
                head=f"<script>{(ASSETS / 'app.js').read_text(encoding='utf-8')}</script>")
