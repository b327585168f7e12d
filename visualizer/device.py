"""Facts about the device the model runs on, and the decisions that follow from them.

Which dtype is native (bf16 only from compute capability 8.0: `torch.cuda.is_bf16_supported()` also counts
emulation, so it says True on a T4), how much memory one request may use once the weights are loaded,
where the inputs of a model spread by accelerate must go, and why a GPU that was expected is not there.
Every number is read from the device at start-up; nothing here runs per request.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visualizer.config import DEFAULT_MEMORY_BUDGET_BYTES, AppConfig

MiB = 2**20
GiB = 2**30
MIN_MARGIN_BYTES = 512 * MiB  # kept free for the CUDA context's growth, fragmentation and other processes
MARGIN_FRACTION = 0.10  # of the device's total memory, when that is more than MIN_MARGIN_BYTES
ZERO_GPU_MEMORY_BYTES = 70 * GiB  # "70GB per workload" (hub docs), when the spaces package says nothing


# ---------------------------------------------------------------- dtype


def cuda_capability(device: torch.device) -> tuple[int, int] | None:
    """(major, minor) compute capability of a CUDA device; None for any other device."""
    if device.type != "cuda":
        return None
    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def auto_dtype(device: torch.device) -> torch.dtype:
    """bf16 where it is native (Ampere, sm 8.0, and later), fp16 on T4/V100 (7.x) and Apple GPUs, fp32 on CPU."""
    capability = cuda_capability(device)
    if capability is not None:
        return torch.bfloat16 if capability >= (8, 0) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


# ---------------------------------------------------------------- where a spread model takes its inputs


def module_device(module: nn.Module) -> torch.device:
    """Where a module computes: its accelerate hook's execution device, else its first weight's device.

    On a model dispatched by accelerate a module whose weights are offloaded (to CPU or disk) has them on
    the `meta` device, so `module.weight.device` is no place to put its inputs.
    """
    hook = getattr(module, "_hf_hook", None)
    execution = getattr(hook, "execution_device", None)
    if execution is not None:
        return execution if isinstance(execution, torch.device) else torch.device(_device_name(execution))
    weight = next(module.parameters(), None)
    if weight is None or weight.device.type == "meta":
        return torch.device("cpu")
    return weight.device


def input_device(model: nn.Module) -> torch.device:
    """Where input ids must be: the input embedding's device (a dispatched model spreads over several)."""
    return module_device(model.get_input_embeddings())


def _device_name(device: Any) -> str:
    return f"cuda:{device}" if isinstance(device, int) else str(device)


def is_dispatched(model: nn.Module) -> bool:
    """Placed by accelerate over several devices, or with weights offloaded to disk."""
    placed = set((getattr(model, "hf_device_map", None) or {}).values())
    return len(placed) > 1 or "disk" in placed


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers (offloaded ones included: meta tensors keep shape and dtype)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


# ---------------------------------------------------------------- free memory


def cpu_memory() -> tuple[int, int]:
    """(available, total) bytes of system memory: /proc/meminfo where there is one, else sysconf."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        fields = {}
        for line in meminfo.read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0]) * 1024  # kB
        if "MemAvailable" in fields and "MemTotal" in fields:
            return fields["MemAvailable"], fields["MemTotal"]
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


def cuda_memory(device: torch.device) -> tuple[int, int]:
    """(free, total) bytes of one CUDA device, as the driver reports them now."""
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


def margin_bytes(total: int) -> int:
    return max(MIN_MARGIN_BYTES, int(total * MARGIN_FRACTION))


# ---------------------------------------------------------------- the per-request budget


@dataclass(frozen=True)
class Budget:
    """The largest working set one request may have, and where that number came from (shown in refusals)."""

    bytes: int
    why: str

    def refusal(self, what: str, estimate: int) -> str:
        return (f"{what} would need about {estimate / MiB:,.0f} MiB, over this server's budget of "
                f"{self.bytes / MiB:,.0f} MiB ({self.why}): use a shorter prompt.")


def _concurrency(config: AppConfig) -> int:
    return max(1, int(config.queue.concurrency_limit))


def _share(free: int, margin: int, concurrency: int) -> int:
    return max(0, (free - margin) // concurrency)


def memory_budget(config: AppConfig, device: torch.device, model: nn.Module | None = None,
                  zero_gpu: bool = False) -> Budget:
    """The per-request budget: the operator's number, else (free memory after the weights - margin) / concurrency.

    Call it after the weights are loaded. CUDA: the least free memory over the GPUs the model uses; ZeroGPU
    (no real GPU in the main process): the workload's memory less the weights; CPU: available system memory,
    capped at DEFAULT_MEMORY_BUDGET_BYTES (the CPU is shared with everything else on the machine).
    """
    operator = config.limits.memory_budget_bytes
    if operator is not None:
        return Budget(int(operator), "set by the operator")
    n = _concurrency(config)
    at_once = f"{n} request{'s' if n != 1 else ''} at once"
    if zero_gpu:
        total = _zero_gpu_memory()
        free = max(0, total - (weight_bytes(model) if model is not None else 0))
        margin = margin_bytes(total)
        return Budget(_share(free, margin, n), f"ZeroGPU memory {_mib(total)} less {_mib(total - free)} of "
                      f"weights, margin {_mib(margin)}, {at_once}")
    if device.type == "cuda":
        devices = _cuda_devices(model, device)
        readings = {d: cuda_memory(d) for d in devices}
        where, (free, total) = min(readings.items(), key=lambda item: item[1][0])
        margin = margin_bytes(total)
        name = "GPU" if len(devices) == 1 else f"GPU {where.index}, the fullest of {len(devices)}"
        return Budget(_share(free, margin, n), f"free {name} memory {_mib(free)} after weights, "
                      f"margin {_mib(margin)}, {at_once}")
    available, total = cpu_memory()
    margin = margin_bytes(total)
    share = _share(available, margin, n)
    if share > DEFAULT_MEMORY_BUDGET_BYTES:
        return Budget(DEFAULT_MEMORY_BUDGET_BYTES, f"the CPU default cap; {_mib(available)} of memory "
                      f"available after weights, margin {_mib(margin)}, {at_once}")
    return Budget(share, f"available memory {_mib(available)} after weights, margin {_mib(margin)}, {at_once}")


def _mib(n: int) -> str:
    return f"{n / MiB:,.0f} MiB"


def _cuda_devices(model: nn.Module | None, device: torch.device) -> list[torch.device]:
    """The CUDA devices holding the model: every GPU of its accelerate device map, else the one device."""
    device_map: Mapping[str, Any] = getattr(model, "hf_device_map", None) or {}
    indices = sorted({d for d in device_map.values() if isinstance(d, int)}
                     | {torch.device(d).index or 0 for d in device_map.values()
                        if isinstance(d, str) and d.startswith("cuda")})
    if indices:
        return [torch.device("cuda", i) for i in indices]
    return [device if device.index is not None else torch.device("cuda", torch.cuda.current_device())]


def _zero_gpu_memory() -> int:
    """The workload's memory as the spaces package describes its GPU (spaces/zero/configs.json)."""
    try:
        from spaces.zero import config as zero_config

        return int(zero_config.get_config()["memory"])
    except Exception:  # noqa: BLE001 - an older or absent spaces package: the documented figure
        return ZERO_GPU_MEMORY_BYTES


# ---------------------------------------------------------------- a GPU that was expected


def cuda_unavailable_reason() -> str:
    """Why torch cannot use CUDA here, in one line (the init error text when there is one)."""
    if torch.version.cuda is None:
        return "this torch build has no CUDA support (a CPU wheel)"
    try:
        torch.cuda.init()
    except Exception as error:  # noqa: BLE001 - any init failure is the reason we want to show
        text = " ".join(str(error).split())[:300]
        return f"torch.cuda.is_available() is False; CUDA failed to start: {type(error).__name__}: {text}"
    if torch.cuda.device_count() == 0:
        return "torch.cuda.is_available() is False: the driver reports no CUDA device"
    return "torch.cuda.is_available() is False"


def gpu_hardware_hint(environ: Mapping[str, str] | None = None) -> str | None:
    """What says this machine has a GPU, whatever torch thinks: ZeroGPU, a driver, CUDA visibility."""
    env = os.environ if environ is None else environ
    if env.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
        return "SPACES_ZERO_GPU is set"
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return "an NVIDIA driver reports a GPU (/proc/driver/nvidia/gpus)"
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        value = env.get(name, "").strip()
        if value and value.lower() not in ("-1", "none", "void", "no"):
            return f"{name}={value}"
    return None


def gpu_expected(config: AppConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """Why a GPU was expected (`--device cuda`, or a Space with GPU hardware), or None."""
    env = os.environ if environ is None else environ
    if config.device == "cuda":
        return "--device cuda was asked for"
    if config.device != "auto" or not env.get("SPACE_ID"):
        return None
    hint = gpu_hardware_hint(env)
    return f"this Space ({env['SPACE_ID']}) has GPU hardware: {hint}" if hint else None


def cpu_fallback_banner(config: AppConfig, device: torch.device,
                        environ: Mapping[str, str] | None = None) -> str | None:
    """The banner for a model that runs on the CPU although a GPU was expected, with the reason."""
    if device.type != "cpu":
        return None
    expected = gpu_expected(config, environ)
    if expected is None:
        return None
    return (f"Running on the CPU although a GPU was expected ({expected}): {cuda_unavailable_reason()}. "
            "Everything works, slowly; check the Space's hardware and the torch/CUDA build.")


@contextlib.contextmanager
def released_on_oom(device: torch.device) -> Iterator[None]:
    """A CUDA out-of-memory frees the cache and becomes a message; the server keeps serving."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ValueError("The GPU ran out of memory for this request (other students may be using it): "
                         "try a shorter prompt or fewer tokens.") from error
