"""What every tab shares: the model queue, error handling, outputs by name, and the user's step-through sequence."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)

MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model
# Gradio finds a progress tracker by a parameter whose default is a Progress; it reads the request's tracker from
# a context variable, so one shared default is what `progress=gr.Progress()` would make anyway.
PROGRESS = gr.Progress()


def model_event(session, **extra) -> dict:
    """Event options for anything that runs the model: one shared, bounded queue."""
    return dict(concurrency_id=MODEL_QUEUE, concurrency_limit=session.config.queue.concurrency_limit, **extra)


def slider_event(session, **extra) -> dict:
    """Sliders fire on release, and only the last value counts when a student drags fast."""
    return model_event(session, trigger_mode="always_last", show_progress="minimal", **extra)


def skip() -> Any:
    """An output left as it is (the default of every outputs-dataclass field)."""
    return gr.skip()


def unchanged() -> Any:
    """dataclasses.field default for an output a handler may leave alone."""
    return dataclasses.field(default_factory=skip)


# --- outputs by name --------------------------------------------------------------------------------------------

def names_of(outputs_type: type) -> list[str]:
    """The fields of a tab's outputs dataclass, in declaration order."""
    return [f.name for f in dataclasses.fields(outputs_type)]


def components_for(components: Mapping[str, Any], names: Sequence[str]) -> list:
    """The components that receive these output fields, in the same order (a typo fails at build time)."""
    missing = [name for name in names if name not in components]
    if missing:
        raise KeyError(f"no component for output field(s) {missing}")
    return [components[name] for name in names]


def values_for(result: Any, names: Sequence[str]) -> Any:
    """A handler's outputs dataclass as the values Gradio expects for `names` (no deep copy, unlike astuple):
    a tuple, or the bare value for a single output (Gradio would take a 1-tuple as the value itself)."""
    values = tuple(configured(getattr(result, name)) for name in names)
    return values[0] if len(values) == 1 else values


def _bound(fn: Callable, session) -> Callable:
    return functools.partial(fn, session) if session is not None else fn


def _present_as(call: Callable, fn: Callable, bound: Callable) -> Callable:
    """Give the wrapper the handler's name, docstring and signature without `session`, with resolved type hints:
    Gradio names the API's parameters after it and builds a JSON endpoint's schema from the hints."""
    hints = typing.get_type_hints(fn)
    signature = inspect.signature(bound)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    call.__signature__ = signature.replace(parameters=parameters,
                                           return_annotation=hints.get("return", signature.return_annotation))
    call.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty}
    if "return" in hints:
        call.__annotations__["return"] = hints["return"]
    call.__doc__ = fn.__doc__
    call.__name__ = call.__qualname__ = fn.__name__
    return call


def handler(fn: Callable, session, names: Sequence[str]) -> Callable:
    """Bind a module-level handler to the session, pick the named fields of what it returns, and turn
    its ValueErrors into messages in the page. Gradio reads parameter names (the API's) through __wrapped__."""
    bound = _bound(fn, session)
    names = list(names)
    if inspect.isgeneratorfunction(fn):
        def call(*args, **kwargs):
            try:
                for result in bound(*args, **kwargs):
                    yield values_for(result, names)
            except Exception as error:
                raise _as_user_error(error) from error
    else:
        def call(*args, **kwargs):
            try:
                return values_for(bound(*args, **kwargs), names)
            except Exception as error:
                raise _as_user_error(error) from error
    return _present_as(call, fn, bound)


def data_handler(fn: Callable, session) -> Callable:
    """A JSON endpoint: bound to the session, errors as messages; returns the handler's plain data."""
    bound = _bound(fn, session)

    def call(*args, **kwargs):
        try:
            return bound(*args, **kwargs)
        except Exception as error:
            raise _as_user_error(error) from error
    return _present_as(call, fn, bound)


def wire(event: Callable, fn: Callable, session, inputs: list, outputs_type: type, components: Mapping[str, Any],
         names: Sequence[str] | None = None, **options) -> Any:
    """Connect `fn` (a module-level handler) to a listener, writing the named fields of its result."""
    names = list(names or names_of(outputs_type))
    unknown = set(names) - set(names_of(outputs_type))
    if unknown:
        raise KeyError(f"{outputs_type.__name__} has no field(s) {sorted(unknown)}")
    return event(handler(fn, session, names), inputs, components_for(components, names), **options)


# --- errors -----------------------------------------------------------------------------------------------------

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


# --- the step-through sequence, which belongs to the prompt it was made from ------------------------------------

def stepped(prompt: str, ids: list[int], rows: list[list]) -> dict:
    """What gr.State keeps after a step: the exact token ids, the step table, and the prompt text they grew from."""
    return {"prompt": prompt, "ids": [int(i) for i in ids], "rows": [list(row) for row in rows]}


def _owned(prompt, state) -> dict | None:
    """The stored sequence when it was made from this very prompt text; any other prompt discards it."""
    if isinstance(state, dict) and isinstance(prompt, str) and state.get("prompt") == prompt and state.get("ids"):
        return state
    return None


def prompt_or_sequence(prompt: str, state: dict | None) -> str | list[int]:
    """The step-through token ids when they were made from this prompt, else the prompt text itself."""
    owned = _owned(prompt, state)
    return list(owned["ids"]) if owned else prompt


def steps_so_far(prompt: str, state: dict | None) -> list[list]:
    """The step table rows made from this prompt (none for any other prompt)."""
    owned = _owned(prompt, state)
    return [list(row) for row in owned["rows"]] if owned else []


def check_choice(value, choices, name: str):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


# --- one prompt drives every tab -------------------------------------------------------------------------------

def made_from(prompt, sequence) -> str:
    """What a tab's results were drawn from: the prompt text and the step-through length that grew from it.
    The page compares the text with the prompt box to grey results from an earlier prompt."""
    owned = _owned(prompt, sequence)
    return json.dumps([prompt if isinstance(prompt, str) else "", len(owned["ids"]) if owned else 0])


def is_current(tab_id: str, open_tab: str, marker: str, prompt, sequence) -> bool:
    """True when this tab need not redraw: another tab is open, or its results are from this very prompt."""
    return open_tab != tab_id or marker == made_from(prompt, sequence)


def marker_box(tab_id: str, auto: bool) -> gr.Textbox:
    """Hidden: the made_from of the tab's results. `auto`: the tab redraws itself when opened; else it only greys."""
    return gr.Textbox("", elem_id=f"itl-made-{tab_id}", show_label=False, container=False,
                      elem_classes=["itl-hidden", "itl-made-auto" if auto else "itl-made-manual"])


@dataclasses.dataclass
class TabSync:
    """What a tab gives the page so one prompt, one link and one lesson file drive it.

    draw(event, open_tab): wires `event` to redraw the tab when it is open and its results are not from the
    current prompt (None: the tab only greys, e.g. timing runs). link: URL key -> the component it sets.
    marker: the hidden made_from box. after_link(event, link_state): optional, applies what a redraw resets.
    """

    tab_id: str
    marker: Any
    draw: Callable | None = None
    link: dict[str, Any] = dataclasses.field(default_factory=dict)
    after_link: Callable | None = None


# --- charts: plotly's toolbar saves a readable PNG (the page adds an SVG button) --------------------------------

PLOT_CONFIG = {"displaylogo": False,
               "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "inside-the-llm"}}


class ConfiguredPlot:
    """A plotly figure plus the toolbar config gr.Plot passes to Plotly.react (it reads "config" from the JSON)."""

    def __init__(self, figure: Any):
        self.figure = figure

    def to_json(self) -> str:
        text = self.figure.to_json()  # a JSON object: add the config key before its closing brace
        return f'{text[:-1]}, "config": {json.dumps(PLOT_CONFIG)}}}' if text.endswith("}") else text

    def to_plotly_json(self) -> dict:
        return self.figure.to_plotly_json()


def configured(value: Any) -> Any:
    """Plotly figures (PlotlyJSON or go.Figure) get the toolbar config; everything else passes through."""
    if hasattr(value, "to_plotly_json") and hasattr(value, "to_json") and not isinstance(value, ConfiguredPlot):
        return ConfiguredPlot(value)
    return value
