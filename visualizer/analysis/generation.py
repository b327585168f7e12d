"""Step-through greedy generation that feeds the KV cache from step to step (one new token per step).

The first step runs the whole prompt (prefill) and keeps its keys and values; every later step runs only
the token just chosen, attending to the cached keys and values of everything before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from visualizer.tokens import decoded_label


@dataclass(frozen=True)
class Candidate:
    token_id: int
    label: str
    prob: float


@dataclass(frozen=True)
class Step:
    index: int  # 0 = the first generated token
    token_id: int
    label: str
    prob: float  # probability of the chosen token
    entropy: float  # nats, of the distribution it was chosen from
    candidates: list[Candidate]  # top candidates at this step, most likely first
    forced: bool  # True when the user picked it instead of the argmax


def _candidates(tokenizer, probs: torch.Tensor, k: int) -> list[Candidate]:
    top = probs.topk(min(k, probs.shape[-1]))
    return [Candidate(int(i), decoded_label(tokenizer, i), float(p))
            for p, i in zip(top.values, top.indices, strict=True)]


@torch.inference_mode()
def greedy_steps(model: nn.Module, tokenizer, input_ids: torch.Tensor, n_steps: int,
                 first_token: int | None = None, k: int = 5) -> Iterator[Step]:
    """Yield `n_steps` greedy steps after `input_ids` [pos]; `first_token` forces the first choice (branch)."""
    device = model.get_output_embeddings().weight.device
    step_ids = input_ids.to(device)[None]  # [batch=1, pos] at prefill, then [1, 1]
    cache = None
    for index in range(n_steps):
        out = model(input_ids=step_ids, cache=cache, use_cache=True, logits_to_keep=1)
        cache = out.cache
        log_probs = torch.log_softmax(out.logits[0, -1].float(), -1)  # [d_vocab]
        probs = log_probs.exp()
        forced = index == 0 and first_token is not None
        chosen = int(first_token) if forced else int(log_probs.argmax())
        yield Step(index, chosen, decoded_label(tokenizer, chosen), float(probs[chosen]),
                   float(-(probs * log_probs).sum()), _candidates(tokenizer, probs, k), forced)
        step_ids = torch.tensor([[chosen]], device=device)
