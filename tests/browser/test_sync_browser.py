"""One prompt, every view: deep links restore a view with no click, downloads are real files, old results grey."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.browser.test_app_browser import _assert_clean, _open

pytestmark = pytest.mark.browser
LINK = "?tab=attention&prompt=Paris%20is%20the%20capital%20of&layer=1&head=2"


def _download(page, selector: str) -> bytes:
    with page.expect_download() as info:
        page.locator(selector).first.click()
    return Path(info.value.path()).read_bytes()


def test_the_deep_link_opens_attention_at_layer_1_head_2_with_no_click(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url + LINK)
    page = recorded.page
    expect(page.locator("#itl-prompt textarea")).to_have_value("Paris is the capital of")
    expect(page.get_by_role("tab", name="Attention")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
    expect(page.locator("#itl-attn-heatmap")).to_contain_text("layer 1, head 2")
    expect(page.locator("#itl-attn-selection")).to_contain_text("layer 1, head 2")
    expect(page.locator("#itl-attn-layer input[type=number]")).to_have_value("1")
    _assert_clean(recorded)


def test_a_bad_link_value_warns_and_keeps_the_default(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url + "?tab=attention&layer=99")
    page = recorded.page
    expect(page.get_by_text("layer must be from 0").first).to_be_visible()
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
    expect(page.locator("#itl-attn-layer input[type=number]")).to_have_value("0")
    _assert_clean(recorded)


def test_downloads_are_files_of_the_right_type(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url + LINK)
    page = recorded.page
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
    page.wait_for_selector("#itl-attn-heatmap .itl-image-png")
    assert _download(page, "#itl-attn-heatmap .itl-image-png").startswith(b"\x89PNG")
    assert b"<svg" in _download(page, "#itl-attn-heatmap .itl-image-svg")[:400]
    rows = list(csv.reader(io.StringIO(_download(page, "#itl-attn-export").decode())))
    assert rows[0][:3] == ["chart", "trace", "row"] and len(rows) > 10
    bertviz = _download(page, "#itl-bertviz-export").decode()
    assert "<html>" in bertviz and not re.search(r"<script[^>]*src=[\"']?https?:", bertviz)
    assert "<script src" not in bertviz
    lesson = json.loads(_download(page, "#itl-lesson-save"))
    assert lesson["tab"] == "attention" and lesson["layer"] == 1 and lesson["head"] == 2
    page.get_by_role("tab", name="Sampling").click()
    expect(page.locator("#itl-sampling-plot .js-plotly-plot")).to_be_visible()  # drawn when opened, no button
    data = json.loads(_download(page, "#itl-sampling-export"))
    assert data["charts"]["distribution"]["traces"]
    _assert_clean(recorded)


def test_an_example_click_greys_the_other_tabs_until_they_refresh(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url + "?tab=attention&prompt=The%20capital%20of%20France%20is")
    page = recorded.page
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
    page.get_by_role("tab", name="Sampling").click()
    expect(page.locator("#itl-sampling-plot .js-plotly-plot")).to_be_visible()
    page.get_by_text("Monday, Tuesday, Wednesday,", exact=True).first.click()
    # Sampling is open: it redraws from the example; Attention, hidden, is marked as from an earlier prompt
    attention_panel = page.locator("[role=tabpanel]", has=page.locator("#itl-attn-heatmap"))
    expect(attention_panel).to_have_class(re.compile("itl-stale"))
    expect(page.locator("#itl-sampling-readouts")).not_to_have_class(re.compile("itl-stale"))
    page.get_by_role("tab", name="Attention").click()
    expect(attention_panel.locator(".itl-stale-label")).to_contain_text("earlier prompt")
    expect(attention_panel).not_to_have_class(re.compile("itl-stale"))  # redrawn when opened
    expect(page.locator("#itl-attn-heatmap")).to_contain_text("Wednesday")
    _assert_clean(recorded)
