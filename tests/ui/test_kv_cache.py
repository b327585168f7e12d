"""KV-cache handlers called directly with a real tiny session (short races: no timing asserted)."""

import pytest

from tests.conftest import make_tiny_session
from visualizer.ui.tabs import kv_cache as tab


@pytest.fixture(scope="module")
def session():
    return make_tiny_session("llama")


def test_race_streams_then_fills_every_race_output(session):
    outs = list(tab.race(session, "The capital", None, 4, 1))
    assert all(isinstance(o, tab.KvCacheOutputs) for o in outs)
    final = outs[-1]
    assert final.status.startswith("✅") and final.latency is not None and final.memory is not None
    assert "bytes" in final.inspector and isinstance(final.summary, str)
    assert final.sweep_plot == tab.KvCacheOutputs().sweep_plot  # the race leaves the sweep alone


def test_bad_n_is_a_message(session):
    with pytest.raises(ValueError):
        list(tab.race(session, "The capital", None, float("nan"), 1))


def test_a_repeated_race_is_another_visitors_unless_fresh_is_ticked():
    session = make_tiny_session("llama")
    list(tab.race(session, "one two three", None, 4, 1))
    again = list(tab.race(session, "one two three", None, 4, 1))
    assert len(again) == 1 and "Another visitor's race" in again[0].status
    fresh = list(tab.race(session, "one two three", None, 4, 1, True))
    assert len(fresh) > 1 and "Another visitor's" not in fresh[-1].status
