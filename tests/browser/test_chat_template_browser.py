"""The chat-template control in a real headless Chromium: on a model whose tokenizer has a template, the button
wraps the prompt and shows the tokens the template added; unwrap gives the text back."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser
EXPECT_TIMEOUT_MS = 30_000
TEMPLATE = ("{% for message in messages %}{{ '<s>' + message['role'] + '\n' + message['content'] + '</s>\n' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<s>assistant\n' }}{% endif %}")


@pytest.fixture(scope="module")
def chat_url():
    """The app on a tiny session whose tokenizer carries a chat template (the bundled model has none)."""
    from tests.browser.conftest import served_app
    from tests.tiny_models import tiny_model, tiny_tokenizer
    from visualizer.config import AppConfig
    from visualizer.session import ModelSession

    tokenizer = tiny_tokenizer.__wrapped__()  # a fresh copy: the cached one is shared read-only
    tokenizer.chat_template = TEMPLATE
    session = ModelSession(tiny_model("llama"), tokenizer, AppConfig(), source="tiny-chat")
    with served_app(session) as url:
        yield url, session


def test_wrap_shows_the_added_tokens_and_unwrap_restores(chat_url, new_page):
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    recorded = new_page(viewport={"width": 1400, "height": 1000})
    page = recorded.page
    page.goto(chat_url[0])
    box = page.locator("#itl-prompt textarea")
    box.fill("Hi there")
    page.locator("#itl-chat-wrap").click()
    expect(box).to_have_value("<s>user\nHi there</s>\n<s>assistant\n")
    note = page.locator("#itl-chat-note")
    expect(note).to_contain_text("before your text")
    for piece in ("<s>", "↵", "pipeline(...)"):
        expect(note).to_contain_text(piece)
    page.locator("#itl-chat-unwrap").click()
    expect(box).to_have_value("Hi there")
    recorded.failed_loads[:] = [f for f in recorded.failed_loads  # Gradio aborts its own event streams
                                if not ("ERR_ABORTED" in f and "/gradio_api/queue/data" in f)]
    recorded.assert_clean()


def test_sampling_suggestion_and_induction_example_fill_the_prompt(chat_url, new_page):
    from playwright.sync_api import expect

    from visualizer.analysis.examples import examples_for

    url, session = chat_url
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    recorded = new_page(viewport={"width": 1400, "height": 1000})
    page = recorded.page
    page.goto(url)
    page.get_by_role("tab", name="Sampling").click()
    expect(page.locator("#itl-sampling-suggestion")).to_contain_text("nats on this model")
    page.locator("#itl-sampling-use-suggestion").click()
    box = page.locator("#itl-prompt textarea")
    expect(box).to_have_value(examples_for(session, "sampling").prompt)  # measured when the tab opened
    expect(page.locator("#itl-sampling-plot .js-plotly-plot")).to_be_visible()
    page.get_by_role("tab", name="Attention").click()
    page.locator("#itl-attn-induction").click()
    induction = examples_for(session, "induction")
    expect(page.locator("#itl-attn-induction-note")).to_contain_text(induction.summary())
    expect(box).to_have_value(induction.prompt.text)
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
