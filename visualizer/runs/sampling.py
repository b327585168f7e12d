"""The Sampling tab's model runs: one next-token distribution, seeded continuations, a left-padded batch.

The logit transforms and the result dataclasses are `visualizer.analysis.sampling`; this module runs the
model and hands the logits to them. Prompts are encoded by the one encoder, `visualizer.tokens.encode_prompt`.
Bounds default to the app's `visualizer.config.Limits`; the session passes its configured ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from visualizer.analysis.sampling import (
    N_LABELLED,
    BatchResult,
    BatchRow,
    Continuation,
    ContinuationsStep,
    SamplingResult,
    SamplingSettings,
    process_logits,
)
from visualizer.config import Limits
from visualizer.dims import dims_from_config
from visualizer.tokens import encode_prompt, token_label
from visualizer.validation import whole_number

_LIMITS = Limits()


def _encode(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str | Sequence[int],
            max_prompt_tokens: int) -> list[int]:
    return encode_prompt(tokenizer, prompt, max_prompt_tokens, d_vocab=_d_vocab(model),
                         n_ctx=dims_from_config(model.config).n_ctx)


@torch.inference_mode()
def next_token_distribution(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                            prompt: str | Sequence[int], settings: SamplingSettings, *,
                            max_prompt_tokens: int = _LIMITS.max_prompt_tokens,
                            n_labelled: int = N_LABELLED) -> SamplingResult:
    """Run the model on ``prompt`` and process the logits at its last position."""
    prompt_ids = _encode(model, tokenizer, prompt, max_prompt_tokens)
    out = model(input_ids=torch.tensor([prompt_ids], device=model.device), logits_to_keep=1)
    return process_logits(out.logits[0, -1], settings, tokenizer=tokenizer, n_labelled=n_labelled)


# ---------------------------------------------------------------------------------------------------
# Sampled continuations, streamed, beside the greedy one
# ---------------------------------------------------------------------------------------------------

def sample_continuations(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                         prompt: str | Sequence[int], settings: SamplingSettings, n_samples: int = 3,
                         max_new_tokens: int = 20, *, max_continuations: int = _LIMITS.max_continuations,
                         max_new_tokens_limit: int = _LIMITS.max_new_tokens,
                         max_prompt_tokens: int = _LIMITS.max_prompt_tokens) -> Iterator[ContinuationsStep]:
    """Yield the greedy continuation and ``n_samples`` sampled ones after every generated token.

    Bad input raises ValueError here, before the first step (not on the first ``next()``). Sampled rows
    follow generate(do_sample=True) step for step: same warpers, softmax, ``torch.multinomial(probs, 1)``
    over the batch, and rows that reached EOS keep drawing (their tokens are replaced by padding), so
    generate() after ``torch.manual_seed(seed)`` produces the same ids as this per-request generator.
    """
    n_samples = whole_number(n_samples, "number of sampled continuations", 1, max_continuations)
    max_new_tokens = whole_number(max_new_tokens, "number of new tokens", 1, max_new_tokens_limit)
    prompt_ids = _encode(model, tokenizer, prompt, max_prompt_tokens)
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
    context = dims_from_config(model.config).n_ctx
    if context is not None and prompt_len + max_new_tokens > context:
        raise ValueError(f"the prompt ({prompt_len} tokens) plus {max_new_tokens} new tokens exceeds the "
                         f"model's context of {context} tokens; shorten the prompt or generate fewer tokens.")


# ---------------------------------------------------------------------------------------------------
# Batch generation with left padding
# ---------------------------------------------------------------------------------------------------

@torch.inference_mode()
def batch_generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                   max_new_tokens: int = 10, *, max_batch: int = _LIMITS.max_batch,
                   max_new_tokens_limit: int = _LIMITS.max_new_tokens,
                   max_prompt_tokens: int = _LIMITS.max_prompt_tokens) -> BatchResult:
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
    encoded = [_encode(model, tokenizer, p, max_prompt_tokens) for p in prompts]
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
        padded_token_labels=tuple(tuple(token_label(tokenizer, i) for i in r) for r in input_ids.tolist()),
        attention_mask=tuple(tuple(r) for r in attention_mask.tolist()),
        position_ids=tuple(tuple(r) for r in position_ids.tolist()),
        pad_token_id=pad_id, max_new_tokens=max_new_tokens,
    )
