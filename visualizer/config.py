"""Settings of one app process: which model, where it runs, and the limits that keep a shared GPU alive.

Read once, in one place: defaults here, then `spaces.yaml` (the deploy manifest), then the command line,
which wins. Nothing else in the package reads the environment or argv.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PHI3_MINI = "microsoft/Phi-3-mini-4k-instruct"
MANIFEST = Path(__file__).resolve().parent.parent / "spaces.yaml"

MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    """Server-side caps. Sliders in the page have bounds too, but any value can reach the API."""

    max_prompt_tokens: int = 1024  # further capped by the model's own context window
    max_new_tokens: int = 200  # step-through, sampled text, KV race
    max_top_k: int = 50  # candidates kept per position in a trace
    max_samples: int = 20_000  # empirical draws in the sampling lab
    max_continuations: int = 5  # sampled texts generated side by side
    max_batch: int = 8  # prompts in one batch
    max_repeats: int = 7  # KV race repeats per mode
    max_sweep_points: int = 6  # lengths in the KV length sweep
    max_bertviz_tokens: int = 64  # bertviz draws every weight in the browser: keep it small
    memory_budget_bytes: int = 4 * GiB  # largest estimated working set of one request
    attention_store_bytes: int = 512 * MiB  # attention patterns kept per trace; beyond it, per layer on demand
    trace_cache_bytes: int = 2 * GiB  # LRU of forward passes, shared by all users


@dataclass(frozen=True)
class QueueSettings:
    concurrency_limit: int = 2  # model-calling events running at once (one shared group)
    max_size: int = 64  # waiting events beyond this are turned away with "busy"


@dataclass(frozen=True)
class AppConfig:
    model: str = "auto"  # hub id, local path, "bundled", or "auto"
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    host: str | None = None  # None: 127.0.0.1 locally, 0.0.0.0 on a Space
    port: int | None = None  # None: GRADIO_SERVER_PORT or 7860
    share: bool = False
    trust_remote_code: bool = False  # executes Python from the hub: only on the operator's word
    allow_fallback: bool = True  # an unloadable hub model falls back to the bundled one, with a banner
    limits: Limits = field(default_factory=Limits)
    queue: QueueSettings = field(default_factory=QueueSettings)

    def with_overrides(self, **overrides: Any) -> AppConfig:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def resolve_host(config: AppConfig) -> str:
    if config.host:
        return config.host
    return "0.0.0.0" if on_space() else "127.0.0.1"


def resolve_port(config: AppConfig) -> int:
    if config.port is not None:
        return config.port
    return int(os.environ.get("GRADIO_SERVER_PORT", "7860"))


def _dataclass_from_mapping(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**data)


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def config_from_manifest(manifest: dict[str, Any]) -> AppConfig:
    """The app settings of `spaces.yaml` (its `app:`, `limits:` and `queue:` sections)."""
    app = dict(manifest.get("app") or {})
    limits = _dataclass_from_mapping(Limits, dict(manifest.get("limits") or {}), "spaces.yaml limits")
    queue = _dataclass_from_mapping(QueueSettings, dict(manifest.get("queue") or {}), "spaces.yaml queue")
    app_fields = {f.name for f in dataclasses.fields(AppConfig)} - {"limits", "queue"}
    return _dataclass_from_mapping(AppConfig, {**{k: v for k, v in app.items() if k in app_fields}},
                                   "spaces.yaml app").with_overrides(limits=limits, queue=queue)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python app.py", description="Inside the LLM: look inside a causal LM.")
    p.add_argument("--model", help="hub id, local path, 'bundled' or 'auto' (default: Phi-3-mini on a CUDA "
                   "GPU, else the bundled teaching model)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"],
                   help="auto: bf16 on GPUs that support it, fp16 on older GPUs (T4), fp32 on CPU")
    p.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 on a Space)")
    p.add_argument("--port", type=int, help="port (default $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--share", action="store_true", default=None, help="create a public gradio.live link")
    p.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="allow the model repo's own Python code to run (off by default)")
    p.add_argument("--no-fallback", dest="allow_fallback", action="store_false", default=None,
                   help="fail instead of falling back to the bundled model")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="deploy manifest (spaces.yaml)")
    return p


def config_from_args(argv: list[str] | None = None) -> AppConfig:
    """Defaults, then the manifest, then the command line (the command line wins)."""
    args = build_parser().parse_args(argv)
    base = config_from_manifest(load_manifest(args.manifest))
    return base.with_overrides(model=args.model, device=args.device, dtype=args.dtype, host=args.host,
                               port=args.port, share=args.share, trust_remote_code=args.trust_remote_code,
                               allow_fallback=args.allow_fallback)
