"""Settings of one app process: which model, where it runs, and the limits that keep a shared GPU alive.

Read once, in one place: defaults here, then `spaces.yaml` (the deploy manifest), then the command line,
which wins. Nothing else in the package reads the environment or argv. Every value is checked when a
settings object is built, so a bad value stops start-up with a message naming the key, not a KeyError later.
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
DEFAULT_PROMPT = "The capital of France is"  # the book's prompt: what the page opens with
MANIFEST = Path(__file__).resolve().parent.parent / "spaces.yaml"  # the repository's; absent when installed

MiB = 1024**2
GiB = 1024**3
DEFAULT_MEMORY_BUDGET_BYTES = 4 * GiB  # the request budget when neither the operator nor the device says more

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # normalised to the full names
DEVICE_MAPS = ("auto", "none")
MANIFEST_SECTIONS = ("space", "app", "limits", "queue")  # `space` is read by visualizer.deploy


# ---------------------------------------------------------------- value checks (shared by every source)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML `yes` is a bool, and bool is an int


def _check_positive_int(key: str, value: Any, *, optional: bool = False, zero: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value):
        unit = " (bytes, e.g. 4294967296 for 4 GiB)" if key.endswith("_bytes") else ""
        none = " or null" if optional else ""
        raise ValueError(f"{key} must be a whole number{unit}{none}, got {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{key} must be {'0 or more' if zero else 'positive'}, got {value}")


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")


def _check_choice(key: str, value: Any, choices: tuple[str, ...], aliases: dict[str, str] | None = None) -> str:
    """The value itself, or the full name an alias stands for; anything else names the choices."""
    if isinstance(value, str) and value in choices:
        return value
    if isinstance(value, str) and aliases and value in aliases:
        return aliases[value]
    extra = f" (or {', '.join(aliases)})" if aliases else ""
    raise ValueError(f"{key} must be one of {', '.join(choices)}{extra}, got {value!r}")


def _check_text(key: str, value: Any, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")


def check_port(key: str, value: Any, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or not 1 <= value <= 65535:
        raise ValueError(f"{key} must be a port number from 1 to 65535, got {value!r}")


# ---------------------------------------------------------------- settings


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
    # Largest estimated working set of one request. None: derived from the device at start-up
    # (DEFAULT_MEMORY_BUDGET_BYTES when the device says nothing).
    memory_budget_bytes: int | None = None
    attention_store_bytes: int = 512 * MiB  # attention patterns kept per trace; beyond it, per layer on demand
    trace_cache_bytes: int = 2 * GiB  # LRU of forward passes, shared by all users

    _ZERO_ALLOWED = ("attention_store_bytes", "trace_cache_bytes")  # 0: keep none (every other cap is >= 1)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_positive_int(f.name, getattr(self, f.name), optional=f.name == "memory_budget_bytes",
                                zero=f.name in self._ZERO_ALLOWED)


MIN_QUEUE_SIZE = 256  # a class of 100 sending two or three requests each at once
MAX_QUEUE_SIZE = 4096
QUEUE_WAIT_S = 60  # the longest a visitor should wait in the queue before "busy" is the kinder answer


def derived_queue_size(seconds_per_request: float, concurrency: int) -> int:
    """How many requests the server can finish within QUEUE_WAIT_S, within [MIN_QUEUE_SIZE, MAX_QUEUE_SIZE].

    >>> derived_queue_size(0.005, 2), derived_queue_size(2.0, 2), derived_queue_size(0.05, 2)
    (4096, 256, 2400)
    """
    per_second = concurrency / max(seconds_per_request, 1e-6)
    return int(min(MAX_QUEUE_SIZE, max(MIN_QUEUE_SIZE, per_second * QUEUE_WAIT_S)))


@dataclass(frozen=True)
class QueueSettings:
    concurrency_limit: int = 2  # model-calling events running at once (one shared group)
    # Waiting events beyond this are turned away with "busy". None: derived at start from the measured time of
    # one forward pass (a minute of waiting), at least MIN_QUEUE_SIZE (64 turned 34 of a class of 100 away).
    max_size: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_positive_int(f.name, getattr(self, f.name), optional=f.name == "max_size")


@dataclass(frozen=True)
class AppConfig:
    model: str = "auto"  # hub id, local path, "bundled", "smollm2" or "auto"
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (fp32, bf16, fp16 are normalised to these)
    device_map: str = "auto"  # auto: accelerate places a model too big for one device; none: one device
    host: str | None = None  # None: $GRADIO_SERVER_NAME, else 127.0.0.1 locally and 0.0.0.0 on a Space
    port: int | None = None  # None: GRADIO_SERVER_PORT or 7860
    share: bool = False
    trust_remote_code: bool = False  # executes Python from the hub: only on the operator's word
    allow_fallback: bool = True  # an unloadable hub model falls back to the bundled one, with a banner
    debug: bool = False  # tracebacks on start-up errors, debug logging
    limits: Limits = field(default_factory=Limits)
    queue: QueueSettings = field(default_factory=QueueSettings)

    def __post_init__(self) -> None:
        _check_text("model", self.model)
        _check_choice("device", self.device, DEVICES)
        object.__setattr__(self, "dtype", _check_choice("dtype", self.dtype, DTYPES, DTYPE_ALIASES))
        _check_choice("device_map", self.device_map, DEVICE_MAPS)
        _check_text("host", self.host, optional=True)
        check_port("port", self.port, optional=True)
        for name in ("share", "trust_remote_code", "allow_fallback", "debug"):
            _check_bool(name, getattr(self, name))
        if not isinstance(self.limits, Limits) or not isinstance(self.queue, QueueSettings):
            raise ValueError("limits and queue must be Limits and QueueSettings objects")

    def with_overrides(self, **overrides: Any) -> AppConfig:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


# ---------------------------------------------------------------- environment


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def resolve_host(config: AppConfig) -> str:
    """Command line > manifest (both in config.host) > $GRADIO_SERVER_NAME > 127.0.0.1, or 0.0.0.0 on a Space."""
    if config.host:
        return config.host
    if os.environ.get("GRADIO_SERVER_NAME", "").strip():
        return os.environ["GRADIO_SERVER_NAME"].strip()
    return "0.0.0.0" if on_space() else "127.0.0.1"


def resolve_port(config: AppConfig) -> int:
    if config.port is not None:
        return config.port
    raw = os.environ.get("GRADIO_SERVER_PORT", "").strip()
    if not raw:
        return 7860
    port = int(raw) if raw.isdigit() else raw
    check_port("GRADIO_SERVER_PORT", port)
    return port


# ---------------------------------------------------------------- manifest


def load_manifest(path: Path = MANIFEST, *, required: bool = False) -> dict[str, Any]:
    """The manifest as a mapping; {} when the default one is absent (an installed package has none)."""
    path = Path(path)
    if not path.exists():
        if required:
            raise ValueError(f"--manifest {path}: no such file")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ValueError(f"{path}: not valid YAML{line}: {getattr(error, 'problem', None) or error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with sections {', '.join(MANIFEST_SECTIONS)} at the top level")
    unknown = sorted(str(key) for key in set(data) - set(MANIFEST_SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(MANIFEST_SECTIONS)}")
    return data


def _section(cls: type, manifest: dict[str, Any], section: str, source: str, exclude: tuple[str, ...] = ()) -> Any:
    data = manifest.get(section) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: `{section}` must be a mapping of settings, got {data!r}")
    known = sorted({f.name for f in dataclasses.fields(cls)} - set(exclude))
    unknown = sorted(str(key) for key in set(data) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
                         f"known in `{section}`: {', '.join(known)}")
    try:
        return cls(**data)
    except ValueError as error:
        raise ValueError(f"{source}: {section}.{error}") from None


def config_from_manifest(manifest: dict[str, Any], source: str = "spaces.yaml") -> AppConfig:
    """The app settings of `spaces.yaml` (its `app:`, `limits:` and `queue:` sections), checked."""
    limits = _section(Limits, manifest, "limits", source)
    queue = _section(QueueSettings, manifest, "queue", source)
    app = _section(AppConfig, manifest, "app", source, exclude=("limits", "queue"))
    return app.with_overrides(limits=limits, queue=queue)


# ---------------------------------------------------------------- command line


def _arg(check, *extra: Any):
    """An argparse `type=` that reports our own message (argparse prints it after the flag's name)."""

    def convert(text: str) -> Any:
        try:
            return check(text, *extra)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix("value ")) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert


def _choice(text: str, choices: tuple[str, ...], aliases: dict[str, str] | None = None) -> str:
    return _check_choice("value", text, choices, aliases)


def _port(text: str) -> int:
    port = int(text) if text.strip().isdigit() else text
    check_port("value", port)
    return port


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Inside the LLM: look inside a causal LM while it runs.")
    p.add_argument("--model", help="'auto' (default: Phi-3-mini on a CUDA GPU, else the bundled teaching model), "
                   "'bundled', 'smollm2' (SmolLM2-135M), a hub id or a local folder")
    p.add_argument("--device", type=_arg(_choice, DEVICES), metavar="{" + ",".join(DEVICES) + "}")
    p.add_argument("--dtype", type=_arg(_choice, DTYPES, DTYPE_ALIASES), metavar="{" + ",".join(DTYPES) + "}",
                   help="auto: bf16 on GPUs that support it, fp16 on older GPUs (T4), fp32 on CPU; "
                   "fp32, bf16 and fp16 are accepted too")
    p.add_argument("--device-map", type=_arg(_choice, DEVICE_MAPS), metavar="{auto,none}",
                   help="auto (default): let accelerate spread a model too big for one device; none: one device")
    p.add_argument("--host", help="bind address (default $GRADIO_SERVER_NAME, else 127.0.0.1; 0.0.0.0 on a Space)")
    p.add_argument("--port", type=_arg(_port), help="port (default $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--share", action="store_true", default=None, help="create a public gradio.live link")
    p.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="allow the model repo's own Python code to run (off by default)")
    p.add_argument("--no-fallback", dest="allow_fallback", action="store_false", default=None,
                   help="fail instead of falling back to the bundled model")
    p.add_argument("--manifest", type=Path, default=None, help="deploy manifest (default: the repository's "
                   "spaces.yaml, when there is one)")
    p.add_argument("--debug", action="store_true", default=None, help="show tracebacks and debug logging")
    return p


def config_from_namespace(args: argparse.Namespace) -> AppConfig:
    """Defaults, then the manifest, then the parsed command line (the command line wins)."""
    path = args.manifest if args.manifest is not None else MANIFEST
    base = config_from_manifest(load_manifest(path, required=args.manifest is not None), source=str(path))
    return base.with_overrides(model=args.model, device=args.device, dtype=args.dtype, device_map=args.device_map,
                               host=args.host, port=args.port, share=args.share,
                               trust_remote_code=args.trust_remote_code, allow_fallback=args.allow_fallback,
                               debug=args.debug)


def config_from_args(argv: list[str] | None = None, prog: str | None = None) -> AppConfig:
    return config_from_namespace(build_parser(prog).parse_args(argv))
