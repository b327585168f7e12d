import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from tests.tiny_models import ARCHITECTURES, tiny_model, tiny_tokenizer  # noqa: E402


def make_tiny_session(arch: str, **limits):
    """A fresh session (own cache and counters) over the shared read-only tiny model."""
    from visualizer.config import AppConfig, Limits
    from visualizer.session import ModelSession

    config = AppConfig(limits=Limits(**limits)) if limits else AppConfig()
    return ModelSession(tiny_model(arch), tiny_tokenizer(), config, source=f"tiny-{arch}")


@pytest.fixture(params=ARCHITECTURES)
def arch(request):
    return request.param


@pytest.fixture
def tiny_session(arch):
    return make_tiny_session(arch)
