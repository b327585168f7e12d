"""Settings a timing run may change, kept off the shared model: attention switching, hook-free copies, dtypes.

The attention implementation is switched on the shared model only inside `attention_implementation` (the caller
holds the exclusive lock) and restored however the block ends; every other setting runs on a copy.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from transformers import PreTrainedModel

from visualizer.device import cuda_capability, weight_bytes

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


@contextlib.contextmanager
def attention_implementation(model: PreTrainedModel, name: str) -> Iterator[None]:
    """Switch the model's attention implementation; the one before is restored however the block ends."""
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation(name)
        if model.config._attn_implementation != name:  # transformers only warns for models that cannot switch
            raise ValueError(f"{type(model).__name__} cannot switch its attention implementation at run time")
        yield
    finally:
        model.set_attn_implementation(before)


def hook_free_copy(model: PreTrainedModel, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A deep copy without the session's forward hooks, optionally in another dtype; the model is untouched.

    The hooks are kept out of the copy (memo: each hook is "already copied" as itself), then dropped from it,
    so the copy never feeds the session's per-thread recorders and deep-copies nothing of the session.
    """
    memo: dict[int, Any] = {}
    for module in model.modules():
        for hooks in _hook_dicts(module):
            memo.update({id(fn): fn for fn in hooks.values()})
    twin = copy.deepcopy(model, memo)
    for module in twin.modules():
        for hooks in _hook_dicts(module):
            hooks.clear()
    return twin.to(dtype) if dtype is not None else twin


def _hook_dicts(module: torch.nn.Module) -> list[dict]:
    names = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
             "_forward_hooks_always_called")
    return [d for d in (getattr(module, n, None) for n in names) if isinstance(d, dict)]


def native_dtypes(device: torch.device) -> list[torch.dtype]:
    """The dtypes worth comparing here: fp32 everywhere, bf16 on CPUs and sm 8.0+ GPUs, fp16 on GPUs (and CPUs)."""
    capability = cuda_capability(device)
    if capability is not None:
        return [torch.float32, *([torch.bfloat16] if capability >= (8, 0) else []), torch.float16]
    if device.type == "mps":
        return [torch.float32, torch.float16]
    return [torch.float32, torch.bfloat16, torch.float16]


def copy_bytes(model: PreTrainedModel, dtype: torch.dtype) -> int:
    """Peak of making a copy in `dtype`: the copy at the loaded dtype, plus its largest tensor converted."""
    largest = max((t.numel() for t in model.parameters()), default=0)
    return weight_bytes(model) + largest * dtype.itemsize
