"""Per-head attention metrics, computed layer by layer while the trace's forward pass runs.

A pattern is the softmax output of one layer: `[head, query_pos, key_pos]`, rows summing to one, zero above the
diagonal (causal). The metrics reduce each head to one number so a layer x head grid can show 32 x 32 heads. They
live below the analysis package because the trace builder calls them inside its attention hook.
"""

from __future__ import annotations

import torch

METRICS: dict[str, str] = {
    "entropy": "Entropy (nats), averaged over query positions after the first: low = the head looks at "
               "one token, high = it spreads its attention evenly.",
    "sink": "Mass on the first token, averaged over query positions: many heads park attention on token 0 "
            "when they have nothing better to do (the attention-sink effect), so a bright column at the "
            "first token is normal, not a bug.",
    "previous_token": "Weight on the token just before the query, averaged over positions: 1 = a "
                      "previous-token head, a building block of induction heads.",
    "distance": "Mean attended distance (query_pos - key_pos, weighted by attention): 0 = looks at itself, "
                "large = looks far back.",
}


# The metrics read each layer's pattern in blocks of a few heads x a few query rows, through one reused float32
# buffer (8 MiB at 2,048 tokens, small enough to stay in cache) instead of several [head, query_pos, key_pos]
# temporaries; a block of query rows [a, b) reads keys [0, b) only, since causal weights above the diagonal are 0.
_HEAD_BLOCK = 4
_QUERY_BLOCK = 256


def head_metrics(pattern: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summary metrics of every head of one layer. pattern: [head, query_pos, key_pos] -> name: [head].

    The pattern is causal (zero above the diagonal), as every trace's is. The attended distance is
    q * row_sum - sum_k k * p[q, k]; both sums come from one matmul with a [key_pos, 2] matrix rather than a
    [query_pos, key_pos] grid of offsets. Half-precision patterns are upcast block by block.
    """
    n_heads, n_pos, _ = pattern.shape
    later = slice(1, None) if n_pos > 1 else slice(None)  # query 0 can only look at itself
    keys = torch.arange(n_pos, device=pattern.device, dtype=torch.float32)  # [key_pos]
    weights = torch.stack([torch.ones_like(keys), keys], -1)  # [key_pos, 2]: row sum, sum of k * p
    entropy = torch.empty(n_heads, n_pos, device=pattern.device)  # [head, query_pos]
    sums = torch.empty(n_heads, n_pos, 2, device=pattern.device)  # [head, query_pos, 2]
    buffer = torch.empty(min(_HEAD_BLOCK, n_heads), min(_QUERY_BLOCK, n_pos), n_pos, device=pattern.device)
    for h0 in range(0, n_heads, _HEAD_BLOCK):
        h1 = min(h0 + _HEAD_BLOCK, n_heads)
        for q0 in range(0, n_pos, _QUERY_BLOCK):
            q1 = min(q0 + _QUERY_BLOCK, n_pos)
            block = pattern[h0:h1, q0:q1, :q1]  # [head block, query block, keys up to the block's last query]
            work = buffer[: h1 - h0, : q1 - q0, :q1]
            p32 = block if block.dtype == torch.float32 else work.copy_(block)  # fp16/bf16: upcast per block
            sums[h0:h1, q0:q1] = torch.matmul(p32, weights[:q1])  # [head block, query block, 2]
            # p * log(max(p, 1e-30)), the plain formula, in place in the buffer (vectorised; xlogy is not)
            torch.clamp_min(p32, 1e-30, out=work).log_().mul_(block)
            entropy[h0:h1, q0:q1] = -work.sum(-1)
    distance = keys * sums[..., 0] - sums[..., 1]  # [head, query_pos]
    if n_pos > 1:
        previous = torch.diagonal(pattern, offset=-1, dim1=1, dim2=2).float()  # [head, query_pos - 1]
    else:
        previous = torch.zeros(n_heads, 1, device=pattern.device)
    return {
        "entropy": entropy[:, later].mean(-1),
        "sink": pattern[:, later, 0].float().mean(-1),
        "previous_token": previous.mean(-1),
        "distance": distance[:, later].mean(-1),
    }
