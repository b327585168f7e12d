"""Device facts and loading decisions, with the device's answers faked where this machine has no GPU:
the dtype by compute capability, the per-request budget from free memory, accelerate placement (a real
split with disk offload on the CPU), and the banner for a GPU that was expected but is not there."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer import device as facts
from visualizer import loading
from visualizer.config import DEFAULT_MEMORY_BUDGET_BYTES, AppConfig, Limits, QueueSettings
from visualizer.loading import Placement, load_model, load_pretrained, plan_placement, resolve_device, resolve_dtype
from visualizer.session import ModelSession

GiB, MiB = 2**30, 2**20
CUDA = torch.device("cuda", 0)
DERIVED = AppConfig(limits=Limits(memory_budget_bytes=None))  # "derive the budget from the device"


@pytest.fixture
def saved_tiny_phi3(tmp_path):
    path = tmp_path / "tiny-phi3"
    tiny_model("phi3").save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.mark.parametrize(("capability", "expected"), [
    ((7, 0), torch.float16),  # V100
    ((7, 5), torch.float16),  # T4: is_bf16_supported() says True there (emulated)
    ((8, 0), torch.bfloat16),  # A100
    ((8, 6), torch.bfloat16),  # A10G
    ((9, 0), torch.bfloat16),  # H100/H200
])
def test_auto_dtype_is_bf16_only_where_native(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # must not be consulted
    assert resolve_dtype("auto", CUDA) == expected
    assert resolve_dtype("float32", CUDA) == torch.float32  # an explicit choice wins


def test_auto_dtype_off_cuda():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("mps")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_budget_from_free_gpu_memory_after_weights(monkeypatch):
    # a T4: 15 GiB, of which Phi-3-mini's weights and the CUDA context leave 8 GiB free
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * GiB, 15 * GiB))
    budget = facts.memory_budget(DERIVED, CUDA)
    margin = int(15 * GiB * facts.MARGIN_FRACTION)
    assert budget.bytes == (8 * GiB - margin) // 2
    assert budget.why == "free GPU memory 8,192 MiB after weights, margin 1,536 MiB, 2 requests at once"
    message = budget.refusal("Analysing 4,000 tokens", 5 * GiB)
    assert "over this server's budget of 3,328 MiB (free GPU memory 8,192 MiB" in message


def test_budget_divides_by_the_queue_concurrency(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * GiB, 80 * GiB))
    four = AppConfig(limits=Limits(memory_budget_bytes=None), queue=QueueSettings(concurrency_limit=4))
    assert facts.memory_budget(four, CUDA).bytes == (40 * GiB - 8 * GiB) // 4
    assert "4 requests at once" in facts.memory_budget(four, CUDA).why


def test_budget_on_a_gpu_with_no_room_left_is_zero(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (256 * MiB, 15 * GiB))
    assert facts.memory_budget(DERIVED, CUDA).bytes == 0


def test_operator_budget_wins():
    budget = facts.memory_budget(AppConfig(limits=Limits(memory_budget_bytes=GiB)), CUDA)
    assert (budget.bytes, budget.why) == (GiB, "set by the operator")


def test_cpu_budget_from_available_memory_capped_by_default(monkeypatch):
    monkeypatch.setattr(facts, "cpu_memory", lambda: (100 * GiB, 128 * GiB))
    budget = facts.memory_budget(DERIVED, torch.device("cpu"))
    assert budget.bytes == DEFAULT_MEMORY_BUDGET_BYTES and "CPU default cap" in budget.why
    monkeypatch.setattr(facts, "cpu_memory", lambda: (3 * GiB, 4 * GiB))
    budget = facts.memory_budget(DERIVED, torch.device("cpu"))
    assert budget.bytes == (3 * GiB - 512 * MiB) // 2
    assert budget.why == "available memory 3,072 MiB after weights, margin 512 MiB, 2 requests at once"


def test_cpu_memory_reads_this_machine():
    available, total = facts.cpu_memory()
    assert 0 < available <= total


@pytest.mark.filterwarnings("ignore:Error while reading infos from Nvidia driver FS")
def test_zero_gpu_budget_from_the_workload_memory_less_weights():
    model = tiny_model("phi3")
    budget = facts.memory_budget(DERIVED, CUDA, model, zero_gpu=True)
    total = facts._zero_gpu_memory()
    assert budget.bytes == (total - facts.weight_bytes(model) - facts.margin_bytes(total)) // 2
    assert budget.why.startswith("ZeroGPU memory")


def test_placement_one_device_when_the_weights_fit(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (14 * GiB, 15 * GiB))
    assert plan_placement(AppConfig(), CUDA, int(7.6e9)).device_map is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * GiB, 15 * GiB))
    assert plan_placement(AppConfig(device_map="none"), CUDA, int(7.6e9)).device_map is None
    assert plan_placement(AppConfig(), CUDA, int(7.6e9), zero_gpu=True).device_map is None


def test_placement_spreads_weights_over_gpus_and_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * GiB, 15 * GiB))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(facts, "cpu_memory", lambda: (30 * GiB, 32 * GiB))
    placement = plan_placement(AppConfig(), CUDA, 16 * GiB)  # Llama-3.1-8B in bf16
    margin = int(15 * GiB * facts.MARGIN_FRACTION)
    assert placement.device_map == "auto" and placement.offload_folder
    assert placement.max_memory == {0: 6 * GiB - margin, 1: 6 * GiB - margin,
                                    "cpu": 30 * GiB - int(32 * GiB * facts.MARGIN_FRACTION)}
    assert "do not fit cuda:0" in placement.why


def test_cuda_without_a_gpu_is_an_error_with_the_reason(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"no CUDA GPU is available \(.+\)"):
        resolve_device("cuda")


def test_reason_carries_the_cuda_init_error(monkeypatch):
    def broken_init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 12020).")

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "init", broken_init)
    reason = facts.cuda_unavailable_reason()
    assert "is_available() is False" in reason and "driver on your system is too old" in reason


def test_banner_when_a_gpu_space_runs_on_the_cpu(monkeypatch):
    monkeypatch.setattr(facts, "cuda_unavailable_reason", lambda: "torch.cuda.is_available() is False")
    space = {"SPACE_ID": "teacher/inside-the-llm", "CUDA_VISIBLE_DEVICES": "0"}
    banner = facts.cpu_fallback_banner(AppConfig(), torch.device("cpu"), space)
    assert "teacher/inside-the-llm" in banner and "CUDA_VISIBLE_DEVICES=0" in banner
    assert "torch.cuda.is_available() is False" in banner
    zero = {"SPACE_ID": "a/b", "SPACES_ZERO_GPU": "true"}
    assert "SPACES_ZERO_GPU" in facts.cpu_fallback_banner(AppConfig(), torch.device("cpu"), zero)
    assert facts.cpu_fallback_banner(AppConfig(), torch.device("cuda"), space) is None
    assert facts.cpu_fallback_banner(AppConfig(device="cpu"), torch.device("cpu"), space) is None  # asked for


def test_no_banner_on_a_cpu_space_or_locally(monkeypatch):
    monkeypatch.setattr(facts, "gpu_hardware_hint", lambda env=None: None)
    assert facts.cpu_fallback_banner(AppConfig(), torch.device("cpu"), {"SPACE_ID": "a/b"}) is None
    assert facts.cpu_fallback_banner(AppConfig(), torch.device("cpu"), {}) is None


def test_load_model_on_a_gpu_space_without_cuda_shows_the_banner(saved_tiny_phi3, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "teacher/inside-the-llm")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = load_model(AppConfig(model=str(saved_tiny_phi3)), zero_gpu=False)
    assert loaded.source == str(saved_tiny_phi3)
    assert "Running on the CPU although a GPU was expected" in loaded.banner
    assert "fit cpu" in loaded.placement


def test_unloadable_model_falls_back_with_both_reasons(saved_tiny_phi3, monkeypatch):
    monkeypatch.setattr(loading, "bundled_model_dir", lambda: saved_tiny_phi3)
    loaded = load_model(AppConfig(model="no-such-org/no-such-model-xyz", device="cpu"), zero_gpu=False)
    assert loaded.source == str(saved_tiny_phi3)
    assert loaded.banner.startswith("Could not load no-such-org/no-such-model-xyz")
    with pytest.raises(OSError):
        load_model(AppConfig(model="no-such-org/no-such-model-xyz", device="cpu", allow_fallback=False),
                   zero_gpu=False)


def test_weight_estimate_matches_the_loaded_model(saved_tiny_phi3):
    estimate = loading.estimate_weight_bytes(str(saved_tiny_phi3), torch.float32, False)
    assert estimate == sum(p.numel() * 4 for p in tiny_model("phi3").parameters())


def test_too_big_for_the_cpu_is_spread_to_disk_by_accelerate(saved_tiny_phi3, monkeypatch):
    weights = loading.estimate_weight_bytes(str(saved_tiny_phi3), torch.float32, False)
    # 512 MiB margin + 60% of the weights available: the embedding stays in memory, the rest goes to disk
    monkeypatch.setattr(facts, "cpu_memory", lambda: (512 * MiB + int(weights * 0.6), 4 * GiB))
    loaded = load_model(AppConfig(model=str(saved_tiny_phi3), device="cpu"), zero_gpu=False)
    placed = set(loaded.model.hf_device_map.values())
    assert "disk" in placed and facts.is_dispatched(loaded.model)
    assert facts.input_device(loaded.model) == torch.device("cpu")
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(input_ids=ids).logits, tiny_model("phi3")(input_ids=ids).logits,
                                   atol=1e-5, rtol=0)


# ---------------------------------------------------------------- a session over a dispatched model

PROMPT = "The capital of France is Paris."
# Layer 1 offloaded to disk: accelerate's hooks load its weights for each forward and move its inputs.
LAYER_ON_DISK = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                 "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "cpu"}


def _assert_same_trace(split: ModelSession, whole: ModelSession) -> None:
    a, b = split.trace(PROMPT), whole.trace(PROMPT)
    exact = dict(atol=1e-5, rtol=0)
    torch.testing.assert_close(a.last_logits, b.last_logits, **exact)
    torch.testing.assert_close(torch.as_tensor(a.topk_probs), torch.as_tensor(b.topk_probs), **exact)
    assert (a.topk_ids[:, :5] == b.topk_ids[:, :5]).all()
    lens_a, lens_b = split.lens_top(a), whole.lens_top(b)
    torch.testing.assert_close(torch.as_tensor(lens_a.probs), torch.as_tensor(lens_b.probs), **exact)
    assert (lens_a.ids == lens_b.ids).all()
    torch.testing.assert_close(a.resid, b.resid, **exact)
    torch.testing.assert_close(a.attention_patterns, b.attention_patterns, **exact)
    torch.testing.assert_close(split.lens_log_probs(a, 3), whole.lens_log_probs(b, 3), **exact)


def _assert_same_recomputed_layer_and_race(split: ModelSession, whole: ModelSession) -> None:
    ids = [int(i) for i in whole.trace(PROMPT).token_ids]
    small = Limits(attention_store_bytes=1)  # nothing kept: each layer is recomputed on demand
    split_small = ModelSession(split.model, split.tokenizer, AppConfig(limits=small), source="split")
    whole_small = ModelSession(whole.model, whole.tokenizer, AppConfig(limits=small), source="whole")
    a, b = split_small.trace(ids), whole_small.trace(ids)
    assert a.attention_patterns is None
    torch.testing.assert_close(split_small.layer_patterns(a, 1), whole_small.layer_patterns(b, 1),
                               atol=1e-5, rtol=0)
    race = [u for u in split.kv_race(ids[:6], 6, 1, update_interval_s=0)][-1].result
    reference = [u for u in whole.kv_race(ids[:6], 6, 1, update_interval_s=0)][-1].result
    assert race.outputs.identical and race.cached.token_ids == reference.cached.token_ids


def test_session_on_a_model_with_a_layer_on_disk_gives_the_same_trace(saved_tiny_phi3, tmp_path):
    placement = Placement(LAYER_ON_DISK, None, str(tmp_path / "offload"), "test: layer 1 on disk")
    model, tokenizer = load_pretrained(str(saved_tiny_phi3), torch.device("cpu"), torch.float32, False, placement)
    assert facts.is_dispatched(model) and model.model.layers[1].self_attn.qkv_proj.weight.device.type == "meta"
    split = ModelSession(model, tokenizer, AppConfig(), source="split")
    whole = ModelSession(tiny_model("phi3"), tiny_tokenizer(), AppConfig(), source="whole")
    _assert_same_trace(split, whole)
    _assert_same_recomputed_layer_and_race(split, whole)


def test_session_on_a_model_spread_by_accelerate_auto_gives_the_same_trace(saved_tiny_phi3, tmp_path):
    weights = loading.estimate_weight_bytes(str(saved_tiny_phi3), torch.float32, False)
    max_memory = {"cpu": int(weights * 0.6)}  # the embedding fits; the blocks and the head go to disk
    placement = Placement("auto", max_memory, str(tmp_path / "offload"), "test: auto with little memory")
    model, tokenizer = load_pretrained(str(saved_tiny_phi3), torch.device("cpu"), torch.float32, False, placement)
    assert model.hf_device_map["lm_head"] == "disk"
    split = ModelSession(model, tokenizer, AppConfig(), source="split")
    whole = ModelSession(tiny_model("phi3"), tiny_tokenizer(), AppConfig(), source="whole")
    _assert_same_trace(split, whole)
    _assert_same_recomputed_layer_and_race(split, whole)


def test_auto_serves_smollm2_without_a_gpu_and_phi3_with_one():
    assert loading.resolve_model_source("auto", torch.device("cpu")) == loading.SMOLLM2
    assert loading.resolve_model_source("smollm2", torch.device("cpu")) == loading.SMOLLM2
    assert loading.resolve_model_source("auto", torch.device("cuda")) == "microsoft/Phi-3-mini-4k-instruct"
    assert loading.resolve_model_source("bundled", torch.device("cpu")) == str(loading.bundled_model_dir())
