"""Time from `python app.py` to the first served request (a next-token analysis), with the smallest model.

    python -m benchmarks.startup                 # the bundled model; --model PATH for another
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


def time_to_first_request(model: str, timeout: float = 300) -> tuple[float, float]:
    """(seconds until the page answers, seconds until the first next-token request returned)."""
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
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
    parser.add_argument("--model", help="model path or id (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or (str(bundled_or_none()) if bundled_or_none() else saved_tiny_model(folder))
        print(f"model: {model}")
        results = [time_to_first_request(model) for _ in range(args.repeats)]
    for page, first in results:
        print(f"page up after {page:.2f} s, first next-token answer after {first:.2f} s")
    print(f"median first answer: {sorted(r[1] for r in results)[len(results) // 2]:.2f} s")


if __name__ == "__main__":
    main()
