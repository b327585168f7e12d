"""From a prompt to the next token: the tokens, the tensor shapes, and the top-k candidates at every position.

The model predicts a distribution over the vocabulary at *every* position in parallel; the last one picks
the next token. All of it is sliced from one Trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visualizer.tokens import decoded_label, visible_token
from visualizer.trace import Trace
from visualizer.validation import whole_number


@dataclass(frozen=True)
class TokenChip:
    pos: int
    token_id: int
    piece: str  # the tokenizer's own piece, e.g. 'ĠParis'
    text: str  # visible text, e.g. '␣Paris'
    special: bool
    next_prob: float | None  # probability the model gave this token before seeing it (None for the first)
    next_rank: int | None


@dataclass(frozen=True)
class Tokenization:
    chips: list[TokenChip]
    ids_printed: str  # as the chapter prints input_ids
    count: int
    hidden_shape: tuple[int, int, int]
    logits_shape: tuple[int, int, int]


@dataclass(frozen=True)
class TopK:
    pos: int
    after: str  # the visible token at `pos`, whose successor is predicted
    token_ids: list[int]
    token_labels: list[str]
    probs: np.ndarray  # [k] float32
    entropy: float


def tokenization(trace: Trace) -> Tokenization:
    ids = trace.token_ids.tolist()  # Python numbers: numpy scalars cost ~1 us per element operation
    probs = [None, *trace.actual_next_probs.tolist()]
    ranks = [None, *trace.actual_next_ranks.tolist()]
    chips = [TokenChip(pos, token_id, piece, visible_token(text), special, prob, rank)
             for pos, (token_id, piece, text, special, prob, rank) in enumerate(
                 zip(ids, trace.token_strs, trace.token_texts, trace.special, probs, ranks, strict=True))]
    return Tokenization(chips, f"tensor([[{', '.join(map(str, ids))}]])", trace.n_pos, trace.hidden_shape,
                        trace.logits_shape)


def check_position(trace: Trace, pos) -> int:
    """Positions count from 0; -1 means the last one."""
    pos = whole_number(pos, "position", -1, trace.n_pos - 1)
    return trace.n_pos - 1 if pos == -1 else pos


def top_k(trace: Trace, tokenizer, pos: int = -1, k: int = 10) -> TopK:
    """The k most likely next tokens after position `pos` (default: the last, i.e. the real next token)."""
    pos = check_position(trace, pos)
    k = whole_number(k, "k", 1, trace.topk_ids.shape[1])
    ids = [int(i) for i in trace.topk_ids[pos, :k]]
    labels = [decoded_label(tokenizer, i) for i in ids]
    return TopK(pos, visible_token(trace.token_texts[pos]), ids, labels, trace.topk_probs[pos, :k],
                float(trace.entropy[pos]))


def top_next_summaries(trace: Trace, tokenizer, k: int = 5) -> list[str]:
    """For every position, its k most likely next tokens as one line ('␣Paris 0.81, ␣the 0.05, ...'): each
    distinct token is decoded once."""
    k = min(k, trace.topk_ids.shape[1])
    ids = trace.topk_ids[:, :k]  # [pos, k]
    labels = {i: decoded_label(tokenizer, i) for i in np.unique(ids).tolist()}
    return [", ".join(f"{labels[i]} {p:.2f}" for i, p in zip(row_ids, row_probs, strict=True))
            for row_ids, row_probs in zip(ids.tolist(), trace.topk_probs[:, :k].tolist(), strict=True)]
