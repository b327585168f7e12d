import pytest

from visualizer.config import AppConfig, config_from_args, config_from_manifest, resolve_host, resolve_port


def test_cli_wins_over_manifest(tmp_path):
    manifest = tmp_path / "spaces.yaml"
    manifest.write_text("app:\n  model: some/model\n  dtype: bfloat16\nlimits:\n  max_new_tokens: 50\n"
                        "queue:\n  max_size: 10\n")
    config = config_from_args(["--manifest", str(manifest), "--model", "bundled"])
    assert config.model == "bundled" and config.dtype == "bfloat16"
    assert config.limits.max_new_tokens == 50 and config.queue.max_size == 10
    assert config.share is False and config.trust_remote_code is False


def test_unknown_manifest_keys_are_refused():
    with pytest.raises(ValueError, match="unknown setting"):
        config_from_manifest({"limits": {"max_tokens_typo": 3}})


def test_host_and_port_defaults(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert resolve_host(AppConfig()) == "127.0.0.1" and resolve_port(AppConfig()) == 7860
    monkeypatch.setenv("SPACE_ID", "someone/space")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9001")
    assert resolve_host(AppConfig()) == "0.0.0.0" and resolve_port(AppConfig()) == 9001
    assert resolve_port(AppConfig(port=1234)) == 1234
