"""Record the residual stream and attention patterns of one forward pass, layer by layer, and let the calling
thread read or replace chosen activations (ablation, patching) through the same permanent hooks.

Hooks are installed once, when the session loads the model, and stay for the life of the process: adding
and removing hooks per request would mutate the shared model while other threads run it. Each hook hands
its tensor to the recorder of the *calling thread* (a thread-local), so concurrent requests never see each
other's activations, and a thread with no active recorder pays one attribute lookup per layer.

Attention weights come from the attention modules' own return value: with eager attention every
transformers attention module returns `(attn_output, attn_weights)` whether or not `output_attentions`
is set, so nothing forces the model to keep all L x H x T x T weights alive at once: each layer's pattern
is summarised (and optionally copied to the CPU) inside its hook, then released.

Named activations (visualizer/names.py) a recorder may keep (`capture`) or replace (`edits`):
`resid_pre` of layer 0 (the embedding output), `resid_post` of every block, `attn_out` (the attention
module's output[0]), `mlp_out` (the block's MLP module, or OPT's fc2), and `z` ([batch, pos, head, d_head]:
the input of the attention's output projection, found by name). Kept values are what the hook saw before
any edit; an edit returns the replacement tensor (same shape).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from visualizer.model_parts import ModelParts
from visualizer.names import act_name

AttentionSink = Callable[[int, torch.Tensor], None]  # (layer, weights [batch, head, query_pos, key_pos])
Edit = Callable[[torch.Tensor], torch.Tensor]  # an activation -> its replacement, same shape

_MLP_NAMES = ("mlp", "ffn", "feed_forward", "block_sparse_moe", "fc2")  # fc2: OPT has no MLP module
_OUT_PROJ_NAMES = ("o_proj", "dense", "c_proj", "out_proj", "wo")


@dataclass
class Recorder:
    """What one forward pass of one thread collects, and the activations it replaces."""

    want_resid: bool = True
    on_attention: AttentionSink | None = None
    resid: list[torch.Tensor | None] = field(default_factory=list)  # [n_layers + 1] of [batch, pos, d_model]
    capture: set[str] = field(default_factory=set)  # activation names to keep in `acts`
    edits: dict[str, Edit] = field(default_factory=dict)  # activation name -> replacement function
    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    tokens_shape: tuple[int, int] | None = None  # (batch, pos) of the pass, for modules that flatten them (OPT)

    def _see(self, name: str, tensor: torch.Tensor) -> torch.Tensor | None:
        """Keep `tensor` if asked; the replacement if an edit is registered, else None."""
        if name in self.capture:  # a copy: some blocks add into their modules' outputs in place (Falcon)
            self.acts[name] = tensor.detach().clone()
        edit = self.edits.get(name)
        if edit is None:
            return None
        replacement = edit(tensor)
        if replacement.shape != tensor.shape:
            raise RuntimeError(f"the edit of {name} returned shape {tuple(replacement.shape)}, "
                               f"expected {tuple(tensor.shape)}")
        return replacement.to(tensor.dtype)


def find_mlp(block: nn.Module) -> nn.Module | None:
    """The block's MLP (or mixture of experts): the child whose output the block adds to the residual stream."""
    return next((getattr(block, n) for n in _MLP_NAMES if isinstance(getattr(block, n, None), nn.Module)), None)


def find_out_proj(attention: nn.Module) -> nn.Module | None:
    """The attention's output projection (a Linear or GPT-2's Conv1D), the shallowest one with a known name."""
    found = [(name.count("."), module) for name, module in attention.named_modules()
             if name.rpartition(".")[2] in _OUT_PROJ_NAMES
             and (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D")]
    return min(found, key=lambda item: item[0])[1] if found else None


class ActivationCapture:
    """Permanent hooks on a model that feed the calling thread's `Recorder`, if it has one."""

    def __init__(self, parts: ModelParts) -> None:
        self._local = threading.local()
        self.n_layers = parts.dims.n_layers
        self.n_heads = parts.dims.n_heads
        self.d_head = parts.dims.d_head
        self._handles = [parts.layers[0].register_forward_pre_hook(self._embed_hook, with_kwargs=True)]
        for layer, block in enumerate(parts.layers):
            self._handles.append(block.register_forward_hook(self._block_hook(layer)))
        for layer, attention in enumerate(parts.attentions):
            self._handles.append(attention.register_forward_hook(self._attention_hook(layer)))
        self.mlps = tuple(find_mlp(block) for block in parts.layers)
        self.out_projs = tuple(find_out_proj(attention) for attention in parts.attentions)
        for layer, mlp in enumerate(self.mlps):
            if mlp is not None:
                self._handles.append(mlp.register_forward_hook(self._mlp_hook(layer)))
        for layer, out_proj in enumerate(self.out_projs):
            if out_proj is not None:
                self._handles.append(out_proj.register_forward_pre_hook(self._z_hook(layer)))

    def _active(self) -> Recorder | None:
        return getattr(self._local, "recorder", None)

    def available(self, kind: str) -> str | None:
        """None when activations of `kind` ('mlp_out', 'z') can be read on every layer, else why not."""
        if kind == "mlp_out" and any(m is None for m in self.mlps):
            return f"the blocks have no MLP submodule named {', '.join(_MLP_NAMES)}"
        if kind == "z" and any(p is None for p in self.out_projs):
            return f"the attention modules have no output projection named {', '.join(_OUT_PROJ_NAMES)}"
        return None

    def _embed_hook(self, module, args, kwargs):
        recorder = self._active()
        if recorder is None:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        recorder.tokens_shape = tuple(hidden.shape[:2])
        replacement = recorder._see(act_name("resid_pre", 0), hidden) if recorder.capture or recorder.edits else None
        if recorder.want_resid:
            recorder.resid[0] = (hidden if replacement is None else replacement).detach()
        if replacement is None:
            return None
        if args:
            return (replacement, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": replacement}

    def _block_hook(self, layer: int):
        def hook(module, args, output):
            recorder = self._active()
            if recorder is None:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            replacement = None
            if recorder.capture or recorder.edits:
                replacement = recorder._see(act_name("resid_post", layer), hidden)
            if recorder.want_resid:
                recorder.resid[layer + 1] = (hidden if replacement is None else replacement).detach()
            return None if replacement is None else _with_first(output, replacement)
        return hook

    def _attention_hook(self, layer: int):
        def hook(module, args, output):
            recorder = self._active()
            if recorder is None:
                return None
            replacement = None
            if recorder.capture or recorder.edits:
                replacement = recorder._see(act_name("attn_out", layer), output[0] if isinstance(output, tuple)
                                            else output)
            if recorder.on_attention is not None:
                weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
                if weights is None:
                    raise RuntimeError(
                        f"layer {layer}: the attention module returned no weights; the model must be loaded "
                        "with attn_implementation='eager' to show attention")
                recorder.on_attention(layer, weights.detach())
            return None if replacement is None else _with_first(output, replacement)
        return hook

    def _mlp_hook(self, layer: int):
        name = act_name("mlp_out", layer)

        def hook(module, args, output):
            recorder = self._active()
            if recorder is None or not (recorder.capture or recorder.edits):
                return None
            value = output[0] if isinstance(output, tuple) else output
            flat = value.dim() == 2 and recorder.tokens_shape is not None  # OPT runs fc2 on [batch * pos, d]
            replacement = recorder._see(name, value.unflatten(0, recorder.tokens_shape) if flat else value)
            if replacement is None:
                return None
            return _with_first(output, replacement.flatten(0, 1) if flat else replacement)
        return hook

    def _z_hook(self, layer: int):
        name = act_name("z", layer)

        def hook(module, args):
            recorder = self._active()
            if recorder is None or not (recorder.capture or recorder.edits) or not args:
                return None
            flat = args[0]  # [batch, pos, n_heads * d_head]
            if flat.shape[-1] != self.n_heads * self.d_head:
                return None  # not per-head values: the z views say they are unavailable (no entry in acts)
            replacement = recorder._see(name, flat.unflatten(-1, (self.n_heads, self.d_head)))
            return None if replacement is None else (replacement.flatten(-2), *args[1:])
        return hook

    @contextlib.contextmanager
    def record(self, want_resid: bool = True, on_attention: AttentionSink | None = None,
               capture: set[str] | None = None, edits: dict[str, Edit] | None = None) -> Iterator[Recorder]:
        recorder = Recorder(want_resid=want_resid, on_attention=on_attention,
                            resid=[None] * (self.n_layers + 1), capture=set(capture or ()), edits=dict(edits or {}))
        previous = self._active()
        self._local.recorder = recorder
        try:
            yield recorder
        finally:
            self._local.recorder = previous

    def __deepcopy__(self, memo) -> ActivationCapture:
        # A deep-copied model keeps pointing at this capture: thread-locals cannot be copied, and the copy's
        # hooks stay inert unless a recorder of this capture is active in the calling thread.
        return self

    @classmethod
    def of(cls, model, parts: ModelParts) -> ActivationCapture:
        """The model's one capture: several sessions over one model must not stack hooks."""
        capture = getattr(model, "_itl_capture", None)
        if capture is None:
            capture = cls(parts)
            model._itl_capture = capture
        return capture

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _with_first(output, replacement: torch.Tensor):
    """A module's output with its first element (or itself) replaced."""
    return (replacement, *output[1:]) if isinstance(output, tuple) else replacement
