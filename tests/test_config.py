import pytest

from visualizer.config import (
    DEFAULT_MEMORY_BUDGET_BYTES,
    AppConfig,
    Limits,
    QueueSettings,
    config_from_args,
    config_from_manifest,
    load_manifest,
    resolve_host,
    resolve_port,
)


def test_cli_wins_over_manifest(tmp_path):
    manifest = tmp_path / "spaces.yaml"
    manifest.write_text("app:\n  model: some/model\n  dtype: bfloat16\nlimits:\n  max_new_tokens: 50\n"
                        "queue:\n  max_size: 10\n")
    config = config_from_args(["--manifest", str(manifest), "--model", "bundled"])
    assert config.model == "bundled" and config.dtype == "bfloat16"
    assert config.limits.max_new_tokens == 50 and config.queue.max_size == 10
    assert config.share is False and config.trust_remote_code is False


def test_new_settings_and_their_defaults():
    config = AppConfig()
    assert config.device_map == "auto" and config.debug is False
    assert Limits(memory_budget_bytes=None).memory_budget_bytes is None
    assert Limits(attention_store_bytes=0, trace_cache_bytes=0).trace_cache_bytes == 0  # 0: keep none
    assert DEFAULT_MEMORY_BUDGET_BYTES == 4 * 1024**3
    config = config_from_args(["--device-map", "none", "--debug", "--dtype", "bf16"])
    assert config.device_map == "none" and config.debug is True and config.dtype == "bfloat16"


@pytest.mark.parametrize(("alias", "full"), [("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")])
def test_dtype_aliases_are_normalised_everywhere(alias, full):
    assert AppConfig(dtype=alias).dtype == full
    assert config_from_manifest({"app": {"dtype": alias}}).dtype == full
    assert config_from_args(["--dtype", alias]).dtype == full


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"queue": {"max_size": -5}}, r"queue\.max_size must be positive, got -5"),
        ({"limits": {"max_new_tokens": 0}}, r"limits\.max_new_tokens must be positive, got 0"),
        ({"limits": {"memory_budget_bytes": "4GB"}},
         r"limits\.memory_budget_bytes must be a whole number \(bytes, e\.g\. 4294967296 for 4 GiB\) or null, "
         r"got '4GB'"),
        ({"limits": {"trace_cache_bytes": 1.5e9}}, r"limits\.trace_cache_bytes must be a whole number"),
        ({"limits": {"attention_store_bytes": -1}}, r"limits\.attention_store_bytes must be 0 or more, got -1"),
        ({"limits": {"max_top_k": True}}, r"limits\.max_top_k must be a whole number"),
        ({"app": {"dtype": "fp8"}}, r"app\.dtype must be one of auto, float32, bfloat16, float16 "
                                    r"\(or fp32, bf16, fp16\), got 'fp8'"),
        ({"app": {"device": "gpu"}}, r"app\.device must be one of auto, cpu, cuda, mps, got 'gpu'"),
        ({"app": {"device_map": "balanced"}}, r"app\.device_map must be one of auto, none"),
        ({"app": {"share": "yes please"}}, r"app\.share must be true or false"),
        ({"app": {"port": 70000}}, r"app\.port must be a port number from 1 to 65535, got 70000"),
        ({"app": {"model": ""}}, r"app\.model must be a non-empty string"),
        ({"limits": {"max_tokens_typo": 3}}, r"unknown setting\(s\) limits\.max_tokens_typo; known in `limits`"),
        ({"app": {"modle": "bundled"}}, r"unknown setting\(s\) app\.modle"),
        ({"app": {"limits": {}}}, r"unknown setting\(s\) app\.limits"),
        ({"queue": [1, 2]}, r"`queue` must be a mapping"),
    ],
)
def test_bad_manifest_values_name_the_key(manifest, message):
    with pytest.raises(ValueError, match=r"^spaces\.yaml: " + message):
        config_from_manifest(manifest)


def test_bad_manifest_files(tmp_path):
    path = tmp_path / "spaces.yaml"
    path.write_text("limitz:\n  max_size: 3\n")
    with pytest.raises(ValueError, match=r"unknown section\(s\) limitz; known: space, app, limits, queue"):
        load_manifest(path)
    path.write_text("app: [unclosed\n")
    with pytest.raises(ValueError, match=r"not valid YAML \(line \d+\)"):
        load_manifest(path)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_manifest(path)
    with pytest.raises(ValueError, match=r"--manifest .*nope\.yaml: no such file"):
        config_from_args(["--manifest", str(tmp_path / "nope.yaml")])
    assert load_manifest(tmp_path / "absent-default.yaml") == {}  # an installed package has no manifest


def test_programmatic_settings_are_checked_too():
    with pytest.raises(ValueError, match="max_prompt_tokens must be positive"):
        Limits(max_prompt_tokens=-1)
    with pytest.raises(ValueError, match="concurrency_limit must be a whole number"):
        QueueSettings(concurrency_limit="2")
    with pytest.raises(ValueError, match="dtype must be one of"):
        AppConfig().with_overrides(dtype="half")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dtype", "fp17"], "argument --dtype: must be one of auto, float32, bfloat16, float16"),
        (["--device", "gpu"], "argument --device: must be one of auto, cpu, cuda, mps, got 'gpu'"),
        (["--port", "99999"], "argument --port: must be a port number from 1 to 65535, got 99999"),
        (["--device-map", "x"], "argument --device-map: must be one of auto, none"),
    ],
)
def test_bad_flags_exit_2_with_the_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_host_and_port_defaults(monkeypatch):
    for name in ("SPACE_ID", "GRADIO_SERVER_PORT", "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_host(AppConfig()) == "127.0.0.1" and resolve_port(AppConfig()) == 7860
    monkeypatch.setenv("SPACE_ID", "someone/space")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9001")
    assert resolve_host(AppConfig()) == "0.0.0.0" and resolve_port(AppConfig()) == 9001
    assert resolve_port(AppConfig(port=1234)) == 1234
    monkeypatch.setenv("GRADIO_SERVER_PORT", "http")
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT must be a port number"):
        resolve_port(AppConfig())


def test_host_order_cli_then_manifest_then_gradio_server_name(monkeypatch, tmp_path):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "10.0.0.5")
    assert resolve_host(AppConfig()) == "10.0.0.5"
    manifest = tmp_path / "spaces.yaml"
    manifest.write_text("app:\n  host: 10.0.0.6\n")
    assert resolve_host(config_from_args(["--manifest", str(manifest)])) == "10.0.0.6"
    assert resolve_host(config_from_args(["--manifest", str(manifest), "--host", "10.0.0.7"])) == "10.0.0.7"
    monkeypatch.setenv("SPACE_ID", "someone/space")
    assert resolve_host(AppConfig()) == "10.0.0.5"  # an explicit environment beats the Space default


def test_repository_manifest_is_valid():
    config = config_from_manifest(load_manifest())
    assert config.model == "auto" and config.queue.max_size is None  # derived from the measured forward pass
