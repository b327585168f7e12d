"""Direct logit attribution: the target's logit at one position as a sum of what each part wrote into the residual
stream, read through the final norm *frozen* at that position (its scale taken from the final residual).

With the scale frozen, readout and LM head are affine, so the logit splits exactly into: the embedding, each
block (or its attention and MLP, when they add up to the block's change), each head (z through its columns of the
output projection, plus that projection's bias), and the constant terms (final norm bias, projection and LM-head
biases), all multiplied by the logit scale. Soft-capping is not affine: the parts then sum to the logit before the
cap, which the result says.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from visualizer.model_parts import ModelParts, _is_norm

_EPS_NAMES = ("eps", "variance_epsilon", "epsilon")


@dataclass(frozen=True)
class FrozenNorm:
    """norm(v) ~ scale * weight * (v - mean(v) if center else v) + bias, with `scale` from one residual vector."""

    center: bool
    scale: float
    weight: torch.Tensor  # [d_model] float64 (Gemma's 1 + w already added)
    bias: torch.Tensor  # [d_model] float64, zeros when the norm has none

    def linear(self, v: torch.Tensor) -> torch.Tensor:
        if self.center:
            v = v - v.mean(-1, keepdim=True)
        return v * self.scale * self.weight


def _tolerance(dtype: torch.dtype, scale: float) -> float:
    return (1e-4 if dtype == torch.float32 else 2e-2) * (1.0 + scale)


def freeze_norm(norm: nn.Module, x: torch.Tensor) -> FrozenNorm | str:
    """The norm at `x` [d_model] as a frozen affine map, or why no LayerNorm/RMSNorm formula reproduces it."""
    expected = norm(x[None])[0].detach().double()
    x64 = x.double()
    weight = getattr(norm, "weight", None)
    weight = torch.ones_like(x64) if weight is None else weight.detach().double().reshape(-1)
    bias = getattr(norm, "bias", None)
    bias = torch.zeros_like(x64) if bias is None else bias.detach().double().reshape(-1)
    eps = next((float(getattr(norm, n)) for n in _EPS_NAMES if isinstance(getattr(norm, n, None), int | float)), 1e-5)
    best: tuple[float, FrozenNorm | None] = (float("inf"), None)
    for center in (True, False):
        u = x64 - x64.mean() if center else x64
        scale = float(1.0 / torch.sqrt((u * u).mean() + eps))
        for offset in (0.0, 1.0):  # Gemma's RMSNorm multiplies by 1 + weight
            frozen = FrozenNorm(center, scale, weight + offset, bias)
            diff = float((frozen.linear(x64) + bias - expected).abs().max())
            best = min(best, (diff, frozen), key=lambda item: item[0])
    if best[0] > _tolerance(x.dtype, float(expected.abs().max())):
        return (f"the final norm ({type(norm).__name__}) matches no LayerNorm or RMSNorm formula "
                f"(closest differs by {best[0]:.3g})")
    return best[1]


def head_outputs(z: torch.Tensor, out_proj: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each head's write into the residual stream: z [head, d_head] through its columns of the output projection
    (a Linear, or GPT-2's Conv1D with the transposed layout) -> [head, d_model] float64, and the bias [d_model]."""
    n_heads, d_head = z.shape
    weight = out_proj.weight.detach().double()
    w_in = weight if type(out_proj).__name__ == "Conv1D" else weight.T  # [n_heads * d_head, d_model]
    per_head = torch.einsum("hd,hdm->hm", z.double(), w_in.reshape(n_heads, d_head, -1))
    bias = getattr(out_proj, "bias", None)
    return per_head, None if bias is None else bias.detach().double()


@dataclass(frozen=True)
class Attribution:
    """Contributions to one target logit at one position (logit units, after the logit scale)."""

    position: int
    target_id: int
    target_text: str
    logit: float  # the model's own logit (after soft-capping, if any)
    parts_logit: float  # what the parts sum to: the logit before soft-capping
    embed: float
    block: np.ndarray  # [layer]: each block's whole change of the residual stream
    attention: np.ndarray | None  # [layer]: attention's part (None: split unavailable)
    mlp: np.ndarray | None  # [layer]
    heads: np.ndarray | None  # [layer, head]
    head_bias: np.ndarray | None  # [layer]: the output projection's bias (counts in `attention`, not in any head)
    norm_bias: float  # the final norm's bias through the LM head
    head_bias_term: float  # projection and LM-head biases
    max_error: float  # |sum of the parts - parts_logit|
    split_unavailable: str | None = None  # why attention and MLP are not shown apart
    heads_unavailable: str | None = None  # why heads are not shown
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float:
        layers = self.block.sum() if self.attention is None else self.attention.sum() + self.mlp.sum()
        return float(self.embed + layers + self.norm_bias + self.head_bias_term)


def _readout_maps(parts: ModelParts, x_final: torch.Tensor):
    """(linear map of a [n, d_model] float64 batch to the readout's output, its constant, an error message)."""
    readout = list(parts.readout)
    norm_at = next((i for i, m in enumerate(readout) if _is_norm("", m)), None)
    before, after = (readout[:norm_at], readout[norm_at + 1:]) if norm_at is not None else ([], readout)
    if before or any(not isinstance(m, nn.Linear) for m in after):
        return None, None, "the readout has parts other than a final norm and linear projections"
    frozen = freeze_norm(readout[norm_at], x_final) if norm_at is not None else None
    if isinstance(frozen, str):
        return None, None, frozen
    linears = [(m.weight.detach().double(), None if m.bias is None else m.bias.detach().double()) for m in after]

    def linear(v: torch.Tensor) -> torch.Tensor:
        v = frozen.linear(v) if frozen is not None else v
        for weight, _ in linears:
            v = v @ weight.T
        return v

    norm_bias = frozen.bias if frozen is not None else torch.zeros_like(x_final, dtype=torch.float64)
    for weight, _ in linears:
        norm_bias = norm_bias @ weight.T
    proj_bias = torch.zeros(x_final.shape[-1], dtype=torch.float64, device=x_final.device)
    for weight, bias in linears:
        proj_bias = proj_bias @ weight.T + (bias if bias is not None else 0)
    return linear, (norm_bias, proj_bias), None


def attribute(parts: ModelParts, out_projs, resid: torch.Tensor, attn: torch.Tensor | None, mlp: torch.Tensor | None,
              z: torch.Tensor | None, target_id: int, position: int, model_logit: float, uncapped_logit: float,
              target_text: str = "", why_no_split: str | None = None, why_no_heads: str | None = None) -> Attribution:
    """DLA at one position from its activations: resid [n_layers + 1, d_model], attn and mlp [n_layers, d_model]
    (module outputs), z [n_layers, head, d_head]; `out_projs` the attention output projections. `model_logit` is
    the model's logit, `uncapped_logit` the same before soft-capping (equal when the model does not cap)."""
    dtype = resid.dtype
    linear, constants, error = _readout_maps(parts, resid[-1])
    if error:
        raise ValueError(f"Direct logit attribution is unavailable for this model: {error}.")
    resid64 = resid.double()
    delta = resid64[1:] - resid64[:-1]  # [n_layers, d_model]
    scale_of_stream = float(resid64.abs().max())
    split_msg, heads_msg = why_no_split, why_no_heads
    if split_msg is None and (attn is None or mlp is None):
        split_msg = "the attention or MLP outputs could not be read"
    if split_msg is None:
        diff = float((attn.double() + mlp.double() - delta).abs().max())
        if diff > _tolerance(dtype, scale_of_stream):
            split_msg = (f"attention output + MLP output differs from the block's change of the residual stream by "
                         f"{diff:.3g} (the block transforms them before adding them, or its modules add the "
                         "residual themselves)")
    per_head = head_bias = None
    if split_msg is not None:
        heads_msg = heads_msg or "heads are shown only where attention and MLP are shown apart"
    elif heads_msg is None and z is None:
        heads_msg = "the per-head values (the output projection's input) could not be read"
    elif heads_msg is None:
        outs = [head_outputs(z[layer], out_projs[layer]) for layer in range(len(out_projs))]
        per_head = torch.stack([o[0] for o in outs])  # [layer, head, d_model]
        head_bias = torch.stack([o[1] if o[1] is not None else torch.zeros_like(o[0][0]) for o in outs])
        diff = float((per_head.sum(1) + head_bias - attn.double()).abs().max())
        if diff > _tolerance(dtype, scale_of_stream):
            heads_msg = f"the heads' outputs do not add up to the attention output (off by {diff:.3g})"
            per_head = head_bias = None
    w_t = parts.lm_head.weight[target_id].detach().double()
    lm_bias = getattr(parts.lm_head, "bias", None)
    b_t = 0.0 if lm_bias is None else float(lm_bias[target_id].detach())
    scale = parts.dims.logit_scale

    def logit_of(vectors: torch.Tensor) -> np.ndarray:  # [..., d_model] -> [...]
        flat = vectors.reshape(-1, vectors.shape[-1])
        return (linear(flat) @ w_t * scale).reshape(vectors.shape[:-1]).cpu().numpy()

    norm_bias, proj_bias = constants
    attn_split = None if split_msg else logit_of(attn.double())
    mlp_split = None if split_msg else logit_of(mlp.double())
    attribution = Attribution(
        position=position, target_id=target_id, target_text=target_text, logit=model_logit, parts_logit=0.0,
        embed=float(logit_of(resid64[:1])[0]), block=logit_of(delta), attention=attn_split, mlp=mlp_split,
        heads=None if per_head is None else logit_of(per_head),
        head_bias=None if head_bias is None else logit_of(head_bias),
        norm_bias=float(norm_bias @ w_t * scale), head_bias_term=float((proj_bias @ w_t + b_t) * scale),
        max_error=0.0, split_unavailable=split_msg, heads_unavailable=heads_msg)
    return _with_total(attribution, parts, model_logit, uncapped_logit)


def _with_total(a: Attribution, parts: ModelParts, model_logit: float, uncapped_logit: float) -> Attribution:
    notes = ["The final norm is frozen at this position: its scale comes from the final residual stream, so each "
             "part's share is read as if the others were present."]
    cap = parts.dims.final_logit_softcap
    if cap:
        notes.append(f"The model soft-caps its logits at {cap:g}: the parts sum to the logit before the cap "
                     f"({uncapped_logit:.4g}); after the cap it is {model_logit:.4g}.")
    return replace(a, parts_logit=uncapped_logit, max_error=abs(a.total - uncapped_logit), notes=tuple(notes))
