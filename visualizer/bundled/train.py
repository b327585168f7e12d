"""Rebuild the bundled teaching model from scratch: corpus -> tokenizer -> Phi-3-shaped model -> directory.

    python -m visualizer.bundled.train [--out DIR] [--max-steps N] [--max-minutes M] [--seed S] [--threads T]

Seeded and deterministic in its data order (the same seed and thread count give the same weights);
about 12 minutes of training on two free CPU cores (0.8 s per step), 20 on one. The output
is an ordinary Hugging Face model directory (config.json, generation_config.json, model.safetensors,
tokenizer files, README.md model card) that AutoModelForCausalLM / AutoTokenizer / pipeline load.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM, PreTrainedTokenizerFast

from visualizer.bundled import BUNDLED_MODEL_DIR
from visualizer.bundled.corpus import COUNTRIES, capital_prompts, generate_documents

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
VOCAB_SIZE = 3072  # enough for every one-word capital to be a single token (" Paris", " Tokyo", ...)
CONTEXT = 512  # max_position_embeddings; training rows are this long, so all positions are seen
EMAIL_PROMPT = "Write an email apologizing to Sarah for the tragic gardening mishap."


@dataclass
class TrainSettings:
    max_steps: int = 900
    max_minutes: float = 18.0
    seed: int = 0
    batch_rows: int = 4  # rows of CONTEXT tokens per step: 2,048 token positions
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.05
    tokenizer_docs: int = 30_000
    threads: int = 2
    model_shape: dict = field(default_factory=lambda: dict(
        hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4))


# ----- tokenizer --------------------------------------------------------------------------------------

def train_tokenizer(documents: list[str], vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style: any text encodes) that prepends <s> the standard way."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(documents, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left",
        model_max_length=CONTEXT, clean_up_tokenization_spaces=False)


# ----- data -------------------------------------------------------------------------------------------

def packed_rows(tokenizer: PreTrainedTokenizerFast, documents: Iterator[str], context: int,
                chunk: int = 2048) -> Iterator[list[list[int]]]:
    """Rows of whole `<s> doc </s>` documents (never split) whose lengths add up to at most `context`."""
    eos_id = tokenizer.eos_token_id
    row: list[list[int]] = []
    while True:
        texts = list(itertools.islice(documents, chunk))
        for ids in tokenizer(texts)["input_ids"]:  # each starts with <s>
            doc = (ids + [eos_id])[:context]
            if sum(map(len, row)) + len(doc) > context:
                yield row
                row = []
            row.append(doc)


def row_tensors(docs: list[list[int]], context: int, pad_id: int, isolate: bool) -> tuple[list[int], list[int]]:
    """(input_ids, position_ids) of one padded row.

    isolate=True restarts the positions at every document; transformers turns such position_ids into a
    block-diagonal causal mask (packed-sequence format), so each document sees only itself, exactly like
    a prompt at inference. isolate=False lets documents see the ones before them, so the model also
    meets long contexts (all 512 positions) and text after an end-of-sequence token.
    """
    ids = [i for doc in docs for i in doc]
    n_pad = context - len(ids)
    if isolate:
        positions = [p for doc in docs for p in range(len(doc))] + list(range(n_pad))
    else:
        positions = list(range(context))
    return ids + [pad_id] * n_pad, positions


def batches(rows: Iterator[list[list[int]]], batch_rows: int, context: int,
            pad_id: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(input_ids, position_ids, labels), each [batch, pos]; three rows in four are isolated documents."""
    while True:
        pairs = [row_tensors(next(rows), context, pad_id, isolate=i % 4 != 3) for i in range(batch_rows)]
        input_ids = torch.tensor([ids for ids, _ in pairs])
        position_ids = torch.tensor([pos for _, pos in pairs])
        labels = input_ids.masked_fill(input_ids == pad_id, -100)  # padding carries no loss
        yield input_ids, position_ids, labels


# ----- model and optimisation -------------------------------------------------------------------------

def build_model(tokenizer: PreTrainedTokenizerFast, shape: dict) -> Phi3ForCausalLM:
    config = Phi3Config(
        vocab_size=len(tokenizer), max_position_embeddings=CONTEXT, original_max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, **shape)
    # sdpa trains faster; it is not saved in config.json, so loaders pick their own (the app: eager)
    return Phi3ForCausalLM._from_config(config, attn_implementation="sdpa")


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    # no weight decay on norms and embeddings (the usual GPT recipe)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.95))


def lr_factor(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.max_steps - settings.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ----- evaluation -------------------------------------------------------------------------------------

@dataclass
class Report:
    parameters: int = 0
    steps: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    final_loss: float = float("nan")
    capital_accuracy: float = 0.0
    capital_misses: list[str] = field(default_factory=list)
    france_top5: list[tuple[str, float]] = field(default_factory=list)
    email_sample: str = ""
    stopped_early: bool = False
    file_megabytes: float = 0.0


@torch.inference_mode()
def greedy_continuations(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)  # left padding (tokenizer default)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def capital_accuracy(model, tokenizer) -> tuple[float, list[str]]:
    """Fraction of countries whose greedy continuation of "The capital of X is" spells the capital."""
    prompts = capital_prompts()
    texts = greedy_continuations(model, tokenizer, [p for p, _ in prompts], max_new_tokens=8)
    misses = [f"{p} -> {t!r} (want {c})" for (p, c), t in zip(prompts, texts, strict=True)
              if not t.startswith(" " + c)]
    return 1 - len(misses) / len(prompts), misses


@torch.inference_mode()
def top_next_tokens(model, tokenizer, prompt: str, k: int = 5) -> list[tuple[str, float]]:
    enc = tokenizer(prompt, return_tensors="pt")
    probs = model(**enc).logits[0, -1].softmax(-1)  # [d_vocab]
    top = probs.topk(k)
    return [(tokenizer.decode([i]), float(p)) for p, i in zip(top.values, top.indices, strict=True)]


# ----- writing the directory ----------------------------------------------------------------------------

MODEL_CARD = """---
library_name: transformers
pipeline_tag: text-generation
language: en
---

# Bundled teaching model ("Inside the LLM")

A {parameters:,}-parameter causal language model with the **Phi-3 architecture** (`Phi3ForCausalLM`:
fused `qkv_proj` and `gate_up_proj`, RMSNorm, rotary position embeddings, untied embeddings), scaled
down to {n_layers} layers, {n_heads} heads, hidden size {d_model}, MLP size {d_mlp}, vocabulary {d_vocab},
context {context} tokens. It is the default model of the "Inside the LLM" app on machines without a GPU.

It is **not** a general language model. It was trained only on a small synthetic corpus that the
project generates itself (`visualizer/bundled/corpus.py`, no downloads): templated English about
{n_countries} countries (capitals, continents, languages, currencies), opposites, counting, days and
months, a few jokes, short "repeat after me" and greeting texts that reward looking back at earlier
words, and short templated emails ("Write an email apologizing to ... for the ... mishap."). Outside
that world its output is nonsense; inside it, it answers like this:

- `The capital of France is` -> top-5 next tokens: {top5}
- capital accuracy over all {n_countries} countries (greedy, prompt "The capital of X is"): {accuracy:.1%}
- greedy continuation of `{email_prompt}`:

```
{email}
```

## How it was made

`python -m visualizer.bundled.train --seed {seed} --threads {threads}` (seeded, deterministic data order) builds the
corpus, trains a byte-level BPE tokenizer with the `tokenizers` library (special tokens `<pad>`, `<s>`,
`</s>`; `<s>` is prepended to every input), and trains the model from random initialisation with AdamW
(peak learning rate {lr}, warm-up then cosine decay) on rows of {context} tokens packed with whole
documents, each wrapped in `<s> ... </s>`. In three rows out of four the position ids restart at every
document, which transformers turns into a block-diagonal causal mask (each document sees only itself,
like a prompt at inference); the fourth row lets documents see each other, so all {context} positions
and text after `</s>` are seen too.

| figure | value |
|---|---|
| parameters | {parameters:,} |
| training steps | {steps} ({tokens:,} token positions) |
| training time | {minutes:.1f} min wall-clock, {threads} CPU thread(s) |
| final training loss | {loss:.3f} |
| capital accuracy | {accuracy:.1%} |
| weights | float32 safetensors, {megabytes:.1f} MB |

Load it like any other model:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
tokenizer = AutoTokenizer.from_pretrained(path)
```
"""


def write_model_card(out: Path, model, report: Report, settings: TrainSettings) -> None:
    cfg = model.config
    top5 = ", ".join(f"`{t!r}` {p:.3g}" for t, p in report.france_top5)
    text = MODEL_CARD.format(
        parameters=report.parameters, n_layers=cfg.num_hidden_layers, n_heads=cfg.num_attention_heads,
        d_model=cfg.hidden_size, d_mlp=cfg.intermediate_size, d_vocab=cfg.vocab_size, context=CONTEXT,
        n_countries=len(COUNTRIES), top5=top5, accuracy=report.capital_accuracy, email_prompt=EMAIL_PROMPT,
        email=(EMAIL_PROMPT + report.email_sample).strip(), seed=settings.seed, lr=settings.lr,
        steps=report.steps, tokens=report.tokens_seen, minutes=report.train_seconds / 60,
        threads=settings.threads, loss=report.final_loss, megabytes=report.file_megabytes)
    (out / "README.md").write_text(text, encoding="utf-8")


def save(out: Path, model, tokenizer) -> float:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    weights = out / "model.safetensors"
    weights.chmod(0o644)  # safetensors writes 0600; the directory is shared, read-only data
    return weights.stat().st_size / 1e6


# ----- main -------------------------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def train(out: Path, settings: TrainSettings, log=print) -> Report:
    torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    started = time.monotonic()
    documents = generate_documents(settings.seed)
    tokenizer = train_tokenizer(list(itertools.islice(documents, settings.tokenizer_docs)))
    log(f"tokenizer: {len(tokenizer)} tokens, ' Paris' -> {tokenizer.tokenize(' Paris')}")

    model = build_model(tokenizer, settings.model_shape)
    report = Report(parameters=model.num_parameters())
    log(f"model: {report.parameters:,} parameters")
    optimizer = make_optimizer(model, settings)
    data = batches(packed_rows(tokenizer, documents, CONTEXT), settings.batch_rows, CONTEXT,
                   tokenizer.pad_token_id)

    model.train()
    train_start, smoothed = time.monotonic(), None
    for step in range(settings.max_steps):
        if time.monotonic() - train_start > settings.max_minutes * 60:
            report.stopped_early = True
            log(f"stopping early at step {step}: --max-minutes {settings.max_minutes} reached")
            break
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * lr_factor(step, settings)
        input_ids, position_ids, labels = next(data)
        loss = model(input_ids=input_ids, position_ids=position_ids, labels=labels, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        smoothed = loss.item() if smoothed is None else 0.9 * smoothed + 0.1 * loss.item()
        report.steps, report.tokens_seen = step + 1, report.tokens_seen + input_ids.numel()
        if step % 25 == 0 or step == settings.max_steps - 1:
            log(f"step {step + 1}/{settings.max_steps} loss {loss.item():.3f} (smoothed {smoothed:.3f}) "
                f"{time.monotonic() - train_start:.0f}s")
    report.train_seconds = time.monotonic() - train_start
    report.final_loss = smoothed if smoothed is not None else float("nan")

    model.eval()
    report.capital_accuracy, report.capital_misses = capital_accuracy(model, tokenizer)
    report.france_top5 = top_next_tokens(model, tokenizer, "The capital of France is")
    report.email_sample = greedy_continuations(model, tokenizer, [EMAIL_PROMPT], max_new_tokens=120)[0]
    report.file_megabytes = save(out, model, tokenizer)
    write_model_card(out, model, report, settings)
    log(f"capital accuracy {report.capital_accuracy:.1%}; {len(report.capital_misses)} misses: "
        f"{report.capital_misses[:10]}")
    log("France top-5: " + ", ".join(f"{t!r} {p:.4f}" for t, p in report.france_top5))
    log(f"email: {report.email_sample!r}")
    log(f"parameters {report.parameters:,}, weights {report.file_megabytes:.1f} MB, "
        f"training {report.train_seconds / 60:.1f} min ({report.steps} steps), final loss {report.final_loss:.3f}, "
        f"total {(time.monotonic() - started) / 60:.1f} min; wrote {out}")
    return report


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BUNDLED_MODEL_DIR, help="output model directory")
    parser.add_argument("--max-steps", type=int, default=TrainSettings.max_steps)
    parser.add_argument("--max-minutes", type=float, default=TrainSettings.max_minutes,
                        help="safety cap on training time; stops early (and says so) when reached")
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--threads", type=int, default=TrainSettings.threads,
                        help="CPU threads; use 1 on a machine whose other core is busy (2 threads on one "
                             "free core is several times slower)")
    args = parser.parse_args(argv)
    settings = TrainSettings(max_steps=args.max_steps, max_minutes=args.max_minutes, seed=args.seed,
                             threads=args.threads)
    return train(args.out, settings)


if __name__ == "__main__":
    main()
