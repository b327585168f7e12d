"""Classroom load test: N concurrent gradio_client clients against the app on the bundled model.

Each client runs a bounded number of rounds; a round is one next-token, one attention and one sampling request
on a prompt of its own. Every answer is compared with a sequential reference run of the same requests
(identical results expected), and p50/p95 latency per endpoint and the error count are printed, for 1 client
and for N clients side by side.

    python -m benchmarks.load --clients 30 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import bundled_or_none

PROMPTS = ["The capital of France is", "The capital of Japan is", "Paris is the capital of",
           "Monday, Tuesday,", "Write an email apologizing to Sarah for the tragic gardening mishap.",
           "The capital of Brazil is", "one two three four", "The currency of Japan is"]


def requests_for(client_index: int, rounds: int) -> list[tuple[str, tuple]]:
    out = []
    for r in range(rounds):
        prompt = PROMPTS[(client_index + r) % len(PROMPTS)]
        out += [("/next_token", (prompt, 5, "")),
                ("/attention", (prompt, (client_index + r) % 2, r % 2, False, "sink")),
                ("/sampling", (prompt, 0.8, 20, 0.9, client_index, 1000))]
    return out


def _comparable(result):
    """Outputs with plotly figures reduced to their data (layout carries no per-run randomness either)."""
    if isinstance(result, tuple | list):
        return tuple(_comparable(r) for r in result)
    if isinstance(result, dict) and result.get("type") == "plotly":
        return result["plot"]
    return result


def run_clients(url: str, n_clients: int, rounds: int) -> tuple[dict, dict, int]:
    from gradio_client import Client

    latencies: dict[str, list[float]] = defaultdict(list)
    answers: dict[tuple, object] = {}
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(n_clients)

    def client_loop(index: int) -> None:
        nonlocal errors
        client = Client(url, verbose=False)
        barrier.wait()
        for endpoint, args in requests_for(index, rounds):
            start = time.perf_counter()
            try:
                result = client.predict(*args, api_name=endpoint)
            except Exception as error:  # noqa: BLE001 - every failure counts as an error
                with lock:
                    errors += 1
                print(f"error {endpoint} {args[0]!r}: {error}")
                continue
            with lock:
                latencies[endpoint].append(time.perf_counter() - start)
                answers[(endpoint, args)] = _comparable(result)

    with ThreadPoolExecutor(n_clients) as pool:
        list(pool.map(client_loop, range(n_clients)))
    return latencies, answers, errors


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from visualizer.config import AppConfig, QueueSettings
    from visualizer.session import ModelSession
    from visualizer.ui import build_demo

    path = bundled_or_none()
    if path is None:
        raise SystemExit("the bundled model is missing: train it with python -m visualizer.bundled.train")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    session = ModelSession(model, AutoTokenizer.from_pretrained(path), AppConfig(queue=QueueSettings()),
                           source=str(path))
    demo = build_demo(session)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        # the sequential reference: every request any client will make, one at a time, on a fresh cache
        from gradio_client import Client

        reference_client = Client(url, verbose=False)
        reference = {}
        for index in range(args.clients):
            for endpoint, call in requests_for(index, args.rounds):
                if (endpoint, call) not in reference:
                    reference[(endpoint, call)] = _comparable(reference_client.predict(*call, api_name=endpoint))
        rows = []
        for n_clients in (1, args.clients):
            session.clear_cache()
            start = time.perf_counter()
            latencies, answers, errors = run_clients(url, n_clients, args.rounds)
            wall = time.perf_counter() - start
            mismatches = sum(1 for key, value in answers.items() if reference[key] != value)
            rows.append((n_clients, latencies, errors, mismatches, wall, len(answers)))
        print(f"\nbundled model, {args.rounds} rounds per client, queue limit "
              f"{session.config.queue.concurrency_limit}, max_size {session.config.queue.max_size}")
        print(f"{'clients':>7} | {'endpoint':<12} | {'requests':>8} | {'p50 s':>6} | {'p95 s':>6} | errors | "
              "mismatches vs sequential | wall s")
        for n_clients, latencies, errors, mismatches, wall, _ in rows:
            for endpoint, values in sorted(latencies.items()):
                print(f"{n_clients:>7} | {endpoint:<12} | {len(values):>8} | {percentile(values, 50):>6.2f} | "
                      f"{percentile(values, 95):>6.2f} | {errors:>6} | {mismatches:>24} | {wall:.1f}")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
