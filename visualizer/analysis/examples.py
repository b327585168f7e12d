"""Examples that teach on the loaded model, chosen by measuring it rather than written down for one model.

- Sampling: of a few candidate prompts, the one whose next-token distribution is flattest (highest entropy) while
  its top token is still a real word, so temperature and top-p visibly move the bars.
- Batch: candidate prompts of clearly different token lengths, so the left padding shows.
- Attention: random words written twice; on it the strongest previous-token head and the strongest induction head
  (Olsson et al. 2022) are read off the trace.

The measuring functions take a `trace_of(text) -> Trace` callable and a tokenizer (the session's `trace` and
`tokenizer`); `examples_for` computes each kind once per session, lazily, and keeps it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from visualizer.tokens import token_label, token_text

if TYPE_CHECKING:
    from visualizer.trace import Trace

SAMPLING_CANDIDATES = (
    "The recipe calls for two cups of",
    "My favourite colour is",
    "The capital of France is",
    "Once upon a time, there was a",
    "I opened the box and found a",
    "On the weekend we like to",
    "Monday, Tuesday,",
)
BATCH_CANDIDATES = (
    "Hi",
    "The capital of France is",
    "The recipe calls for two cups of",
    "Once upon a time, there was a",
    "Monday, Tuesday, Wednesday,",
    "Write an email apologizing to Sarah for the tragic gardening mishap.",
    "Attention lets each token look at the tokens before it.",
)
N_BATCH_LINES = 4
INDUCTION_PERIOD = 20  # words per block: 40 tokens, one short forward pass
INDUCTION_FOUND = 0.3  # a best induction score below this is no induction head (the bundled model: ~0.1)
N_COMMON_WORDS = 3000  # word tokens with the lowest ids: BPE merges them first, so they are the common words


# --- sampling ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplingCandidate:
    prompt: str
    entropy: float  # nats, of the model's own next-token distribution
    top_label: str  # the most likely next token, whitespace visible
    top_prob: float
    top_is_word: bool  # the top token is letters (a word or the start of one), not punctuation or a newline


def measure_sampling_candidate(trace: Trace, tokenizer: Any, prompt: str) -> SamplingCandidate:
    """Entropy and top token of the next-token distribution after `prompt`."""
    log_probs = torch.log_softmax(trace.last_logits.float(), dim=-1)  # [d_vocab]
    entropy = float(-(log_probs.exp() * log_probs).nansum())
    top = int(log_probs.argmax())
    text = token_text(tokenizer, top)
    return SamplingCandidate(prompt, entropy, token_label(tokenizer, top), float(log_probs[top].exp()),
                             text.strip().isalpha())


def choose_sampling_prompt(candidates: Sequence[SamplingCandidate]) -> SamplingCandidate:
    """The flattest distribution among candidates whose top token is a word (among all when none is)."""
    if not candidates:
        raise ValueError("choose_sampling_prompt needs at least one measured candidate")
    pool = [c for c in candidates if c.top_is_word] or list(candidates)
    return max(pool, key=lambda c: c.entropy)


def sampling_example(trace_of: Callable[[str], Trace], tokenizer: Any,
                     prompts: Sequence[str] = SAMPLING_CANDIDATES) -> SamplingCandidate:
    """One forward pass per candidate prompt, then the choice."""
    return choose_sampling_prompt([measure_sampling_candidate(trace_of(p), tokenizer, p) for p in prompts])


# --- batch ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchLine:
    prompt: str
    n_tokens: int  # as the model sees it, special tokens (BOS) included


def choose_batch_prompts(tokenizer: Any, prompts: Sequence[str] = BATCH_CANDIDATES,
                         n_lines: int = N_BATCH_LINES) -> list[BatchLine]:
    """Up to `n_lines` prompts of distinct token lengths spread from the shortest to the longest, shortest first.

    Only the tokenizer runs: the lengths are what the left padding fills."""
    by_length: dict[int, str] = {}
    for prompt in prompts:
        by_length.setdefault(len(tokenizer(prompt)["input_ids"]), prompt)  # the first prompt of each length
    lengths = sorted(by_length)
    if len(lengths) > n_lines:  # evenly spaced picks, both ends kept
        lengths = sorted({lengths[round(i * (len(lengths) - 1) / (n_lines - 1))] for i in range(n_lines)})
    return [BatchLine(by_length[n], n) for n in lengths]


# --- attention: previous-token and induction heads -------------------------------------------------------------

@dataclass(frozen=True)
class RepeatedPrompt:
    text: str
    period: int  # tokens per block
    offset: int  # tokens before the first copy (a BOS the tokenizer adds)


def repeated_words_prompt(tokenizer: Any, period: int = INDUCTION_PERIOD, seed: int = 0,
                          attempts: int = 20) -> RepeatedPrompt:
    """Random single-token words, written twice, that this tokenizer encodes as exactly block + block.

    Random words make the first copy unpredictable, so whatever the model gets right in the second copy comes
    from copying (induction). A small vocabulary with fewer words than `period` gets a shorter block.
    """
    if not isinstance(period, int) or isinstance(period, bool) or period < 2:
        raise ValueError(f"period must be a whole number >= 2 (got {period!r})")
    words = _word_ids(tokenizer, period)
    period = min(period, len(words))
    if period < 2:
        raise ValueError("this tokenizer has fewer than two single-token words to repeat")
    rng = np.random.default_rng(seed)
    for _ in range(attempts):
        block = [int(i) for i in rng.choice(words, size=period, replace=False)]
        text = tokenizer.decode(block + block)
        ids = list(tokenizer(text)["input_ids"])
        offset = len(ids) - 2 * period
        if offset >= 0 and ids[offset:] == block + block:
            return RepeatedPrompt(text, period, offset)
    raise ValueError(f"no {period}-word block of this tokenizer re-encodes to itself in {attempts} attempts")


def _word_ids(tokenizer: Any, wanted: int) -> np.ndarray:
    """Ids of tokens that decode alone to a space and a lowercase word of 4+ letters, lowest ids first; where
    there are fewer than `wanted`, any space + 2 or more letters (a tiny vocabulary)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    spaced = [(i, t[1:]) for i, t in enumerate(texts) if t.startswith(" ") and t[1:].isascii() and t[1:].isalpha()]
    common = [i for i, word in spaced if len(word) >= 4 and word.islower()]
    ids = common if len(common) >= wanted else [i for i, word in spaced if len(word) >= 2]
    return np.array(ids[:N_COMMON_WORDS], dtype=np.int64)


def induction_scores(trace: Trace, period: int, offset: int = 0) -> np.ndarray:
    """[layer, head] induction score of a prompt that repeats a `period`-token block (first copy at `offset`).

    The standard score (Olsson et al. 2022): the attention a token of the second copy pays to the token that
    followed its earlier occurrence, i.e. key = query - period + 1, averaged over every query with such a key.
    """
    patterns = trace.kept_patterns  # per layer: [head, query_pos, key_pos]
    if patterns is None:
        raise ValueError("induction_scores needs the trace's attention patterns; this prompt was over the "
                         "attention budget: use a shorter prompt")
    if not isinstance(period, int) or period < 2:
        raise ValueError(f"period must be a whole number >= 2 (got {period!r})")
    n_pos = trace.n_pos
    if not isinstance(offset, int) or offset < 0 or offset + period >= n_pos:
        raise ValueError(f"offset + period must be below the prompt's {n_pos} tokens (got offset {offset!r}, "
                         f"period {period}): the prompt needs a second copy")
    stripe = torch.stack([layer.diagonal(offset=-(period - 1), dim1=-2, dim2=-1).float() for layer in patterns])
    # [layer, head, n_pos - period + 1]; each layer's diagonal alone, not a stacked copy of every pattern
    # stripe[..., i] is query i + period - 1 -> key i; the second copy's queries start at offset + period
    return stripe[..., offset + 1:].mean(-1).numpy()  # [layer, head]


def strongest_head(grid: np.ndarray) -> tuple[int, int, float]:
    """(layer, head, value) of the largest entry of a [layer, head] grid."""
    layer, head = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return int(layer), int(head), float(grid[layer, head])


@dataclass(frozen=True)
class InductionExample:
    prompt: RepeatedPrompt
    previous_token: tuple[int, int, float]  # (layer, head, score) of the strongest previous-token head
    induction: tuple[int, int, float]  # (layer, head, score) of the strongest induction head

    @property
    def found(self) -> bool:
        return self.induction[2] >= INDUCTION_FOUND

    def summary(self) -> str:
        """One line naming the heads as measured on this model."""
        pl, ph, ps = self.previous_token
        il, ih, score = self.induction
        induction = (f"induction head L{il} H{ih} ({score:.2f})" if self.found
                     else f"no induction head found on this model (best L{il} H{ih} {score:.2f})")
        return f"on this model: previous-token head L{pl} H{ph} ({ps:.2f}); {induction}"


def measure_induction(trace: Trace, prompt: RepeatedPrompt) -> InductionExample:
    """The strongest previous-token and induction heads on the repeated prompt's trace."""
    previous = np.asarray(trace.attention_metrics["previous_token"])  # [layer, head]
    return InductionExample(prompt, strongest_head(previous),
                            strongest_head(induction_scores(trace, prompt.period, prompt.offset)))


def induction_example(trace_of: Callable[[str], Trace], tokenizer: Any, seed: int = 0) -> InductionExample:
    prompt = repeated_words_prompt(tokenizer, INDUCTION_PERIOD, seed)
    return measure_induction(trace_of(prompt.text), prompt)


# --- once per session --------------------------------------------------------------------------------------------

_memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> {kind: example}
_memo_lock = threading.Lock()
_KINDS = {
    "sampling": lambda s: sampling_example(s.trace, s.tokenizer),
    "batch": lambda s: choose_batch_prompts(s.tokenizer),
    "induction": lambda s: induction_example(s.trace, s.tokenizer),
}


def examples_for(session: Any, kind: str) -> Any:
    """The `kind` example ('sampling', 'batch', 'induction') for this session, measured on first use and kept.

    The lock guards only the memo: two first requests at once may both measure (same result), but a forward pass
    never waits on another session's lock."""
    if kind not in _KINDS:
        raise ValueError(f"unknown example kind {kind!r}; choose one of {', '.join(_KINDS)}")
    with _memo_lock:
        known = _memo.setdefault(session, {})
        if kind in known:
            return known[kind]
    value = _KINDS[kind](session)
    with _memo_lock:
        return _memo[session].setdefault(kind, value)
