"""Architecture figures: the tree HTML folds, nests and escapes; the bar chart adds up; texts show the numbers."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import plotly.graph_objects as go
import pytest

from tests.tiny_models import ARCHITECTURES, tiny_model
from visualizer.analysis.architecture import (
    KNOWN_CONFIGS_DIR,
    ModuleNode,
    describe_architecture,
    describe_config_json,
    describe_known_model,
    kv_cache_estimate,
)
from visualizer.figures.architecture import (
    architecture_overview_markdown,
    config_summary_markdown,
    format_bytes,
    format_count,
    format_share,
    fused_projections_markdown,
    kv_cache_markdown,
    module_tree_html,
    parameter_breakdown_figure,
    weight_memory_markdown,
)

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


class _TagCounter(HTMLParser):
    """Counts tags and checks that every opened tag is closed in order."""

    VOID = {"br", "img", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _parse(markup: str) -> _TagCounter:
    parser = _TagCounter()
    parser.feed(markup)
    parser.close()
    return parser


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_tree_html_is_well_formed_and_folds_layers(name):
    model = tiny_model(name)
    report = describe_architecture(model)
    markup = module_tree_html(report.tree)
    parsed = _parse(markup)
    assert not parsed.errors and not parsed.stack
    assert parsed.counts["details"] == parsed.counts["summary"]
    assert "script" not in parsed.counts
    layer = next(node for node in report.tree.walk() if node.is_folded)
    assert f"{layer.repeat} x {layer.class_name}" in markup
    assert f"{report.n_params:,} params" in markup


def test_phi3_tree_html_shows_shapes_and_fold():
    report = describe_known_model("Phi-3-mini-4k-instruct")
    markup = module_tree_html(report.tree)
    assert "32 x Phi3DecoderLayer" in markup
    # torch's own signatures, as print(model) shows them (#13).
    assert "Embedding(32064, 3072, padding_idx=32000)" in markup
    assert "Linear(in_features=3072, out_features=9216, bias=False)" in markup
    assert "Linear(in_features=3072, out_features=16384, bias=False)" in markup
    assert "Q 3072 + K 3072 + V 3072" in markup and "gate 8192 + up 8192" in markup
    assert "3,821,079,552 params" in markup
    assert "weight [32064, 3072]" in markup


def test_tree_html_marks_tied_weights():
    markup = module_tree_html(describe_architecture(tiny_model("gpt2")).tree)
    assert "tied to transformer.wte.weight" in markup


def test_tree_html_escapes_everything():
    leaf = ModuleNode(name=XSS, path=XSS, class_name=XSS, signature=XSS, role="other", explanation=XSS,
                      params_own=3, params_total=3, share=0.5, weight_shapes=[(XSS, (3,))], notes=[XSS])
    folded = ModuleNode(name="0-1", path="x.0", class_name="Evil<b>Layer", signature="s", role="decoder_layer",
                        explanation="e", params_own=0, params_total=3, share=1.0, repeat=2, children=[leaf])
    root = ModuleNode(name="", path="", class_name="Root", signature="Root", role="causal_lm", explanation="",
                      params_own=0, params_total=6, share=1.0, children=[folded])
    markup = module_tree_html(root)
    assert "<script" not in markup and "<img" not in markup and "<b>Layer" not in markup
    assert "&lt;script&gt;" in markup
    assert "2 x Evil&lt;b&gt;Layer" in markup
    assert not _parse(markup).errors


def test_pasted_config_name_is_escaped_in_text():
    data = json.loads((KNOWN_CONFIGS_DIR / "gpt2.json").read_text()) | {"_name_or_path": XSS, "n_layer": 2}
    report = describe_config_json(json.dumps(data))
    for text in (architecture_overview_markdown(report), config_summary_markdown(report.summary)):
        assert "<script" not in text and "<img" not in text


@pytest.mark.parametrize("name", ["Phi-3-mini-4k-instruct", "gpt2"])
def test_breakdown_figure(name):
    breakdown = describe_known_model(name).breakdown
    fig = parameter_breakdown_figure(breakdown)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 and fig.data[0].orientation == "h"
    assert sum(fig.data[0].x) == breakdown.total
    assert list(fig.data[0].y) == [item.label for item in breakdown.items]
    assert fig.layout.height and fig.layout.height >= 300
    assert "parameters" in fig.data[0].hovertemplate
    assert f"{breakdown.total:,}" in fig.layout.title.text


def test_breakdown_figure_says_tied():
    fig = parameter_breakdown_figure(describe_known_model("gpt2").breakdown)
    assert "tied" in fig.layout.title.text
    assert fig.data[0].text[list(fig.data[0].y).index("LM head")].startswith("tied")


def test_weight_memory_markdown():
    report = describe_known_model("Llama-3.1-8B")
    text = weight_memory_markdown(report.weight_memory, report.n_params)
    for dtype in ("fp32", "bf16", "int8", "int4"):
        assert f"| {dtype} |" in text
    assert f"{2 * 8_030_261_248:,} bytes" in text


def test_kv_cache_markdown_phi3_mha():
    spec = describe_known_model("Phi-3-mini-4k-instruct").kv_spec
    text = kv_cache_markdown(kv_cache_estimate(spec, tokens=1000, batch=1, dtype="fp16"))
    assert "393,216,000 bytes" in text and "375 MiB" in text
    assert "the same here" in text


def test_kv_cache_markdown_gqa_explains_overcount():
    spec = describe_known_model("Llama-3.1-8B").kv_spec
    text = kv_cache_markdown(kv_cache_estimate(spec, tokens=1000, batch=1, dtype="fp16"))
    assert "131,072,000 bytes" in text
    assert "524,288,000" in text and "32 / 8 = 4x" in text and "over-counts" in text


def test_kv_cache_markdown_gemma_notes_hybrid_and_explicit_head_dim():
    spec = describe_known_model("gemma-2-2b").kv_spec
    text = kv_cache_markdown(kv_cache_estimate(spec, tokens=8000, batch=1, dtype="bf16"))
    assert "d\\_head = 256 explicitly" in text
    assert "Hybrid attention" in text and "sliding window respected" in text


def test_fused_and_summary_markdown():
    report = describe_known_model("Phi-3-mini-4k-instruct")
    fused = fused_projections_markdown(report.fused)
    assert "Q 3,072 | K 3,072 | V 3,072" in fused and "gate 8,192 | up 8,192" in fused
    assert "No fused projections" in fused_projections_markdown(describe_known_model("Llama-3.1-8B").fused)
    summary = config_summary_markdown(report.summary)
    assert "| Layers (n\\_layers) | 32 |" in summary and "| d\\_head | 96 |" in summary


def test_formatters():
    assert format_count(3_821_079_552) == "3.82 B" and format_count(124_439_808) == "124 M"
    assert format_bytes(393_216_000) == "375 MiB" and format_bytes(512) == "512 B"
    assert format_share(0.0003) == "<0.1%" and format_share(0) == "0.0%" and format_share(0.316) == "31.6%"


def test_mixtral_tree_and_texts_name_experts():
    report = describe_known_model("Mixtral-8x7B-v0.1")
    markup = module_tree_html(report.tree)
    assert "router" in markup and "experts" in markup and "8 experts, 2 active per token" in markup
    overview = architecture_overview_markdown(report)
    assert "8 experts with 2 active per token" in overview and "12,879,925,248" in overview
    assert "active per token" in parameter_breakdown_figure(report.breakdown).layout.title.text
    assert "| Experts | 8 (2 active per token) |" in config_summary_markdown(report.summary)


def test_kv_cache_markdown_falcon_40b_grouped_query():
    report = describe_known_model("falcon-40b")
    text = kv_cache_markdown(kv_cache_estimate(report.dims, tokens=1000, batch=1, dtype="fp16"))
    assert "8 KV heads x 64 d\\_head" in text and "122,880 bytes" in text
    assert "128 / 8 = 16x" in text and "expands them to 128 heads" in text
    assert "grouped-query" in architecture_overview_markdown(report)
