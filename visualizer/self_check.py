"""The session's check of itself on the loaded model, once at load: a view that cannot check itself says so.

On a short probe the app's own readings must reproduce transformers' outputs:
- the logit lens's last row (readout + LM head + scaling + soft-capping of the last block's output) equals the
  model's logits; the first readout candidate that does is kept, so BLOOM's embedding layernorm or OPT's norm
  placement cannot fool the lens;
- the attention patterns the hooks capture equal `output_attentions`, layer by layer;
- the residual stream the hooks capture equals `output_hidden_states` (its last entry is the last block's
  output, or that output after the final norm, depending on the family).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from visualizer.capture import ActivationCapture
from visualizer.model_parts import ModelParts

PROBE_LENGTH = 12
FP32_TOLERANCE = 1e-3  # max abs difference allowed in float32 (the bound for the lens)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    max_diff: float
    message: str | None = None  # why the view is unavailable, for the page and for ValueErrors


@dataclass(frozen=True)
class SelfCheck:
    lens: CheckResult
    attention: CheckResult
    resid: CheckResult
    readout_names: tuple[str, ...]
    probe_seconds: float = 0.0  # wall time of the probe's forward pass (a first, cold pass: an upper bound)


def probe_ids(d_vocab: int, n_pos: int = PROBE_LENGTH) -> torch.Tensor:
    """A fixed, ordinary-looking id sequence (no id below 3: those are often special tokens)."""
    span = max(d_vocab - 3, 1)
    return (torch.arange(n_pos) * 7919 % span + 3).long()


def _tolerance(dtype: torch.dtype, scale: float) -> float:
    return FP32_TOLERANCE if dtype == torch.float32 else 2e-2 * max(1.0, scale)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def _architecture(model: nn.Module) -> str:
    return type(model).__name__


@torch.inference_mode()
def run_self_check(model: nn.Module, parts: ModelParts, capture: ActivationCapture,
                   candidates: list[tuple[tuple[str, ...], tuple[nn.Module, ...]]]) -> tuple[SelfCheck, ModelParts]:
    """Check the lens, attention and residual readings on a probe; returns the result and the parts with the
    readout that reproduced the logits (or the most likely one, marked unavailable)."""
    device = model.get_input_embeddings().weight.device
    ids = probe_ids(parts.dims.d_vocab)[None].to(device)  # [batch=1, pos]
    patterns: list[torch.Tensor] = []
    attention_error: str | None = None

    def on_attention(layer: int, weights: torch.Tensor) -> None:
        patterns.append(weights[0].float().cpu())

    start = time.perf_counter()
    try:
        with capture.record(want_resid=True, on_attention=on_attention) as recorder:
            out = model(input_ids=ids, use_cache=False, output_attentions=True, output_hidden_states=True)
    except RuntimeError as error:  # no weights returned: the attention implementation hides them
        attention_error = str(error)
        with capture.record(want_resid=True) as recorder:
            out = model(input_ids=ids, use_cache=False, output_hidden_states=True)
    logits = out.logits[0].float()  # [pos, d_vocab]
    probe_seconds = time.perf_counter() - start
    resid = [r[0] for r in recorder.resid]  # n_layers + 1 of [pos, d_model]
    dtype = parts.lm_head.weight.dtype

    lens, parts = _check_lens(model, parts, candidates, resid[-1], logits, dtype)
    attention = _check_attention(model, patterns, out.attentions, attention_error, parts.dims.n_layers)
    residual = _check_resid(model, parts, resid, out.hidden_states, dtype)
    return SelfCheck(lens, attention, residual, parts.readout_names, probe_seconds), parts


def _check_lens(model, parts: ModelParts, candidates, last_resid: torch.Tensor, logits: torch.Tensor,
                dtype: torch.dtype) -> tuple[CheckResult, ModelParts]:
    tolerance = _tolerance(dtype, float(logits.abs().max()))
    first_diff = None
    for names, modules in candidates:
        trial = parts.with_readout(names, modules)
        diff = _max_diff(trial.unembed(last_resid).float(), logits)
        first_diff = diff if first_diff is None else first_diff
        if diff <= tolerance:
            return CheckResult(True, diff), trial
    message = (f"The logit lens is unavailable for {_architecture(model)}: its last layer does not reproduce the "
               f"model's output (max diff {first_diff:.3g}).")
    return CheckResult(False, float(first_diff or 0.0), message), parts


def _check_attention(model, patterns: list[torch.Tensor], reference, error: str | None, n_layers: int) -> CheckResult:
    name = _architecture(model)
    if error is not None:
        return CheckResult(False, float("inf"), f"Attention patterns are unavailable for {name}: {error}")
    if not reference or len(reference) != n_layers or len(patterns) != n_layers:
        return CheckResult(False, float("inf"), f"Attention patterns are unavailable for {name}: the model returned "
                           f"{len(reference or ())} layers of attentions and the hooks saw {len(patterns)}, "
                           f"expected {n_layers}.")
    diff = max(_max_diff(mine, theirs[0].cpu()) for mine, theirs in zip(patterns, reference, strict=True))
    if diff > FP32_TOLERANCE:
        return CheckResult(False, diff, f"Attention patterns are unavailable for {name}: the captured weights differ "
                           f"from output_attentions (max diff {diff:.3g}).")
    return CheckResult(True, diff)


def _check_resid(model, parts: ModelParts, resid: list[torch.Tensor | None], hidden_states,
                 dtype: torch.dtype) -> CheckResult:
    name = _architecture(model)
    if any(r is None for r in resid) or not hidden_states or len(hidden_states) != len(resid):
        return CheckResult(False, float("inf"), f"The residual stream is unavailable for {name}: the hooks saw "
                           f"{sum(r is not None for r in resid)} of {len(resid)} stages.")
    theirs = [h[0] for h in hidden_states]
    diffs = [_max_diff(mine, ref) for mine, ref in zip(resid[:-1], theirs[:-1], strict=True)]
    last = resid[-1]  # families differ: their last entry is the last block's output, or it after the readout
    stages = [last]
    for module in parts.readout:
        stages.append(module(stages[-1]))
    diffs.append(min(_max_diff(stage, theirs[-1]) for stage in stages))
    diff = max(diffs)
    if diff > _tolerance(dtype, max(float(t.abs().max()) for t in theirs)):
        return CheckResult(False, diff, f"The residual stream is unavailable for {name}: the captured stream "
                           f"differs from output_hidden_states (max diff {diff:.3g}).")
    return CheckResult(True, diff)
