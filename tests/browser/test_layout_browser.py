"""Projector (1280x720 at 150%) and phone (390x844): chart text size and clipping, tab reachability, widths."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser
SLOW_MS = 30_000
MIN_PX = 14

# Every SVG text of every plotly chart on the page: on-screen font size (CSS px x zoom) and whether its box
# leaves the chart, plus titles against legends.
MEASURE = """(zoom) => {
  const out = {small: [], clipped: [], overlaps: [], n: 0};
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    if (plot.offsetParent === null) continue;
    const box = plot.getBoundingClientRect();
    for (const t of plot.querySelectorAll('text')) {
      if (!t.textContent.trim() || t.closest('.modebar')) continue;
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      out.n += 1;
      const px = parseFloat(getComputedStyle(t).fontSize) * zoom;
      if (px < 14 - 0.01) out.small.push(t.textContent.slice(0, 30) + ' ' + px);
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        out.clipped.push(t.textContent.slice(0, 30));
    }
    const title = plot.querySelector('.gtitle');
    const legend = plot.querySelector('.legend');
    if (title && legend) {
      const a = title.getBoundingClientRect(), b = legend.getBoundingClientRect();
      const hit = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      if (hit) out.overlaps.push(title.textContent);
    }
  }
  return out;
}"""


def _draw(page, tab: str, button: str, chart: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name=tab).click()
    page.locator(button).click()
    expect(page.locator(f"{chart} .js-plotly-plot")).to_be_visible(timeout=SLOW_MS)
    page.wait_for_timeout(500)  # plotly's automargin pass


@pytest.mark.parametrize("tab, button, chart", [("Attention", "#itl-attn-show", "#itl-attn-heatmap"),
                                                ("Sampling", "#itl-sampling-show", "#itl-sampling-plot")])
def test_projector_text_is_large_and_never_clipped(app_url, new_page, tab, button, chart):
    page = new_page(viewport={"width": 853, "height": 480}, device_scale_factor=1.5).page
    page.goto(app_url)
    _draw(page, tab, button, chart)
    found = page.evaluate(MEASURE, 1.5)
    assert found["n"] > 5
    assert found["small"] == [] and found["clipped"] == [] and found["overlaps"] == [], found


def test_phone_reaches_every_tab_and_charts_fit(app_url, new_page):
    from visualizer.ui.tabs import TABS

    page = new_page(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True).page
    page.goto(app_url)
    page.get_by_role("tab", name=TABS[0].TITLE).wait_for(state="attached", timeout=SLOW_MS)  # the page is drawn
    for tab in TABS:
        button = page.get_by_role("tab", name=tab.TITLE)
        assert button.is_visible(), f"tab {tab.TITLE} is hidden on a phone"
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    _draw(page, "Attention", "#itl-attn-show", "#itl-attn-heatmap")
    widths = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent)"
                           ".map(p => p.getBoundingClientRect().right)")
    assert widths and max(widths) <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 391  # nothing pushes the page wider
