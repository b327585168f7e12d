"""Code that drives the model: timed `generate()` calls, worker threads, exclusive access, sampling loops.

`visualizer.analysis` stays pure functions on tensors and arrays; whatever calls `generate()`, starts a thread
or reads the clock lives here and hands its measurements to the analysis dataclasses:

* `exclusive`: hold the model alone while timing, and record how undisturbed the timing was;
* `timing`: a `generate()` call timed token by token, in lockstep with the consumer;
* `kv_race`: the KV-cache race (`race_kv_cache`), streamed;
* `kv_sweep`: total time against N for both modes (`sweep_kv_cache`), streamed;
* `sampling`: seeded continuations, left-padded batches, one next-token distribution.
"""
