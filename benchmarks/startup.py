"""Time from `python app.py` to the first served request (a next-token analysis), against the imports alone.

    python -m benchmarks.startup                 # the bundled model; --model PATH for another
    python -m benchmarks.startup --model smollm2 # SmolLM2, fetched and converted first if not cached yet

Each repeat times, in fresh processes, `import torch, transformers, gradio`, the same with transformers'
model-loading code, and then the app's launch to its first answer (plain HTTP), so the figures see the same
machine load; the app runs with no hub and no package index, and reads its own modules' bytecode as the floor
reads the libraries' (see compile_sources).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import ROOT, bundled_or_none


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def saved_tiny_model(folder: str) -> str:
    from tests.tiny_models import tiny_model, tiny_tokenizer

    tiny_model("phi3").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


IMPORTS = "import torch, transformers, gradio"
# `import transformers` is lazy: loading any model also imports its model-loading code (modeling_utils pulls in
# torch.distributed.tensor, accelerate, the quantisation integrations), about 2 s here. This second floor is what
# any app that calls from_pretrained pays before its own first line of work.
IMPORTS_WITH_LOADING = IMPORTS + ", transformers.modeling_utils"


def import_seconds(statement: str = IMPORTS) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh interpreter running `statement`: the floor for start-up. It leaves with
    os._exit, since a normal exit then spends about a second freeing what it imported, which no start-up waits for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"{statement}; import os; os._exit(0)"], cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # after the command name
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def smollm2_argument() -> str:
    """`--model smollm2`, cached first: launch is timed from the cache, as on every start after the first."""
    from visualizer.smollm2 import ensure_smollm2

    ensure_smollm2()
    return "smollm2"


def compile_sources() -> None:
    """The app's own modules compiled to bytecode next to them (`__pycache__`, ignored by git), as Python does on
    a first run: pip compiled the libraries when it installed them, and a machine that sets
    PYTHONDONTWRITEBYTECODE (this one does) would otherwise compile the app's ~90 modules at every start (0.12 s)
    while the import floor reads the libraries' bytecode."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "visualizer", "app.py"], cwd=ROOT, check=True)


def time_to_first_request(model: str, timeout: float = 300) -> tuple[float, float, float]:
    """(seconds until the page answers, seconds until the first next-token request returned, CPU seconds the app
    had used by then). CPU time is what other programs on a shared machine disturb least.

    The probe is plain HTTP (httpx, Gradio's REST API), not gradio_client: its Client would spend CPU of the same
    two cores on fetching and parsing the app's API description while the app starts."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # no hub, and a pip that reaches no index: a cached model must start without either
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PIP_CONFIG_FILE=os.devnull,
               PIP_NO_INDEX="1")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--model", model, "--port", str(port)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=60) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"app.py exited with {process.returncode}")
                if time.perf_counter() - start > timeout:
                    raise TimeoutError("the app did not answer")
                try:
                    if client.get(url + "/").status_code == 200:
                        break
                except httpx.TransportError:  # not listening yet
                    pass
                time.sleep(0.05)
            page = time.perf_counter() - start
            answer = first_answer(client, url)
            if not answer.startswith("event: complete"):
                raise RuntimeError(f"the first next-token request failed: {answer}")
            return page, time.perf_counter() - start, cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(30)


def first_answer(client, url: str) -> str:
    """POST the book's prompt to /next_token and read its event stream to the end; the final event line."""
    event = client.post(f"{url}/gradio_api/call/next_token", json={"data": ["The capital of France is", 5, ""]})
    event_id = event.json()["event_id"]
    with client.stream("GET", f"{url}/gradio_api/call/next_token/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith(("event: complete", "event: error")):
                return line
    return "the stream ended without an answer"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="model path or id, or smollm2 (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.model == "smollm2":
            model = smollm2_argument()
        else:
            model = args.model or (str(bundled_or_none()) if bundled_or_none() else saved_tiny_model(folder))
        print(f"model: {model}")
        compile_sources()
        runs = [(*import_seconds(), *import_seconds(IMPORTS_WITH_LOADING), *time_to_first_request(model))
                for _ in range(args.repeats)]
    for imports, imports_cpu, loading, loading_cpu, page, first, first_cpu in runs:
        print(f"imports alone {imports:.2f} s (with transformers' model-loading code {loading:.2f} s); page up after "
              f"{page:.2f} s, first next-token answer after {first:.2f} s (+{first - imports:.2f} s over the imports, "
              f"+{first - loading:.2f} s over imports with the loading code); CPU: imports {imports_cpu:.2f} s, "
              f"with the loading code {loading_cpu:.2f} s, app to its first answer {first_cpu:.2f} s")
    column = lambda i: [run[i] for run in runs]
    over = lambda i, j: statistics.median(a - b for a, b in zip(column(i), column(j), strict=True))
    print(f"median imports alone: {statistics.median(column(0)):.2f} s, with the loading code "
          f"{statistics.median(column(2)):.2f} s; median first answer: {statistics.median(column(5)):.2f} s; median "
          f"launch cost over the imports: {over(5, 0):.2f} s, over the imports with the loading code: "
          f"{over(5, 2):.2f} s")
    print(f"CPU time, medians: the app to its first answer {statistics.median(column(6)):.2f} s = imports alone "
          f"+{over(6, 1):.2f} s = imports with the loading code +{over(6, 3):.2f} s")

if __name__ == "__main__":
    main()
