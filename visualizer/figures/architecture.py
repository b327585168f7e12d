"""Figures of the Architecture tab: collapsible module tree, parameter bars, memory and KV-cache text.

Everything here is static HTML, Markdown or a plotly figure: no JavaScript (``<details>`` folds the
tree), no fixed text colours (it inherits the theme's), every model-derived string html-escaped.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from visualizer.analysis.architecture import (
    ArchitectureReport,
    Breakdown,
    ConfigSummary,
    FusedSplit,
    KvCacheEstimate,
    ModuleNode,
)
from visualizer.figures.common import base_layout, plotly_text
from visualizer.figures.formatting import format_bytes

_ROLE_LABELS = {
    "causal_lm": "model", "backbone": "body", "embedding": "token embedding",
    "position_embedding": "position embedding", "embedding_norm": "embedding norm",
    "layers": "layer stack", "decoder_layer": "decoder layer",
    "attention": "attention", "qkv_fused": "fused Q/K/V", "q_proj": "query", "k_proj": "key", "v_proj": "value",
    "attn_out": "attention output", "rotary": "RoPE", "mlp": "MLP", "gated_mlp": "gated MLP",
    "gate_up_fused": "fused gate/up", "gate_proj": "gate", "up_proj": "up", "down_proj": "down",
    "mlp_in": "MLP in", "mlp_out": "MLP out", "activation": "activation", "attn_norm": "pre-attention norm",
    "mlp_norm": "pre-MLP norm", "attn_post_norm": "post-attention norm", "mlp_post_norm": "post-MLP norm",
    "qk_norm": "query/key norm", "final_norm": "final norm", "norm": "norm", "lm_head": "LM head",
    "dropout": "dropout", "moe": "mixture of experts", "router": "router", "experts": "experts",
    "expert": "expert", "shared_expert": "shared expert", "shared_expert_gate": "shared-expert gate",
    "project_in": "input projection", "project_out": "output projection",
}

# Category colours of the breakdown chart: readable on white and on dark backgrounds.
_CATEGORY_COLOURS = {
    "embedding": "#4C78A8", "position_embedding": "#72B7B2", "attention": "#F58518", "mlp": "#E45756",
    "norms": "#54A24B", "other": "#9D755D", "embedding_norm": "#54A24B", "final_norm": "#54A24B", "lm_head": "#B279A2",
}

# Inline styles only (gr.HTML renders innerHTML; no <style> or <script> needed). Greys are translucent
# so they work on light and dark themes; text colour is always inherited.
_TREE_STYLE = ("font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; "
               "line-height: 1.55; color: inherit;")
_CHILDREN_STYLE = "margin-left: 0.55em; padding-left: 1.1em; border-left: 1px solid rgba(128,128,128,0.35);"
_BODY_STYLE = ("margin: 2px 0 4px 1.1em; font-family: system-ui, sans-serif; font-size: 12.5px; "
               "opacity: 0.9; max-width: 60em;")
_CODE_STYLE = "background: rgba(128,128,128,0.16); border-radius: 3px; padding: 0 4px;"
_BADGE_STYLE = ("font-family: system-ui, sans-serif; font-size: 11px; border: 1px solid rgba(128,128,128,0.45); "
                "border-radius: 8px; padding: 0 6px; opacity: 0.8;")
_LEAF_MARKER = '<span style="display:inline-block;width:1.1em;opacity:0.5">&#8226;</span>'


# ---------------------------------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------------------------------

def format_count(n: int | float) -> str:
    """3821079552 -> '3.82 B', 124439808 -> '124 M', 39808 -> '39.8 K'."""
    for scale, suffix in ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def format_share(share: float) -> str:
    """0.316 -> '31.6%'; tiny but nonzero shares read '<0.1%' rather than a misleading '0.0%'."""
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share:.1%}"


def _decimals(value: float) -> int:
    return 0 if abs(value) >= 100 else (1 if abs(value) >= 10 else 2)


def _md(text: object) -> str:
    """Escape text for Markdown: HTML off, and the characters Markdown would read as syntax."""
    escaped = html.escape(str(text), quote=False)
    for char in "\\`*_[]|#":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


# ---------------------------------------------------------------------------------------------------
# Module tree
# ---------------------------------------------------------------------------------------------------

def _share_bar(share: float) -> str:
    pct = max(0.0, min(100.0, share * 100))
    return ('<span style="display:inline-block;width:56px;height:8px;margin:0 4px;vertical-align:middle;'
            'background:rgba(128,128,128,0.22);border-radius:2px;overflow:hidden">'
            f'<span style="display:block;height:100%;width:{pct:.2f}%;background:rgba(59,130,246,0.85)">'
            '</span></span>')


def _params_text(node: ModuleNode) -> str:
    if node.params_all_copies == 0:
        return '<span style="opacity:0.55">no parameters</span>'
    copies = node.repeat * node.multiplier
    if copies == 1:
        counts = f"{node.params_total:,} params"
    else:
        each = "per block" if node.is_folded else "each"
        counts = f"{node.params_total:,} params {each}, &#215;{copies} = {node.params_all_copies:,}"
    return (f'<span style="opacity:0.85">{counts}</span>{_share_bar(node.share)}'
            f'<span style="opacity:0.85">{format_share(node.share)}</span>')


def _summary_line(node: ModuleNode) -> str:
    name = html.escape(node.name)
    if node.is_folded:
        # The same marker print(model) uses: "(0-31): 32 x Phi3DecoderLayer".
        what = f'<b>{node.repeat} x {html.escape(node.class_name)}</b>'
    else:
        what = f'<span style="{_CODE_STYLE}">{html.escape(node.signature)}</span>'
    label = (f"<b>({name}):</b> " if node.is_folded else f"<b>{name}</b> ") if name else ""
    role = _ROLE_LABELS.get(node.role)
    badge = f' <span style="{_BADGE_STYLE}">{html.escape(role)}</span>' if role else ""
    return f"{label}{what}{badge} &#183; {_params_text(node)}"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _body(node: ModuleNode) -> str:
    parts = []
    if node.explanation:
        parts.append(f"<div>{html.escape(node.explanation)}</div>")
    for pname, shape in node.weight_shapes:
        tied = node.tied_to.get(pname)
        suffix = f" &#8212; tied to {html.escape(tied)} (counted there)" if tied else ""
        parts.append(f'<div><span style="{_CODE_STYLE}">{html.escape(pname)} {_shape_text(shape)}</span>'
                     f"{suffix}</div>")
    for note in node.notes:
        if node.tied_to and note.startswith(tuple(node.tied_to)):
            continue  # already said next to the weight
        parts.append(f"<div>&#9656; {html.escape(note)}</div>")
    return f'<div style="{_BODY_STYLE}">{"".join(parts)}</div>' if parts else ""


def _node_html(node: ModuleNode, depth: int, open_depth: int) -> str:
    body = _body(node)
    children = "".join(_node_html(child, depth + 1, open_depth) for child in node.children)
    if not body and not children:
        return f"<div>{_LEAF_MARKER}{_summary_line(node)}</div>"
    is_open = " open" if depth < open_depth or node.role == "layers" else ""
    title = html.escape(node.path or node.class_name, quote=True)
    inner = body + (f'<div style="{_CHILDREN_STYLE}">{children}</div>' if children else "")
    return (f'<details{is_open}><summary style="cursor:pointer" title="{title}">{_summary_line(node)}</summary>'
            f"{inner}</details>")


def module_tree_html(node: ModuleNode, open_depth: int = 2) -> str:
    """The module tree as nested <details>: click a line to see what the module does, its weight shapes
    and its children. Identical consecutive blocks appear once as "32 x Phi3DecoderLayer"."""
    legend = ('<div style="font-family:system-ui,sans-serif;font-size:12px;opacity:0.75;margin-bottom:6px">'
              "Click a line to expand it. Counts are per instance; &#215;N and the bar show all copies "
              "together as a share of the whole model. Tied weights are counted once.</div>")
    return f'<div class="itl-arch-tree" style="{_TREE_STYLE}">{legend}{_node_html(node, 0, open_depth)}</div>'


# ---------------------------------------------------------------------------------------------------
# Parameter breakdown
# ---------------------------------------------------------------------------------------------------

def parameter_breakdown_figure(breakdown: Breakdown) -> go.Figure:
    """Horizontal bars: parameters per part of the model, in model order from top to bottom."""
    items = list(breakdown.items)
    labels = [plotly_text(item.label) for item in items]
    counts = [item.n_params for item in items]
    text = [f"{format_count(item.n_params)} · {format_share(item.share)}" if item.n_params else
            ("tied: 0 extra" if item.key == "lm_head" and breakdown.tied_embeddings else "0")
            for item in items]
    notes = [plotly_text(item.note) if item.note else "" for item in items]
    fig = go.Figure(go.Bar(
        x=counts, y=labels, orientation="h", text=text, textposition="outside", cliponaxis=False,
        marker_color=[_CATEGORY_COLOURS.get(item.key, "#9D755D") for item in items],
        customdata=[[f"{item.n_params:,}", f"{item.share:.2%}", note] for item, note in zip(items, notes, strict=True)],
        hovertemplate="%{y}<br>%{customdata[0]} parameters (%{customdata[1]})<br>%{customdata[2]}"
                      "<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title=None)
    # Room on the right for the labels written outside the bars.
    fig.update_xaxes(title="parameters", range=[0, max(counts + [1]) * 1.3])
    title = f"Parameters: {breakdown.total:,} ({format_count(breakdown.total)})"
    if breakdown.tied_embeddings:
        title += " · embeddings tied"
    if breakdown.n_experts:
        title += f" · {format_count(breakdown.active_params)} active per token"
    fig = base_layout(fig, title, height=140 + 42 * len(items))
    fig.update_layout(margin=dict(l=170, r=30, t=50, b=50), showlegend=False)
    return fig


# ---------------------------------------------------------------------------------------------------
# Text panels
# ---------------------------------------------------------------------------------------------------

_DTYPE_NOTES = {
    "fp32": "full precision; how training keeps master weights",
    "bf16": "how most checkpoints ship and run on GPUs (fp16 is the same size)",
    "int8": "8-bit quantised",
    "int4": "4-bit quantised, two weights per byte",
}


def weight_memory_markdown(memory: dict[str, int], n_params: int) -> str:
    """Table: bytes to hold the weights in each dtype."""
    lines = [f"**Weight memory for {n_params:,} parameters**", "",
             "| dtype | bytes / parameter | weights | |", "|---|---|---|---|"]
    for dtype, nbytes in memory.items():
        per = nbytes / n_params if n_params else 0
        lines.append(f"| {_md(dtype)} | {per:g} | {format_bytes(nbytes)} ({nbytes:,} bytes) | "
                     f"{_md(_DTYPE_NOTES.get(dtype, ''))} |")
    lines += ["", "Weights only: activations, the KV cache and framework overhead come on top. The int8/int4 "
              "rows leave out the per-group scales that real quantisation formats add (about 0.5 bit per "
              "weight)."]
    return "\n".join(lines)


def kv_cache_markdown(estimate: KvCacheEstimate) -> str:
    """The KV-cache calculator's result with the formula written out, and why the d_model shortcut is off."""
    dims, nbytes = estimate.dims, estimate.bytes_per_value
    dtype = f" {_md(estimate.dtype)}" if estimate.dtype else ""
    seq = "sequence" if estimate.batch == 1 else "sequences"
    lines = [
        f"**KV cache: {estimate.bytes:,} bytes ({format_bytes(estimate.bytes)})** for {estimate.tokens:,} tokens "
        f"x {estimate.batch} {seq}{dtype}",
        "",
        f"2 (K and V) x {dims.n_layers} layers x {estimate.batch} batch x {estimate.tokens:,} tokens x "
        f"{dims.n_kv_heads} KV heads x {dims.d_head} d\\_head x {nbytes:g} bytes = {estimate.bytes:,} bytes",
        "",
        f"Each new token of one sequence adds {estimate.bytes_per_token:,} bytes "
        f"({format_bytes(estimate.bytes_per_token)}): one key and one value vector of "
        f"{dims.n_kv_heads} x {dims.d_head} = {dims.d_kv:,} numbers in every layer "
        f"({_md(dims.describe_kv_sharing())}).",
        "",
        _naive_formula_text(estimate),
    ]
    for note in estimate.notes:
        lines += ["", _md(note)]
    if estimate.sliding_bytes is not None and estimate.sliding_bytes != estimate.bytes:
        lines += ["", f"With the sliding window respected (as transformers' DynamicCache does), the cache at "
                      f"this length is {estimate.sliding_bytes:,} bytes ({format_bytes(estimate.sliding_bytes)})."]
    return "\n".join(lines)


def _naive_formula_text(estimate: KvCacheEstimate) -> str:
    dims, naive = estimate.dims, estimate.naive_bytes
    shortcut = (f"The shortcut 2 x layers x tokens x d\\_model x bytes (d\\_model = {dims.d_model:,}) gives "
                f"{naive:,} bytes ({format_bytes(naive)})")
    if naive == estimate.bytes:
        return (f"{shortcut}, the same here: every query head has its own key/value head and "
                f"n\\_heads x d\\_head = d\\_model.")
    ratio = naive / estimate.bytes if estimate.bytes else float("inf")
    if dims.n_kv_heads < dims.n_heads and dims.d_q == dims.d_model:
        why = (f"it assumes one key/value head per query head, but with {dims.kv_sharing} attention "
               f"{dims.n_heads} query heads share {dims.n_kv_heads} key/value head(s), so it over-counts by "
               f"n\\_heads / n\\_kv\\_heads = {dims.n_heads} / {dims.n_kv_heads} = {ratio:g}x.")
    else:
        direction = "over-counts" if ratio > 1 else "under-counts"
        why = (f"it {direction} by {ratio:.3g}x = d\\_model / (n\\_kv\\_heads x d\\_head) = {dims.d_model:,} / "
               f"({dims.n_kv_heads} x {dims.d_head}): this config sets d\\_head = {dims.d_head} explicitly "
               f"instead of d\\_model / n\\_heads, and has {dims.n_kv_heads} key/value heads for "
               f"{dims.n_heads} query heads.")
    return f"{shortcut}: {why} Only keys and values are cached, and they are n\\_kv\\_heads x d\\_head wide."


def config_summary_markdown(summary: ConfigSummary) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {_md(label)} | {_md(value)} |" for label, value in summary.rows()]
    return "\n".join(lines)


def fused_projections_markdown(splits: tuple[FusedSplit, ...] | list[FusedSplit]) -> str:
    """One paragraph per fused projection: which output columns are Q/K/V or gate/up, and why."""
    if not splits:
        return ("No fused projections: queries, keys and values (and the MLP's matrices) are separate "
                "Linear layers in this model.")
    blocks = []
    for split in splits:
        where = f"in each of the {split.n_copies} layers" if split.n_copies > 1 else "once"
        parts = " | ".join(f"{_md(label)} {size:,}" for label, size in split.parts)
        blocks.append(
            f"**{_md(split.path)}** ({_md(split.class_name)} {split.d_in:,} -> {split.d_out:,}, {where}): "
            f"{parts}  \n{_md(split.formula)}.  \nLayout: {_md(split.layout)}.")
    return "\n\n".join(blocks)


def architecture_overview_markdown(report: ArchitectureReport) -> str:
    """One line for the top of the tab."""
    s = report.summary
    source = "built from the config on the meta device (no weights loaded)" if report.on_meta else "loaded model"
    experts = ""
    if s.n_experts:
        experts = (f", {s.n_experts} experts with {s.n_experts_per_token} active per token "
                   f"({s.active_params:,} = {format_count(s.active_params)} parameters used per token)")
    return (f"**{_md(s.name)}** ({_md(s.architecture)}, {source}): {report.n_params:,} parameters "
            f"({format_count(report.n_params)}), {s.n_layers} layers, d\\_model {s.d_model:,}, "
            f"{s.n_heads} heads ({s.n_kv_heads} KV, {_md(s.kv_sharing)}){experts}, vocabulary {s.d_vocab or 0:,}.")
