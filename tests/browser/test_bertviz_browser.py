"""bertviz views in a real Gradio page and headless Chromium, with the internet unreachable.

Proves what only a browser can: the iframes load d3/jQuery/the AMD shim from the app, draw their SVG,
and show hostile token strings as text without running them. A control shows the harness would
notice both failure modes (a CDN request, an injected script) in bertviz's own unescaped output.

One app serves three tabs; Gradio renders a tab's content only once it is selected, so a page that
stays on the first tab loads nothing but the sandboxed views.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
import torch

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.figures.bertviz_embed import (
    FILE_URL_PREFIX,
    bertviz_static_paths,
    head_view_html,
    model_view_html,
)

pytestmark = pytest.mark.browser

XSS_ALERT = "</script><img src=x onerror=alert(1)>"
# A sandbox without allow-modals blocks alert() silently, so also a payload that would log.
XSS_LOG = "<img src=x onerror=console.log('xss-ran')><script>console.log('xss-ran')</script>"
N_TOKENS = 12
N_LAYERS, N_HEADS = 2, 4  # tiny llama
TABS = {"sandboxed": "Sandboxed views", "unsandboxed": "Without sandbox", "original": "bertviz original"}


def _attention_and_token_strs() -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """Tiny llama attention ([1, head, query, key] per layer) with two token strings made hostile."""
    tokenizer = tiny_tokenizer()
    token_ids = tokenizer("The capital of France is Paris. The capital of Japan is Tokyo.",
                          return_tensors="pt").input_ids[:, :N_TOKENS]
    with torch.inference_mode():
        attentions = tiny_model("llama")(token_ids, output_attentions=True).attentions
    token_strs = tokenizer.convert_ids_to_tokens(token_ids[0].tolist())
    assert len(token_strs) == N_TOKENS and len(attentions) == N_LAYERS and attentions[0].shape[1] == N_HEADS
    token_strs[3], token_strs[7] = XSS_ALERT, XSS_LOG
    return attentions, token_strs


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    import gradio as gr
    from bertviz import head_view

    attentions, token_strs = _attention_and_token_strs()
    head_iframe = head_view_html(attentions, token_strs)
    # bertviz's own page for the same input, unsandboxed: reaches for cdnjs and lets the payload out
    original = head_view(attentions, token_strs, html_action="return").data
    gr.set_static_paths(bertviz_static_paths())
    with gr.Blocks(analytics_enabled=False) as demo, gr.Tabs():
        with gr.Tab(TABS["sandboxed"]):
            gr.HTML(head_iframe, elem_id="head_view")
            gr.HTML(model_view_html(attentions, token_strs), elem_id="model_view")
        with gr.Tab(TABS["unsandboxed"]):  # the escaping alone must keep the payload inert
            gr.HTML(head_iframe.replace(' sandbox="allow-scripts"', "", 1), elem_id="unsandboxed")
        with gr.Tab(TABS["original"]):
            gr.HTML(f'<iframe style="width:100%;height:400px" srcdoc="{html.escape(original)}"></iframe>',
                    elem_id="original")
    _, local_url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        yield local_url
    finally:
        demo.close()


def _open(new_page, url: str, tab: str | None = None):
    recorded = new_page()
    recorded.page.goto(url)
    if tab is not None:
        recorded.page.get_by_role("tab", name=TABS[tab]).click()
    return recorded


def _check_head_view(head) -> None:
    from playwright.sync_api import expect

    # one line per (head, query, key) of the selected layer, and a dropdown of the embedded layers
    expect(head.locator("#vis svg")).to_be_visible()
    expect(head.locator("#vis svg line")).to_have_count(N_HEADS * N_TOKENS * N_TOKENS)
    expect(head.locator("#layer option")).to_have_count(N_LAYERS)
    for payload in (XSS_ALERT, XSS_LOG):  # shown as text, in the left and the right column
        expect(head.locator("svg text").filter(has_text=payload)).to_have_count(2)
    expect(head.locator("img")).to_have_count(0)
    head.locator("svg text").filter(has_text=XSS_ALERT).first.hover()  # the view's mouseover code
    head.locator("#layer").select_option(str(N_LAYERS - 1))
    expect(head.locator("#vis svg line")).to_have_count(N_HEADS * N_TOKENS * N_TOKENS)


def _assert_no_injected_script_ran(recorded) -> None:
    recorded.assert_clean()  # includes: no dialog, no request leaving localhost
    assert not any("xss-ran" in message for message in recorded.console_messages)


def test_sandboxed_views_render_offline_and_show_hostile_tokens_as_text(app_url, new_page) -> None:
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    _check_head_view(recorded.page.frame_locator("#head_view iframe"))

    model = recorded.page.frame_locator("#model_view iframe")
    expect(model.locator("#vis svg")).to_be_visible()
    expect(model.locator("rect.attn_background")).to_have_count(N_LAYERS * N_HEADS)
    model.locator("rect.attn_background").first.click(force=True)  # detail panel of layer 0, head 0
    expect(model.locator("text.token").filter(has_text=XSS_LOG)).to_have_count(2)
    expect(model.locator("img")).to_have_count(0)

    _assert_no_injected_script_ran(recorded)
    # the scripts came from the app, and the recorder sees inside the sandboxed iframes
    for path in bertviz_static_paths():
        assert any(FILE_URL_PREFIX + path in url for url in recorded.requests), path
    assert any("d3 version 5.7" in message for message in recorded.console_messages)


def test_escaping_alone_keeps_the_payload_inert(app_url, new_page) -> None:
    recorded = _open(new_page, app_url, tab="unsandboxed")
    _check_head_view(recorded.page.frame_locator("#unsandboxed iframe"))
    _assert_no_injected_script_ran(recorded)


def test_harness_catches_cdn_requests_and_injected_scripts(app_url, new_page) -> None:
    """Control: bertviz's own output reaches for cdnjs and runs the payload, and the harness sees it."""
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url, tab="original")
    expect(recorded.page.frame_locator("#original iframe").locator("#vis")).to_be_attached()

    def caught_both() -> bool:  # the injected <img> fires onerror once its (local) load fails
        return (any("cdnjs.cloudflare.com" in url for url in recorded.outside_requests)
                and "alert: 1" in recorded.dialogs
                and any("xss-ran" in message for message in recorded.console_messages))

    for _ in range(100):
        if caught_both():
            break
        recorded.page.wait_for_timeout(100)
    assert caught_both(), (recorded.outside_requests, recorded.dialogs, recorded.console_messages)
