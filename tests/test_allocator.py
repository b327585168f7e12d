"""glibc malloc thresholds: fixed once for a serving process, never over the user's own settings."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from visualizer.allocator import user_chose_malloc_settings

ROOT = Path(__file__).resolve().parent.parent
ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize(("environ", "chosen"), [
    ({}, False),
    ({"PATH": "/usr/bin"}, False),
    ({"MALLOC_TRIM_THRESHOLD_": "0"}, True),
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=4096"}, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, False),
])
def test_user_settings_are_recognised(environ, chosen):
    assert user_chose_malloc_settings(environ) is chosen


def _keep_freed_memory_in_fresh_process(**env: str) -> str:
    """keep_freed_memory() twice in a fresh interpreter (the setting is process-wide and applied once)."""
    code = ("from visualizer.allocator import keep_freed_memory as k; "
            "from visualizer import allocator as a; first = k(); print(first, k(), a._applied)")
    environ = {k: v for k, v in os.environ.items() if k not in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                                                                   "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**environ, **env}, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.strip()


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_thresholds_are_set_once_on_glibc():
    assert _keep_freed_memory_in_fresh_process() == "True True True"


def test_user_settings_are_left_alone():
    assert _keep_freed_memory_in_fresh_process(MALLOC_TRIM_THRESHOLD_="131072") == "False False False"


def test_the_serving_session_loader_applies_them(monkeypatch):
    from visualizer import allocator, session

    calls = []
    monkeypatch.setattr(session, "keep_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(session, "_shared", {})
    monkeypatch.setattr(session.ModelSession, "load", classmethod(lambda cls, config: object()))
    session.load_session(model="bundled")
    assert calls == [1]
    assert allocator.TRIM_THRESHOLD_BYTES >= allocator.MMAP_THRESHOLD_BYTES
