"""Temperature, top-k and top-p applied to one next-token distribution, stage by stage.

The processed distribution is the one ``model.generate(do_sample=True, ...)`` samples from: the stages
are transformers' own warpers, in the order ``GenerationMixin._get_logits_processor`` (transformers 5.24,
generation/utils.py) appends them: ``TemperatureLogitsWarper`` (skipped at T = 1), ``TopKLogitsWarper``
(skipped at k = 0), ``TopPLogitsWarper`` (skipped at p = 1), applied to the float32 logits of the last
position, then a softmax and ``torch.multinomial``. Temperature 0 is greedy decoding (``argmax``, as
``generate(do_sample=False)``), which transformers does not express as a temperature.

Sampling uses a per-request ``torch.Generator``: ``generate()`` has no generator argument, and the global
RNG is shared by all the server's threads, so concurrent requests would interleave their draws.

Pure functions on one logits vector and the result dataclasses; the code that runs the model (sampled
continuations, left-padded batches, one next-token distribution) is ``visualizer.runs.sampling``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import (
    LogitsProcessorList,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from visualizer.config import Limits
from visualizer.tokens import token_label
from visualizer.validation import real_number, whole_number

MAX_TEMPERATURE = 5.0  # the API's bound when the caller passes none (the tab's slider stops at 2)
MIN_POSITIVE_TEMPERATURE = 1e-3  # below this, logits / T can overflow float32 for large logits
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts any int64
MAX_TOP_K = 1_000_000  # above any vocabulary: k >= d_vocab cuts nothing, which is allowed
N_LABELLED = 200  # tokens (in display order) whose strings are decoded for the figure
_LIMITS = Limits()  # server bounds (e.g. max_samples) when the caller passes none

# Why a token is excluded from the processed distribution (values of SamplingResult.cut_stage).
KEPT, CUT_TOP_K, CUT_TOP_P, CUT_GREEDY, CUT_MASKED = 0, 1, 2, 3, 4
STAGE_NAMES = {KEPT: "kept", CUT_TOP_K: "cut by top-k", CUT_TOP_P: "cut by top-p",
               CUT_GREEDY: "not the argmax (greedy)", CUT_MASKED: "impossible (logit -inf)"}


# ---------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplingSettings:
    """What the sliders set. temperature 0 = greedy; top_k 0 = off; top_p 1 = off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    def validated(self, *, max_temperature: float = MAX_TEMPERATURE,
                  min_positive_temperature: float = MIN_POSITIVE_TEMPERATURE,
                  max_top_k: int = MAX_TOP_K) -> SamplingSettings:
        """A copy with python-typed fields, or ValueError naming the bad field and the allowed range.

        top-k above the vocabulary size is allowed (it cuts nothing; the result's notes say so).
        """
        temperature = real_number(self.temperature, "temperature (0 = greedy)", 0.0, max_temperature)
        if 0.0 < temperature < min_positive_temperature:
            raise ValueError(f"temperature must be 0 (greedy) or at least {min_positive_temperature:g}, "
                             f"got {temperature:g}")
        top_k = whole_number(self.top_k, "top-k (0 = off)", 0, max_top_k)
        top_p = real_number(self.top_p, "top-p (1 = off)", 0.0, 1.0)
        if top_p == 0.0:
            raise ValueError("top-p must be greater than 0 (1 = off): with p = 0 no token would be kept")
        seed = whole_number(self.seed, "seed", 0, MAX_SEED)
        return SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)

    def logits_processors(self) -> LogitsProcessorList:
        """transformers' warpers for these settings, in generate()'s order (empty when greedy)."""
        processors = LogitsProcessorList()
        if self.is_greedy:
            return processors
        if self.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(float(self.temperature)))
        if self.top_k != 0:
            processors.append(TopKLogitsWarper(top_k=int(self.top_k), min_tokens_to_keep=1))
        if self.top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p=float(self.top_p), min_tokens_to_keep=1))
        return processors

    def generate_kwargs(self) -> dict:
        """Keyword arguments that make model.generate() use the same distribution.

        top_k is always passed: generate() falls back to top_k=50 when it is left unset.
        """
        if self.is_greedy:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": float(self.temperature), "top_k": int(self.top_k),
                "top_p": float(self.top_p)}


# ---------------------------------------------------------------------------------------------------
# One distribution, stage by stage
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplingResult:
    """The next-token distribution before and after sampling settings. Arrays are indexed by token id,
    except ``order`` and ``cumulative_pre_top_p`` which are in display order.

    Display order: kept tokens first, then tokens cut by top-p, then by top-k; within each group by
    raw logit (descending), then token id. Without ties this is just the raw probability order.
    """

    settings: SamplingSettings
    raw_probs: np.ndarray            # [d_vocab] float32, softmax(logits) at temperature 1
    tempered_probs: np.ndarray       # [d_vocab] float32, softmax(logits / T), before any cut
    pre_top_p_probs: np.ndarray      # [d_vocab] float32, after temperature and top-k: what top-p sees
    processed_probs: np.ndarray      # [d_vocab] float32, the distribution generate() samples from
    cut_stage: np.ndarray            # [d_vocab] int8, KEPT / CUT_TOP_K / CUT_TOP_P / CUT_GREEDY / CUT_MASKED
    order: np.ndarray                # [d_vocab] int64, token ids in display order
    cumulative_pre_top_p: np.ndarray  # [d_vocab] float64, cumsum of pre_top_p_probs[order]
    token_labels: tuple[str, ...]    # visible text of order[:len(token_labels)], e.g. '␣Paris' (unescaped)
    greedy_token_id: int             # argmax of the logits (first one on ties, like torch.argmax)
    n_after_top_k: int               # tokens left after top-k (> k when logits tie at the k-th place)
    n_kept: int                      # nucleus size: tokens with a chance of being sampled
    kept_mass_raw: float             # how much of the T=1 distribution the kept tokens held
    kept_mass_tempered: float        # how much of the temperature-scaled distribution they held
    entropy_raw: float               # nats
    entropy_processed: float         # nats
    notes: tuple[str, ...] = ()      # clamps and special cases, in words, for the readout

    def __post_init__(self) -> None:
        for value in vars(self).values():  # results may be cached and shared between users
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @property
    def d_vocab(self) -> int:
        return int(self.raw_probs.shape[0])

    @property
    def is_greedy(self) -> bool:
        return self.settings.is_greedy

    @property
    def kept(self) -> np.ndarray:
        return self.cut_stage == KEPT

    @property
    def effective_candidates_raw(self) -> float:
        """exp(entropy): the number of equally likely tokens with the same uncertainty (perplexity)."""
        return math.exp(self.entropy_raw)

    @property
    def effective_candidates_processed(self) -> float:
        return math.exp(self.entropy_processed)


def process_logits(logits: torch.Tensor | np.ndarray, settings: SamplingSettings, *,
                   tokenizer: PreTrainedTokenizerBase | None = None,
                   n_labelled: int = N_LABELLED) -> SamplingResult:
    """Apply ``settings`` to one logits vector ``[d_vocab]`` exactly as generate() does.

    ``settings`` should come from ``.validated()``. With a tokenizer, the first ``n_labelled`` tokens in
    display order get labels (decoded alone, whitespace made visible); without one they read ``#id``.
    """
    logits_1d = _as_logits_1d(logits)  # [d_vocab] float32, as generate() casts them
    scores = logits_1d[None, :]  # [1, d_vocab]: the warpers expect a batch
    raw_probs = torch.softmax(scores, dim=-1)[0]
    greedy_token_id = int(torch.argmax(logits_1d))
    notes = _notes(settings, logits_1d.shape[0])
    if settings.is_greedy:
        processed = torch.zeros_like(raw_probs)
        processed[greedy_token_id] = 1.0
        tempered = pre_top_p = processed
        cut_stage = np.full(logits_1d.shape[0], CUT_GREEDY, dtype=np.int8)
        cut_stage[greedy_token_id] = KEPT
    else:
        tempered_scores = scores
        if settings.temperature != 1.0:
            tempered_scores = TemperatureLogitsWarper(float(settings.temperature))(None, scores)
        top_k_scores = tempered_scores
        if settings.top_k != 0:
            top_k_scores = TopKLogitsWarper(top_k=int(settings.top_k))(None, tempered_scores)
        processed_scores = top_k_scores
        if settings.top_p < 1.0:
            processed_scores = TopPLogitsWarper(top_p=float(settings.top_p))(None, top_k_scores)
        tempered = torch.softmax(tempered_scores, dim=-1)[0]
        pre_top_p = torch.softmax(top_k_scores, dim=-1)[0]
        processed = torch.softmax(processed_scores, dim=-1)[0]
        cut_by_top_k = torch.isneginf(top_k_scores[0]) & ~torch.isneginf(tempered_scores[0])
        cut_by_top_p = torch.isneginf(processed_scores[0]) & ~torch.isneginf(top_k_scores[0])
        cut_stage = np.zeros(logits_1d.shape[0], dtype=np.int8)
        cut_stage[cut_by_top_k.numpy()] = CUT_TOP_K
        cut_stage[cut_by_top_p.numpy()] = CUT_TOP_P
        # -inf logits from the model itself (a masked vocabulary) can never be drawn either
        cut_stage[torch.isneginf(logits_1d).numpy()] = CUT_MASKED
    raw_np, processed_np = raw_probs.numpy(), processed.numpy()
    kept = cut_stage == KEPT
    n_after_top_k = int(((cut_stage != CUT_TOP_K) & (cut_stage != CUT_MASKED)).sum())
    if not settings.is_greedy and 0 < settings.top_k < n_after_top_k:
        notes += (f"top-k = {settings.top_k} kept {n_after_top_k} tokens: several logits tie with the "
                  f"{settings.top_k}th largest, and transformers keeps every tied token.",)
    n_underflow = int((kept & (processed_np == 0)).sum())
    if n_underflow:
        notes += (f"{n_underflow:,} of the {int(kept.sum()):,} kept tokens have probability 0 in float32 "
                  "(exp underflows at this temperature), so they can never be drawn.",)
    order = _display_order(logits_1d.numpy(), cut_stage)
    token_labels = _token_labels(order[:n_labelled], tokenizer)
    return SamplingResult(
        settings=settings, raw_probs=raw_np, tempered_probs=tempered.numpy(),
        pre_top_p_probs=pre_top_p.numpy(), processed_probs=processed_np, cut_stage=cut_stage,
        order=order, cumulative_pre_top_p=np.cumsum(pre_top_p.numpy()[order], dtype=np.float64),
        token_labels=token_labels, greedy_token_id=greedy_token_id,
        n_after_top_k=n_after_top_k, n_kept=int(kept.sum()),
        kept_mass_raw=float(raw_np[kept].sum(dtype=np.float64)),
        kept_mass_tempered=float(tempered.numpy()[kept].sum(dtype=np.float64)),
        entropy_raw=entropy(raw_np), entropy_processed=entropy(processed_np), notes=notes,
    )


def _as_logits_1d(logits: torch.Tensor | np.ndarray) -> torch.Tensor:
    tensor = torch.as_tensor(logits).detach().to(device="cpu", dtype=torch.float32)
    if tensor.ndim != 1 or tensor.shape[0] < 2:
        raise ValueError(f"expected one logits vector of shape [d_vocab], got shape {tuple(tensor.shape)}.")
    if torch.isnan(tensor).any() or torch.isposinf(tensor).any():
        raise ValueError("the logits contain NaN or +inf; the model output is not a valid distribution.")
    if torch.isneginf(tensor).all():
        raise ValueError("every logit is -inf; no token can be chosen.")
    return tensor.clone()


def _notes(settings: SamplingSettings, d_vocab: int) -> tuple[str, ...]:
    notes = []
    if settings.is_greedy:
        notes.append("Temperature 0 is greedy decoding: the most likely token is always chosen, "
                     "so top-k and top-p have no effect.")
    elif settings.top_k >= d_vocab:
        notes.append(f"top-k = {settings.top_k} is not smaller than the vocabulary ({d_vocab} tokens), "
                     "so top-k cuts nothing.")
    return tuple(notes)


def _display_order(logits_1d: np.ndarray, cut_stage: np.ndarray) -> np.ndarray:
    """Kept first, then cut by top-p, then the rest; each group by logit, ties by token id."""
    stage_rank = np.select([cut_stage == KEPT, cut_stage == CUT_TOP_P, cut_stage == CUT_MASKED], [0, 1, 3],
                           default=2)
    token_ids = np.arange(logits_1d.shape[0])
    return np.lexsort((token_ids, -logits_1d.astype(np.float64), stage_rank)).astype(np.int64)


def _token_labels(token_ids: np.ndarray, tokenizer: PreTrainedTokenizerBase | None) -> tuple[str, ...]:
    if tokenizer is None:
        return tuple(f"#{int(i)}" for i in token_ids)
    return tuple(token_label(tokenizer, int(i)) for i in token_ids)


def entropy(probs: np.ndarray) -> float:
    """Shannon entropy in nats; zero-probability tokens contribute nothing.

    >>> round(entropy(np.array([0.5, 0.5, 0.0])), 6) == round(math.log(2), 6)
    True
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return max(0.0, float(-(p * np.log(p)).sum()))  # max: a point mass gives -0.0


# ---------------------------------------------------------------------------------------------------
# Empirical check: draw from the processed distribution
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmpiricalResult:
    n: int
    seed: int
    counts: np.ndarray        # [d_vocab] int64
    freqs: np.ndarray         # [d_vocab] float64, counts / n
    tv_distance: float        # 0.5 * sum |freqs - processed_probs|
    tv_bound: float           # what TV stays below with probability `confidence` (see tv_bound)
    confidence: float

    @property
    def within_bound(self) -> bool:
        return self.tv_distance <= self.tv_bound


def tv_bound(probs: np.ndarray, n: int, confidence: float = 0.999) -> float:
    """An upper bound that the total-variation distance of ``n`` iid draws stays below w.p. ``confidence``.

    Mean: E|f_i - p_i| <= sqrt(Var f_i) = sqrt(p_i (1 - p_i) / n) (Jensen), so
    E[TV] <= 0.5 * sum_i sqrt(p_i (1 - p_i) / n).
    Spread: TV is a function of n independent draws, and changing one draw moves one count from a token
    to another, changing TV by at most 1/n. McDiarmid's inequality then gives
    P(TV - E[TV] >= t) <= exp(-2 n t^2), i.e. t = sqrt(ln(1 / (1 - confidence)) / (2 n)).

    >>> round(tv_bound(np.array([1.0]), 100, 0.999), 4)  # a point mass: only the deviation term
    0.1858
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}.")
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    mean_bound = 0.5 * np.sqrt(p * (1.0 - p) / n).sum()
    deviation = math.sqrt(math.log(1.0 / (1.0 - confidence)) / (2.0 * n))
    return float(mean_bound + deviation)


def draw_samples(result: SamplingResult, n: int = 1_000, seed: int | None = None, *,
                 max_samples: int = _LIMITS.max_samples, confidence: float = 0.999) -> EmpiricalResult:
    """Draw ``n`` tokens from the processed distribution with a seeded generator (the settings' seed
    unless ``seed`` is given) and compare their frequencies with the probabilities."""
    n = whole_number(n, "number of samples", 1, max_samples)
    seed = result.settings.seed if seed is None else whole_number(seed, "seed", 0, MAX_SEED)
    probs = torch.tensor(result.processed_probs)  # a copy: the result's arrays are read-only
    generator = torch.Generator().manual_seed(seed)
    # the same call generate() makes, once per draw; with replacement = independent draws
    token_ids = torch.multinomial(probs, n, replacement=True, generator=generator)  # [n]
    counts = np.bincount(token_ids.numpy(), minlength=result.d_vocab).astype(np.int64)
    freqs = counts / n
    probs64 = result.processed_probs.astype(np.float64) / result.processed_probs.sum(dtype=np.float64)
    return EmpiricalResult(
        n=n, seed=seed, counts=counts, freqs=freqs,
        tv_distance=float(0.5 * np.abs(freqs - probs64).sum()),
        tv_bound=tv_bound(probs64, n, confidence), confidence=confidence,
    )


# ---------------------------------------------------------------------------------------------------
# Results of generation runs (produced by visualizer.runs.sampling)
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Continuation:
    label: str                    # "greedy", "sample 1", ...
    token_ids: tuple[int, ...]    # generated ids, up to and including EOS
    text: str                     # decoded generated text, special tokens skipped
    finished: bool                # reached EOS


@dataclass(frozen=True)
class ContinuationsStep:
    """One streamed update: every continuation so far."""

    prompt_text: str
    step: int                     # tokens generated so far
    max_new_tokens: int
    greedy: Continuation
    samples: tuple[Continuation, ...]
    settings: SamplingSettings
    done: bool
    notes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------------
# A left-padded batch (produced by visualizer.runs.sampling.batch_generate)
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchRow:
    prompt: str
    n_prompt_tokens: int
    n_pad: int                          # left padding added to this row
    continuation_ids: tuple[int, ...]   # generated ids, up to and including EOS
    continuation: str                   # decoded, special tokens skipped
    finished: bool                      # reached EOS before max_new_tokens


@dataclass(frozen=True)
class BatchResult:
    rows: tuple[BatchRow, ...]
    padded_token_ids: tuple[tuple[int, ...], ...]   # [batch, max_prompt_len] as fed to the model
    padded_token_labels: tuple[tuple[str, ...], ...]  # same shape, each token's visible text
    attention_mask: tuple[tuple[int, ...], ...]     # [batch, max_prompt_len], 0 on padding
    position_ids: tuple[tuple[int, ...], ...]       # [batch, max_prompt_len], what generate() derives
    pad_token_id: int
    max_new_tokens: int
