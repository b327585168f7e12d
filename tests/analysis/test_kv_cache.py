"""The pure half of the KV-cache tab: statistics, non-negative fits, wording, requests, cache inspection."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import DynamicCache, Phi3Config

from tests.tiny_models import tiny_config
from visualizer.analysis.kv_cache import (
    CACHED,
    UNCACHED,
    SweepResult,
    TimingConditions,
    TimingStats,
    default_sweep_lengths,
    fit_polynomial,
    format_seconds,
    inspect_cache,
    speed_phrase,
    theil_sen_fit,
    validate_sweep_request,
)
from visualizer.analysis.kv_memory import kv_cache_bytes
from visualizer.config import Limits
from visualizer.dims import dims_from_config


def test_phi3_mini_bytes_per_token_from_its_config():
    # The chapter's number: 2 x 32 layers x 32 kv heads x 96 head_dim x 2 bytes (bf16) = 384 KiB per token.
    dims = dims_from_config(Phi3Config())
    n_layers, n_kv_heads, d_head = dims.n_layers, dims.n_kv_heads, dims.d_head
    assert kv_cache_bytes(dims, n_tokens=1) == 2 * n_layers * n_kv_heads * d_head * 2 == 384 * 1024


def test_inspect_cache_rejects_an_empty_cache():
    with pytest.raises(ValueError, match="run the cached mode"):
        inspect_cache(DynamicCache(), tiny_config("llama"))


# ----- statistics and fits ---------------------------------------------------------------------------

def test_default_sweep_lengths_are_spread_up_to_the_limit():
    assert default_sweep_lengths(200) == [40, 80, 120, 160, 200]
    assert default_sweep_lengths(256, 4) == [64, 128, 192, 256]
    validate_sweep_request(default_sweep_lengths(200), 3, Limits(max_new_tokens=200))
    with pytest.raises(ValueError, match="at least 10 new tokens"):
        default_sweep_lengths(8)


def test_polynomial_fit_recovers_exact_curves():
    n = np.array([25, 50, 100, 200, 25, 50, 100, 200])
    quadratic = 0.05 + 0.002 * n + 3e-5 * n**2
    fit = fit_polynomial(n, quadratic, 2)
    np.testing.assert_allclose(fit.coefficients, [0.05, 0.002, 3e-5], rtol=1e-6)
    assert fit.r_squared == pytest.approx(1.0)
    np.testing.assert_allclose(fit(n), quadratic)
    assert "N²" in fit.equation
    with pytest.raises(ValueError, match="at least 3 different"):
        fit_polynomial(np.array([1, 2, 1, 2]), np.ones(4), 2)


def test_theil_sen_ignores_spikes():
    x = np.arange(100)
    y = 2.0 + 0.5 * x
    y[::10] += 1000  # other programs stealing the CPU now and then
    intercept, slope = theil_sen_fit(x, y)
    assert slope == pytest.approx(0.5) and intercept == pytest.approx(2.0)


def test_timing_stats_and_units():
    stats = TimingStats.of(np.array([1.0, 2.0, 3.0, 10.0]))
    assert (stats.median_s, stats.min_s, stats.max_s, stats.n_runs) == (2.5, 1.0, 10.0, 4)
    assert stats.mean_s == pytest.approx(4.0) and stats.std_s == pytest.approx(np.std([1, 2, 3, 10]))
    assert "mean ± std. dev. of 4 runs" in stats.timeit_text()
    assert format_seconds(21.9) == "21.9 s" and format_seconds(0.00666) == "6.66 ms"
    assert format_seconds(2e-5) == "20 µs"


def test_fits_never_predict_negative_time():
    # The shortest runs were quicker than a straight line through the rest: plain least squares starts below 0 s.
    n = np.repeat([40, 80, 120, 160, 200], 3)
    noisy = np.array([0.05, 0.06, 0.055, 0.5, 0.52, 0.51, 1.0, 1.02, 1.01, 1.5, 1.48, 1.52, 2.0, 2.02, 1.98])
    for degree in (1, 2):
        assert np.polynomial.polynomial.polyfit(n, noisy, degree)[0] < -0.4  # what the old fit drew at N = 0
    for degree in (1, 2):
        fit = fit_polynomial(n, noisy, degree)
        assert all(c >= 0 for c in fit.coefficients)
        assert np.all(fit(np.linspace(0, 200, 201)) >= 0)
        assert "- " not in fit.equation
    # A curve that falls with N cannot be fitted by a total time: the best non-negative fit is flat or rising.
    falling = fit_polynomial(np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), 1)
    assert falling.coefficients[1] == 0 and falling.coefficients[0] == pytest.approx(2.0)


def test_speed_is_worded_by_the_result():
    assert speed_phrase(4.1) == "4.10× faster"
    assert speed_phrase(0.70) == "1.43× slower"  # never "0.70× faster"
    assert speed_phrase(1.0) == "1.00× faster"
    assert speed_phrase(float("nan")) == "not comparable"


def _sweep(totals_cached: list[list[float]], totals_uncached: list[list[float]], cpu_share: float = 1.0):
    conditions = TimingConditions(exclusive=True, acquired_without_waiting=True, waited_s=0.0, device="cpu",
                                  cpu_count=2, torch_threads=1, load_before=None, load_after=None,
                                  cpu_share=cpu_share)
    lengths = np.array([10, 20, 30])
    totals = {CACHED: np.array(totals_cached), UNCACHED: np.array(totals_uncached)}
    fits = {m: fit_polynomial(np.repeat(lengths, 3), totals[m].ravel(), d) for m, d in ((CACHED, 1), (UNCACHED, 2))}
    return SweepResult(5, lengths, totals, fits, conditions)


def test_sweep_summary_shows_median_and_spread_and_warns_when_busy():
    quiet = _sweep([[1.0, 1.05, 0.98], [2.0, 2.1, 2.02], [3.0, 3.05, 2.97]],
                   [[1.2, 1.25, 1.22], [3.0, 3.1, 3.05], [6.0, 6.2, 6.1]])
    assert quiet.n_repeats == 3 and quiet.busy_warning is None and quiet.warning is None
    np.testing.assert_allclose(quiet.medians_s(CACHED), [1.0, 2.02, 3.0])
    assert quiet.spreads(CACHED)[0] == pytest.approx(0.07)
    assert quiet.summary == ("Sweep done (median of 3 repeats per length): at N = 30 the cache is 2.03× faster.")
    busy = _sweep([[1.0, 1.9, 1.1], [2.0, 2.1, 2.02], [3.0, 3.05, 6.5]],
                  [[1.2, 1.25, 1.22], [3.0, 3.1, 3.05], [2.0, 2.1, 2.05]], cpu_share=0.5)
    assert "too busy to trust" in busy.busy_warning and "N = 30" in busy.busy_warning
    assert "slower" in busy.summary and "faster" not in busy.summary
    assert "Other programs were using the CPU" in busy.warning
