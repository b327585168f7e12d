"""The KV-cache race timed beside plain `model.generate(..., use_cache=True/False)` in the same run.

For each model and each N, every round runs the app's race (`race_kv_cache`, one repeat per mode, with
the app's default schedule) and plain `generate(max_new_tokens=N, min_new_tokens=N, do_sample=False,
use_cache=...)` for both modes (in a worker thread, as the app's race runs it), alternating which goes first,
so drifts in machine load hit both. Medians
over the rounds are compared: `app/gen` close to 1 means the app's timing matches plain generate();
`speed-up` is uncached / cached. Wall-clock and process-CPU ratios are both printed: on a shared machine
the CPU ones are the steadier.

Models, loaded as the app loads them (float32, eager attention): the bundled teaching model (if
`visualizer/bundled/model` exists; otherwise the script says so and times random weights of the same
architecture), and a larger random model with Phi-3-mini's 32 layers x 32 heads at hidden size 256
(`benchmarks.common`).

    python -m benchmarks.kv_cache                          # N = 50 100 200, >= 3 rounds and >= 60 s per cell
    python -m benchmarks.kv_cache --rounds 5 --threads 1 --json benchmarks/results/kv_cache.json

The closing summary pools every paired ratio of a mode (geometric mean, bootstrap 95% interval): on a
virtual machine one run varies by 10-20%, so one cell's median over a few rounds is noisy on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import bundled_or_none, phi3_shaped_random

PROMPT = "Write an email apologizing to Sarah for the tragic gardening mishap. Explain how it happened."


def _bundled_shaped_random():
    """Random weights in the bundled model's architecture (visualizer.bundled.train), for when it is not built."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    from visualizer.bundled.train import CONTEXT, VOCAB_SIZE, TrainSettings

    torch.manual_seed(0)
    config = Phi3Config(vocab_size=VOCAB_SIZE, max_position_embeddings=CONTEXT,
                        original_max_position_embeddings=CONTEXT, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                        tie_word_embeddings=False, **TrainSettings().model_shape)
    return Phi3ForCausalLM._from_config(config, attn_implementation="eager").eval()


def _load_models(names: list[str]) -> list[tuple[str, object, list[int]]]:
    """(label, model, prompt ids) for each requested model; loaded as the app loads them (eager attention)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    models = []
    bundled = bundled_or_none()
    tokenizer = AutoTokenizer.from_pretrained(bundled) if bundled is not None else None
    seeded = torch.Generator().manual_seed(0)
    for name in names:
        if name == "bundled":
            if bundled is None:
                print("bundled model: NOT FOUND (visualizer/bundled/model has no config.json yet); timing a "
                      "random model of the same architecture instead")
                model = _bundled_shaped_random()
                ids = torch.randint(3, model.config.vocab_size, (16,), generator=seeded).tolist()
                label = "bundled-shaped random"
            else:
                model = AutoModelForCausalLM.from_pretrained(bundled, dtype=torch.float32,
                                                             attn_implementation="eager").eval()
                ids = tokenizer(PROMPT)["input_ids"]
                label = "bundled"
            models.append((f"{label} ({model.num_parameters() / 1e6:.1f}M)", model, ids))
        elif name == "random-phi3":
            model = phi3_shaped_random()
            ids = (tokenizer(PROMPT)["input_ids"] if tokenizer is not None else
                   torch.randint(3, model.config.vocab_size, (16,), generator=seeded).tolist())
            ids = [i % model.config.vocab_size for i in ids]
            models.append((f"random Phi-3 32Lx32H d256 ({model.num_parameters() / 1e6:.1f}M)", model, ids))
        elif name == "smollm2":
            from visualizer.smollm2 import ensure_smollm2

            folder = ensure_smollm2()  # fetched and converted on the first run, offline after
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                         attn_implementation="eager").eval()
            ids = AutoTokenizer.from_pretrained(folder)(PROMPT)["input_ids"]
            models.append((f"SmolLM2-135M-Instruct ({model.num_parameters() / 1e6:.1f}M)", model, ids))
        else:
            raise SystemExit(f"unknown model {name!r}: use bundled, random-phi3 or smollm2")
    return models


def _time_generate(model, prompt_ids: list[int], n_new_tokens: int, use_cache: bool) -> tuple[float, float, list[int]]:
    """(wall s, process CPU s, new token ids) of one plain generate() call, run in a worker thread as the app's
    race runs its generate(): on a CPU, torch work alternating between the main thread and a worker thread made
    the worker's uncached generate() 20-35% slower than either thread alone (measured on SmolLM2: a worker
    thread is as fast as the main thread while the main thread runs no torch), which is not the app's cost."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_generate_here(model, prompt_ids, n_new_tokens,
                                                                          use_cache)), name="plain-generate")
    worker.start()
    worker.join()
    if not result:
        raise RuntimeError("plain generate() failed in its worker thread (see the traceback above)")
    return result[0]


def _generate_here(model, prompt_ids: list[int], n_new_tokens: int, use_cache: bool) -> tuple[float, float, list[int]]:
    import torch

    ids = torch.tensor([prompt_ids], device=model.device)
    sync = (lambda: torch.cuda.synchronize(model.device)) if model.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        sync()
        cpu_start, start = time.process_time(), time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new_tokens,
                             min_new_tokens=n_new_tokens, do_sample=False, use_cache=use_cache,
                             pad_token_id=model.config.pad_token_id)
        sync()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return elapsed, cpu, out[0, len(prompt_ids):].tolist()


def _time_app(model, prompt_ids: list[int], n_new_tokens: int, warmup_tokens: int, interleave: bool):
    from visualizer.config import Limits
    from visualizer.runs.kv_race import race_kv_cache
    from visualizer.runs.timing import run_to_end

    limits = Limits(max_new_tokens=max(n_new_tokens, 1), max_prompt_tokens=max(len(prompt_ids), 1))
    return run_to_end(race_kv_cache(model, prompt_ids, n_new_tokens, 1, limits=limits,
                                    warmup_tokens=warmup_tokens, interleave=interleave))


KEYS = [f"{who}_{mode}" for who in ("app", "gen") for mode in ("cached", "uncached")]


def measure(label: str, model, prompt_ids: list[int], n_new_tokens: int, rounds: int, interleave: bool,
            min_seconds: float = 0.0, max_rounds: int = 40) -> dict:
    """Interleaved rounds of the app's race and plain generate; medians and ratios (wall and CPU).

    At least `rounds` rounds, and more (up to `max_rounds`) until `min_seconds` have been spent: a single
    run of a fast cell varies by 10-20% on a virtual machine, so cheap cells get the rounds they need.
    """
    wall: dict[str, list[float]] = {k: [] for k in KEYS}
    cpu: dict[str, list[float]] = {k: [] for k in KEYS}
    outputs: list[list[int]] = []  # new tokens of every run, app and generate: all must be equal
    app_identical = True
    for use_cache in (True, False):  # untimed warm-up of generate (the race warms up itself)
        _time_generate(model, prompt_ids, min(8, n_new_tokens), use_cache)
    started = time.perf_counter()
    index = 0
    while index < rounds or (time.perf_counter() - started < min_seconds and index < max_rounds):
        for step in (["app", "gen"] if index % 2 == 0 else ["gen", "app"]):
            if step == "app":
                result = _time_app(model, prompt_ids, n_new_tokens, warmup_tokens=4, interleave=interleave)
                for mode in ("cached", "uncached"):
                    timing = result.mode(mode)
                    wall[f"app_{mode}"].append(float(timing.totals_s[0]))
                    cpu[f"app_{mode}"].append(float(timing.cpu_s[0].sum()))
                outputs += [result.cached.token_ids, result.uncached.token_ids]
                app_identical &= result.outputs.identical
            else:
                for use_cache in ((True, False) if index % 2 == 0 else (False, True)):
                    mode = "cached" if use_cache else "uncached"
                    elapsed, cpu_s, gen_tokens = _time_generate(model, prompt_ids, n_new_tokens, use_cache)
                    wall[f"gen_{mode}"].append(elapsed)
                    cpu[f"gen_{mode}"].append(cpu_s)
                    outputs.append(gen_tokens)
        index += 1
    same_tokens = app_identical and all(tokens == outputs[0] for tokens in outputs)
    med = {k: statistics.median(v) for k, v in wall.items()}
    row = dict(model=label, n_new_tokens=n_new_tokens, n_prompt_tokens=len(prompt_ids), rounds=index,
               interleaved=interleave, wall_s=wall, cpu_s=cpu, median_wall_s=med,
               speedup_app=med["app_uncached"] / med["app_cached"],
               speedup_gen=med["gen_uncached"] / med["gen_cached"],
               cpu_share=sum(map(sum, cpu.values())) / sum(map(sum, wall.values())),
               same_tokens_app_and_generate=same_tokens)
    for mode in ("cached", "uncached"):
        # Paired per round (app and generate ran next to each other): steadier than a ratio of medians.
        for clock, times in (("wall", wall), ("cpu", cpu)):
            ratios = [a / g for a, g in zip(times[f"app_{mode}"], times[f"gen_{mode}"], strict=True)]
            row[f"app_over_gen_{mode}_{clock}"] = dict(median=statistics.median(ratios), min=min(ratios),
                                                       max=max(ratios))
    return row


def _print_table(rows: list[dict]) -> None:
    def ratio(r: dict, key: str) -> str:
        x = r[key]
        return f"{x['median']:.3f} [{x['min']:.2f}-{x['max']:.2f}]"

    header = (f"{'model':<36} {'N':>4} {'rounds':>6} | {'app cached':>10} {'gen cached':>10} {'app/gen wall':>18} "
              f"{'app/gen CPU':>18} | {'app uncached':>12} {'gen uncached':>12} {'app/gen wall':>18} "
              f"{'app/gen CPU':>18} | {'speed-up app':>12} {'gen':>6} | {'CPU share':>9} | same")
    print(header)
    print("-" * len(header))
    for r in rows:
        m = r["median_wall_s"]
        print(f"{r['model']:<36} {r['n_new_tokens']:>4} {r['rounds']:>6} | "
              f"{m['app_cached']:>9.3f}s {m['gen_cached']:>9.3f}s "
              f"{ratio(r, 'app_over_gen_cached_wall'):>18} {ratio(r, 'app_over_gen_cached_cpu'):>18} | "
              f"{m['app_uncached']:>11.3f}s {m['gen_uncached']:>11.3f}s "
              f"{ratio(r, 'app_over_gen_uncached_wall'):>18} {ratio(r, 'app_over_gen_uncached_cpu'):>18} | "
              f"{r['speedup_app']:>11.2f}x {r['speedup_gen']:>5.2f}x | {r['cpu_share']:>9.2f} | "
              f"{'yes' if r['same_tokens_app_and_generate'] else 'NO'}")
    print("\nTimes: medians over the rounds. app/gen: the app's race total / plain generate() in the same round,"
          "\nmedian [min-max] over rounds; wall clock, and process CPU time (which other programs on the machine"
          "\ndisturb less). CPU share: CPU time / wall time of all timed runs; below ~0.9 with one torch thread,"
          "\nother programs took the CPU part of the time and every number above is noisier.")


def pooled_ratio(rows: list[dict], mode: str, resamples: int = 4000) -> dict:
    """Geometric mean of every paired app/generate wall ratio of a mode over all rows, with a bootstrap
    95% interval: the single number to compare with 1, as one cell of a few rounds is as noisy as its runs."""
    import numpy as np

    logs = np.log([a / g for r in rows for a, g in zip(r["wall_s"][f"app_{mode}"], r["wall_s"][f"gen_{mode}"],
                                                       strict=True)])
    means = np.random.default_rng(0).choice(logs, size=(resamples, logs.size)).mean(axis=1)
    low, high = np.exp(np.quantile(means, [0.025, 0.975]))
    return dict(geometric_mean=float(np.exp(logs.mean())), ci95=(float(low), float(high)), n_pairs=int(logs.size))


def _print_summary(rows: list[dict], tolerance: float = 0.05) -> dict:
    summary = {}
    print()
    for mode in ("cached", "uncached"):
        pooled = summary[mode] = pooled_ratio(rows, mode)
        within = sum(abs(r[f"app_over_gen_{mode}_wall"]["median"] - 1) <= tolerance for r in rows)
        low, high = pooled["ci95"]
        print(f"{mode:>8}: app/gen over all {pooled['n_pairs']} pairs {pooled['geometric_mean']:.3f} "
              f"(95% bootstrap interval {low:.3f}-{high:.3f}); per-cell median within {tolerance:.0%}: "
              f"{within} of {len(rows)} cells")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bundled", "random-phi3"],  # or smollm2
                        help="bundled and/or random-phi3")
    parser.add_argument("--n", nargs="+", type=int, default=[50, 100, 200], help="new tokens per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per N (medians reported)")
    parser.add_argument("--min-seconds", type=float, default=60.0,
                        help="keep adding rounds to a cell until this long has been spent (at most 40 rounds)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--interleave", action="store_true",
                        help="time the race with the two modes alternating during the run (default: one after "
                             "the other, as the app)")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's malloc thresholds at their defaults (the app fixes them at startup: "
                             "visualizer.allocator); shows what the worker thread's page faults cost")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from visualizer.allocator import keep_freed_memory

    tuned = False if args.no_malloc_tuning else keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average before: {load_before:.2f}, malloc thresholds fixed as in the app: {'yes' if tuned else 'no'}")
    rows = []
    for label, model, prompt_ids in _load_models(args.models):
        print(f"{label}: prompt of {len(prompt_ids)} tokens, device {model.device}")
        for n in args.n:
            limit = model.config.max_position_embeddings - len(prompt_ids)
            if n > limit:
                print(f"  N = {n} skipped: longer than the model's context")
                continue
            rows.append(measure(label, model, prompt_ids, n, args.rounds, args.interleave, args.min_seconds))
            print(f"  N = {n}: done (load average {os.getloadavg()[0]:.2f})", flush=True)
    print()
    _print_table(rows)
    summary = _print_summary(rows)
    load_after = os.getloadavg()[0]
    print(f"\nload average after: {load_after:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(rows=rows, load_before=load_before, load_after=load_after,
                                             threads=torch.get_num_threads(), cpus=os.cpu_count(),
                                             malloc_tuned=tuned, pooled_app_over_gen_wall=summary), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
