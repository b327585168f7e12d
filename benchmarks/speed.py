"""The Speed tab's table without the UI: the chapter's speed tips timed on a model, through `session.speed_lab`.

    python -m benchmarks.speed --quick                  # the bundled model, attention + precision + batch, < 1 min
    python -m benchmarks.speed --compile                # also torch.compile (a minute or more on a CPU)
    python -m benchmarks.speed --model smollm2 --repeats 5 --tokens 64 --json benchmarks/results/speed.json

Prints the same table the tab shows, each part's verdict, and the timing conditions (load, CPU share).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.common import ROOT  # noqa: F401 - puts the repository on sys.path, offline hub

PROMPT = "Write an email apologizing to Sarah for the tragic gardening mishap. Explain how it happened."


def _session(model: str):
    from visualizer.session import ModelSession, load_session
    from visualizer.session_speed import SpeedMixin

    session = load_session(model=model)
    if not isinstance(session, SpeedMixin):  # until ModelSession carries the mixin
        session.__class__ = type("SpeedSession", (SpeedMixin, ModelSession), {})
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled", help="bundled (default), smollm2, a hub id or a path")
    parser.add_argument("--quick", action="store_true", help="2 repeats of 16 tokens, batch up to 4")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow on a CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--json", help="write the rows and verdicts here")
    args = parser.parse_args(argv)

    from visualizer.analysis.speed import DEFAULT_PARTS
    from visualizer.figures.speed import conditions_markdown, text_table

    session = _session(args.model)
    repeats, tokens = (2, 16) if args.quick else (args.repeats, args.tokens)
    parts = [*DEFAULT_PARTS, *(["compile"] if args.compile else [])]
    start = time.perf_counter()
    for update in session.speed_lab(PROMPT, parts, repeats, tokens):
        print(f"[{time.perf_counter() - start:5.1f} s] {update.message}", file=sys.stderr)
    result = update.result
    print(f"{session.display_name}: {session.n_params:,} parameters, {result.loaded_dtype} on {result.device}; "
          f"prompt {result.n_prompt_tokens} tokens, N = {result.n_new_tokens}, {result.n_repeats} repeats\n")
    print(text_table(result.rows), "\n")
    for text in result.verdicts.values():
        print(text, "\n")
    print(conditions_markdown(result.conditions, update.load, result.warning))
    print(f"\n(total {time.perf_counter() - start:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [_plain(r) for r in result.rows], "verdicts": result.verdicts}, f, indent=1)
    return 0


def _plain(row) -> dict:
    decode = row.decode
    return {"part": row.part, "setting": row.setting, "reason": row.reason,
            "decode_tokens_per_s": row.decode_tokens_per_s.tolist(),
            "decode_median": decode.median_s if decode else None, "same_tokens": row.same_tokens,
            "prefill_s": {str(n): v.tolist() for n, v in row.prefill_s.items()}, "weight_bytes": row.weight_bytes,
            "kl_nats": row.kl_nats, "top1_agreement": row.top1_agreement, "compile_s": row.compile_s,
            "batch": row.batch, "latency_s": row.latency_s.tolist(), "peak_bytes": row.peak_bytes}


if __name__ == "__main__":
    sys.exit(main())
