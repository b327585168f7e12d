"""A class of 100 at once: a burst of concurrent requests through Gradio's REST API, against the app on the
bundled model and against a do-nothing app with the same inputs (the framework's own ceiling), same client.

The client is one asyncio + httpx process (this one): `POST /gradio_api/call/<api_name>` with {"data": [...]}
returns an event id, `GET /gradio_api/call/<api_name>/<event_id>` is an event stream that ends in
`event: complete` or `event: error`. Both servers run as subprocesses on free loopback ports and are stopped at
the end. Reported: p50/p95 latency per endpoint, errors, throughput against the ceiling and against the
model-bound limit (bare forward passes per second on the same prompts, measured in a fresh process in the same
run), and mismatches of every answer against a sequential run of the same requests.

    python -m benchmarks.load                    # 100 requests at once
    python -m benchmarks.load --requests 30 --app-args --model smollm2
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, run_isolated

PROMPTS = ["The capital of France is", "The capital of Japan is", "Paris is the capital of",
           "Monday, Tuesday,", "Write an email apologizing to Sarah for the tragic gardening mishap.",
           "The capital of Brazil is", "one two three four", "The currency of Japan is"]

# api_name -> (input kinds in the UI's order, the request's inputs for prompt and request number i).
# Kinds name the Gradio component the do-nothing app builds for that input. Keep in step with
# visualizer/ui/tabs/*.py. State inputs are not sent: the REST API leaves them out of "data" (/gradio_api/info
# lists the parameters) and the server passes the session's state, None here (= use the prompt text).
ENDPOINTS: dict[str, tuple[tuple[str, ...], object]] = {
    "next_token": (("text", "number", "text"),
                   lambda prompt, i: [prompt, 5, ""]),
    "attention": (("text", "state", "number", "number", "checkbox", "radio"),
                  lambda prompt, i: [prompt, i % 2, (i // 3) % 4, False, "sink"]),
    "sampling": (("text", "state", "number", "number", "number", "number", "number"),
                 lambda prompt, i: [prompt, 0.8, 20, 0.9, i % 5, 1000]),
}
N_OUTPUTS = {"next_token": 11, "attention": 4, "sampling": 2}  # outputs the do-nothing app returns
RADIO_CHOICES = ["entropy", "sink", "previous_token", "distance"]


WARM_UP_PROMPT = "Hello, world"  # not among PROMPTS: warming up caches none of the burst's traces


def burst(n_requests: int) -> list[tuple[str, list]]:
    """Mixed endpoints over the prompts, in the order they are sent."""
    names = list(ENDPOINTS)
    return [(names[i % len(names)], ENDPOINTS[names[i % len(names)]][1](PROMPTS[i % len(PROMPTS)], i))
            for i in range(n_requests)]


# ---------------------------------------------------------------------------------------------------
# The do-nothing app: same api_names and inputs, returns at once (run with --serve-null PORT)
# ---------------------------------------------------------------------------------------------------

def serve_null(port: int) -> None:
    import gradio as gr

    from visualizer.config import QueueSettings
    from visualizer.ui import gradio_overheads

    queue = QueueSettings()  # the app's concurrency; no max_size: the ceiling turns nobody away
    with gr.Blocks() as demo:
        for api_name, (kinds, _) in ENDPOINTS.items():
            inputs = [_component(gr, kind) for kind in kinds]
            outputs = [gr.JSON() for _ in range(N_OUTPUTS[api_name])]
            button = gr.Button(api_name)
            button.click(lambda *args, n=N_OUTPUTS[api_name]: tuple([None] * n) if n > 1 else None, inputs,
                         outputs, api_name=api_name, concurrency_id="model",
                         concurrency_limit=queue.concurrency_limit)
    demo.queue(max_size=None, default_concurrency_limit=queue.concurrency_limit)
    # The app's own server tuning (visualizer.cli, visualizer.ui.gradio_overheads), so that the ceiling is what
    # Gradio can do, not what its defaults do: start-up objects frozen out of the cycle collector (the null app
    # imports gradio too, and its collections would pause the burst), lazy per-session configs.
    gradio_overheads.install()
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True, prevent_thread_lock=True)
    gc.freeze()
    demo.block_thread()


def _component(gr, kind: str):
    return {"text": lambda: gr.Textbox(), "number": lambda: gr.Number(), "checkbox": lambda: gr.Checkbox(),
            "radio": lambda: gr.Radio(RADIO_CHOICES), "state": lambda: gr.State(None)}[kind]()


# ---------------------------------------------------------------------------------------------------
# Forward passes per second: the model-bound limit (run with --measure-forward)
# ---------------------------------------------------------------------------------------------------

def model_path(app_args: list[str]) -> str:
    """Where the model the app is started with lives, resolved as app.py resolves `--model` (default: auto)."""
    from visualizer.loading import _local_source, resolve_device, resolve_model_source

    name = app_args[app_args.index("--model") + 1] if "--model" in app_args[:-1] else "auto"
    return _local_source(resolve_model_source(name, resolve_device("auto")))


def measure_forward(path: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = [torch.tensor([tokenizer(p).input_ids]) for p in PROMPTS]
    times = []
    with torch.inference_mode():
        for x in ids:  # warm-up
            model(x, output_hidden_states=True, output_attentions=True)
        for _ in range(5):
            for x in ids:
                start = time.perf_counter()
                model(x, output_hidden_states=True, output_attentions=True)
                times.append(time.perf_counter() - start)
    seconds = statistics.median(times)  # a shared machine's stalls hit single passes, not the median
    return dict(forward_s=seconds, passes_per_s=1 / seconds, threads=torch.get_num_threads())


# ---------------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(name: str, command: list[str], port: int, timeout_s: float = 180, cwd: Path = ROOT) -> Server:
    import httpx

    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    log = open(Path(tempfile.gettempdir()) / f"benchmarks-load-{name}-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} server exited with {process.returncode}: see {log.name}")
        try:
            if httpx.get(f"{server.url}/gradio_api/info", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the {name} server did not answer within {timeout_s:.0f} s: see {log.name}")


# ---------------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------------

@dataclass
class Answer:
    endpoint: str
    data: list
    seconds: float
    ok: bool
    payload: str  # the complete event's data, or the error text


async def call(client, url: str, endpoint: str, data: list, timeout_s: float) -> Answer:
    start = time.perf_counter()
    try:
        posted = await client.post(f"{url}/gradio_api/call/{endpoint}", json={"data": data}, timeout=timeout_s)
        if posted.status_code != 200:  # 503 with {"detail": "Queue is full..."} when the queue turns it away
            return Answer(endpoint, data, time.perf_counter() - start, False, f"HTTP {posted.status_code}: "
                          f"{posted.text[:120]}")
        event_id = posted.json()["event_id"]
        event = None
        async with client.stream("GET", f"{url}/gradio_api/call/{endpoint}/{event_id}", timeout=timeout_s) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    return Answer(endpoint, data, time.perf_counter() - start, event == "complete", line[5:].strip())
        return Answer(endpoint, data, time.perf_counter() - start, False, "stream ended without an answer")
    except Exception as error:  # noqa: BLE001 - any failure is one error in the table
        return Answer(endpoint, data, time.perf_counter() - start, False, f"{type(error).__name__}: {error}")


async def run_burst(url: str, requests: list[tuple[str, list]], timeout_s: float) -> tuple[list[Answer], float]:
    """All requests at once; returns the answers and the wall time until the last one."""
    import httpx

    limits = httpx.Limits(max_connections=2 * len(requests) + 10, max_keepalive_connections=2 * len(requests))
    async with httpx.AsyncClient(limits=limits) as client:
        start = time.perf_counter()
        answers = await asyncio.gather(*(call(client, url, e, d, timeout_s) for e, d in requests))
        return list(answers), time.perf_counter() - start


async def warm_up(url: str, timeout_s: float) -> None:
    """One request per endpoint first: a fresh server's first answers pay for imports and lazy set-up."""
    import httpx

    async with httpx.AsyncClient() as client:
        for endpoint, (_, inputs) in ENDPOINTS.items():
            answer = await call(client, url, endpoint, inputs(WARM_UP_PROMPT, 0), timeout_s)
            if not answer.ok:
                raise RuntimeError(f"warm-up {endpoint} failed: {answer.payload}")


async def run_sequential(url: str, requests: list[tuple[str, list]], timeout_s: float) -> dict[str, Answer]:
    import httpx

    reference: dict[str, Answer] = {}
    async with httpx.AsyncClient() as client:
        for endpoint, data in requests:
            key = _key(endpoint, data)
            if key not in reference:
                reference[key] = await call(client, url, endpoint, data, timeout_s)
    return reference


def _key(endpoint: str, data: list) -> str:
    return json.dumps([endpoint, data])


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@dataclass
class Summary:
    name: str
    answers: list[Answer]
    wall_s: float
    mismatches: int | None = None
    errors: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.errors = Counter(a.payload[:80] for a in self.answers if not a.ok)

    @property
    def served(self) -> int:
        return sum(a.ok for a in self.answers)

    @property
    def throughput(self) -> float:
        return self.served / self.wall_s

    def p(self, q: int, endpoint: str | None = None) -> float:
        return percentile([a.seconds for a in self.answers if a.ok and endpoint in (None, a.endpoint)], q)


def print_report(app: Summary, null: Summary, forward: dict, n_requests: int) -> None:
    print(f"\n{n_requests} requests at once ({', '.join(ENDPOINTS)} over {len(PROMPTS)} prompts), one async client")
    print(f"{'server':<10} | {'endpoint':<11} | {'served':>6} | {'errors':>6} | {'p50 s':>6} | {'p95 s':>6} | "
          f"{'req/s':>6} | mismatches vs sequential")
    for s in (app, null):
        for endpoint in (*ENDPOINTS, None):
            rows = [a for a in s.answers if endpoint in (None, a.endpoint)]
            served = sum(a.ok for a in rows)
            rate = f"{s.throughput:6.1f}" if endpoint is None else ""
            mism = "" if endpoint is None and s.mismatches is None else (
                f"{s.mismatches}" if endpoint is None else "")
            print(f"{s.name:<10} | {endpoint or 'all':<11} | {served:>6} | {len(rows) - served:>6} | "
                  f"{s.p(50, endpoint):>6.2f} | {s.p(95, endpoint):>6.2f} | {rate:>6} | {mism}")
    for s in (app, null):
        for text, count in s.errors.most_common(5):
            print(f"  {s.name} error x{count}: {text}")
    print(f"\nthroughput: app {app.throughput:.1f} req/s = {app.throughput / null.throughput:.0%} of the do-nothing "
          f"endpoint's {null.throughput:.1f} req/s; p95 {app.p(95):.2f} s = {app.p(95) / null.p(95):.2f}x its "
          f"{null.p(95):.2f} s")
    distinct = len({a.data[0] for a in app.answers})
    print(f"model-bound: a bare forward pass with hidden states and attentions takes {forward['forward_s'] * 1e3:.1f} "
          f"ms on these prompts: {forward['passes_per_s']:.0f} passes/s ({forward['threads']} torch threads, in a "
          f"fresh process before the bursts). The app served {app.throughput / forward['passes_per_s']:.0%} of that "
          f"rate in requests; it needs a pass only for each of the {distinct} distinct prompts (traces are cached).")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request before it counts as an error")
    parser.add_argument("--app-args", nargs=argparse.REMAINDER, default=["--model", "bundled"],
                        help="arguments for app.py (default: --model bundled)")
    parser.add_argument("--app-root", type=Path, default=ROOT,
                        help="run app.py from this checkout (e.g. an older commit, to compare)")
    parser.add_argument("--serve-null", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--measure-forward", metavar="MODEL_PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_null:
        serve_null(args.serve_null)
        return
    if args.measure_forward:
        print(json.dumps(measure_forward(args.measure_forward)))
        return

    requests = burst(args.requests)
    forward = run_isolated("benchmarks.load", "--measure-forward", model_path(args.app_args))
    servers: list[Server] = []
    try:
        null_port, app_port = free_port(), free_port()
        servers.append(start_server("null", [sys.executable, "-m", "benchmarks.load", "--serve-null",
                                             str(null_port)], null_port))
        servers.append(start_server("app", [sys.executable, "app.py", *args.app_args, "--host", "127.0.0.1",
                                            "--port", str(app_port)], app_port, cwd=args.app_root))
        null_server, app_server = servers
        asyncio.run(warm_up(null_server.url, args.timeout))
        null = Summary("do-nothing", *asyncio.run(run_burst(null_server.url, requests, args.timeout)))
        null_server.stop()  # its process would otherwise share the CPU with the app's burst
        asyncio.run(warm_up(app_server.url, args.timeout))
        app = Summary("app", *asyncio.run(run_burst(app_server.url, requests, args.timeout)))
        # After the burst: the same requests one at a time (the cache is warm; the burst computed each trace).
        reference = asyncio.run(run_sequential(app_server.url, requests, args.timeout))
        app.mismatches = sum(1 for a in app.answers
                             if a.ok and a.payload != reference[_key(a.endpoint, a.data)].payload)
        failed_reference = sum(not a.ok for a in reference.values())
        if failed_reference:
            print(f"warning: {failed_reference} sequential reference requests failed")
    finally:
        for server in servers:
            server.stop()
    print_report(app, null, forward, args.requests)


if __name__ == "__main__":
    main()
