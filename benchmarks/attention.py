"""Peak memory and time of the attention analysis (the trace plus one opened layer) against one bare eager forward
pass and against `output_attentions=True` on all layers at once.

Model: random weights with Phi-3-mini's 32 layers x 32 heads at a small hidden size (the attention cost of the
real model). Each measurement runs in a fresh process so the peak-RSS counter is its own; the session is built
(and checks itself) before the clock starts.

    python -m benchmarks.attention                         # 128, 512 and 2048 tokens (the 2,048 case takes minutes)
    python -m benchmarks.attention --n-pos 1024 --layers 8  # a smaller case
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.common import peak_rss_bytes, phi3_shaped_random, run_isolated

MiB = 2**20


def _measure(mode: str, n_pos: int, n_layers: int) -> dict:
    import torch

    from visualizer.config import AppConfig, Limits
    from visualizer.session import ModelSession

    model = phi3_shaped_random(n_layers=n_layers, vocab=320)  # the tiny test tokenizer's vocabulary
    ids = torch.randint(3, model.config.vocab_size, (n_pos,), generator=torch.Generator().manual_seed(0))
    if mode == "ours":
        limits = Limits(max_prompt_tokens=4096, memory_budget_bytes=64 * 2**30)
        session = ModelSession(model, _tokenizer(model.config.vocab_size), AppConfig(limits=limits))
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    if mode == "ours":
        trace = session.trace(ids.tolist())
        assert trace.attention_metrics  # the tab's layer x head grid (from kept patterns it is computed on first use)
        session.layer_patterns(trace, 0)  # open one head's layer, as the page does
        stored = trace.kept_patterns is not None
    elif mode == "bare":  # eager attention computes every weight, returns none
        with torch.inference_mode():
            model(ids[None], use_cache=False)
        stored = False
    else:
        with torch.inference_mode():
            out = model(ids[None], output_attentions=True)
        assert len(out.attentions) == model.config.num_hidden_layers
        stored = True
    seconds = time.perf_counter() - start
    return dict(mode=mode, n_pos=n_pos, seconds=seconds, peak_extra_mib=(peak_rss_bytes() - baseline) / MiB,
                all_layers_stored=stored)


def _tokenizer(vocab: int):
    from tests.tiny_models import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    assert vocab >= len(tokenizer)
    return tokenizer


def all_attentions_mib(n_pos: int, n_layers: int, n_heads: int = 32, element: int = 4) -> float:
    return n_layers * n_heads * n_pos * n_pos * element / MiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-pos", "--lengths", dest="lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--layers", type=int, default=32, help="layers of the random model (Phi-3-mini: 32)")
    parser.add_argument("--fit-mib", type=float, default=6000,
                        help="run output_attentions=True only where all weights take less than this")
    parser.add_argument("--measure", nargs=3, metavar=("MODE", "N_POS", "LAYERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(args.measure[0], int(args.measure[1]), int(args.measure[2]))))
        return
    print(f"{args.layers} layers x 32 heads")
    print(f"{'tokens':>6} | {'ours: s':>8} | {'ours: peak MiB':>14} | {'bare: s':>8} | {'ours / bare':>11} | "
          f"{'all-at-once: s':>14} | {'all-at-once: peak MiB':>21} | all weights (fp32)")
    for n_pos in args.lengths:
        layers = str(args.layers)
        ours = run_isolated("benchmarks.attention", "--measure", "ours", str(n_pos), layers)
        bare = run_isolated("benchmarks.attention", "--measure", "bare", str(n_pos), layers)
        size = all_attentions_mib(n_pos, args.layers)
        if size < args.fit_mib:
            full = run_isolated("benchmarks.attention", "--measure", "all", str(n_pos), layers)
            full_s, full_mib = f"{full['seconds']:.2f}", f"{full['peak_extra_mib']:,.0f}"
        else:
            full_s, full_mib = "not run", "does not fit"
        print(f"{n_pos:>6} | {ours['seconds']:>8.2f} | {ours['peak_extra_mib']:>14,.0f} | {bare['seconds']:>8.2f} | "
              f"{ours['seconds'] / bare['seconds']:>10.2f}x | {full_s:>14} | {full_mib:>21} | {size:,.0f} MiB"
              + ("" if ours["all_layers_stored"] else "  (ours: summary + one layer on demand)"))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
