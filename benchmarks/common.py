"""Helpers shared by the benchmark scripts: models to time, and peak memory measured in a fresh process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bundled_or_none() -> Path | None:
    from visualizer.loading import bundled_model_dir

    path = bundled_model_dir()
    return path if (path / "config.json").exists() else None


def phi3_shaped_random(n_layers: int = 32, n_heads: int = 32, d_model: int = 256, vocab: int = 4096,
                       context: int = 4096):
    """Phi-3-mini's layer and head counts at a small hidden size: the attention cost of the real model."""
    import torch
    from transformers import AutoModelForCausalLM, Phi3Config

    torch.manual_seed(0)
    config = Phi3Config(vocab_size=vocab, hidden_size=d_model, intermediate_size=2 * d_model,
                        num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                        max_position_embeddings=context, original_max_position_embeddings=context,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_isolated(module: str, *args: str) -> dict:
    """Run `python -m module args` in a fresh process (clean peak-memory counter); it prints one JSON line."""
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn, repeats: int = 3) -> float:
    """Median wall time of `repeats` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
