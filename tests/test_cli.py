"""Start-up as a user meets it: real processes, their exit status and what they print on stderr."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def _error_lines(stderr: str) -> list[str]:
    """stderr without the log lines that precede the error (they carry a timestamp and a level)."""
    return [line for line in stderr.splitlines() if line and " INFO " not in line and "Loading weights" not in line]


def _assert_one_line_and_hint(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error, hint = _error_lines(result.stderr)
    assert error.startswith("python app.py: error: ") and message in error
    assert hint.startswith("hint: ") and hint.endswith("(--debug shows the traceback)")


def test_cuda_without_a_gpu_is_one_line_and_exit_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    _assert_one_line_and_hint(_run("app.py", "--device", "cuda", "--model", "bundled"), "no CUDA GPU is available")


def test_debug_adds_the_traceback():
    result = _run("app.py", "--manifest", str(ROOT / "no-such-manifest.yaml"), "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "no-such-manifest.yaml: no such file" in result.stderr.splitlines()[-2]


def test_bad_manifest_value_names_the_key(tmp_path):
    manifest = tmp_path / "spaces.yaml"
    manifest.write_text("queue:\n  max_size: -5\n")
    _assert_one_line_and_hint(_run("app.py", "--manifest", str(manifest)), "queue.max_size must be positive, got -5")


def test_missing_model_folder_without_fallback():
    result = _run("app.py", "--model", "./no/such/model", "--no-fallback", "--device", "cpu")
    _assert_one_line_and_hint(result, "--model ./no/such/model: no such folder")
    assert "drop --no-fallback" in result.stderr


def test_every_entry_point_has_the_same_flags():
    helps = [_run("app.py", "--help"), _run("-m", "visualizer", "--help")]
    assert all(result.returncode == 0 for result in helps)
    flags = [sorted(word for word in result.stdout.split() if word.startswith("--")) for result in helps]
    assert flags[0] == flags[1]
    for flag in ("--model", "--device-map", "--debug", "--share", "--no-fallback", "--manifest"):
        assert flag in flags[0]
    assert "smollm2" in helps[0].stdout and "usage: python -m visualizer" in helps[1].stdout
