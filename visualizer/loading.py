"""Loading the one model: which source, which device and dtype, and the fallback to the bundled model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

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
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps was asked for, but this machine has no Apple GPU")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 where the GPU supports it, fp16 on older GPUs (T4) and Apple GPUs, fp32 on the CPU."""
    if name != "auto":
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def resolve_model_source(name: str, device: torch.device) -> str:
    if name == "auto":
        return PHI3_MINI if device.type == "cuda" else str(bundled_model_dir())
    if name == "bundled":
        return str(bundled_model_dir())
    return name


@dataclass(frozen=True)
class LoadedModel:
    model: PreTrainedModel
    tokenizer: Any
    source: str
    banner: str | None = None  # shown above the tabs: why this is not the model that was asked for


def load_model(config: AppConfig) -> LoadedModel:
    """The configured model on its device, or the bundled model with a banner saying why not."""
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    source = resolve_model_source(config.model, device)
    try:
        model, tokenizer = _load_pretrained(source, device, dtype, config.trust_remote_code)
        return LoadedModel(model, tokenizer, source)
    except Exception as error:
        bundled = str(bundled_model_dir())
        if source == bundled or not config.allow_fallback:
            raise
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        banner = (f"Could not load {source} ({reason}). Showing the bundled teaching model instead; "
                  "check the model id, the network or the Hugging Face cache.")
        log.warning(banner)
        model, tokenizer = _load_pretrained(bundled, device, dtype, False)
        return LoadedModel(model, tokenizer, bundled, banner)


def _load_pretrained(source: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool):
    log.info("loading %s on %s in %s", source, device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="eager",
                                                 trust_remote_code=trust_remote_code)
    global load_count
    load_count += 1
    return model.to(device).eval(), tokenizer
