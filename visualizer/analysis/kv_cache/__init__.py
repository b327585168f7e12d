"""KV cache, the pure half: what a race or sweep measured, its statistics, and what the cache holds.

The race times greedy `model.generate` twice from the same prompt:

* **cached** (`use_cache=True`): one forward pass over the prompt (the *prefill*) fills a `DynamicCache`;
  every later step feeds only the newest token, whose keys and values are appended to the cache.
* **uncached** (`use_cache=False`): every step runs the whole sequence so far (prompt + tokens generated
  so far), recomputing every key and value. Step k processes P + k tokens, so its latency grows with k
  and the total grows about quadratically with N.

The code that runs `generate()`, holds the model alone and reads the clock lives in `visualizer.runs`
(`kv_race.race_kv_cache`, `kv_sweep.sweep_kv_cache`, `timing`); this package only describes and summarises:

* `modes`: the two modes and the order repeats take turns in;
* `statistics`: %%timeit-style spread, Theil-Sen trends, non-negative polynomial fits, "faster"/"slower" wording;
* `inspection`: a DynamicCache measured and set beside the one KV-memory formula (`analysis.kv_memory`);
* `results`: the result and streamed-update dataclasses (no tensors: they are pickled across processes);
* `requests`: a request checked against the server's `Limits` before any model work.
"""

from visualizer.analysis.kv_cache.inspection import CacheLayerInfo, CacheReport, inspect_cache
from visualizer.analysis.kv_cache.modes import CACHED, FIT_DEGREE, MODES, UNCACHED, Mode, mode_order
from visualizer.analysis.kv_cache.requests import (
    MAX_SWEEP_REPEATS,
    MIN_SWEEP_REPEATS,
    default_sweep_lengths,
    validate_race_request,
    validate_sweep_request,
)
from visualizer.analysis.kv_cache.results import (
    ModeTiming,
    OutputComparison,
    RaceResult,
    RaceUpdate,
    SweepResult,
    SweepUpdate,
    TimingConditions,
    compare_outputs,
)
from visualizer.analysis.kv_cache.statistics import (
    BUSY_SPREAD,
    PolyFit,
    TimingStats,
    fit_polynomial,
    format_seconds,
    speed_phrase,
    theil_sen_fit,
)

__all__ = [
    "BUSY_SPREAD", "CACHED", "FIT_DEGREE", "MAX_SWEEP_REPEATS", "MIN_SWEEP_REPEATS", "MODES", "UNCACHED",
    "CacheLayerInfo", "CacheReport", "Mode", "ModeTiming", "OutputComparison", "PolyFit", "RaceResult",
    "RaceUpdate", "SweepResult", "SweepUpdate", "TimingConditions", "TimingStats", "compare_outputs",
    "default_sweep_lengths", "fit_polynomial", "format_seconds", "inspect_cache", "mode_order", "speed_phrase",
    "theil_sen_fit", "validate_race_request", "validate_sweep_request",
]
