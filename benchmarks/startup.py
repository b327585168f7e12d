"""Time from `python app.py` to the first served request (a next-token analysis), against the imports alone.

    python -m benchmarks.startup                 # the bundled model; --model PATH for another
    python -m benchmarks.startup --model smollm2 # SmolLM2, fetched and converted first if not cached yet

Each repeat times, in fresh processes, `import torch, transformers, gradio` and then the app's launch to its
first answer, so both figures see the same machine load; the app runs with no hub and no package index.
"""

from __future__ import annotations

import argparse
import os
import socket
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


def import_seconds() -> float:
    """Wall time of a fresh interpreter importing the three big libraries the app needs: the floor for start-up."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, gradio"], cwd=ROOT, check=True)
    return time.perf_counter() - start


def smollm2_argument() -> str:
    """`--model smollm2`, cached first: launch is timed from the cache, as on every start after the first."""
    from visualizer.smollm2 import ensure_smollm2

    ensure_smollm2()
    return "smollm2"


def time_to_first_request(model: str, timeout: float = 300) -> tuple[float, float]:
    """(seconds until the page answers, seconds until the first next-token request returned)."""
    from gradio_client import Client

    port = free_port()
    # no hub, and a pip that reaches no index: a cached model must start without either
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PIP_CONFIG_FILE=os.devnull,
               PIP_NO_INDEX="1")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--model", model, "--port", str(port)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}")
            if time.perf_counter() - start > timeout:
                raise TimeoutError("the app did not answer")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        page = time.perf_counter() - start
        client.predict("The capital of France is", 5, "", api_name="/next_token")
        return page, time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(30)


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
        results = [(import_seconds(), *time_to_first_request(model)) for _ in range(args.repeats)]
    for imports, page, first in results:
        print(f"imports alone {imports:.2f} s; page up after {page:.2f} s, first next-token answer after {first:.2f} s"
              f" (+{first - imports:.2f} s over the imports)")
    median = lambda values: sorted(values)[len(values) // 2]
    imports, first = median([r[0] for r in results]), median([r[2] for r in results])
    print(f"median imports alone: {imports:.2f} s; median first answer: {first:.2f} s; "
          f"median launch cost over the imports: {median([r[2] - r[0] for r in results]):.2f} s")


if __name__ == "__main__":
    main()
