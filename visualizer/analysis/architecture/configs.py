"""Configs: the shipped known models, and pasted config.json text (untrusted input).

A pasted config is checked before transformers sees it: its length, its nesting depth (a deep JSON would
exhaust the parser's recursion), that it is a JSON object naming a causal LM transformers knows, that every
size is a whole number in range (the message names the key), and that the model it describes is not absurdly
large. Keys that only serve custom code or quantised weights are dropped: remote code is never run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

KNOWN_CONFIGS_DIR = Path(__file__).resolve().parent.parent.parent / "known_configs"

# Pasted configs beyond these sizes are refused: building them would take long or make no sense.
MAX_CONFIG_JSON_CHARS = 200_000
MAX_JSON_DEPTH = 32  # real configs nest 3-4 levels (rope_scaling, text_config.rope_parameters)
MAX_LAYERS = 1_024
MAX_D_MODEL = 131_072
MAX_VOCAB = 4_194_304
MAX_HEADS = 4_096
MAX_EXPERTS = 4_096
MAX_ESTIMATED_PARAMS = 10**13  # 10 T: ten times the largest open models
# Keys whose only use is loading custom code or quantised weights; a weightless skeleton needs neither.
# Attention kernels (flash-attention) need not be installed for a skeleton: eager is always used.
_IGNORED_KEYS = ("auto_map", "trust_remote_code", "quantization_config", "custom_pipelines",
                 "attn_implementation", "_attn_implementation")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH_KEYS = ("hidden_size", "n_embd", "n_embed", "d_model")
_MLP_KEYS = ("intermediate_size", "n_inner", "ffn_dim", "moe_intermediate_size", "shared_expert_intermediate_size")
_HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads", "num_key_value_heads", "num_kv_heads", "n_head_kv")
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
_SIZE_LIMITS = (
    (_LAYER_KEYS, MAX_LAYERS),
    ((*_WIDTH_KEYS, *_MLP_KEYS, "head_dim"), MAX_D_MODEL * 8),
    (_HEAD_KEYS, MAX_HEADS),
    (("vocab_size",), MAX_VOCAB),
    (("max_position_embeddings", "n_positions"), 1 << 24),
    ((*_EXPERT_KEYS, "num_experts_per_tok"), MAX_EXPERTS),
)


def known_model_names() -> list[str]:
    """Names of the shipped configs (file stems of visualizer/known_configs/*.json)."""
    return sorted((p.stem for p in KNOWN_CONFIGS_DIR.glob("*.json")), key=str.casefold)


def load_known_config(name: str) -> PretrainedConfig:
    """The config of a known model, e.g. "Phi-3-mini-4k-instruct"."""
    names = known_model_names()
    if name not in names:  # also keeps the name from reaching the file system unchecked
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(names)}.")
    return config_from_json((KNOWN_CONFIGS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def json_depth(text: str) -> int:
    """How deeply brackets nest in JSON text, ignoring brackets inside strings (no parsing, no recursion).

    >>> json_depth('{"a": [1, {"b": "[[["}]}')
    3
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _check_positive_int(data: dict, key: str, limit: int) -> None:
    value = data.get(key)
    # Some configs give one size per layer (a list); check each.
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"{key} must be a whole number, got {item!r}.")
        if not 0 < item <= limit:
            raise ValueError(f"{key}={item:,} is out of range (1 to {limit:,}).")


def _size(data: dict, *keys: str, default: int = 0) -> int:
    """The first size given under one of keys (the largest entry of a per-layer list)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, (list, tuple)):
            value = max((v for v in value if isinstance(v, int)), default=None)
        if value:
            return value
    return default


def check_sizes(data: dict) -> None:
    """Refuse configs that are malformed or absurdly large before transformers sees them.

    Sub-configs (``text_config``, ``attn_config``, ...) are checked the same way: a multimodal config keeps
    its decoder's sizes there.
    """
    for keys, limit in _SIZE_LIMITS:
        for key in keys:
            _check_positive_int(data, key, limit)
    d_model = _size(data, *_WIDTH_KEYS)
    if d_model > MAX_D_MODEL:
        raise ValueError(f"hidden size {d_model:,} is out of range (at most {MAX_D_MODEL:,}).")
    n_layers = _size(data, *_LAYER_KEYS)
    d_mlp = _size(data, "intermediate_size", "n_inner", "ffn_dim", default=4 * d_model)
    experts = _size(data, *_EXPERT_KEYS, default=1)
    vocab = _size(data, "vocab_size")
    estimate = n_layers * (4 * d_model * d_model + 3 * d_model * d_mlp * experts) + 2 * vocab * d_model
    if estimate > MAX_ESTIMATED_PARAMS:
        raise ValueError(f"This config describes roughly {estimate:.2e} parameters; the limit is "
                         f"{MAX_ESTIMATED_PARAMS:.0e}. Check the sizes.")
    for key, value in data.items():
        if isinstance(value, dict) and key.endswith("_config"):
            check_sizes(value)


def _check_finite(value: Any, key: str = "") -> None:
    """JSON has no NaN or Infinity, but Python's parser accepts them: refuse them, naming the key."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key or 'a value'} is {value}; a config.json needs finite numbers there.")
    if isinstance(value, dict):
        for sub_key, item in value.items():
            _check_finite(item, f"{key}.{sub_key}" if key else str(sub_key))
    elif isinstance(value, list):
        for item in value:
            _check_finite(item, key)


def _parse(text: str) -> dict:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The config is empty: paste the contents of a config.json file.")
    if len(text) > MAX_CONFIG_JSON_CHARS:
        raise ValueError(f"The config is {len(text):,} characters long; a config.json is much smaller "
                         f"(limit {MAX_CONFIG_JSON_CHARS:,}).")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"The config is nested too deeply ({depth:,} levels of brackets; a config.json has a "
                         f"few, the limit is {MAX_JSON_DEPTH}). Paste the model's config.json itself.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"The config is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}.")\
            from None
    if not isinstance(data, dict):
        raise ValueError(f"A config.json must be a JSON object {{...}}, got a {type(data).__name__}.")
    _check_finite(data)
    return data


def config_from_json(text: str) -> PretrainedConfig:
    """Validate a pasted config.json and turn it into a transformers config (never runs remote code)."""
    data = _parse(text)
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ValueError('The config has no "model_type" (for example "llama", "phi3", "gpt2").')
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or model_type not in CONFIG_MAPPING:
        examples = ", ".join(sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)[:12])
        raise ValueError(f"model_type {model_type!r} is not a causal language model transformers knows "
                         f"(custom code is never run). Known types include: {examples}, ...")
    for key in _IGNORED_KEYS:
        data.pop(key, None)
    check_sizes(data)
    try:
        return CONFIG_MAPPING[model_type].from_dict(data)
    except Exception as err:  # transformers raises TypeError/ValueError/KeyError for bad fields
        raise ValueError(f"transformers rejected this {model_type} config: {err}") from None
