"""Time of the full next-token analysis against a bare forward pass with hidden states, same prompt.

The analysis is what the Next-token tab computes for a new prompt, by its own view function: one forward pass
(the trace), the token chips with their hover lines, the shapes, the top-k, the logit-lens grid and the lens at
the last position, figures serialised as gr.Plot sends them (`to_json()`). The bare pass returns hidden states
and attentions, as the trace needs. Per-token texts stay decoded across prompts (a vocabulary is finite).
The ratio says what the views cost on top of the model itself.

    python -m benchmarks.next_token                 # the bundled model (or a random Phi-3-shaped one)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import bundled_or_none, phi3_shaped_random


def _session():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from visualizer.config import AppConfig, Limits
    from visualizer.session import ModelSession

    config = AppConfig(limits=Limits(max_prompt_tokens=4096))
    path = bundled_or_none()
    if path is not None:
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
        return ModelSession(model, AutoTokenizer.from_pretrained(path), config), "bundled model"
    from tests.tiny_models import tiny_tokenizer

    return ModelSession(phi3_shaped_random(4, 4, 256, 320), tiny_tokenizer(), config), "random Phi-3-shaped"


def full_analysis(session, ids: list[int]) -> None:
    """What the Next-token tab computes for a new prompt (its own view function), figures serialised as gr.Plot
    sends them."""
    from visualizer.ui.tabs.next_token import _views

    session.clear_cache()  # time a fresh prompt, not a cache hit
    views = _views(session, ids, 10, -1, None)
    for figure in (views.topk, views.lens, views.target):
        figure.to_json()  # what gr.Plot.postprocess does with it


def trace_without_lens(session, ids: list[int]) -> None:
    """What the Attention and Sampling tabs pay for a new prompt: the trace (the lens grid is the Next-token tab's)."""
    session.clear_cache()
    session.trace(ids)


def bare_forward(model, ids: list[int]) -> None:
    with torch.inference_mode():
        model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 128, 512])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    session, name = _session()
    context = session.dims.n_ctx or 10**9
    print(f"model: {name}, {torch.get_num_threads()} threads")
    print(f"{'tokens':>6} | {'bare forward (ms)':>17} | {'full analysis (ms)':>18} | ratio | "
          f"{'trace only (ms)':>15} | ratio")
    generator = torch.Generator().manual_seed(0)
    for n_pos in args.lengths:
        if n_pos > context:
            print(f"{n_pos:>6} | over the model's context of {context}")
            continue
        ids = torch.randint(3, session.dims.d_vocab, (n_pos,), generator=generator).tolist()
        runs = {"bare": lambda ids=ids: bare_forward(session.model, ids),
                "full": lambda ids=ids: full_analysis(session, ids),
                "trace": lambda ids=ids: trace_without_lens(session, ids)}
        times = interleaved(runs, args.repeats)
        bare, full, trace = times["bare"], times["full"], times["trace"]
        print(f"{n_pos:>6} | {bare * 1e3:>17.1f} | {full * 1e3:>18.1f} | {full / bare:.2f}x | {trace * 1e3:>15.1f} | "
              f"{trace / bare:.2f}x")


def interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each run, timed in turns (bare, full, trace, bare, ...) after one warm-up each, so that a
    change in the machine's load touches all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}

if __name__ == "__main__":
    main()
