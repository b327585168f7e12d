"""Architecture handlers called directly with a real tiny session."""

import pytest

from tests.conftest import make_tiny_session
from visualizer.ui.tabs import architecture as tab


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def test_loaded_model_view(session):
    out = tab.architecture_view(session, "loaded model", None, None, 1000, 1, "fp16")
    assert isinstance(out, tab.ArchitectureOutputs)
    assert "LlamaDecoderLayer" in out.tree and out.breakdown is not None
    assert all(isinstance(getattr(out, name), str) for name in ("overview", "fused", "memory", "kv", "summary"))


def test_kv_calculator_only_sets_kv(session):
    out = tab.kv_calculator(session, "known model", "Llama-3.1-8B", None, 1000, 2, "fp16")
    assert isinstance(out.kv, str) and out.tree == tab.ArchitectureOutputs().tree
    with pytest.raises(ValueError, match="tokens"):
        tab.kv_calculator(session, "known model", "Llama-3.1-8B", None, float("nan"), 1, "fp16")


def test_pasted_config_needs_text(session):
    with pytest.raises(ValueError, match="Paste"):
        tab.architecture_view(session, "paste config.json", None, "  ", 1000, 1, "fp16")
