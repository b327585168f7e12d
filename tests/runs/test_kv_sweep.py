"""The KV length sweep on tiny random models: every length timed at least 3 times, fits, limits."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.analysis.kv_cache import CACHED, MODES, UNCACHED, SweepResult
from visualizer.config import Limits
from visualizer.runs.kv_sweep import sweep_kv_cache

PROMPT = "The capital of France is"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def prompt_ids() -> list[int]:
    return tiny_tokenizer()(PROMPT)["input_ids"]


@pytest.mark.parametrize(("lengths", "repeats", "message"), [
    ([4, 8], 3, "at least 3 different"),
    ([4, 8, 8, 4], 3, "at least 3 different"),
    ([2, 4, 6, 8, 10, 12, 14], 3, "at most 6"),
    ([4, 8, 300], 3, "Sweep token counts must be from 2 to 256"),
    ([4, 8, 12], 6, "Sweep repeats must be from 3 to 5"),
    ([4, 8, 12], 1, "Sweep repeats must be from 3 to 5"),  # a median and a spread need three runs
    ([4, 8.5, 12], 3, "whole number"),
])
def test_sweep_limits_raise_clear_errors(lengths, repeats, message):
    with pytest.raises(ValueError, match=message):
        sweep_kv_cache(tiny_model("llama"), prompt_ids(), lengths, repeats, limits=Limits(max_new_tokens=256))


def test_limits_follow_the_app_config():
    app = Limits(max_new_tokens=20, max_sweep_points=3, max_prompt_tokens=4)
    with pytest.raises(ValueError, match="from 2 to 20"):  # the largest N is the app's max_new_tokens
        sweep_kv_cache(tiny_model("llama"), prompt_ids(), [4, 8, 21], limits=app)
    with pytest.raises(ValueError, match="at most 3"):
        sweep_kv_cache(tiny_model("llama"), prompt_ids(), [4, 8, 12, 16], limits=app)
    with pytest.raises(ValueError, match="at most 4"):  # the prompt bound too
        sweep_kv_cache(tiny_model("llama"), list(range(3, 9)), [4, 8, 12], limits=app)
    with pytest.raises(ValueError, match="from 3 to 4"):  # max_sweep_repeats until Limits carries it
        sweep_kv_cache(tiny_model("llama"), prompt_ids(), [4, 8, 12], 5, limits=app, max_sweep_repeats=4)


def test_sweep_times_every_length_and_fits_both_shapes():
    updates = list(sweep_kv_cache(tiny_model("qwen2"), prompt_ids(), [12, 4, 8], 3, warmup_tokens=1))
    result: SweepResult = updates[-1].result
    assert [u.phase for u in updates].count("timing") == 3 * 3 * 2
    assert result.lengths.tolist() == [4, 8, 12] and result.n_repeats == 3
    for mode in MODES:
        assert result.totals_s[mode].shape == (3, 3) and np.all(result.totals_s[mode] > 0)
        assert all(stats.n_runs == 3 for stats in result.stats(mode))
        assert np.all(result.fits[mode](np.linspace(0, 12, 25)) >= 0)  # never below 0 s
        assert all(c >= 0 for c in result.fits[mode].coefficients)
    assert result.fits[CACHED].degree == 1 and result.fits[UNCACHED].degree == 2
    assert result.speedups.shape == (3,)
    assert ("faster" in updates[-1].message) == (result.speedups[-1] >= 1)
    assert ("slower" in updates[-1].message) == (result.speedups[-1] < 1)
    fractions = [u.fraction_done for u in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_the_default_repeats_are_three():
    updates = list(sweep_kv_cache(tiny_model("gpt2"), prompt_ids(), [2, 3, 4], warmup_tokens=0))
    result = updates[-1].result
    assert result.n_repeats == 3 and "median of 3 repeats" in updates[-1].message
