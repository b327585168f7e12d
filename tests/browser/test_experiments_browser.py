"""The Experiments tab in a real headless Chromium with the network cut: a mouse click on a cell of the layer x
head grid picks that head, the grid outlines it, and ablating it moves the target's bar."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser
EXPECT_TIMEOUT_MS = 30_000  # a loaded 2-core CI machine can take seconds per model call
HEADS = "#itl-exp-heads .js-plotly-plot"
ABLATION = "#itl-exp-ablation .js-plotly-plot"


def strongest_cell(page) -> dict:
    """The (layer, head) of the grid cell with the largest |direct contribution|, and where it is on the screen."""
    return page.evaluate("""(selector) => {
        const plot = document.querySelector(selector);
        const z = plot._fullData[0].z;  // [layer][head], decoded by plotly
        let best = {layer: 0, head: 0, value: -1};
        z.forEach((row, layer) => Array.from(row).forEach((v, head) => {
            if (Math.abs(v) > best.value) best = {layer, head, value: Math.abs(v)};
        }));
        const box = plot.getBoundingClientRect(), xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
        best.x = box.left + xa._offset + xa.d2p(best.head);
        best.y = box.top + ya._offset + ya.d2p(best.layer);
        return best;
    }""", HEADS)


def ablation_bars(page) -> dict:
    """{token label: probability change} of the ablation figure's bars."""
    bars = page.evaluate("(s) => { const t = document.querySelector(s)._fullData[0];"
                         " return [Array.from(t.y), Array.from(t.x)]; }", ABLATION)
    return dict(zip(*bars, strict=True))


def test_click_a_head_in_the_grid_then_ablate_it(app_url, new_page):
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    recorded = new_page(viewport={"width": 1400, "height": 1000})
    page = recorded.page
    page.goto(app_url)
    page.get_by_role("tab", name="Experiments").click()
    page.locator("#itl-prompt textarea").fill("The capital of France is")
    page.locator("#itl-exp-attribute").click()
    expect(page.locator(HEADS)).to_be_visible()
    page.wait_for_function("(s) => { const p = document.querySelector(s); return p && p.dataset.itlExpClick; }",
                           arg=HEADS)
    page.get_by_role("button", name="Ablation").click()  # open the accordion (below the grid)
    page.locator("#itl-exp-ablate").click()  # nothing picked yet: every bar is 0
    note = page.locator("#itl-exp-ablation-note")
    expect(note).to_contain_text("nothing ablated")
    expect(page.locator(ABLATION)).to_be_visible()
    before = ablation_bars(page)
    assert set(before.values()) == {0.0}
    target = list(before)[-1]  # the top bar: the top-1 token, the default target

    page.locator(HEADS).scroll_into_view_if_needed()
    cell = strongest_cell(page)
    page.mouse.move(cell["x"], cell["y"])  # plotly reports a click on the cell it is hovering
    page.mouse.click(cell["x"], cell["y"])
    expect(page.locator("#itl-exp-heads-text textarea")).to_have_value(f"{cell['layer']}.{cell['head']}")
    page.wait_for_function("(s) => (document.querySelector(s).layout.shapes || [])"
                           ".some((shape) => shape.name === 'itl-selected')", arg=HEADS)

    page.locator("#itl-exp-ablate").click()
    ablated = f"L{cell['layer']}H{cell['head']}"
    expect(note).to_contain_text(ablated)
    page.wait_for_function("([s, what]) => document.querySelector(s)._fullLayout.title.text.includes(what)",
                           arg=[ABLATION, ablated])  # the figure redrawn for this ablation
    after = ablation_bars(page)
    assert abs(after[target]) > 1e-4, after  # the target's bar moved
    recorded.failed_loads[:] = [f for f in recorded.failed_loads
                                if not ("ERR_ABORTED" in f and "/gradio_api/queue/data" in f)]
    recorded.assert_clean()
