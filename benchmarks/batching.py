"""Would batching concurrent students' prompts into one forward pass be faster? Measured, side by side.

    python -m benchmarks.batching                     # bundled model, 1 torch thread
    python -m benchmarks.batching --threads 2 --model PATH

For B prompts of mixed lengths (a class types different prompts), it times B separate forward passes against one
left-padded batch with an attention mask, with the hidden states and attentions the trace needs, alternating the
order each round, and checks that the batched logits equal the separate ones (within 1e-4 in fp32). The app runs
one pass per prompt: the table says whether a batch would pay for its padding and for the per-prompt work that
still follows (the trace's analysis is per prompt either way).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import ROOT  # noqa: F401  (puts the checkout on sys.path)


def _prompts(d_vocab: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(3, d_vocab, (n,), generator=generator).tolist() for n in lengths]


@torch.inference_mode()
def separate(model, prompts: list[list[int]]) -> list[torch.Tensor]:
    return [model(input_ids=torch.tensor([ids]), use_cache=False, output_attentions=True,
                  output_hidden_states=True).logits[0] for ids in prompts]


@torch.inference_mode()
def batched(model, prompts: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    width = max(len(ids) for ids in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding: every prompt ends at the last column
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # each prompt's own positions, as if alone
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                   output_attentions=True, output_hidden_states=True).logits
    return [logits[row, width - len(prompt):] for row, prompt in enumerate(prompts)]


def _median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from visualizer import load_session

    session = load_session(model="bundled")
    model, d_vocab = session.model, session.dims.d_vocab
    pad_id = session.tokenizer.pad_token_id or 0
    cases = {"4 short (6-12)": [6, 8, 10, 12], "8 short (6-20)": [6, 8, 10, 12, 14, 16, 18, 20],
             "4 mixed (8-128)": [8, 32, 64, 128], "8 mixed (8-256)": [8, 16, 32, 48, 64, 96, 128, 256]}
    print(f"model: {session.display_name}, {args.threads} thread(s), median of {args.rounds} rounds")
    print("prompts          | separate (ms) | one batch (ms) | batch/separate | padding | max |diff|")
    for name, lengths in cases.items():
        prompts = _prompts(d_vocab, lengths)
        ours, theirs = separate(model, prompts), batched(model, prompts, pad_id)
        diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True))
        sep = _median_ms(lambda p=prompts: separate(model, p), args.rounds)
        bat = _median_ms(lambda p=prompts: batched(model, p, pad_id), args.rounds)
        padding = 1 - sum(lengths) / (len(lengths) * max(lengths))
        print(f"{name:16s} | {sep:13.1f} | {bat:14.1f} | {bat / sep:13.2f}x | {padding:6.0%} | {diff:.1e}")


if __name__ == "__main__":
    main()
