"""bertviz iframes: local scripts only, escaped payload, bounded size (no browser; see tests/browser)."""

from __future__ import annotations

import functools
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.figures import bertviz_embed
from visualizer.figures.bertviz_embed import (
    FILE_URL_PREFIX,
    BertvizUnavailable,
    bertviz_static_paths,
    estimate_html_bytes,
    head_view_html,
    model_view_html,
)

XSS_TOKEN = "</script><img src=x onerror=alert(1)>"
NASTY_TOKENS = [XSS_TOKEN, "<!--<script>", "\"'&amp;", "]]>\u2028\u2029", "<svg onload=alert(2)>"]
VIEWS = [head_view_html, model_view_html]
CDN_PATTERN = re.compile(r"cdnjs|unpkg|jsdelivr|googleapis|cloudflare", re.IGNORECASE)


class _TagParser(HTMLParser):
    """Collects iframes (attributes unescaped, as the browser reads them) and script tags."""

    def __init__(self) -> None:
        super().__init__()
        self.iframes: list[dict[str, str | None]] = []
        self.script_srcs: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe":
            self.iframes.append(dict(attrs))
        if tag == "script":
            self.script_srcs.append(dict(attrs).get("src"))


def _parse(markup: str) -> _TagParser:
    parser = _TagParser()
    parser.feed(markup)
    parser.close()
    return parser


def _iframe_attrs(iframe: str) -> dict[str, str | None]:
    iframes = _parse(iframe).iframes
    assert len(iframes) == 1
    return iframes[0]


def _srcdoc(iframe: str) -> str:
    return _iframe_attrs(iframe)["srcdoc"]


def _params(doc: str) -> dict:
    """The params object the view script receives, decoded as JavaScript would read the literal."""
    start = doc.index("const params = ") + len("const params = ")
    params, _ = json.JSONDecoder().raw_decode(doc, start)
    return params


@functools.cache
def _llama_attention(n_tokens: int) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """Real attention of the tiny llama: tuple of [1, head, query, key] per layer, and its token strings."""
    tokenizer = tiny_tokenizer()
    text = "The capital of France is Paris. " * 40
    token_ids = tokenizer(text, return_tensors="pt").input_ids[:, :n_tokens]
    with torch.inference_mode():
        outputs = tiny_model("llama")(token_ids, output_attentions=True)
    return outputs.attentions, tokenizer.convert_ids_to_tokens(token_ids[0].tolist())


def _random_attention(n_layers: int, n_heads: int, n_tokens: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    weights = np.tril(rng.random((n_layers, n_heads, n_tokens, n_tokens)))  # causal
    return weights / weights.sum(-1, keepdims=True)


# ---------------------------------------------------------------- assets and URLs


def test_static_paths_are_the_three_existing_script_files() -> None:
    paths = [Path(p) for p in bertviz_static_paths()]
    assert [p.name for p in paths] == ["d3.v5.min.js", "jquery.min.js", "amd-shim.js"]
    assert all(p.is_absolute() and p.is_file() for p in paths)
    # bertviz's views were written for d3 5.7 (its require.config pointed at d3/5.7.0)
    assert "v5.7" in paths[0].read_text(encoding="utf-8")[:200]
    assert "requirejs" in paths[2].read_text(encoding="utf-8")


@pytest.mark.parametrize("view", VIEWS)
def test_page_loads_scripts_only_from_the_app(view) -> None:
    attentions, token_strs = _llama_attention(8)
    iframe = view(attentions, token_strs)
    doc = _srcdoc(iframe)
    assert not CDN_PATTERN.search(iframe) and not CDN_PATTERN.search(doc)
    srcs = [src for src in _parse(doc).script_srcs if src is not None]
    assert srcs == [FILE_URL_PREFIX + path for path in bertviz_static_paths()]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", doc)
    assert _iframe_attrs(iframe)["sandbox"] == "allow-scripts"


@pytest.fixture
def d3_moved(monkeypatch):
    """mpld3 as if a release had moved its d3 file: the path the module looks for is not there."""
    monkeypatch.setattr(bertviz_embed, "D3_IN_MPLD3", Path("js") / "d3.v99.min.js")
    bertviz_embed._asset_files.cache_clear()
    yield
    bertviz_embed._asset_files.cache_clear()


def test_a_moved_script_turns_off_only_the_bertviz_views(d3_moved) -> None:
    assert bertviz_static_paths(missing_ok=True) == []  # the page still starts
    with pytest.raises(BertvizUnavailable, match=r"bertviz views are unavailable: script not found: d3 \(.*"
                                                  r"d3\.v99\.min\.js\); reinstall the pinned packages"):
        bertviz_static_paths()
    for view in VIEWS:  # a ValueError: the page shows it as a message where the views would be
        with pytest.raises(ValueError, match="bertviz views are unavailable"):
            view(_random_attention(1, 1, 2), ["a", "b"])


# ---------------------------------------------------------------- escaping


@pytest.mark.parametrize("view", VIEWS)
def test_hostile_tokens_stay_inside_the_json_string(view) -> None:
    attention = _random_attention(1, 2, len(NASTY_TOKENS))
    iframe = view(attention, NASTY_TOKENS)
    doc = _srcdoc(iframe)
    # the only script elements are the 3 library tags and the view script: nothing opened or closed
    assert len(_parse(doc).script_srcs) == 4
    assert doc.lower().count("</script") == 4
    assert "<img" not in doc and "<svg" not in doc and "<!--" not in doc
    # ...and JavaScript still receives every token exactly
    params = _params(doc)
    assert params["attention"][0]["left_text"] == NASTY_TOKENS
    assert params["attention"][0]["right_text"] == NASTY_TOKENS


@pytest.mark.parametrize("view", VIEWS)
def test_srcdoc_attribute_is_fully_escaped(view) -> None:
    iframe = view(_random_attention(1, 2, len(NASTY_TOKENS)), NASTY_TOKENS)
    raw_srcdoc = re.search(r'srcdoc="([^"]*)"></iframe>$', iframe)
    assert raw_srcdoc is not None, "srcdoc must be the last attribute, quoted, with no raw quote inside"
    assert "<" not in raw_srcdoc.group(1) and ">" not in raw_srcdoc.group(1)
    assert iframe.count("<") == 2  # <iframe ...> and </iframe>


@pytest.mark.parametrize("view", VIEWS)
def test_view_scripts_insert_token_text_with_d3_text_not_html(view) -> None:
    doc = _srcdoc(view(_random_attention(1, 1, 2), ["a", "b"]))
    assert ".text(" in doc
    assert ".html(" not in doc and "innerHTML" not in doc and "insertAdjacentHTML" not in doc


# ---------------------------------------------------------------- content


def test_params_carry_the_rounded_attention_of_the_chosen_layers() -> None:
    attentions, token_strs = _llama_attention(12)
    params = _params(_srcdoc(head_view_html(attentions, token_strs, layers=[1], initial_layer=1)))
    attn = np.array(params["attention"][0]["attn"])  # [layer, head, query_pos, key_pos]
    np.testing.assert_array_equal(attn[0], np.round(attentions[1][0].double().numpy(), 3))
    assert params["include_layers"] == [1] and params["layer"] == 1
    # causal model: no weight on later positions; rows still sum to ~1 after rounding
    assert np.all(np.triu(attn, k=1) == 0)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=0.003 * 12)
    # prettified like bertviz: the byte-level BPE space marker becomes a space
    assert params["attention"][0]["left_text"] == [t.replace("Ġ", " ") for t in token_strs]


def test_model_view_keeps_only_the_chosen_heads() -> None:
    attentions, token_strs = _llama_attention(10)
    params = _params(_srcdoc(model_view_html(attentions, token_strs, layers=[0, 1], heads=[3, 1])))
    attn = np.array(params["attention"][0]["attn"])
    assert attn.shape == (2, 2, 10, 10)
    np.testing.assert_array_equal(attn[1, 0], np.round(attentions[1][0, 3].double().numpy(), 3))
    assert params["include_heads"] == [3, 1] and params["include_layers"] == [0, 1]


def test_every_attention_layout_gives_the_same_page() -> None:
    attentions, token_strs = _llama_attention(9)
    layouts = [
        attentions,  # transformers: tuple of [1, head, q, k] tensors
        [a[0].numpy() for a in attentions],  # list of [head, q, k] arrays
        torch.cat(attentions).numpy(),  # [layer, head, q, k]
        torch.stack(attentions),  # [layer, 1, head, q, k]
    ]
    pages = {head_view_html(layout, token_strs) for layout in layouts}
    assert len(pages) == 1
    assert len({model_view_html(layout, token_strs) for layout in layouts}) == 1


def test_bfloat16_attention_is_accepted() -> None:
    attentions, token_strs = _llama_attention(6)
    page = model_view_html([a.to(torch.bfloat16) for a in attentions], token_strs)
    assert np.array(_params(_srcdoc(page))["attention"][0]["attn"]).shape == (2, 4, 6, 6)


def test_weights_are_rounded_to_the_requested_decimals() -> None:
    attentions, token_strs = _llama_attention(16)
    for decimals in (2, 3):
        attn = np.array(_params(_srcdoc(head_view_html(attentions, token_strs, decimals=decimals)))
                        ["attention"][0]["attn"])
        np.testing.assert_array_equal(attn, np.round(attn, decimals))


def test_iframe_height_grows_with_tokens_and_model_view_with_layers() -> None:
    def height(iframe: str) -> int:
        return int(re.search(r"height:(\d+)px", _iframe_attrs(iframe)["style"]).group(1))

    short, long = _random_attention(4, 4, 8), _random_attention(4, 4, 32)
    tokens = [f"t{i}" for i in range(32)]
    assert height(head_view_html(long, tokens)) > height(head_view_html(short, tokens[:8]))
    assert height(model_view_html(long, tokens, layers=[0, 1, 2, 3])) > height(
        model_view_html(long, tokens, layers=[0]))


# ---------------------------------------------------------------- bounds


@pytest.mark.parametrize("view", VIEWS)
def test_too_many_tokens_names_the_count_and_the_limit(view) -> None:
    attention = _random_attention(1, 2, 20)
    with pytest.raises(ValueError, match=r"20 tokens.*at most 16"):
        view(attention, [f"t{i}" for i in range(20)], max_tokens=16)


def test_default_token_limit_is_64() -> None:
    attention = _random_attention(1, 1, 65)
    with pytest.raises(ValueError, match=r"65 tokens.*at most 64"):
        head_view_html(attention, ["x"] * 65)
    head_view_html(attention[..., :64, :64], ["x"] * 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(layers=[5]), r"Layer\(s\) \[5\] do not exist"),
        (dict(layers=[]), "at least one layer"),
        (dict(layers=[0, 0]), "twice"),
        (dict(max_layers=1), r"2 layers selected.*at most 1"),
        (dict(max_heads=3), r"4 heads selected.*at most 3"),
        (dict(heads=[4]), "distinct heads"),
        (dict(max_bytes=10_000), r"MB of HTML \(limit"),
    ],
)
def test_bad_selections_raise_value_error(kwargs, message) -> None:
    attention = _random_attention(2, 4, 8)
    with pytest.raises(ValueError, match=message):
        model_view_html(attention, [f"t{i}" for i in range(8)], **kwargs)


def test_head_view_checks_its_initial_selection() -> None:
    attention, tokens = _random_attention(3, 4, 5), list("abcde")
    with pytest.raises(ValueError, match="Initial layer 2"):
        head_view_html(attention, tokens, layers=[0, 1], initial_layer=2)
    for initial_heads in ([7], []):
        with pytest.raises(ValueError, match="Initial heads"):
            head_view_html(attention, tokens, initial_heads=initial_heads)
    params = _params(_srcdoc(head_view_html(attention, tokens, layers=[2, 0], initial_layer=0,
                                            initial_heads=[1, 3])))
    assert params["layer"] == 0 and params["heads"] == [1, 3] and params["include_layers"] == [2, 0]


def test_shape_mismatches_raise_value_error() -> None:
    with pytest.raises(ValueError, match="covers 5 positions but 4 token strings"):
        head_view_html(_random_attention(1, 2, 5), list("abcd"))
    with pytest.raises(ValueError, match="expected attention of shape"):
        head_view_html([np.ones((2, 5))], list("abcde"))
    with pytest.raises(ValueError, match="No attention weights"):
        head_view_html((), list("abcde"))  # what sdpa attention returns
    with pytest.raises(ValueError, match="No attention weights"):
        model_view_html(None, list("abcde"))
    with pytest.raises(ValueError, match="No tokens"):
        head_view_html(_random_attention(1, 1, 1)[..., :0, :0], [])


def test_size_cap_refuses_large_pages_and_the_estimate_bounds_the_size() -> None:
    attentions, token_strs = _llama_attention(64)
    page = head_view_html(attentions, token_strs)
    assert len(page) <= estimate_html_bytes(2, 4, 64) < 2 * len(page)
    with pytest.raises(ValueError, match="MB of HTML"):
        head_view_html(attentions, token_strs, max_bytes=len(page) - 1)
    # a layer x head x token^2 count that is over the cap whatever the weights is refused up front
    with pytest.raises(ValueError, match="more than"):
        model_view_html(_random_attention(8, 8, 64), ["x"] * 64, max_bytes=500_000, max_lines=10**6)


def test_line_limit_counts_one_layer_for_the_head_view_and_all_layers_for_the_model_view() -> None:
    attention, tokens = _random_attention(3, 4, 10), [f"t{i}" for i in range(10)]  # 400 lines per layer
    head_view_html(attention, tokens, max_lines=400)
    model_view_html(attention, tokens, layers=[0], max_lines=400)
    with pytest.raises(ValueError, match=r"would draw 1,200 attention lines \(limit 400\)"):
        model_view_html(attention, tokens, max_lines=400)
    with pytest.raises(ValueError, match=r"would draw 400 attention lines \(limit 399\)"):
        head_view_html(attention, tokens, max_lines=399)
