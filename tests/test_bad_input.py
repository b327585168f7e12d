"""Bad input through the real API (gradio_client against a launched app): a clear message or a correct result,
never a trace, a hung queue or a dead server."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest

from tests.conftest import make_tiny_session

XSS = "</script><img src=x onerror=alert(1)>"
TEXTS = ["", "   \n\t ", "x" * 100_000, "nul\x00bell\x07esc\x1b", "emoji 😀🎉👩‍👩‍👧", "日本の首都は東京です",
         "مرحبا بالعالم שלום", XSS, "word " * 400]
NUMBERS = [-1, 0, 10**12, 1e308, -1e308, 2.5, "abc", None, [1, 2], {"a": 1}]

GOOD = {
    "/next_token": ["The capital of France is", 5, ""],
    "/next_token_position": ["The capital of France is", 5, 2, ""],
    "/next_token_target": ["The capital of France is", 5, 2, " Paris"],
    "/next_token_step": ["The capital of France is", 5, None, ""],
    "/next_token_generate": ["The capital of France is", 3, 5, ""],
    "/attention": ["The capital of France is", 1, 2, False, "sink"],
    "/attention_head": ["The capital of France is", 1, 2, False],
    "/attention_summary": ["The capital of France is", "entropy"],
    "/attention_bertviz": ["The capital of France is", 0],
    "/sampling": ["The capital of France is", 0.7, 10, 0.9, 0, 1000],
    "/sampling_text": ["The capital of France is", 0.7, 10, 0.9, 0, 2, 4],
    "/sampling_batch": ["The capital of France is\nThe capital of Japan is"],
    "/architecture": ["known model", "Llama-3.1-8B", "", 1000, 1, "fp16"],
    "/architecture_kv": ["known model", "Llama-3.1-8B", "", 1000, 1, "fp16"],
}
TEXT_PARAMS = {"/architecture": [2], "/architecture_kv": [2]}  # other endpoints: position 0 is the prompt
NUMBER_PARAMS = {name: [i for i, v in enumerate(args) if isinstance(v, int | float) and not isinstance(v, bool)]
                 for name, args in GOOD.items()}


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    from visualizer.ui import build_demo

    session = make_tiny_session("llama", max_prompt_tokens=100, max_new_tokens=20, max_samples=20_000)
    demo = build_demo(session)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    yield Client(url, verbose=False)
    demo.close()


def _call(client, endpoint, args):
    """The result, or the error text the user would see; fails on anything that looks like a crash."""
    from gradio_client.exceptions import AppError

    try:
        return ("ok", client.predict(*args, api_name=endpoint))
    except AppError as error:
        message = str(error)
    except ValueError as error:  # the client itself refused to send it (e.g. an invalid choice)
        message = str(error)
    assert message and "Traceback" not in message, f"{endpoint}{args!r:.200}: {message!r}"
    assert not message.startswith("Something went wrong"), f"{endpoint}{args!r:.200}: unhandled: {message}"
    return ("error", message)


def _still_serves(client):
    status, result = _call(client, "/next_token", GOOD["/next_token"])
    assert status == "ok" and "itl-chip" in result[0]


@pytest.mark.parametrize("endpoint", list(GOOD))
def test_good_calls_succeed(client, endpoint):
    status, _ = _call(client, endpoint, GOOD[endpoint])
    assert status == "ok"


@pytest.mark.parametrize("endpoint", list(GOOD))
def test_bad_texts(client, endpoint):
    for index in TEXT_PARAMS.get(endpoint, [0]):
        for text in TEXTS + [12, None, ["list"]]:
            args = list(GOOD[endpoint])
            args[index] = text
            status, result = _call(client, endpoint, args)
            if isinstance(text, str) and not text.strip() and endpoint not in TEXT_PARAMS:
                assert status == "error", f"{endpoint} accepted an empty prompt"
    _still_serves(client)


@pytest.mark.parametrize("endpoint", [e for e in GOOD if NUMBER_PARAMS[e]])
def test_bad_numbers(client, endpoint):
    for index in NUMBER_PARAMS[endpoint]:
        for number in NUMBERS:
            args = list(GOOD[endpoint])
            args[index] = number
            _call(client, endpoint, args)
    _still_serves(client)


def test_out_of_range_layer_head_position_are_named(client):
    prompt = GOOD["/attention"][0]
    for args, word in (([prompt, 7, 0, False, "sink"], "layer"), ([prompt, 0, 9, False, "sink"], "head"),
                       ([prompt, 0, -1, False, "sink"], "head")):
        status, message = _call(client, "/attention", args)
        # gradio's own slider bounds answer first ("Value 7 is greater than maximum value 1."), the library next
        assert status == "error" and (word in message or "maximum value" in message or "minimum value" in message)
    status, message = _call(client, "/next_token_position", [prompt, 5, 999, ""])
    assert status == "error" and ("position" in message or "maximum value" in message)


def test_prompt_over_the_limit_says_so(client):
    status, message = _call(client, "/next_token", ["word " * 400, 5, ""])
    assert status == "error" and "limit" in message


def test_generation_beyond_limit_is_refused(client):
    status, message = _call(client, "/next_token_generate", ["The capital", 10_000, 5, ""])
    assert status == "error" and "20" in message


def test_raw_nan_and_infinity_never_crash_the_server(client):
    """JSON has no NaN: a raw request carrying one is refused cleanly, and the server keeps serving."""
    url = client.src.rstrip("/") + "/gradio_api/call/sampling"
    for token in ("NaN", "Infinity", "-Infinity"):
        body = ('{"data": ["The capital of France is", ' + token + ', 10, 0.9, 0, 1000]}').encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                event_id = json.loads(response.read())["event_id"]
            with urllib.request.urlopen(f"{url}/{event_id}", timeout=30) as response:
                stream = response.read().decode()
            assert "event: error" in stream or "event: complete" in stream
        except urllib.error.HTTPError as error:
            assert 400 <= error.code < 500
    _still_serves(client)


def test_non_finite_sampling_settings_are_refused_in_python():
    from visualizer.ui.tabs.sampling import settings_of

    for bad in (math.nan, math.inf, -math.inf, -0.5):
        with pytest.raises(ValueError):
            settings_of(bad, 0, 1.0, 0)


# --- #13: messages that help, and no stale per-user state -------------------------------------------------------

def _error(client, endpoint, args) -> str:
    status, message = _call(client, endpoint, args)
    assert status == "error", f"{endpoint} accepted {args!r:.120}"
    return message


def _raw_call(client, endpoint: str, body: str) -> str:
    """POST a hand-written JSON body (escapes gradio_client cannot send) -> the event stream's text."""
    url = client.src.rstrip("/") + "/gradio_api/call/" + endpoint
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}/{event_id}", timeout=60) as response:
        return response.read().decode()


def test_a_lone_surrogate_names_the_prompt(client):
    """JSON may carry a lone surrogate as an escape; the tokenizer cannot encode it."""
    stream = _raw_call(client, "next_token", '{"data": ["bad \\ud800 text", 5, ""]}')
    assert "event: error" in stream and "prompt" in stream.lower(), stream
    assert "TextEncodeInput" not in stream and "Something went wrong" not in stream


@pytest.mark.parametrize("endpoint, index, word", [("/kv_cache", 1, "N"), ("/sampling", 4, "seed"),
                                                   ("/next_token_generate", 1, "N"), ("/sampling_text", 6, "token")])
def test_nan_numbers_say_which_field(endpoint, index, word):
    """NaN cannot travel in JSON: the Python handler sees it as an API caller's float would arrive."""
    import gradio as gr

    from visualizer.ui.common import handler
    from visualizer.ui.tabs import kv_cache, next_token, sampling

    session = make_tiny_session("llama", max_prompt_tokens=100, max_new_tokens=20, max_samples=20_000)
    fns = {"/kv_cache": (kv_cache.race, ["The capital", None, 4, 1]),
           "/sampling": (sampling.distribution, ["The capital", None, 0.7, 10, 0.9, 0, 1000]),
           "/next_token_generate": (next_token.generate, ["The capital", None, 3, 5, ""]),
           "/sampling_text": (sampling.continuations, ["The capital", None, 0.7, 10, 0.9, 0, 2, 4])}
    fn, args = fns[endpoint]
    args[index + 1] = math.nan  # +1: the hidden sequence state follows the prompt
    with pytest.raises(gr.Error) as error:
        result = handler(fn, session, ["status"] if endpoint == "/kv_cache" else [])(*args)
        list(result) if hasattr(result, "__next__") else result
    message = str(error.value)
    assert word.lower() in message.lower() and "nan" in message.lower(), message
    assert "cannot convert" not in message and not message.startswith("Something went wrong")


def test_a_deeply_nested_config_is_a_clean_error(client):
    deep = "[" * 50_000 + "]" * 50_000
    message = _error(client, "/architecture", ["paste config.json", "Llama-3.1-8B", '{"a": ' + deep + "}", 1000, 1,
                                               "fp16"])
    assert "RecursionError" not in message and not message.startswith("Something went wrong")


def test_a_stored_sequence_never_answers_for_another_prompt(client):
    """Within one client session: steps on a short prompt, then a too-long prompt on /attention is refused."""
    status, _ = _call(client, "/next_token_step", [GOOD["/next_token"][0], 5, None, ""])
    assert status == "ok"
    message = _error(client, "/attention", ["word " * 400, 0, 0, False, "sink"])
    assert "limit" in message
    for endpoint, args in (("/attention_head", ["word " * 400, 0, 0, False]),
                           ("/sampling", ["word " * 400, 0.7, 10, 0.9, 0, 1000])):
        assert "limit" in _error(client, endpoint, args)


def test_the_same_call_gives_the_same_answer_whatever_came_before(client):
    args = ["Paris is the capital of", 5, 3, ""]
    _, before = _call(client, "/next_token_position", args)
    _call(client, "/next_token", ["The capital", 5, ""])  # a short prompt would have narrowed the slider
    _call(client, "/next_token_step", ["Paris is the capital of", 5, None, ""])
    _, after = _call(client, "/next_token_position", ["Monday, Tuesday, Wednesday,", 5, 6, ""])
    assert after[0]  # position 6 works on a longer prompt although /next_token saw 3 tokens
    _, again = _call(client, "/next_token_data", ["Paris is the capital of", 5, 3])
    assert again["position"] == 3


def test_positions_above_one_need_no_earlier_call():
    from gradio_client import Client

    from visualizer.ui import build_demo

    demo = build_demo(make_tiny_session("llama", max_prompt_tokens=100))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        status, result = _call(Client(url, verbose=False), "/next_token_position",
                               ["The capital of France is", 5, 4, ""])
        assert status == "ok" and result[0]
    finally:
        demo.close()
