"""Known configs and pasted config.json (untrusted input): every bad value gets a message naming the key."""

from __future__ import annotations

import json

import pytest

from visualizer.analysis.architecture import (
    KNOWN_CONFIGS_DIR,
    MAX_JSON_DEPTH,
    config_from_json,
    describe_config,
    describe_config_json,
    known_model_names,
    load_known_config,
)
from visualizer.analysis.architecture.configs import json_depth

REQUIRED_KNOWN = {"Phi-3-mini-4k-instruct", "gpt2", "Llama-3.1-8B", "Qwen2.5-0.5B", "Mistral-7B-v0.1",
                  "gemma-2-2b", "Mixtral-8x7B-v0.1", "falcon-40b", "bloom-560m"}


def _known_json(name: str) -> dict:
    return json.loads((KNOWN_CONFIGS_DIR / f"{name}.json").read_text())


def test_required_known_models_are_shipped():
    assert REQUIRED_KNOWN <= set(known_model_names())
    for path in KNOWN_CONFIGS_DIR.glob("*.json"):
        assert path.stat().st_size < 4_000  # small files
        assert "auto_map" not in json.loads(path.read_text())


def test_pasted_config_roundtrip():
    report = describe_config_json(json.dumps(_known_json("Qwen2.5-0.5B")))
    assert report.n_params == 494_032_768 and report.summary.tied_embeddings


def test_pasted_config_drops_remote_code_keys():
    data = _known_json("gpt2")
    data["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    data["trust_remote_code"] = True
    config = config_from_json(json.dumps(data))
    assert not hasattr(config, "auto_map") or not config.auto_map
    assert describe_config(config).n_params == 124_439_808


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("{'model_type': 'llama'}", "not valid JSON"),
    ('{"model_type": "llama",}', "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"hidden_size": 64}', "model_type"),
    ('{"model_type": "not_a_model"}', "not a causal language model"),
    ('{"model_type": "t5"}', "not a causal language model"),
    ('{"model_type": "llama", "num_hidden_layers": 100000}', "out of range"),
    ('{"model_type": "llama", "vocab_size": 1000000000}', "out of range"),
    ('{"model_type": "llama", "hidden_size": "big"}', "whole number"),
    ('{"model_type": "llama", "num_attention_heads": -4}', "out of range"),
    ('{"model_type": "llama", "num_hidden_layers": 1000, "hidden_size": 65536, "intermediate_size": 262144}',
     "parameters"),
    ("x" * 300_000, "characters"),
])
def test_bad_config_json_raises_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        config_from_json(text)


@pytest.mark.parametrize(("text", "key"), [
    ('{"model_type": "llama", "hidden_size": 64.5}', "hidden_size"),
    ('{"model_type": "llama", "num_key_value_heads": true}', "num_key_value_heads"),
    ('{"model_type": "falcon", "num_kv_heads": 0}', "num_kv_heads"),
    ('{"model_type": "bloom", "n_embed": 100000000}', "n_embed"),
    ('{"model_type": "mixtral", "num_local_experts": 100000}', "num_local_experts"),
    ('{"model_type": "llama", "intermediate_size": [64, "x"]}', "intermediate_size"),
    ('{"model_type": "llama", "rope_theta": NaN}', "rope_theta"),
    ('{"model_type": "llama", "rope_scaling": {"factor": Infinity}}', "rope_scaling.factor"),
    ('{"model_type": "qwen2", "text_config": {"hidden_size": -1}}', "hidden_size"),
])
def test_bad_values_are_named(text, key):
    with pytest.raises(ValueError, match=key):
        config_from_json(text)


def test_deeply_nested_json_is_refused_without_recursion_error():
    """#13: a 50,000-deep JSON made the parser raise RecursionError; it must be a plain ValueError."""
    text = '{"model_type": "llama", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(ValueError, match="(?i)the config is nested too deeply"):
        config_from_json(text)
    assert json_depth('{"a": "[[[[[[", "b": [{"c": "\\"]"}]}') == 3  # brackets in strings do not count
    shallow = '{"model_type": "llama", "x": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    assert config_from_json(shallow).model_type == "llama"  # at the limit: accepted


def test_config_that_transformers_cannot_build_gives_value_error():
    data = _known_json("gpt2") | {"n_embd": 770, "n_layer": 2}  # 770 is not divisible by 12 heads
    with pytest.raises(ValueError, match="Could not build"):
        describe_config_json(json.dumps(data))


def test_unknown_known_model_name():
    with pytest.raises(ValueError, match="Known models"):
        load_known_config("../../etc/passwd")
