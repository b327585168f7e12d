"""What every tab shares: the model queue, error handling, and the user's current token sequence."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import gradio as gr

log = logging.getLogger(__name__)

MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model


def model_event(session, **extra) -> dict:
    """Event options for anything that runs the model: one shared, bounded queue."""
    return dict(concurrency_id=MODEL_QUEUE, concurrency_limit=session.config.queue.concurrency_limit, **extra)


def slider_event(session, **extra) -> dict:
    """Sliders fire on release, and only the last value counts when a student drags fast."""
    return model_event(session, trigger_mode="always_last", show_progress="minimal", **extra)


def _as_user_error(error: Exception) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, ValueError | TypeError):
        return gr.Error(str(error), print_exception=False)
    log.exception("unexpected error in a handler")
    return gr.Error(f"Something went wrong ({type(error).__name__}). The server is still running: "
                    "try again, or try a shorter prompt.", print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Turn the library's ValueErrors into a message in the page (and a clean API error), never a trace."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                raise _as_user_error(error) from error
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise _as_user_error(error) from error
    return call


def prompt_or_sequence(prompt: str, sequence: list[int] | None) -> str | list[int]:
    """The step-through sequence (exact token ids) when there is one, else the prompt text."""
    return list(sequence) if sequence else prompt


def check_choice(value, choices, name: str):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value
