"""Server CPU per request when the prompt's trace is cached: each tab's own view function, outputs serialised as
Gradio sends them (figures through `to_json()`, text as is). What a class re-slicing one prompt costs the server.

CPU time of the calling thread (`time.thread_time`), median of the repeats, after one call that fills the caches.

    python -m benchmarks.cached_views                     # the bundled model, 16 and 128 tokens
    python -m benchmarks.cached_views --model smollm2 --tokens 16
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import fields

from benchmarks.common import ROOT  # noqa: F401 - puts the repository on sys.path, offline hub

TEXT = ("Write an email apologizing to Sarah for the tragic gardening mishap. Explain how it happened, what you "
        "learned from it and how you will make it right, and offer to replant the roses together next spring. ")


def _prompt(session, n_tokens: int) -> str:
    """A prompt of exactly `n_tokens` tokens as this tokenizer counts them (cut from a repeated sentence)."""
    ids = session.tokenizer(TEXT * (1 + n_tokens // 30), add_special_tokens=False).input_ids
    for take in range(n_tokens, 0, -1):
        text = session.tokenizer.decode(ids[:take])
        if len(session.encode(text)) <= n_tokens:
            return text
    raise ValueError("no prompt fits")


def _serialise(outputs) -> None:
    for item in fields(outputs):
        value = getattr(outputs, item.name)
        if hasattr(value, "to_json"):
            value.to_json()


def _views(session, prompt: str):
    from visualizer.ui.tabs import attention, next_token, sampling

    last = len(session.encode(prompt)) - 1
    return {
        "next_token (whole tab)": lambda: next_token.run_next_token(session, prompt, 10, ""),
        "next_token at a position": lambda: next_token.at_position(session, prompt, None, 10, last // 2, ""),
        "attention (head, layer, grid)": lambda: attention.show_attention(session, prompt, None, 1, 1, False,
                                                                          "entropy"),
        "attention: another head": lambda: attention.show_head(session, prompt, None, 0, 2, False),
        "sampling (distribution, 5 draws)": lambda: sampling.distribution(session, prompt, None, 0.8, 40, 0.9, 0, 5),
    }


def cpu_ms(fn, repeats: int) -> float:
    _serialise(fn())  # fills the trace and lens caches: the requests below are the cached ones
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        _serialise(fn())
        times.append(time.thread_time() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    from visualizer.session import load_session

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    session = load_session(model=args.model)
    print(f"model: {session.display_name}; server CPU per request on a cached trace, ms (median of {args.repeats})")
    for n_tokens in args.tokens:
        prompt = _prompt(session, n_tokens)
        for name, fn in _views(session, prompt).items():
            print(f"{len(session.encode(prompt)):>5} tokens | {name:<34} | {cpu_ms(fn, args.repeats):6.2f}")


if __name__ == "__main__":
    main()
