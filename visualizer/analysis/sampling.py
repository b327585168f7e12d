"""Temperature, top-k and top-p applied to one next-token distribution, stage by stage.

The processed distribution is the one ``model.generate(do_sample=True, ...)`` samples from: the stages
are transformers' own warpers, in the order ``GenerationMixin._get_logits_processor`` (transformers 5.24,
generation/utils.py) appends them: ``TemperatureLogitsWarper`` (skipped at T = 1), ``TopKLogitsWarper``
(skipped at k = 0), ``TopPLogitsWarper`` (skipped at p = 1), applied to the float32 logits of the last
position, then a softmax and ``torch.multinomial``. Temperature 0 is greedy decoding (``argmax``, as
``generate(do_sample=False)``), which transformers does not express as a temperature.

Sampling uses a per-request ``torch.Generator``: ``generate()`` has no generator argument, and the global
RNG is shared by all the server's threads, so concurrent requests would interleave their draws.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers import (
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from visualizer.tokens import visible_token
from visualizer.validation import real_number, whole_number

# Default limits; the app passes its configured ones (these are what a classroom CPU/GPU handles quickly).
MAX_TEMPERATURE = 5.0
MIN_POSITIVE_TEMPERATURE = 1e-3  # below this, logits / T can overflow float32 for large logits
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts any int64
MAX_TOP_K = 1_000_000  # above any vocabulary: k >= d_vocab cuts nothing, which is allowed
MAX_SAMPLES = 100_000
MAX_NEW_TOKENS = 64
MAX_CONTINUATIONS = 8
MAX_BATCH = 8
MAX_PROMPT_TOKENS = 512
N_LABELLED = 200  # tokens (in display order) whose strings are decoded for the figure

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
    return tuple(visible_token(token_text(tokenizer, int(i))) for i in token_ids)


def token_text(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """What one token adds to the text; a token holding part of a UTF-8 character, which decodes to
    the replacement character, is shown as its bytes instead (e.g. ``\\xe2\\x80``)."""
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens(token_id)
    byte_of = _byte_level_decoder()
    if isinstance(raw, str) and raw and all(ch in byte_of for ch in raw):  # GPT-2 style byte-level BPE
        return bytes(byte_of[ch] for ch in raw).decode("utf-8", errors="backslashreplace")
    return raw if isinstance(raw, str) and raw else text  # SentencePiece byte tokens read "<0xE2>"


@functools.lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte -> printable character table, inverted (the standard bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def entropy(probs: np.ndarray) -> float:
    """Shannon entropy in nats; zero-probability tokens contribute nothing.

    >>> round(entropy(np.array([0.5, 0.5, 0.0])), 6) == round(math.log(2), 6)
    True
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return max(0.0, float(-(p * np.log(p)).sum()))  # max: a point mass gives -0.0


@torch.inference_mode()
def next_token_distribution(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                            prompt: str | Sequence[int], settings: SamplingSettings, *,
                            max_prompt_tokens: int = MAX_PROMPT_TOKENS,
                            n_labelled: int = N_LABELLED) -> SamplingResult:
    """Run the model on ``prompt`` and process the logits at its last position."""
    prompt_ids = encode_prompt(tokenizer, prompt, max_prompt_tokens=max_prompt_tokens, d_vocab=_d_vocab(model))
    device = model.device
    out = model(input_ids=torch.tensor([prompt_ids], device=device), logits_to_keep=1)
    return process_logits(out.logits[0, -1], settings, tokenizer=tokenizer, n_labelled=n_labelled)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | Sequence[int], *,
                  max_prompt_tokens: int = MAX_PROMPT_TOKENS, d_vocab: int | None = None) -> list[int]:
    """Token ids of a prompt: text is encoded with the tokenizer's usual special tokens (e.g. BOS);
    ids are checked against ``d_vocab`` when given."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("The prompt is empty: type some text first.")
        prompt_ids = list(tokenizer(prompt)["input_ids"])
    else:
        prompt_ids = [int(i) for i in prompt]
    if not prompt_ids:
        raise ValueError("The prompt produced no tokens: type some text first.")
    if d_vocab is not None and not all(0 <= i < d_vocab for i in prompt_ids):
        raise ValueError(f"token ids must be integers from 0 to {d_vocab - 1}.")
    if len(prompt_ids) > max_prompt_tokens:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens; the limit is {max_prompt_tokens}.")
    return prompt_ids


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
                 max_samples: int = MAX_SAMPLES, confidence: float = 0.999) -> EmpiricalResult:
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
# Sampled continuations, streamed, beside the greedy one
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


def sample_continuations(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                         prompt: str | Sequence[int], settings: SamplingSettings, n_samples: int = 3,
                         max_new_tokens: int = 20, *, max_continuations: int = MAX_CONTINUATIONS,
                         max_new_tokens_limit: int = MAX_NEW_TOKENS,
                         max_prompt_tokens: int = MAX_PROMPT_TOKENS) -> Iterator[ContinuationsStep]:
    """Yield the greedy continuation and ``n_samples`` sampled ones after every generated token.

    Bad input raises ValueError here, before the first step (not on the first ``next()``). Sampled rows
    follow generate(do_sample=True) step for step: same warpers, softmax, ``torch.multinomial(probs, 1)``
    over the batch, and rows that reached EOS keep drawing (their tokens are replaced by padding), so
    generate() after ``torch.manual_seed(seed)`` produces the same ids as this per-request generator.
    """
    n_samples = whole_number(n_samples, "number of sampled continuations", 1, max_continuations)
    max_new_tokens = whole_number(max_new_tokens, "number of new tokens", 1, max_new_tokens_limit)
    prompt_ids = encode_prompt(tokenizer, prompt, max_prompt_tokens=max_prompt_tokens, d_vocab=_d_vocab(model))
    _check_context(model, len(prompt_ids), max_new_tokens)
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = _pad_id(model, tokenizer)
    device = model.device
    greedy = _Decoder(model, torch.tensor([prompt_ids], device=device), SamplingSettings(temperature=0.0),
                      generator=None, eos_ids=eos_ids, pad_id=pad_id)
    sampler = None
    if not settings.is_greedy:
        generator = torch.Generator(device=device).manual_seed(settings.seed)
        batch_ids = torch.tensor([prompt_ids] * n_samples, device=device)  # [n_samples, prompt_len]
        sampler = _Decoder(model, batch_ids, settings, generator=generator, eos_ids=eos_ids, pad_id=pad_id)
    prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    notes = ("Temperature 0 is greedy decoding: every sample equals the greedy continuation.",) \
        if settings.is_greedy else ()
    return _stream(tokenizer, greedy, sampler, n_samples, max_new_tokens, prompt_text, settings, notes)


def _stream(tokenizer: PreTrainedTokenizerBase, greedy: _Decoder, sampler: _Decoder | None, n_samples: int,
            max_new_tokens: int, prompt_text: str, settings: SamplingSettings,
            notes: tuple[str, ...]) -> Iterator[ContinuationsStep]:
    for step in range(1, max_new_tokens + 1):
        # inference mode is thread-local and gradio may resume this generator on another thread,
        # so it is entered per step and never held across a yield
        with torch.inference_mode():
            for decoder in (greedy, sampler):
                if decoder is not None and not decoder.all_finished:  # generate() stops there too
                    decoder.step()
        greedy_row = greedy.continuation(0, "greedy", tokenizer)
        if sampler is None:
            samples = tuple(replace(greedy_row, label=f"sample {i + 1}") for i in range(n_samples))
        else:
            samples = tuple(sampler.continuation(i, f"sample {i + 1}", tokenizer) for i in range(n_samples))
        done = step == max_new_tokens or (greedy.all_finished and (sampler is None or sampler.all_finished))
        yield ContinuationsStep(prompt_text=prompt_text, step=step, max_new_tokens=max_new_tokens,
                                greedy=greedy_row, samples=samples, settings=settings, done=done, notes=notes)
        if done:
            return


class _Decoder:
    """A batch of equal-length rows decoded one token per step with the KV cache (no padding needed)."""

    def __init__(self, model: PreTrainedModel, prompt_ids: torch.Tensor, settings: SamplingSettings,
                 generator: torch.Generator | None, eos_ids: list[int], pad_id: int):
        self.model, self.settings, self.generator = model, settings, generator
        self.processors = settings.logits_processors()
        self.input_ids = prompt_ids  # [batch, pos], grows by one column per step
        self.prompt_len = prompt_ids.shape[1]
        self.cache = None
        self.eos_ids = torch.tensor(eos_ids, dtype=torch.long, device=prompt_ids.device)
        self.pad_id = pad_id
        self.unfinished = torch.ones(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)

    def step(self) -> None:
        new_ids = self.input_ids if self.cache is None else self.input_ids[:, -1:]  # [batch, pos or 1]
        out = self.model(input_ids=new_ids, cache=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.cache
        next_logits = out.logits[:, -1].to(dtype=torch.float32)  # [batch, d_vocab], as generate() casts
        if self.settings.is_greedy:
            next_ids = torch.argmax(next_logits, dim=-1)  # [batch]
        else:
            probs = torch.softmax(self.processors(self.input_ids, next_logits), dim=-1)
            next_ids = torch.multinomial(probs, num_samples=1, generator=self.generator).squeeze(1)
        next_ids = torch.where(self.unfinished, next_ids, torch.full_like(next_ids, self.pad_id))
        self.input_ids = torch.cat([self.input_ids, next_ids[:, None]], dim=-1)
        self.unfinished &= ~torch.isin(next_ids, self.eos_ids)

    @property
    def all_finished(self) -> bool:
        return not bool(self.unfinished.any())

    def continuation(self, row: int, label: str, tokenizer: PreTrainedTokenizerBase) -> Continuation:
        generated = self.input_ids[row, self.prompt_len:].tolist()
        eos_ids = set(self.eos_ids.tolist())
        eos_positions = [i for i, token_id in enumerate(generated) if token_id in eos_ids]
        finished = bool(eos_positions)
        if finished:
            generated = generated[: eos_positions[0] + 1]
        return Continuation(label=label, token_ids=tuple(generated), finished=finished,
                            text=tokenizer.decode(generated, skip_special_tokens=True))


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _pad_id(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokenizer's pad token, else EOS (the usual choice for decoder-only models), else 0.

    The id only fills masked positions, so any valid id works; the choice is for display.
    """
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id,
                      getattr(model.generation_config, "pad_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return 0


def _d_vocab(model: PreTrainedModel) -> int:
    return int(model.get_input_embeddings().num_embeddings)


def _check_context(model: PreTrainedModel, prompt_len: int, max_new_tokens: int) -> None:
    text_config = model.config.get_text_config()
    context = getattr(text_config, "max_position_embeddings", None)  # GPT-2 maps n_positions to it
    if context is not None and prompt_len + max_new_tokens > context:
        raise ValueError(f"the prompt ({prompt_len} tokens) plus {max_new_tokens} new tokens exceeds the "
                         f"model's context of {context} tokens; shorten the prompt or generate fewer tokens.")


# ---------------------------------------------------------------------------------------------------
# Batch generation with left padding
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


@torch.inference_mode()
def batch_generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                   max_new_tokens: int = 10, *, max_batch: int = MAX_BATCH,
                   max_new_tokens_limit: int = MAX_NEW_TOKENS,
                   max_prompt_tokens: int = MAX_PROMPT_TOKENS) -> BatchResult:
    """Greedy continuations of several prompts in one left-padded batch.

    A decoder-only model continues from the last column, so padding goes on the left, where the
    attention mask hides it; generate() derives position ids from the mask (cumsum - 1), so each
    prompt sees the same positions as when run alone. Padding is built here rather than by the
    tokenizer, so the shared tokenizer's padding_side and pad_token are never touched.
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given; enter at least one prompt (one per line).")
    whole_number(len(prompts), "number of prompts", 1, max_batch)
    max_new_tokens = whole_number(max_new_tokens, "number of new tokens", 1, max_new_tokens_limit)
    encoded = [encode_prompt(tokenizer, p, max_prompt_tokens=max_prompt_tokens) for p in prompts]
    width = max(len(ids) for ids in encoded)
    _check_context(model, width, max_new_tokens)
    pad_id = _pad_id(model, tokenizer)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)  # [batch, width]
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)  # [batch, width]
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention_mask[row, width - len(ids):] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0) * attention_mask  # [batch, width]
    sequences = model.generate(
        input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id,
    ).cpu()  # [batch, width + generated]
    eos_ids = set(_eos_ids(model, tokenizer))
    rows = []
    for row, (prompt, ids) in enumerate(zip(prompts, encoded, strict=True)):
        generated = sequences[row, width:].tolist()
        eos_at = next((i for i, token_id in enumerate(generated) if token_id in eos_ids), None)
        if eos_at is not None:
            generated = generated[: eos_at + 1]
        rows.append(BatchRow(prompt=prompt, n_prompt_tokens=len(ids), n_pad=width - len(ids),
                             continuation_ids=tuple(generated), finished=eos_at is not None,
                             continuation=tokenizer.decode(generated, skip_special_tokens=True)))
    return BatchResult(
        rows=tuple(rows), padded_token_ids=tuple(tuple(r) for r in input_ids.tolist()),
        padded_token_labels=tuple(tuple(visible_token(token_text(tokenizer, i)) for i in r)
                                  for r in input_ids.tolist()),
        attention_mask=tuple(tuple(r) for r in attention_mask.tolist()),
        position_ids=tuple(tuple(r) for r in position_ids.tolist()),
        pad_token_id=pad_id, max_new_tokens=max_new_tokens,
    )
