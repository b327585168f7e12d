"""The GPU check's CPU path (`--small`): the same steps as on a GPU, at sizes a shared CPU runs quickly."""

from __future__ import annotations

from benchmarks import gpu_check


def test_gpu_check_small_runs_every_step_and_passes(capsys):
    assert gpu_check.main(["--small"]) == 0
    table = capsys.readouterr().out
    for row in ("request budget", "trace 128 tokens", "trace 512 tokens", "open layer 2 (recomputed)",
                "memory bandwidth", "KV race N = 20", "cached decode", "8 concurrent traces"):
        assert row in table
    assert "FAIL" not in table
