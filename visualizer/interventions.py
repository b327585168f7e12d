"""Run the model with interventions: ablate heads, attention or MLP blocks, patch activations from another run.

Everything goes through the model's one permanent ActivationCapture (visualizer/capture.py): an intervention is
a set of edits in the calling thread's recorder, so no hook is installed per request, the shared model is never
changed, and concurrent requests do not see each other's edits. Grids are batched: the prompt is repeated along
the batch dimension and row r of the batch gets edit r, so a [layer, head] grid costs one pass per layer per chunk.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from visualizer.capture import ActivationCapture, Edit
from visualizer.names import act_name

MODES = ("zero", "mean")
SITES = ("resid", "attn_out", "mlp_out")


@dataclass(frozen=True)
class AblationSpec:
    """What to knock out: heads as (layer, head) pairs, whole attention blocks and MLP blocks by layer."""

    heads: tuple[tuple[int, int], ...] = ()
    attention_layers: tuple[int, ...] = ()
    mlp_layers: tuple[int, ...] = ()
    mode: str = "zero"  # "zero", or "mean": the activation's mean over the positions of this prompt

    @property
    def is_empty(self) -> bool:
        return not (self.heads or self.attention_layers or self.mlp_layers)

    def describe(self) -> str:
        if self.is_empty:
            return "nothing ablated"
        parts = [f"L{layer}H{head}" for layer, head in self.heads]
        parts += [f"attention of layer {layer}" for layer in self.attention_layers]
        parts += [f"MLP of layer {layer}" for layer in self.mlp_layers]
        return f"{self.mode}-ablated: " + ", ".join(parts)

    def names(self) -> set[str]:
        """The activations this ablation edits."""
        names = {act_name("z", layer) for layer, _ in self.heads}
        names |= {act_name("attn_out", layer) for layer in self.attention_layers}
        return names | {act_name("mlp_out", layer) for layer in self.mlp_layers}


@functools.cache
def _takes_logits_to_keep(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


def run(model: nn.Module, capture: ActivationCapture, ids: torch.Tensor, keep: Iterable[str] = (),
        edits: dict[str, Edit] | None = None, last_n: int | None = None,
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass of ids [batch, pos] with edits; (float32 logits [batch, pos or last_n, d_vocab], kept
    activations by name)."""
    kwargs = {}
    if last_n is not None and _takes_logits_to_keep(type(model)):
        kwargs["logits_to_keep"] = last_n
    with torch.inference_mode(), capture.record(want_resid=False, capture=set(keep), edits=edits) as recorder:
        logits = model(input_ids=ids, use_cache=False, **kwargs).logits
    if last_n is not None:
        logits = logits[:, -last_n:]
    return logits.float(), recorder.acts


def _replace_all(value: torch.Tensor | None) -> Edit:
    """Zero (value None) or a per-position-broadcast mean [d] for every position and batch row."""
    def edit(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x) if value is None else value.to(x.dtype).expand_as(x).clone()
    return edit


def _replace_heads(heads: list[int], mean_z: torch.Tensor | None) -> Edit:
    def edit(z: torch.Tensor) -> torch.Tensor:  # [batch, pos, head, d_head]
        z = z.clone()
        z[..., heads, :] = 0 if mean_z is None else mean_z[heads].to(z.dtype)
        return z
    return edit


def ablation_edits(spec: AblationSpec, means: dict[str, torch.Tensor]) -> dict[str, Edit]:
    """Edits for `spec`; `means` holds each edited activation's mean over positions when the mode is 'mean'."""
    if spec.mode not in MODES:
        raise ValueError(f"ablation mode must be one of {', '.join(MODES)}, got {spec.mode!r}")
    mean = spec.mode == "mean"
    edits: dict[str, Edit] = {}
    by_layer: dict[int, list[int]] = {}
    for layer, head in spec.heads:
        by_layer.setdefault(layer, []).append(head)
    for layer, heads in by_layer.items():
        name = act_name("z", layer)
        edits[name] = _replace_heads(sorted(set(heads)), means[name] if mean else None)
    for name in spec.names() - set(edits):
        edits[name] = _replace_all(means[name] if mean else None)
    return edits


def means_over_positions(acts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each kept activation [1, pos, ...] averaged over the prompt's positions -> [...]."""
    return {name: value[0].float().mean(0) for name, value in acts.items()}


def ablate(model: nn.Module, capture: ActivationCapture, ids: torch.Tensor,
           spec: AblationSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [pos, d_vocab] of ids [pos], plain and with `spec` applied (two forward passes)."""
    batch = ids[None]
    plain, acts = run(model, capture, batch, keep=spec.names() if spec.mode == "mean" else ())
    if spec.is_empty:
        ablated, _ = run(model, capture, batch, edits={})
    else:
        ablated, _ = run(model, capture, batch, edits=ablation_edits(spec, means_over_positions(acts)))
    return plain[0], ablated[0]


def _chunks(n: int, size: int) -> list[range]:
    size = max(1, size)
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def each_head_log_probs(model: nn.Module, capture: ActivationCapture, ids: torch.Tensor, n_layers: int, n_heads: int,
                        mode: str, position: int, target: int, rows_per_pass: int) -> tuple[torch.Tensor, int]:
    """log p(target) at `position` with each head alone ablated: [layer, head], and the forward passes it took.
    Row r of a batch ablates head r, so a layer costs ceil(n_heads / rows_per_pass) passes."""
    n_pos = ids.shape[0]
    z_names = {act_name("z", layer) for layer in range(n_layers)}
    _, acts = run(model, capture, ids[None], keep=z_names if mode == "mean" else (), last_n=1)
    means = means_over_positions(acts)
    out = torch.empty(n_layers, n_heads)
    passes = 1
    for layer in range(n_layers):
        name = act_name("z", layer)
        for chunk in _chunks(n_heads, rows_per_pass):
            heads = torch.tensor(list(chunk))
            rows = torch.arange(len(chunk))

            def edit(z: torch.Tensor, heads=heads, rows=rows, name=name) -> torch.Tensor:
                z = z.clone()  # [batch, pos, head, d_head]
                z[rows, :, heads] = 0 if mode == "zero" else means[name][heads][:, None].to(z.dtype)
                return z
            logits, _ = run(model, capture, ids[None].expand(len(chunk), n_pos), edits={name: edit},
                            last_n=n_pos - position)
            out[layer, list(chunk)] = torch.log_softmax(logits[:, 0], -1)[:, target].cpu()
            passes += 1
    return out, passes


def site_names(site: str, n_layers: int) -> list[str]:
    """The activations a patching grid's rows patch: the residual stream (embedding output, then each block's
    output), or each layer's attention or MLP output."""
    if site == "resid":
        return [act_name("resid_pre", 0)] + [act_name("resid_post", layer) for layer in range(n_layers)]
    if site in ("attn_out", "mlp_out"):
        return [act_name(site, layer) for layer in range(n_layers)]
    raise ValueError(f"site must be one of {', '.join(SITES)}, got {site!r}")


def patch(model: nn.Module, capture: ActivationCapture, clean_ids: torch.Tensor, corrupted_ids: torch.Tensor,
          names: list[str], positions: list[int]) -> torch.Tensor:
    """Logits [pos, d_vocab] of the corrupted prompt with the named activations at `positions` taken from the
    clean run (two forward passes)."""
    _, clean = run(model, capture, clean_ids[None], keep=names, last_n=1)

    def patcher(name: str) -> Edit:
        def edit(x: torch.Tensor) -> torch.Tensor:
            x = x.clone()
            x[:, positions] = clean[name][:, positions].to(x.dtype)
            return x
        return edit
    logits, _ = run(model, capture, corrupted_ids[None], edits={name: patcher(name) for name in names})
    return logits[0]


def patch_grid(model: nn.Module, capture: ActivationCapture, clean_ids: torch.Tensor, corrupted_ids: torch.Tensor,
               names: list[str], answers: tuple[int, int], rows_per_pass: int) -> tuple[torch.Tensor, int]:
    """logit[answers[0]] - logit[answers[1]] at the last position of the corrupted run with one activation at one
    position patched from the clean run: [name, position], and the forward passes it took."""
    n_pos = corrupted_ids.shape[0]
    _, clean = run(model, capture, clean_ids[None], keep=names, last_n=1)
    out = torch.empty(len(names), n_pos)
    passes = 1
    for row, name in enumerate(names):
        source = clean[name][0]  # [pos, ...]
        for chunk in _chunks(n_pos, rows_per_pass):
            positions = torch.tensor(list(chunk))
            rows = torch.arange(len(chunk))

            def edit(x: torch.Tensor, positions=positions, rows=rows, source=source) -> torch.Tensor:
                x = x.clone()
                x[rows, positions] = source[positions].to(x.dtype)
                return x
            logits, _ = run(model, capture, corrupted_ids[None].expand(len(chunk), n_pos), edits={name: edit},
                            last_n=1)
            last = logits[:, -1]
            out[row, list(chunk)] = (last[:, answers[0]] - last[:, answers[1]]).cpu()
            passes += 1
    return out, passes


def attribution_activations(model: nn.Module, capture: ActivationCapture, ids: torch.Tensor, n_layers: int):
    """One forward pass keeping every residual, attention output, MLP output and z: (logits [pos, d_vocab],
    resid [n_layers + 1, pos, d_model], acts by name, each [pos, ...])."""
    keep = set()
    for layer in range(n_layers):
        keep |= {act_name(kind, layer) for kind in ("attn_out", "mlp_out", "z")}
    with torch.inference_mode(), capture.record(want_resid=True, capture=keep) as recorder:
        logits = model(input_ids=ids[None], use_cache=False).logits[0].float()
    resid = torch.stack([r[0] for r in recorder.resid])
    return logits, resid, {name: value[0] for name, value in recorder.acts.items()}
