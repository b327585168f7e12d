"""bertviz's head view and model view as sandboxed iframes for a ``gr.HTML`` component, with no network.

bertviz 1.4.1 (``head_view``/``model_view`` with ``html_action="return"``) fetches RequireJS, d3 5.7 and
jQuery from a public CDN and pastes ``json.dumps(params)`` into an inline ``<script>``; ``json.dumps`` leaves
``</script>`` alone, so a token like ``</script><img src=x onerror=alert(1)>`` would end the script
and run. So we do not call bertviz's Python functions; we build the page ourselves around bertviz's
own view scripts (``bertviz/head_view.js`` and ``model_view.js``, read from the installed package):

- d3 comes from the ``mpld3`` package (``mpld3/js/d3.v5.min.js``, d3 5.7.0), jQuery from
  ``xstatic-jquery``, and RequireJS is replaced by the project's few-line ``assets/amd-shim.js``.
  The files are located at run time and served by the app: pass :func:`bertviz_static_paths` to
  ``gr.set_static_paths`` and the page loads them from ``gradio_api/file=<absolute path>``. The URL is
  relative (no leading slash): a ``srcdoc`` document resolves it against the parent page, which keeps
  it right when the app is served under a sub-path.
- The JSON params are escaped for an inline script (``<``, ``>``, ``&`` become ``\\u003c`` etc., which
  JavaScript reads back as the same string) and the whole page is html-escaped into ``srcdoc``. The
  views put token text into the page with d3 ``.text()`` only, never ``.html()``.
- The page runs in ``<iframe sandbox="allow-scripts">``: an opaque origin, so even a script that did
  run could not reach the app's page, cookies or storage.
- The JSON grows as layers x heads x tokens^2, so token, layer and head counts are bounded and the
  page size is capped; weights are rounded (in float64: float32 values print with long decimals).

This module does not import torch: torch tensors are read through ``.detach()`` (duck typing).
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np

DEFAULT_MAX_TOKENS = 64
DEFAULT_MAX_LAYERS = 32
DEFAULT_MAX_HEADS = 32
DEFAULT_MAX_HTML_BYTES = 4_000_000
# Every weight becomes an SVG <line>; Chromium took ~14 s for 131k lines (head view, 32 heads x 64
# tokens) and ~25 s for 262k (model view, 2 layers x 32 heads x 64 tokens) on a loaded 2-core machine.
DEFAULT_MAX_LINES = 150_000
DEFAULT_DECIMALS = 3

# Gradio serves files registered with gr.set_static_paths at <app root>/gradio_api/file=<abs path>.
FILE_URL_PREFIX = "gradio_api/file="

_ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
_PARAMS_MARKER = "const params = PYTHON_PARAMS;"  # bertviz's template slot (bertviz/*_view.js)
_VIEW_ID = "bertviz-view"  # one view per iframe document, so a fixed id is enough

# Layout constants copied from the view scripts, to size the iframe to what they draw.
_HEAD_BOX_HEIGHT, _HEAD_TEXT_TOP = 22.5, 30  # head_view.js BOXHEIGHT, TEXT_TOP
_MODEL_AXIS = 15 + 5 + 13 + 5  # model_view.js HEADING_TEXT_SIZE + HEADING_PADDING + TEXT_SIZE + TEXT_PADDING
_MODEL_DETAIL_BOX_HEIGHT, _MODEL_DETAIL_EXTRA = 18, 2 * 15 + 25  # DETAIL_BOX_HEIGHT, padding + heading
_MODEL_MIN_GRID_COLUMNS = 12  # model_view.js sizes thumbnails for `total_heads` columns (BERT-base: 12)
_PAGE_MARGIN_PX = 40

# Bytes of JSON per rounded weight: "0.0," is the shortest; "0.123," the longest for weights in [0, 1].
_MIN_BYTES_PER_WEIGHT = 4
_MAX_BYTES_PER_WEIGHT = 6
_PAGE_OVERHEAD_BYTES = 24_000  # view script + markup, escaped into srcdoc (measured 16.8 / 21.1 kB)

# Characters that must not appear raw inside an inline <script>: they could close the element or
# open a comment. Inside JSON strings \u003c etc. decode to the same characters.
_SCRIPT_SAFE_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                                   "\u2028": "\\u2028", "\u2029": "\\u2029"})


# ---------------------------------------------------------------- assets


class BertvizUnavailable(ValueError):
    """A script the bertviz views need is not installed where it should be: only these views are off.

    A ValueError, so the page shows the message where the views would be and keeps every other view working.
    """


_REINSTALL = "reinstall the pinned packages (pip install -r requirements.txt)"
D3_IN_MPLD3 = Path("js") / "d3.v5.min.js"  # where mpld3 0.5.12 keeps d3 5.7 (mpld3 is pinned for this file)


def _package_dir(module_name: str, pip_name: str) -> Path:
    """Directory of an installed package, found without importing it (mpld3 would import matplotlib)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        raise BertvizUnavailable(f"The bertviz views are unavailable: the '{pip_name}' package is not installed; "
                                 f"{_REINSTALL}.")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


@functools.lru_cache(maxsize=1)
def _asset_files() -> dict[str, Path]:
    """The three scripts the iframe loads, in load order: d3, jQuery, then the AMD shim."""
    try:
        from xstatic.pkg import jquery as xstatic_jquery
    except ImportError:
        raise BertvizUnavailable("The bertviz views are unavailable: the 'xstatic-jquery' package is not "
                                 f"installed; {_REINSTALL}.") from None
    files = {
        "d3": _package_dir("mpld3", "mpld3") / D3_IN_MPLD3,
        "jquery": Path(xstatic_jquery.BASE_DIR).resolve() / "jquery.min.js",
        "amd_shim": _ASSETS_DIR.resolve() / "amd-shim.js",
    }
    missing = [f"{name} ({path})" for name, path in files.items() if not path.is_file()]
    if missing:
        raise BertvizUnavailable(f"The bertviz views are unavailable: script not found: {', '.join(missing)}; "
                                 f"{_REINSTALL}.")
    return files


def bertviz_static_paths(missing_ok: bool = False) -> list[str]:
    """Absolute paths to pass to ``gr.set_static_paths``: exactly the three script files, nothing else.

    Individual files rather than their directories, so the app exposes no more than the views load.
    ``missing_ok``: [] when a script is missing (the views then raise :class:`BertvizUnavailable` when drawn).
    """
    try:
        return [str(path) for path in _asset_files().values()]
    except BertvizUnavailable:
        if missing_ok:
            return []
        raise


def _file_url(path: Path) -> str:
    return FILE_URL_PREFIX + quote(path.as_posix(), safe="/:")


@functools.lru_cache(maxsize=2)
def _view_script(name: Literal["head_view", "model_view"]) -> str:
    """bertviz's view script with its CDN ``require.config`` removed; params go in at _PARAMS_MARKER."""
    source = (_package_dir("bertviz", "bertviz") / f"{name}.js").read_text(encoding="utf-8")
    source, n_configs = re.subn(r"require\.config\(\{.*?\}\);", "// d3, jQuery: loaded by the page itself",
                                source, count=1, flags=re.DOTALL)
    fetches = re.search(r"""['"]https?://""", source)  # a quoted URL would be fetched; comments may cite sources
    unexpected = fetches or "</script" in source.lower() or "<!--" in source
    if n_configs != 1 or source.count(_PARAMS_MARKER) != 1 or unexpected:
        raise BertvizUnavailable(f"The bertviz views are unavailable: bertviz/{name}.js is not the layout this "
                                 f"module was written for (bertviz 1.4.1); {_REINSTALL}.")
    return source


# ---------------------------------------------------------------- inputs


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor (bf16 has no numpy dtype, hence .float())
        array = array.detach().to("cpu").float().numpy()
    return np.asarray(array, dtype=np.float64)


def _select_layers(attention: Any, layers: Sequence[int] | None) -> tuple[list[int], list[np.ndarray]]:
    """Picks the wanted layers (converting only those) -> (layer indices, list of [head, query, key])."""
    if attention is None:
        attention = ()
    if hasattr(attention, "ndim") and attention.ndim in (4, 5):  # [layer, (1,) head, query, key]
        attention = list(attention)
    n_layers = len(attention)
    if n_layers == 0:  # sdpa attention returns an empty tuple
        raise ValueError("No attention weights: run the model with output_attentions=True "
                         "and eager attention.")
    layer_indices = list(range(n_layers)) if layers is None else [int(layer) for layer in layers]
    if not layer_indices:
        raise ValueError("Choose at least one layer.")
    bad = [layer for layer in layer_indices if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"Layer(s) {bad} do not exist: the model has layers 0..{n_layers - 1}.")
    if len(set(layer_indices)) != len(layer_indices):
        raise ValueError(f"Layers are listed twice: {layer_indices}.")
    selected = []
    for layer in layer_indices:
        weights = _to_numpy(attention[layer])
        if weights.ndim == 4 and weights.shape[0] == 1:  # [1, head, query, key] as transformers returns it
            weights = weights[0]
        if weights.ndim != 3 or weights.shape[1] != weights.shape[2]:
            raise ValueError(f"Layer {layer}: expected attention of shape [head, query, key] "
                             f"(or [1, head, query, key]) with query == key, got {list(weights.shape)}.")
        selected.append(weights)
    if len({weights.shape for weights in selected}) != 1:
        raise ValueError(f"Layers have different attention shapes: {[list(w.shape) for w in selected]}.")
    return layer_indices, selected


def _check_token_count(view: str, n_tokens: int, max_tokens: int) -> None:
    if n_tokens > max_tokens:
        raise ValueError(f"The prompt has {n_tokens} tokens; the {view} shows at most {max_tokens}. "
                         "Shorten the prompt.")


def _check_counts(view: str, *, n_tokens: int, n_layers: int, n_heads: int,
                  max_tokens: int, max_layers: int, max_heads: int) -> None:
    _check_token_count(view, n_tokens, max_tokens)
    if n_layers > max_layers:
        raise ValueError(f"{n_layers} layers selected; the {view} shows at most {max_layers}. "
                         "Choose fewer layers.")
    if n_heads > max_heads:
        raise ValueError(f"{n_heads} heads selected; the {view} shows at most {max_heads}. "
                         "Choose fewer heads.")


def estimate_html_bytes(n_layers: int, n_heads: int, n_tokens: int) -> int:
    """Upper bound on the length of the iframe string for this many weights (3-decimal rounding).

    Each weight takes 4..6 JSON bytes; causal attention is half zeros ("0.0,"), so the real size is
    smaller (measured 75-85 % of this bound).
    """
    n_rows = n_layers * n_heads * n_tokens
    return _PAGE_OVERHEAD_BYTES + n_rows * (n_tokens * _MAX_BYTES_PER_WEIGHT + 2) + n_tokens * 64


def _check_lines(view: str, n_lines: int, max_lines: int) -> None:
    if n_lines > max_lines:
        raise ValueError(f"The {view} would draw {n_lines:,} attention lines (limit {max_lines:,}), too many "
                         "for the browser. Choose fewer layers or heads, or a shorter prompt.")


def _check_size(view: str, n_weights: int, max_bytes: int) -> None:
    """Refuses before serializing when even the shortest encoding of the weights is over the cap."""
    at_least = n_weights * _MIN_BYTES_PER_WEIGHT
    if at_least > max_bytes:
        raise ValueError(f"The {view} would be more than {at_least / 1e6:.1f} MB of HTML (limit "
                         f"{max_bytes / 1e6:.1f} MB). Choose fewer layers or heads, or a shorter prompt.")


def _prettify(token_strs: Sequence[str]) -> list[str]:
    # bertviz's format_special_chars: byte-level BPE (Ġ) and SentencePiece (▁) space markers, BPE </w>.
    return [str(t).replace("Ġ", " ").replace("▁", " ").replace("</w>", "") for t in token_strs]


# ---------------------------------------------------------------- page


def _script_json(params: dict) -> str:
    return json.dumps(params, separators=(",", ":"), ensure_ascii=True).translate(_SCRIPT_SAFE_JSON)


def _page(name: Literal["head_view", "model_view"], params: dict, controls_html: str) -> str:
    scripts = "\n".join(f'<script src="{html.escape(_file_url(path))}"></script>'
                        for path in _asset_files().values())
    view_script = _view_script(name).replace(_PARAMS_MARKER, f"const params = {_script_json(params)};")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
        "<style>body{margin:8px;background:#fff;color:#000;"
        "font-family:'Helvetica Neue',Helvetica,Arial,sans-serif}</style>\n"
        f"{scripts}\n</head><body>\n"
        f'<div id="{_VIEW_ID}">{controls_html}<div id="vis"></div></div>\n'
        f"<script>\n{view_script}\n</script>\n</body></html>\n"
    )


def _iframe(doc: str, *, height_px: int, title: str, max_bytes: int, view: str) -> str:
    iframe = (f'<iframe sandbox="allow-scripts" title="{html.escape(title)}" '
              f'style="width:100%;height:{height_px}px;border:0;background:#fff" '
              f'srcdoc="{html.escape(doc, quote=True)}"></iframe>')
    if len(iframe) > max_bytes:
        raise ValueError(f"The {view} would be {len(iframe) / 1e6:.1f} MB of HTML (limit "
                         f"{max_bytes / 1e6:.1f} MB). Choose fewer layers or heads, or a shorter prompt.")
    return iframe


def _prepare(view: str, attention: Any, token_strs: Sequence[str], layers: Sequence[int] | None,
             heads: Sequence[int] | None, *, draws_all_layers: bool, max_tokens: int, max_layers: int,
             max_heads: int, max_lines: int, max_bytes: int, decimals: int,
             ) -> tuple[list[int], list[int], np.ndarray]:
    """Validates and bounds the input -> (layer indices, head indices, rounded [layer, head, q, k]).

    draws_all_layers: the model view draws every layer at once, the head view one layer at a time.
    """
    n_tokens = len(token_strs)
    if n_tokens == 0:
        raise ValueError("No tokens to show: enter a prompt.")
    _check_token_count(view, n_tokens, max_tokens)  # before converting weights, which may be large
    layer_indices, selected = _select_layers(attention, layers)
    n_model_heads, n_positions, _ = selected[0].shape
    if n_positions != n_tokens:
        raise ValueError(f"The attention covers {n_positions} positions but {n_tokens} token strings "
                         "were given.")
    head_indices = list(range(n_model_heads)) if heads is None else [int(head) for head in heads]
    bad = [head for head in head_indices if not 0 <= head < n_model_heads]
    if not head_indices or bad or len(set(head_indices)) != len(head_indices):
        raise ValueError(f"Heads {head_indices} are not distinct heads of 0..{n_model_heads - 1}.")
    _check_counts(view, n_tokens=n_tokens, n_layers=len(layer_indices), n_heads=len(head_indices),
                  max_tokens=max_tokens, max_layers=max_layers, max_heads=max_heads)
    lines_per_layer = len(head_indices) * n_tokens * n_tokens
    _check_lines(view, lines_per_layer * (len(layer_indices) if draws_all_layers else 1), max_lines)
    _check_size(view, len(layer_indices) * lines_per_layer, max_bytes)
    # [layer, head, query_pos, key_pos], rounded in float64 so the JSON prints short decimals
    weights = np.round(np.stack([w[head_indices] for w in selected]), decimals)
    return layer_indices, head_indices, weights


def head_view_html(
    attention: Any,
    token_strs: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    initial_layer: int | None = None,
    initial_heads: Sequence[int] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_layers: int = DEFAULT_MAX_LAYERS,
    max_heads: int = DEFAULT_MAX_HEADS,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = DEFAULT_MAX_HTML_BYTES,
    decimals: int = DEFAULT_DECIMALS,
    prettify_tokens: bool = True,
) -> str:
    """bertviz head view (one layer at a time, lines from each token to the tokens it attends to).

    attention: per-layer weights, a sequence of arrays/tensors [head, query, key] or [1, head, query,
        key] (transformers' ``outputs.attentions``), or one array [layer, head, query, key].
    token_strs: one string per position (shown as text, never parsed as HTML).
    layers: model layer indices to embed (default: all); the view's dropdown offers these.
    initial_layer / initial_heads: what the view shows first (default: first layer, all heads).
    Returns an ``<iframe sandbox="allow-scripts" srcdoc=...>`` string for a ``gr.HTML`` component.
    Raises ValueError for too many tokens/layers/heads, more than ``max_lines`` SVG lines for one layer
    (heads x tokens^2), a page over ``max_bytes``, or bad input.
    """
    view = "head view"
    layer_indices, _, weights = _prepare(
        view, attention, token_strs, layers, None, draws_all_layers=False, max_tokens=max_tokens,
        max_layers=max_layers, max_heads=max_heads, max_lines=max_lines, max_bytes=max_bytes, decimals=decimals)
    if initial_layer is not None and initial_layer not in layer_indices:
        raise ValueError(f"Initial layer {initial_layer} is not among the shown layers {layer_indices}.")
    n_heads = weights.shape[1]
    if initial_heads is not None and (not initial_heads or not all(0 <= int(h) < n_heads for h in initial_heads)):
        raise ValueError(f"Initial heads {list(initial_heads)} must be one or more of 0..{n_heads - 1}.")
    texts = _prettify(token_strs) if prettify_tokens else [str(t) for t in token_strs]
    params = {
        "attention": [{"name": None, "attn": weights.tolist(), "left_text": texts, "right_text": texts}],
        "default_filter": "0",
        "root_div_id": _VIEW_ID,
        "layer": initial_layer,
        "heads": None if initial_heads is None else [int(h) for h in initial_heads],
        "include_layers": layer_indices,
    }
    controls = '<span style="user-select:none">Layer: <select id="layer"></select></span>'
    doc = _page("head_view", params, controls)
    height = round(len(texts) * _HEAD_BOX_HEIGHT + _HEAD_TEXT_TOP + 30 + _PAGE_MARGIN_PX)
    return _iframe(doc, height_px=height, title="Attention head view", max_bytes=max_bytes, view=view)


def model_view_html(
    attention: Any,
    token_strs: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    display_mode: Literal["light", "dark"] = "light",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_layers: int = DEFAULT_MAX_LAYERS,
    max_heads: int = DEFAULT_MAX_HEADS,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = DEFAULT_MAX_HTML_BYTES,
    decimals: int = DEFAULT_DECIMALS,
    prettify_tokens: bool = True,
) -> str:
    """bertviz model view: a grid of thumbnails, one per (layer, head); click one for a detail view.

    attention, token_strs: as for :func:`head_view_html`.
    layers / heads: model layer and head indices to draw (default: all); labels show these indices.
    Returns an ``<iframe sandbox="allow-scripts" srcdoc=...>`` string for a ``gr.HTML`` component;
    its height follows the grid (about layers x (tokens x 7 px) for up to 12 heads).
    Raises ValueError for too many tokens/layers/heads, more than ``max_lines`` SVG lines (layers x heads
    x tokens^2), a page over ``max_bytes``, or bad input.
    """
    view = "model view"
    if display_mode not in ("light", "dark"):
        raise ValueError(f"display_mode must be 'light' or 'dark', not {display_mode!r}.")
    layer_indices, head_indices, weights = _prepare(
        view, attention, token_strs, layers, heads, draws_all_layers=True, max_tokens=max_tokens,
        max_layers=max_layers, max_heads=max_heads, max_lines=max_lines, max_bytes=max_bytes, decimals=decimals)
    texts = _prettify(token_strs) if prettify_tokens else [str(t) for t in token_strs]
    # model_view.js divides its 970 px width into `total_heads` columns and scales rows by 12/total_heads;
    # at least 12 columns keeps a few selected heads from turning into very tall thumbnails.
    grid_columns = max(len(head_indices), _MODEL_MIN_GRID_COLUMNS)
    params = {
        "attention": [{"name": None, "attn": weights.tolist(), "left_text": texts, "right_text": texts}],
        "default_filter": "0",
        "display_mode": display_mode,
        "root_div_id": _VIEW_ID,
        "include_layers": layer_indices,
        "include_heads": head_indices,
        "total_heads": grid_columns,
    }
    doc = _page("model_view", params, controls_html="")
    thumbnail_height = len(texts) * 7 * (12 / grid_columns) + 2 * 5  # thumbnailBoxHeight rows + padding
    detail_height = len(texts) * _MODEL_DETAIL_BOX_HEIGHT + _MODEL_DETAIL_EXTRA
    height = round(max(len(layer_indices) * thumbnail_height + _MODEL_AXIS, detail_height) + _PAGE_MARGIN_PX)
    return _iframe(doc, height_px=height, title="Attention model view", max_bytes=max_bytes, view=view)
