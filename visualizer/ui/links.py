"""The view a URL or a lesson file describes: which tab, which prompt, which selections and settings.

`/?tab=attention&prompt=Paris%20is%20the%20capital%20of&layer=1&head=2` opens that view. Values are checked with
the same rules (and the same messages) as the page's own inputs; a bad one is reported and left at its default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from visualizer.analysis.attention import METRICS
from visualizer.analysis.sampling import SamplingSettings
from visualizer.ui.common import check_choice
from visualizer.ui.tabs.sampling import settings_of
from visualizer.validation import whole_number

TAB_IDS = ("architecture", "next_token", "attention", "sampling", "kv_cache", "experiments")
LESSON_KIND = "inside-the-llm lesson"
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class View:
    """Everything a link carries; None = not given (the page keeps its default)."""

    tab: str | None = None
    prompt: str | None = None
    position: int | None = None
    layer: int | None = None
    head: int | None = None
    metric: str | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int | None = None  # the Sampling tab's number of draws

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


KEYS = [f.name for f in fields(View)]


@dataclass(frozen=True)
class Parsed:
    view: View
    problems: list[str] = field(default_factory=list)  # one message per bad value, as the inputs would say it


def _number(text: Any) -> float | int:
    """A URL value as a number: '2' -> 2, '0.7' -> 0.7; anything else stays as it came (and fails its check)."""
    if isinstance(text, bool) or not isinstance(text, str):
        return text
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if math.isfinite(value) and value.is_integer() and "." not in text else value


def _checks(session) -> dict[str, Callable[[Any], Any]]:
    dims, limits = session.dims, session.config.limits
    return {
        "tab": lambda v: check_choice(v, list(TAB_IDS), "tab"),
        "prompt": _check_prompt,
        "position": lambda v: whole_number(_number(v), "position", 0, max(session.max_prompt_tokens - 1, 0)),
        "layer": lambda v: whole_number(_number(v), "layer", 0, dims.n_layers - 1),
        "head": lambda v: whole_number(_number(v), "head", 0, dims.n_heads - 1),
        "metric": lambda v: check_choice(v, list(METRICS), "metric"),
        "temperature": lambda v: _sampling(temperature=_number(v)).temperature,
        "top_k": lambda v: _sampling(top_k=_number(v)).top_k,
        "top_p": lambda v: _sampling(top_p=_number(v)).top_p,
        "seed": lambda v: _sampling(seed=_number(v)).seed,
        "n": lambda v: whole_number(_number(v), "number of samples", 100, limits.max_samples),
    }


def _check_prompt(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("prompt must be some text")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt must be at most {MAX_PROMPT_CHARS:,} characters, got {len(value):,}")
    return value


def _sampling(**one) -> SamplingSettings:
    """One sampling setting checked exactly as the Sampling tab checks it (the others at their defaults)."""
    return settings_of(**{"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0, **one})


def parse_view(session, values: Mapping[str, Any]) -> Parsed:
    """Check each known key of a URL's query (or a lesson file); unknown keys are ignored."""
    checks = _checks(session)
    good: dict[str, Any] = {}
    problems = []
    for key in KEYS:
        if key not in values or values[key] in (None, ""):
            continue
        try:
            good[key] = checks[key](values[key])
        except (ValueError, TypeError) as error:
            problems.append(f"In the link: {error}")
    return Parsed(View(**good), problems)


def lesson_json(view: View) -> str:
    """A lesson file: the whole view, readable, loadable with `load_lesson`."""
    return json.dumps({"kind": LESSON_KIND, "version": 1, **view.given()}, ensure_ascii=False, indent=1)


def load_lesson(session, text: str) -> Parsed:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"lesson file must be JSON saved by this app ({error.msg if hasattr(error, 'msg') else error})"
                         ) from error
    if not isinstance(data, dict) or data.get("kind") != LESSON_KIND:
        raise ValueError(f"lesson file must be JSON saved by this app (its \"kind\" is {LESSON_KIND!r})")
    return parse_view(session, data)
