"""Record the residual stream and attention patterns of one forward pass, layer by layer.

Hooks are installed once, when the session loads the model, and stay for the life of the process: adding
and removing hooks per request would mutate the shared model while other threads run it. Each hook hands
its tensor to the recorder of the *calling thread* (a thread-local), so concurrent requests never see each
other's activations, and a thread with no active recorder pays one attribute lookup per layer.

Attention weights come from the attention modules' own return value: with eager attention every
transformers attention module returns `(attn_output, attn_weights)` whether or not `output_attentions`
is set, so nothing forces the model to keep all L x H x T x T weights alive at once: each layer's pattern
is summarised (and optionally copied to the CPU) inside its hook, then released.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from visualizer.model_parts import ModelParts

AttentionSink = Callable[[int, torch.Tensor], None]  # (layer, weights [batch, head, query_pos, key_pos])


@dataclass
class Recorder:
    """What one forward pass of one thread collects."""

    want_resid: bool = True
    on_attention: AttentionSink | None = None
    resid: list[torch.Tensor | None] = field(default_factory=list)  # [n_layers + 1] of [batch, pos, d_model]


class ActivationCapture:
    """Permanent hooks on a model that feed the calling thread's `Recorder`, if it has one."""

    def __init__(self, parts: ModelParts) -> None:
        self._local = threading.local()
        self.n_layers = parts.dims.n_layers
        self._handles = [parts.layers[0].register_forward_pre_hook(self._embed_hook, with_kwargs=True)]
        for layer, block in enumerate(parts.layers):
            self._handles.append(block.register_forward_hook(self._block_hook(layer)))
        for layer, attention in enumerate(parts.attentions):
            self._handles.append(attention.register_forward_hook(self._attention_hook(layer)))

    def _active(self) -> Recorder | None:
        return getattr(self._local, "recorder", None)

    def _embed_hook(self, module, args, kwargs):
        recorder = self._active()
        if recorder is not None and recorder.want_resid:
            hidden = args[0] if args else kwargs["hidden_states"]
            recorder.resid[0] = hidden.detach()

    def _block_hook(self, layer: int):
        def hook(module, args, output):
            recorder = self._active()
            if recorder is not None and recorder.want_resid:
                hidden = output[0] if isinstance(output, tuple) else output
                recorder.resid[layer + 1] = hidden.detach()
        return hook

    def _attention_hook(self, layer: int):
        def hook(module, args, output):
            recorder = self._active()
            if recorder is None or recorder.on_attention is None:
                return
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(
                    f"layer {layer}: the attention module returned no weights; the model must be loaded "
                    "with attn_implementation='eager' to show attention")
            recorder.on_attention(layer, weights.detach())
        return hook

    @contextlib.contextmanager
    def record(self, want_resid: bool = True, on_attention: AttentionSink | None = None) -> Iterator[Recorder]:
        recorder = Recorder(want_resid=want_resid, on_attention=on_attention,
                            resid=[None] * (self.n_layers + 1))
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
