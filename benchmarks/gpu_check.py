"""One prepared GPU check: full-size Phi-3-mini with random weights, every heavy path of the app, one table.

    python -m benchmarks.gpu_check            # one CUDA GPU, within 4 minutes
    python -m benchmarks.gpu_check --small    # the same path on the CPU with a small model, under a minute

No download: the model is built from visualizer/known_configs/Phi-3-mini-4k-instruct.json in the auto dtype
(bf16 from compute capability 8.0, fp16 below) directly on the device, and fed token ids below the bundled
tokenizer's vocabulary (the session needs a tokenizer only to show tokens). It traces 1,024 and 4,096 tokens
(time, peak memory) and opens one layer (recomputed: the patterns are over the store budget), derives the
request budget from the device, measures the memory bandwidth with a large device copy, runs the KV race at
N = 100 (speed-up; decode tokens/s against the bound bandwidth / weight bytes) and 8 concurrent traces
(each equal to its sequential twin). Exit status 1 when a check fails, 2 when there is no GPU (and no --small).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from visualizer import device as facts  # noqa: E402
from visualizer.config import AppConfig, Limits  # noqa: E402
from visualizer.loading import bundled_model_dir, resolve_dtype  # noqa: E402

PHI3_CONFIG = ROOT / "visualizer" / "known_configs" / "Phi-3-mini-4k-instruct.json"
TIME_LIMIT_S = 240  # the whole run, on one GPU


@dataclass(frozen=True)
class Plan:
    """What to run: the full check on a GPU, or the same steps at small sizes on the CPU."""

    trace_lengths: tuple[int, ...]
    race_new_tokens: int
    race_prompt_tokens: int
    concurrent: int
    concurrent_tokens: int
    copy_bytes: int
    small_model: bool
    attention_store_bytes: int  # patterns over this are recomputed per layer, as Phi-3 at 1,024 tokens is


FULL = Plan((1024, 4096), 100, 32, 8, 256, 2 * 2**30, False, 512 * 2**20)
SMALL = Plan((128, 512), 20, 16, 8, 32, 128 * 2**20, True, 2**20)


@dataclass
class Table:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (what, measured, check)
    failed: list[str] = field(default_factory=list)

    def add(self, what: str, value: str, ok: bool | None = None, rule: str = "") -> None:
        status = "" if ok is None else ("ok" if ok else "FAIL")
        self.rows.append((what, value, f"{status} {rule}".strip()))
        if ok is False:
            self.failed.append(what)

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        value_width = max(len(r[1]) for r in self.rows)
        for what, value, check in self.rows:
            print(f"{what:<{width}}  {value:>{value_width}}  {check}")


def build_model(device: torch.device, small: bool):
    from transformers import AutoConfig, AutoModelForCausalLM

    values = json.loads(PHI3_CONFIG.read_text())
    dropped = ("_name_or_path", "architectures", "torch_dtype", "model_type")
    values = {k: v for k, v in values.items() if k not in dropped}
    if small:  # Phi-3's layout at a size a shared CPU runs in seconds
        values.update(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=_tokenizer_vocab(), pad_token_id=0, eos_token_id=2)
    config = AutoConfig.for_model("phi3", **values)
    dtype = resolve_dtype("auto", device)
    torch.manual_seed(0)
    with torch.device(device):  # random weights made where they will live: no 7.6 GB host copy
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="eager")
    return model.eval(), dtype


def _tokenizer_vocab() -> int:
    return len(bundled_tokenizer())


def bundled_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_dir())


def random_ids(n: int, seed: int, vocab: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n,), generator=generator).tolist()  # ids < the tokenizer's vocab


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured(device: torch.device, fn: Callable):
    """(result, seconds, peak bytes): CUDA peak allocated during the call, or the process's peak RSS."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        return result, seconds, torch.cuda.max_memory_allocated(device)
    return result, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bandwidth(device: torch.device, n_bytes: int, repeats: int = 5) -> float:
    """Bytes per second of a large device-to-device copy (each copy reads and writes n_bytes)."""
    source = torch.empty(n_bytes // 4, dtype=torch.float32, device=device).uniform_()
    target = torch.empty_like(source)
    target.copy_(source)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    sync(device)
    moved = 2 * source.numel() * 4 * repeats
    del source, target
    return moved / (time.perf_counter() - start)


def check_traces(session, plan: Plan, device: torch.device, vocab: int, table: Table) -> None:
    for n in plan.trace_lengths:
        ids = random_ids(n, seed=n, vocab=vocab)
        trace, seconds, peak = measured(device, lambda ids=ids: session.trace(ids))
        finite = bool(torch.isfinite(trace.last_logits).all()) and trace.n_pos == n
        table.add(f"trace {n:,} tokens", f"{seconds:.2f} s, peak {peak / 2**30:.2f} GiB", finite, "finite logits")
        layer = trace.n_layers // 2
        pattern, seconds, _ = measured(device, lambda trace=trace, layer=layer: session.layer_patterns(trace, layer))
        rows = pattern.float().sum(-1)
        ok = tuple(pattern.shape[1:]) == (n, n) and bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-2))
        kept = "kept" if trace.kept_patterns is not None else "recomputed"
        table.add(f"  open layer {layer} ({kept})", f"{seconds:.2f} s", ok, "rows sum to 1")
        lens, seconds, _ = measured(device, lambda trace=trace, n=n: session.lens_log_probs(trace, n - 1))
        table.add("  lens at the last position", f"{seconds:.3f} s", bool(torch.isfinite(lens).all()), "finite")


def check_race(session, plan: Plan, model_bytes: int, bytes_per_s: float, vocab: int, table: Table) -> None:
    ids = random_ids(plan.race_prompt_tokens, seed=1, vocab=vocab)
    start = time.perf_counter()
    result = [u for u in session.kv_race(ids, plan.race_new_tokens, 1)][-1].result
    wall = time.perf_counter() - start
    table.add(f"KV race N = {plan.race_new_tokens}", f"{wall:.1f} s, speed-up {result.speedup:.2f}x",
              result.speedup > 0, "both modes ran")
    decode_s = float(result.cached.decode_s[0])
    decode_tps = (plan.race_new_tokens - 1) / decode_s
    bound = bytes_per_s / model_bytes  # each decode step reads every weight once, at batch 1
    table.add("  cached decode", f"{decode_tps:,.1f} tokens/s", decode_tps <= 1.2 * bound,
              "not above the bandwidth bound")
    table.add("  bound: bandwidth / weight bytes", f"{bound:,.1f} tokens/s ({decode_tps / bound:.0%} of it)")
    table.add("  seconds per decode step", f"{decode_s / (plan.race_new_tokens - 1):.4f} s")
    table.add("  same tokens in both modes", str(result.outputs.identical))


def check_concurrent(session, plan: Plan, vocab: int, table: Table) -> None:
    prompts = [random_ids(plan.concurrent_tokens, seed=100 + i, vocab=vocab) for i in range(plan.concurrent)]
    start = time.perf_counter()
    with ThreadPoolExecutor(plan.concurrent) as pool:
        together = list(pool.map(session.trace, prompts))
    wall = time.perf_counter() - start
    session.clear_cache()
    alone = [session.trace(p) for p in prompts]
    same = all((a.topk_ids[:, 0] == b.topk_ids[:, 0]).all()
               and abs(a.topk_probs - b.topk_probs).max() < 1e-3 for a, b in zip(together, alone, strict=True))
    table.add(f"{plan.concurrent} concurrent traces x {plan.concurrent_tokens}", f"{wall:.2f} s", same,
              "equal to one at a time")


def run(plan: Plan, device: torch.device) -> Table:
    from visualizer.session import ModelSession

    table = Table()
    begin = time.perf_counter()
    (model, dtype), seconds, _ = measured(device, lambda: build_model(device, plan.small_model))
    model_bytes = facts.weight_bytes(model)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    capability = facts.cuda_capability(device)
    table.add("device", f"{name}" + (f" (sm {capability[0]}.{capability[1]})" if capability else ""))
    table.add("model (random weights)", f"{model_bytes / 2**30:.2f} GiB in {str(dtype).removeprefix('torch.')}, "
              f"built in {seconds:.1f} s")
    budget = facts.memory_budget(AppConfig(limits=Limits(memory_budget_bytes=None)), device, model)
    table.add("request budget", f"{budget.bytes / 2**30:.2f} GiB", budget.bytes > 0, budget.why)
    tokenizer = bundled_tokenizer()
    vocab = len(tokenizer)
    limits = Limits(max_prompt_tokens=max(plan.trace_lengths), memory_budget_bytes=max(budget.bytes, 1),
                    attention_store_bytes=plan.attention_store_bytes)
    session = ModelSession(model, tokenizer, AppConfig(limits=limits), source="random Phi-3-mini")
    check_traces(session, plan, device, vocab, table)
    bytes_per_s = bandwidth(device, plan.copy_bytes)
    table.add("memory bandwidth (device copy)", f"{bytes_per_s / 1e9:,.1f} GB/s")
    check_race(session, plan, model_bytes, bytes_per_s, vocab, table)
    check_concurrent(session, plan, vocab, table)
    total = time.perf_counter() - begin
    if plan.small_model:
        table.add("total", f"{total:.1f} s")
    else:
        table.add("total", f"{total:.1f} s", total < TIME_LIMIT_S, f"under {TIME_LIMIT_S} s")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the same path on the CPU with a small model")
    args = parser.parse_args(argv)
    if not args.small and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU ({facts.cuda_unavailable_reason()}); --small runs on the CPU",
              file=sys.stderr)
        return 2
    device = torch.device("cpu") if args.small else torch.device("cuda", 0)
    table = run(SMALL if args.small else FULL, device)
    table.print()
    if table.failed:
        print(f"FAILED: {', '.join(table.failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
