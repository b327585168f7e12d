"""The whole app in a real headless Chromium with the network cut: every tab renders and nothing escapes."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser
EXPECT_TIMEOUT_MS = 30_000  # a loaded 2-core CI machine can take seconds per model call
XSS = "</script><img src=x onerror=alert(1)><svg onload=alert(2)>"


def _open(new_page, url):
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    recorded = new_page(viewport={"width": 1400, "height": 1000})
    recorded.page.goto(url)
    recorded.page.get_by_role("tab", name="Architecture").wait_for()
    return recorded


def _assert_clean(recorded) -> None:
    """No outside request, dialog or page error; Gradio aborts its own event streams, which is normal."""
    recorded.failed_loads[:] = [f for f in recorded.failed_loads
                                if not ("ERR_ABORTED" in f and "/gradio_api/queue/data" in f)]
    recorded.assert_clean()


def _set_prompt(page, text: str) -> None:
    box = page.locator("#itl-prompt textarea")
    box.fill(text)


def test_architecture_tree_expands(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    page = recorded.page
    tree = page.locator("#itl-arch-tree")
    expect(tree).to_contain_text("Phi3DecoderLayer")
    folded = tree.locator("details", has_text="x Phi3DecoderLayer").first
    expect(folded).to_be_visible()
    summary = folded.locator("summary").first
    was_open = folded.evaluate("d => d.open")
    summary.click()
    assert folded.evaluate("d => d.open") != was_open
    page.locator("#itl-arch-breakdown").scroll_into_view_if_needed()
    expect(page.locator("#itl-arch-breakdown .js-plotly-plot")).to_be_visible()
    _assert_clean(recorded)


def test_next_token_run_and_step_twice(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    page = recorded.page
    page.get_by_role("tab", name="Next token").click()
    _set_prompt(page, "The capital of France is")
    page.get_by_role("button", name="Run").click()
    chips = page.locator("#itl-token-chips .itl-chip")
    expect(chips.first).to_be_visible()
    n_tokens = chips.count()
    assert n_tokens > 3
    expect(page.locator("#itl-topk .js-plotly-plot")).to_be_visible()
    expect(page.locator("#itl-lens .js-plotly-plot")).to_be_visible()
    step = page.locator("#itl-next-token")
    step.click()
    expect(chips).to_have_count(n_tokens + 1)
    step.click()
    expect(chips).to_have_count(n_tokens + 2)
    expect(page.locator("#itl-steps")).to_contain_text("rank 1")
    _assert_clean(recorded)


def test_attention_heatmap_grid_and_click(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    page = recorded.page
    page.get_by_role("tab", name="Attention").click()
    _set_prompt(page, "Paris is the capital of France")
    page.locator("#itl-attn-show").click()
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
    grid = page.locator("#itl-summary-grid .js-plotly-plot")
    expect(grid).to_be_visible()
    # click the cell of layer 1, head 3 through plotly's own event path
    page.wait_for_function("() => { const p = document.querySelector('#itl-summary-grid .js-plotly-plot');"
                           " return p && p.dataset.itlClick === '1'; }")
    page.evaluate("() => { const p = document.querySelector('#itl-summary-grid .js-plotly-plot');"
                  " p.emit('plotly_click', {points: [{x: 3, y: 1}]}); }")
    expect(page.locator("#itl-attn-heatmap")).to_contain_text("layer 1, head 3")
    page.locator("#itl-bertviz-btn").click()
    head_view = page.frame_locator("#itl-bertviz-head iframe")
    expect(head_view.locator("svg line").first).to_be_attached()
    model_view = page.frame_locator("#itl-bertviz-model iframe")
    expect(model_view.locator("svg").first).to_be_attached()
    _assert_clean(recorded)


def test_xss_payload_stays_text_everywhere(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    page = recorded.page
    _set_prompt(page, XSS)
    page.get_by_role("tab", name="Next token").click()
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#itl-token-chips .itl-chip").first).to_be_visible()
    page.get_by_role("tab", name="Attention").click()
    page.locator("#itl-attn-show").click()
    expect(page.locator("#itl-attn-heatmap .js-plotly-plot")).to_be_visible()
    page.locator("#itl-bertviz-btn").click()
    expect(page.frame_locator("#itl-bertviz-head iframe").locator("svg line").first).to_be_attached()
    page.get_by_role("tab", name="Sampling").click()
    page.locator("#itl-sampling-show").click()
    expect(page.locator("#itl-sampling-plot .js-plotly-plot")).to_be_visible()
    page.locator("#itl-batch-prompts textarea").fill(XSS + "\n" + XSS + " longer")
    page.locator("#itl-batch-run").click()
    expect(page.locator("#itl-batch-result")).to_contain_text("onerror")  # shown as text
    page.get_by_role("tab", name="Architecture").click()
    page.get_by_label("paste config.json").check()
    config = json.dumps({"model_type": "llama", "_name_or_path": XSS, "hidden_size": 32, "intermediate_size": 64,
                         "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})
    page.locator(".cm-content").first.fill(config)
    page.locator("#itl-arch-show").click()
    expect(page.locator("#itl-arch-overview")).to_contain_text("onerror")
    page.wait_for_timeout(500)
    assert page.locator("img[src='x']").count() == 0
    _assert_clean(recorded)  # includes: no dialog opened


def _bar_heights(page) -> list:
    return page.evaluate("() => { const p = document.querySelector('#itl-sampling-plot .js-plotly-plot');"
                         " return p.data.map(t => Array.from(t.y || []).slice(0, 5)); }")


def test_sampling_sliders_change_the_chart(app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    page = recorded.page
    page.get_by_role("tab", name="Sampling").click()
    page.locator("#itl-sampling-show").click()
    expect(page.locator("#itl-sampling-plot .js-plotly-plot")).to_be_visible()
    readouts = page.locator("#itl-sampling-readouts")
    for slider, key_presses in (("#itl-temperature", 8), ("#itl-top-k", 3), ("#itl-top-p", 30)):
        before = _bar_heights(page)
        before_text = readouts.inner_text()
        handle = page.locator(f"{slider} input[type=range]")
        handle.focus()
        for _ in range(key_presses):
            page.keyboard.press("ArrowLeft" if slider != "#itl-top-k" else "ArrowRight")
        handle.dispatch_event("pointerup")  # what a mouse release sends
        page.wait_for_function("(before) => { const p = document.querySelector('#itl-sampling-plot .js-plotly-plot');"
                               " return JSON.stringify(p.data.map(t => Array.from(t.y || []).slice(0, 5)))"
                               " !== before; }", arg=json.dumps(before), timeout=EXPECT_TIMEOUT_MS)
        expect(readouts).not_to_have_text(before_text, timeout=EXPECT_TIMEOUT_MS)  # same event, maybe a later tick
    page.locator("#itl-sampling-generate").click()
    expect(page.locator("#itl-sampling-texts")).to_contain_text("greedy")
    page.locator("#itl-batch-run").click()
    expect(page.locator("#itl-batch-result")).to_contain_text("left-padded")
    _assert_clean(recorded)


@pytest.fixture(scope="module")
def slower_app_url():
    """A model slow enough (tens of ms a token) that a race lasts seconds and its updates can be watched."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.browser.conftest import served_app
    from tests.tiny_models import tiny_tokenizer
    from visualizer.session import ModelSession

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=320, hidden_size=384, intermediate_size=768, num_hidden_layers=8,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    with served_app(ModelSession(model, tiny_tokenizer(), source="slower-llama")) as url:
        yield url


def test_kv_race_curves_grow_while_it_runs(slower_app_url, new_page):
    from playwright.sync_api import expect

    recorded = _open(new_page, slower_app_url)
    page = recorded.page
    page.get_by_role("tab", name="KV cache").click()
    _set_prompt(page, "The capital of France is")
    # sample the latency chart every 20 ms in the page: the bold line of each mode, as the race streams
    page.evaluate("""() => { window.itlSnapshots = [];
        window.itlTimer = setInterval(() => {
          const p = document.querySelector('#itl-kv-latency .js-plotly-plot');
          if (!p || !p._fullData) return;
          const longest = {};
          for (const t of p._fullData) {  // the bold line of each mode: the repeat running now
            if (!t.legendgroup || /repeat|trend/.test(t.name || "")) continue;
            longest[t.legendgroup] = t._length || 0; }
          window.itlSnapshots.push(JSON.stringify(longest)); }, 20); }""")
    for slider, value in (("#itl-kv-n", "150"), ("#itl-kv-r", "1")):
        page.locator(f"{slider} input[type=number]").fill(value)
        page.locator(f"{slider} input[type=number]").press("Enter")
    page.locator("#itl-kv-start").click()
    expect(page.locator("#itl-kv-status")).to_contain_text("faster with the cache", timeout=120_000)
    snapshots = [json.loads(s) for s in dict.fromkeys(page.evaluate("window.itlSnapshots"))]
    for mode in ("cached", "uncached"):  # each curve was seen part-way through its run, growing
        partial = [s[mode] for s in snapshots if 0 < s.get(mode, 0) < 150]
        assert len(partial) >= 2 and partial == sorted(partial), f"{mode} did not grow live: {snapshots}"
    assert set(snapshots[-1]) == {"cached", "uncached"}
    expect(page.locator("#itl-kv-inspector")).to_contain_text("bytes")
    _assert_clean(recorded)


def test_an_example_click_discards_the_generated_sequence(app_url, new_page):
    """#13: Generate N, click an example, then Sampling's Generate continues from the example, not the old text."""
    from playwright.sync_api import expect

    recorded = _open(new_page, app_url)
    page = recorded.page
    page.get_by_role("tab", name="Next token").click()
    _set_prompt(page, "The capital of France is")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#itl-token-chips .itl-chip").first).to_be_visible()
    page.locator("#itl-generate").click()
    page.wait_for_function("() => { const t = document.querySelector('#itl-growing-text textarea');"
                           " return t && t.value.includes('capital of France is')"
                           " && t.value.length > 'The capital of France is'.length + 3; }")  # it grew
    generated = page.locator("#itl-growing-text textarea").input_value()
    page.get_by_text("Monday, Tuesday, Wednesday,", exact=True).first.click()
    expect(page.locator("#itl-prompt textarea")).to_have_value("Monday, Tuesday, Wednesday,")
    page.get_by_role("tab", name="Sampling").click()
    page.locator("#itl-sampling-generate").click()
    texts = page.locator("#itl-sampling-texts")
    expect(texts).to_contain_text("done")
    prompt_shown = texts.locator("td span").first.inner_text()
    assert prompt_shown == "Monday, Tuesday, Wednesday,", (prompt_shown, generated)
    _assert_clean(recorded)
