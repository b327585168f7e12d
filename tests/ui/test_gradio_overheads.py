"""A new visitor's session builds block configs only when a request touches them, and Gradio's snapshot of every
component (`SessionState.components`, for its deep links) is the same as Gradio's eager one; a request does not
import matplotlib, and once it is imported Gradio's backend switch runs as before."""

import json

import httpx
import pytest

from tests.conftest import make_tiny_session


@pytest.fixture(scope="module")
def demo():
    from visualizer.ui import build_demo

    demo = build_demo(make_tiny_session("llama"))
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    yield demo
    demo.close()


def _counting_config_for_block(monkeypatch) -> list:
    from gradio.blocks import BlocksConfig

    calls = []
    original = BlocksConfig.config_for_block

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(BlocksConfig, "config_for_block", staticmethod(counted))
    return calls


def _snapshot(state) -> list[str]:
    return sorted(json.dumps(config, sort_keys=True, default=str) for config in state.components)


def test_a_new_session_builds_no_block_config_until_its_snapshot_is_read(demo, monkeypatch):
    import gradio.state_holder as state_holder

    from visualizer.ui.gradio_overheads import _GRADIO_SESSION_STATE, LazySessionState

    assert state_holder.SessionState is LazySessionState  # what StateHolder builds for a new session
    calls = _counting_config_for_block(monkeypatch)
    lazy = LazySessionState(demo)
    assert calls == [] and lazy.config_values == {}
    assert len(demo.blocks) > 100  # the cost it avoids grows with the app's blocks
    eager = _GRADIO_SESSION_STATE(demo)
    assert len(calls) >= len(demo.blocks) - 1  # Gradio's own: one config per block, at once
    assert _snapshot(lazy) == _snapshot(eager)
    assert set(vars(eager)) <= set(vars(lazy))  # every attribute Gradio's constructor sets is there


def test_a_served_request_builds_only_the_configs_it_touches(demo):
    url = demo.local_url.rstrip("/")
    event = httpx.post(f"{url}/gradio_api/call/next_token_data", json={"data": ["The capital of France is", 5, -1]})
    with httpx.stream("GET", f"{url}/gradio_api/call/next_token_data/{event.json()['event_id']}", timeout=60) as s:
        lines = [line for line in s.iter_lines()]
    assert any(line.startswith("event: complete") for line in lines), lines
    sessions = list(demo.state_holder.session_data.values())
    assert sessions and all(type(s).__name__ == "LazySessionState" for s in sessions)
    assert max(len(s.config_values) for s in sessions) < 10  # its inputs and outputs, not ~280 blocks


def test_requests_leave_matplotlib_alone_until_it_is_imported():
    import subprocess
    import sys

    import gradio.utils

    from visualizer.ui.gradio_overheads import BackendSwitchOnceImported

    assert gradio.utils.MatplotlibBackendMananger is BackendSwitchOnceImported  # what route_utils enters
    fresh = ("import sys, gradio\nfrom visualizer.ui import gradio_overheads\ngradio_overheads.install()\n"
             "with gradio.utils.MatplotlibBackendMananger():\n    pass\nprint('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", fresh], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        with BackendSwitchOnceImported():
            assert matplotlib.get_backend() == "agg"  # Gradio's switch, once matplotlib is there
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)
