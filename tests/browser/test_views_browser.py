"""#17 items 2 and 7 in a real Chromium with the network cut: linked views, and the KV sweep's repeats and wording."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import served_app
from visualizer.config import AppConfig, Limits

pytestmark = pytest.mark.browser
SLOW_MS = 60_000  # a loaded 2-core CI machine


@pytest.fixture(scope="module")
def short_sweep_url():
    """A tiny model with N capped at 12, so the sweep's 3 repeats of every length take seconds."""
    from tests.tiny_models import tiny_model, tiny_tokenizer
    from visualizer.session import ModelSession

    session = ModelSession(tiny_model("llama"), tiny_tokenizer(), AppConfig(limits=Limits(max_new_tokens=12)),
                           source="tiny-llama")
    with served_app(session) as url:
        yield url


def _open(new_page, url, tab: str):
    from playwright.sync_api import expect

    expect.set_options(timeout=SLOW_MS)
    recorded = new_page(viewport={"width": 1400, "height": 1000})
    recorded.page.goto(url)
    recorded.page.get_by_role("tab", name=tab).click()
    return recorded


def _subplot_point(page, chart: str, head: int) -> dict:
    """Page coordinates inside head `head`'s small multiple: a late query row, an early key (never masked)."""
    return page.evaluate("""([chart, head]) => {
        const p = document.querySelector(chart + ' .js-plotly-plot'), r = p.getBoundingClientRect();
        const suffix = head ? String(head + 1) : '';
        const xa = p._fullLayout['xaxis' + suffix], ya = p._fullLayout['yaxis' + suffix];
        return {x: r.left + xa._offset + xa._length * 0.2, y: r.top + ya._offset + ya._length * 0.85}; }""",
                         [chart, head])


def test_a_chip_click_sets_the_position_and_a_small_multiple_opens_its_head(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url, "Next token")
    page = recorded.page
    chips = page.locator("#itl-token-chips .itl-chip")
    expect(chips.first).to_be_visible()
    assert "next: " in chips.nth(1).get_attribute("title")  # hovering a chip shows its top-5
    chips.nth(2).click()
    expect(page.locator("#itl-position input[type=number]")).to_have_value("2")

    page.get_by_role("tab", name="Attention").click()
    expect(page.locator("#itl-attn-layer-heads .js-plotly-plot")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#itl-attn-layer-heads .js-plotly-plot')"
                           ".dataset.itlClick === '1'")  # the page script listens for clicks on it
    page.locator("#itl-attn-layer-heads .js-plotly-plot").scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # plotly's automargin pass may still move the subplots
    point = _subplot_point(page, "#itl-attn-layer-heads", 2)
    page.mouse.click(point["x"], point["y"])
    expect(page.locator("#itl-attn-head input[type=number]")).to_have_value("2")
    expect(page.locator("#itl-attn-selection")).to_contain_text("head 2")
    recorded.failed_loads[:] = [f for f in recorded.failed_loads  # Gradio aborts its own event streams
                                if not ("ERR_ABORTED" in f and "/gradio_api/queue/data" in f)]
    recorded.assert_clean()


def test_the_sweep_runs_three_repeats_and_words_its_result_by_the_numbers(short_sweep_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, short_sweep_url, "KV cache")
    page = recorded.page
    page.locator("#itl-kv-sweep").click()
    plot = page.locator("#itl-kv-sweep-plot")
    expect(plot).to_contain_text("median of 3 repeats", timeout=SLOW_MS)
    status = page.locator("#itl-kv-sweep").locator("xpath=following::*[contains(@class, 'prose')][1]")
    expect(status).to_contain_text(re.compile(r"\d(\.\d+)?× (faster|slower)"), timeout=SLOW_MS)


def test_enter_in_a_number_box_and_arrow_keys_on_a_slider_redraw_the_charts(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url, "Next token")
    page = recorded.page
    title = page.locator("#itl-topk .gtitle")
    expect(title).to_contain_text("Next token after position")
    box = page.locator("#itl-position input[type=number]")
    box.fill("1")
    box.press("Enter")  # no blur, no click elsewhere
    expect(title).to_contain_text("after position 1 ")
    page.locator("#itl-position input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    expect(box).to_have_value("2")
    expect(title).to_contain_text("after position 2 ")
