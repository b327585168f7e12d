"""Logit lens: read the residual stream after every layer with the model's own final norm and LM head.

Row 0 reads the embeddings, row l + 1 the output of block l; the last row is exactly the model's logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from visualizer.tokens import decoded_label
from visualizer.trace import LensTop, Trace


@dataclass(frozen=True)
class LensGrid:
    row_labels: list[str]  # "embed", "layer 0", ...
    column_labels: list[str]  # visible input tokens
    top_labels: list[list[str]]  # [n_layers + 1][pos] top-1 token under the lens
    top_probs: np.ndarray  # [n_layers + 1, pos] float32
    first_pos: int = 0  # column 0 is this position of the prompt


@dataclass(frozen=True)
class TargetTrajectory:
    pos: int
    target_id: int
    target_label: str
    row_labels: list[str]
    probs: np.ndarray  # [n_layers + 1]
    ranks: np.ndarray  # [n_layers + 1] (0 = top-1)


def row_labels(n_layers: int) -> list[str]:
    return ["embed"] + [f"layer {layer}" for layer in range(n_layers)]


def lens_grid(trace: Trace, tokenizer, lens: LensTop) -> LensGrid:
    """The lens's top-1 token and its probability at every layer and position. lens: `session.lens_top(trace)`."""
    trace.check_lens()
    vocab_labels = {int(i): decoded_label(tokenizer, i) for i in np.unique(lens.ids)}
    top_labels = [[vocab_labels[int(i)] for i in row] for row in lens.ids]
    columns = trace.token_labels()[lens.first_pos:]  # the grid covers the last positions only
    return LensGrid(row_labels(trace.n_layers), columns, top_labels, lens.probs, lens.first_pos)


def target_trajectory(trace: Trace, tokenizer, lens_log_probs: torch.Tensor, pos: int,
                      target_id: int | None = None) -> TargetTrajectory:
    """Probability and rank of one token across layers at `pos`. lens_log_probs: [n_layers + 1, d_vocab].

    The default target is the model's final top-1 at that position.
    """
    trace.check_lens()
    if target_id is None:
        target_id = int(lens_log_probs[-1].argmax())
    if not 0 <= target_id < lens_log_probs.shape[-1]:
        raise ValueError(f"target token id must be from 0 to {lens_log_probs.shape[-1] - 1}, got {target_id}")
    target = lens_log_probs[:, target_id]  # [layer]
    ranks = (lens_log_probs > target[:, None]).sum(-1)  # [layer]
    return TargetTrajectory(pos, target_id, decoded_label(tokenizer, target_id),
                            row_labels(trace.n_layers), target.exp().numpy(), ranks.numpy())


def target_id_of(tokenizer, text: str) -> int:
    """The first token of `text` as the model would see it after other text (e.g. ' Paris')."""
    if not isinstance(text, str) or not text:
        raise ValueError("type the target token's text, e.g. ' Paris'")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise ValueError(f"{text!r} produced no token")
    return int(ids[0])
