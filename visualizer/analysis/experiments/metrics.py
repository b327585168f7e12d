"""Metrics and results of ablation, patching and minimal pairs: divergences over the whole vocabulary, the
normalised patching score, and top-k tables with rank changes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def kl_divergence(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    """KL(p || q) in nats from log-probabilities over the whole vocabulary [d_vocab]."""
    p_log, q_log = p_log.double(), q_log.double()
    return float((p_log.exp() * (p_log - q_log)).sum().clamp_min(0.0))


def js_divergence(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    """Jensen-Shannon divergence in nats (symmetric, at most ln 2)."""
    p_log, q_log = p_log.double(), q_log.double()
    m_log = torch.logaddexp(p_log, q_log) - np.log(2.0)
    return 0.5 * kl_divergence(p_log, m_log) + 0.5 * kl_divergence(q_log, m_log)


def normalised_restoration(patched: np.ndarray, clean: float, corrupted: float) -> np.ndarray:
    """(patched - corrupted) / (clean - corrupted): 0 = the corrupted run's logit difference, 1 = the clean one's."""
    gap = clean - corrupted
    if abs(gap) < 1e-6:
        raise ValueError("The clean and corrupted prompts give the same logit difference between the two answers, "
                         "so no patch can restore anything: choose answers that differ (e.g. ' Paris' and ' Tokyo').")
    return (np.asarray(patched, dtype=np.float64) - corrupted) / gap


@dataclass(frozen=True)
class TokenChange:
    """One candidate next token in two distributions (before/after, or prompt A/B)."""

    token_id: int
    text: str
    prob_a: float
    prob_b: float
    rank_a: int  # 0 = top-1
    rank_b: int

    @property
    def delta(self) -> float:
        return self.prob_b - self.prob_a


def _ranks(log_probs: torch.Tensor, ids: list[int]) -> list[int]:
    chosen = log_probs[ids]
    return [int(r) for r in (log_probs[None, :] > chosen[:, None]).sum(-1)]


def token_changes(log_a: torch.Tensor, log_b: torch.Tensor, k: int, decode) -> list[TokenChange]:
    """The union of both top-k lists, ordered by the larger of the two probabilities; `decode(id) -> str`."""
    k = max(1, min(int(k), log_a.shape[-1]))
    ids = list(dict.fromkeys(log_a.topk(k).indices.tolist() + log_b.topk(k).indices.tolist()))
    ranks_a, ranks_b = _ranks(log_a, ids), _ranks(log_b, ids)
    rows = [TokenChange(int(i), decode(int(i)), float(log_a[i].exp()), float(log_b[i].exp()), ra, rb)
            for i, ra, rb in zip(ids, ranks_a, ranks_b, strict=True)]
    return sorted(rows, key=lambda row: -max(row.prob_a, row.prob_b))


@dataclass(frozen=True)
class AblationResult:
    description: str  # what was ablated, in words
    position: int
    target_id: int
    target_text: str
    log_prob_before: float
    log_prob_after: float
    kl: float  # KL(before || after) over the whole vocabulary, nats
    changes: list[TokenChange]  # a = before, b = after
    max_plain_diff: float = 0.0  # |ablating nothing - plain logits|: 0 when the hooks change nothing else

    @property
    def delta_log_prob(self) -> float:
        return self.log_prob_after - self.log_prob_before


@dataclass(frozen=True)
class HeadGrid:
    """Delta log p(target) when each head alone is ablated: [layer, head]."""

    mode: str
    position: int
    target_id: int
    target_text: str
    log_prob_before: float
    deltas: np.ndarray  # [layer, head]
    forward_passes: int


@dataclass(frozen=True)
class PatchingResult:
    site: str  # "resid", "attn_out" or "mlp_out"
    row_labels: list[str]  # one per patched activation (the residual: embed, then each block's output)
    token_labels: list[str]  # the corrupted prompt's tokens (columns)
    scores: np.ndarray  # [row, position] normalised restored logit difference
    patched_diffs: np.ndarray  # [row, position] raw logit difference of the patched runs
    clean_diff: float
    corrupted_diff: float
    clean_answer: str
    corrupted_answer: str
    forward_passes: int


@dataclass(frozen=True)
class PairDiff:
    tokens_a: list[str]
    tokens_b: list[str]
    changes: list[TokenChange]
    kl_ab: float
    kl_ba: float
    js: float
    attention_diff: np.ndarray | None  # [query_pos, key_pos] pattern of B minus pattern of A, one layer and head
    attention_note: str
    layer: int
    head: int
    notes: tuple[str, ...] = field(default=())


def pair_diff(trace_a, trace_b, k: int, decode, patterns: tuple[torch.Tensor, torch.Tensor] | None, layer: int,
              head: int) -> PairDiff:
    """Compare the next-token distributions after the last token of two traces, and one head's attention."""
    log_a = torch.log_softmax(trace_a.last_logits.double(), -1)
    log_b = torch.log_softmax(trace_b.last_logits.double(), -1)
    if patterns is None:
        diff = None
        note = (f"The attention difference needs prompts of the same length: A has {trace_a.n_pos} tokens, B has "
                f"{trace_b.n_pos}." if trace_a.n_pos != trace_b.n_pos else "Attention is unavailable for this model.")
    else:
        diff = (patterns[1][head].float() - patterns[0][head].float()).numpy()
        note = f"Attention of layer {layer}, head {head}: B minus A (red: B attends more)."
    return PairDiff(tokens_a=trace_a.token_labels(), tokens_b=trace_b.token_labels(),
                    changes=token_changes(log_a, log_b, k, decode), kl_ab=kl_divergence(log_a, log_b),
                    kl_ba=kl_divergence(log_b, log_a), js=js_divergence(log_a, log_b), attention_diff=diff,
                    attention_note=note, layer=layer, head=head)
